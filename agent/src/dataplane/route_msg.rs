//! rtnetlink messages for tabby's routes, both ways.
//!
//! [`route_message`] builds the `RTM_NEWROUTE`/`RTM_DELROUTE` body for one
//! route; [`owned_route`] reads a dumped route back, returning `None` for
//! anything tabby does not own (another protocol, another table, a cached
//! clone). Every route lives in the main table with
//! [`super::ROUTE_PROTOCOL`].

use std::net::IpAddr;

use ipnet::IpNet;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteNextHop,
    RouteNextHopFlags, RouteProtocol, RouteScope, RouteType,
};

use super::ROUTE_PROTOCOL;
use super::route::{NextHop, Target};

/// The main routing table, where every tabby route lives.
pub const MAIN_TABLE: u8 = RouteHeader::RT_TABLE_MAIN;

/// The message body for `dst` → `target`.
pub fn route_message(dst: &IpNet, target: &Target) -> RouteMessage {
    let mut msg = RouteMessage::default();
    let h = &mut msg.header;
    h.address_family = family(dst.addr());
    h.destination_prefix_length = dst.prefix_len();
    h.table = MAIN_TABLE;
    h.protocol = RouteProtocol::Other(ROUTE_PROTOCOL);
    h.scope = RouteScope::Universe;
    h.kind = RouteType::Unicast;
    msg.attributes
        .push(RouteAttribute::Destination(RouteAddress::from(dst.addr())));
    match target {
        Target::Blackhole => msg.header.kind = RouteType::BlackHole,
        Target::Device { ifindex } => {
            msg.header.scope = RouteScope::Link;
            msg.attributes.push(RouteAttribute::Oif(*ifindex));
        }
        Target::Gateway(hop) => {
            if hop.onlink {
                msg.header.flags |= RouteFlags::Onlink;
            }
            msg.attributes
                .push(RouteAttribute::Gateway(RouteAddress::from(hop.gateway)));
            msg.attributes.push(RouteAttribute::Oif(hop.ifindex));
        }
        Target::Multipath(hops) => {
            let hops = hops.iter().map(next_hop).collect();
            msg.attributes.push(RouteAttribute::MultiPath(hops));
        }
    }
    msg
}

fn next_hop(hop: &NextHop) -> RouteNextHop {
    let mut nh = RouteNextHop::default();
    nh.interface_index = hop.ifindex;
    if hop.onlink {
        nh.flags |= RouteNextHopFlags::Onlink;
    }
    nh.attributes
        .push(RouteAttribute::Gateway(RouteAddress::from(hop.gateway)));
    nh
}

fn family(addr: IpAddr) -> AddressFamily {
    match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// The route in a dumped message, if tabby owns it.
pub fn owned_route(msg: &RouteMessage) -> Option<(IpNet, Target)> {
    let h = &msg.header;
    if h.protocol != RouteProtocol::Other(ROUTE_PROTOCOL) || h.flags.contains(RouteFlags::Cloned) {
        return None;
    }
    let table = msg
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(h.table));
    if table != u32::from(MAIN_TABLE) {
        return None;
    }
    let dst_addr = msg.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(addr) => ip(addr),
        _ => None,
    });
    let dst_addr = match (dst_addr, h.address_family) {
        (Some(a), _) => a,
        (None, AddressFamily::Inet) => IpAddr::from([0u8; 4]),
        (None, AddressFamily::Inet6) => IpAddr::from([0u8; 16]),
        (None, _) => return None,
    };
    let dst = IpNet::new(dst_addr, h.destination_prefix_length).ok()?;
    let target = match h.kind {
        RouteType::BlackHole => Target::Blackhole,
        RouteType::Unicast => unicast_target(msg)?,
        _ => return None,
    };
    Some((dst, target))
}

fn unicast_target(msg: &RouteMessage) -> Option<Target> {
    let mut gateway = None;
    let mut oif = None;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Gateway(addr) => gateway = ip(addr),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::MultiPath(hops) => {
                let hops = hops.iter().map(dumped_hop).collect::<Option<Vec<_>>>()?;
                return Some(Target::multipath(hops));
            }
            _ => {}
        }
    }
    let onlink = msg.header.flags.contains(RouteFlags::Onlink);
    match (gateway, oif) {
        (Some(gateway), Some(ifindex)) => Some(Target::Gateway(NextHop {
            gateway,
            ifindex,
            onlink,
        })),
        (None, Some(ifindex)) => Some(Target::Device { ifindex }),
        _ => None,
    }
}

fn dumped_hop(nh: &RouteNextHop) -> Option<NextHop> {
    let gateway = nh.attributes.iter().find_map(|a| match a {
        RouteAttribute::Gateway(addr) => ip(addr),
        _ => None,
    })?;
    let onlink = nh.flags.contains(RouteNextHopFlags::Onlink);
    Some(NextHop {
        gateway,
        ifindex: nh.interface_index,
        onlink,
    })
}

fn ip(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use rtnetlink::packet_core::{Emitable, Parseable};

    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn hop(gw: &str, ifindex: u32, onlink: bool) -> NextHop {
        NextHop {
            gateway: gw.parse().unwrap(),
            ifindex,
            onlink,
        }
    }

    fn bytes(msg: &RouteMessage) -> Vec<u8> {
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        buf
    }

    /// The exact bytes of `blackhole 10.0.1.64/26 proto 95`: rtmsg
    /// (family 2, dst_len 26, src_len 0, tos 0, table 254, protocol 95,
    /// scope universe 0, type blackhole 6, flags 0) then RTA_DST.
    #[test]
    fn blackhole_bytes() {
        let msg = route_message(&net("10.0.1.64/26"), &Target::Blackhole);
        assert_eq!(
            bytes(&msg),
            [
                2, 26, 0, 0, 254, 95, 0, 6, 0, 0, 0, 0, 8, 0, 1, 0, 10, 0, 1, 64
            ]
        );
    }

    /// `10.0.1.65/32 dev <7> scope link proto 95`: scope 253, RTA_OIF (4).
    #[test]
    fn pod_route_bytes() {
        let msg = route_message(&net("10.0.1.65/32"), &Target::Device { ifindex: 7 });
        assert_eq!(
            bytes(&msg),
            [
                2, 32, 0, 0, 254, 95, 253, 1, 0, 0, 0, 0, 8, 0, 1, 0, 10, 0, 1, 65, 8, 0, 4, 0, 7,
                0, 0, 0
            ]
        );
    }

    /// `10.0.2.0/26 via 10.200.0.2 dev <3> onlink proto 95`: RTNH_F_ONLINK
    /// (4) in rtm_flags, RTA_GATEWAY (5), RTA_OIF (4). This is also the
    /// shape of an IPIP route through tunl0, which this kernel cannot host.
    #[test]
    fn onlink_gateway_bytes() {
        let msg = route_message(
            &net("10.0.2.0/26"),
            &Target::Gateway(hop("10.200.0.2", 3, true)),
        );
        assert_eq!(
            bytes(&msg),
            [
                2, 26, 0, 0, 254, 95, 0, 1, 4, 0, 0, 0, 8, 0, 1, 0, 10, 0, 2, 0, 8, 0, 5, 0, 10,
                200, 0, 2, 8, 0, 4, 0, 3, 0, 0, 0
            ]
        );
    }

    #[test]
    fn every_shape_reads_back_as_itself() {
        let shapes = [
            (net("10.0.1.64/26"), Target::Blackhole),
            (net("10.0.1.65/32"), Target::Device { ifindex: 7 }),
            (
                net("10.0.2.0/26"),
                Target::Gateway(hop("10.200.0.2", 3, false)),
            ),
            (
                net("10.0.3.0/26"),
                Target::Gateway(hop("10.200.0.3", 9, true)),
            ),
            (
                net("10.0.4.0/26"),
                Target::multipath(vec![
                    hop("10.200.0.2", 3, false),
                    hop("10.200.0.3", 3, false),
                ]),
            ),
            (
                net("fd00:10::/122"),
                Target::Gateway(hop("fd00::2", 3, false)),
            ),
            (net("fd00:10::1/128"), Target::Device { ifindex: 11 }),
            (net("fd00:11::/122"), Target::Blackhole),
        ];
        for (dst, target) in shapes {
            let raw = bytes(&route_message(&dst, &target));
            let parsed = RouteMessage::parse(raw.as_slice()).unwrap();
            assert_eq!(owned_route(&parsed), Some((dst, target.clone())), "{dst}");
        }
    }

    #[test]
    fn routes_of_other_owners_are_not_ours() {
        let mut msg = route_message(&net("10.0.2.0/26"), &Target::Blackhole);
        msg.header.protocol = RouteProtocol::Other(12); // BIRD
        assert_eq!(owned_route(&msg), None);
        let mut msg = route_message(&net("10.0.2.0/26"), &Target::Blackhole);
        msg.header.table = 100;
        assert_eq!(owned_route(&msg), None);
    }
}
