//! The VXLAN device and the per-node entries that replace flooding.
//!
//! Like Felix's VXLAN manager: one device, `vxlan.tabby` (VNI 4096, UDP
//! port 4789, learning off, on top of the uplink with the node address as
//! source), carrying the node's tunnel address as a /32. For each remote
//! node two permanent entries tell the kernel where to send, so nothing is
//! ever flooded or learned: a neighbour entry (remote tunnel IP → remote
//! VTEP MAC) and a bridge FDB entry (remote VTEP MAC → remote node IP).
//! Routes to remote blocks then go `via <remote tunnel IP> dev vxlan.tabby
//! onlink` (see [`super::encap`]).

use std::net::IpAddr;

use futures::{StreamExt, TryStreamExt};
use ipnet::IpNet;
use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{Handle, LinkUnspec, LinkVxlan};
use sha1::{Digest, Sha1};

use super::veth::{VethError, link_index};

/// Calico's defaults, kept so mixed clusters and firewalls need no change.
pub const DEFAULT_DEVICE: &str = "vxlan.tabby";
pub const DEFAULT_VNI: u32 = 4096;
pub const DEFAULT_PORT: u16 = 4789;

/// The local VXLAN device.
#[derive(Debug, Clone)]
pub struct VxlanDevice {
    pub name: String,
    pub vni: u32,
    pub port: u16,
    /// The uplink's ifindex (the device's parent).
    pub uplink: u32,
    /// The node's address: the outer source.
    pub local: IpAddr,
    /// This node's VTEP MAC.
    pub mac: [u8; 6],
    pub mtu: u32,
    /// The node's tunnel addresses, as host prefixes: the IPv4 one and,
    /// when dual stack, the IPv6 one (one device carries both families).
    pub tunnel_addresses: Vec<IpNet>,
}

/// What a remote node's VTEP needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteVtep {
    pub node_address: IpAddr,
    pub tunnel_address: IpAddr,
    pub mac: [u8; 6],
}

/// A stable VTEP MAC for `node`: the first six bytes of sha1(node name)
/// with the locally-administered bit set and the multicast bit clear.
pub fn vtep_mac(node: &str) -> [u8; 6] {
    let d = Sha1::digest(node.as_bytes());
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&d[..6]);
    mac[0] = (mac[0] & 0xfe) | 0x02;
    mac
}

/// Create the device, or recreate it if it exists with other parameters;
/// set its tunnel address and bring it up. Returns its ifindex.
pub async fn ensure_device(handle: &Handle, dev: &VxlanDevice) -> Result<u32, VethError> {
    if let Some(index) = link_index(handle, &dev.name).await? {
        if matches_device(handle, index, dev).await? {
            return finish(handle, index, dev).await;
        }
        handle.link().del(index).execute().await?;
    }
    handle.link().add(device_message(dev)).execute().await?;
    let index = link_index(handle, &dev.name)
        .await?
        .ok_or_else(|| VethError::Vanished(dev.name.clone()))?;
    finish(handle, index, dev).await
}

/// The `RTM_NEWLINK` body that creates the device.
pub fn device_message(dev: &VxlanDevice) -> LinkMessage {
    let builder = LinkVxlan::new(&dev.name, dev.vni)
        .dev(dev.uplink)
        .port(dev.port)
        .learning(false)
        .address(dev.mac.to_vec())
        .mtu(dev.mtu);
    match dev.local {
        IpAddr::V4(a) => builder.local(a),
        IpAddr::V6(a) => builder.local6(a),
    }
    .build()
}

async fn finish(handle: &Handle, index: u32, dev: &VxlanDevice) -> Result<u32, VethError> {
    for addr in &dev.tunnel_addresses {
        handle
            .address()
            .add(index, addr.addr(), addr.prefix_len())
            .replace()
            .execute()
            .await?;
    }
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).mtu(dev.mtu).up().build())
        .execute()
        .await?;
    Ok(index)
}

async fn matches_device(handle: &Handle, index: u32, dev: &VxlanDevice) -> Result<bool, VethError> {
    let mut links = handle.link().get().match_index(index).execute();
    let Some(link) = links.try_next().await? else {
        return Ok(false);
    };
    let mut kind_ok = false;
    let (mut vni, mut port, mut mac) = (None, None, None);
    for attr in &link.attributes {
        match attr {
            LinkAttribute::Address(m) => mac = Some(m.clone()),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(InfoKind::Vxlan) => kind_ok = true,
                        LinkInfo::Data(InfoData::Vxlan(data)) => {
                            for d in data {
                                match d {
                                    InfoVxlan::Id(v) => vni = Some(*v),
                                    InfoVxlan::Port(p) => port = Some(*p),
                                    _ => {}
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(kind_ok
        && vni == Some(dev.vni)
        && port == Some(dev.port)
        && mac.as_deref() == Some(&dev.mac[..]))
}

/// The permanent neighbour entry `tunnel IP → VTEP MAC` on the device.
pub fn neighbour_message(index: u32, vtep: &RemoteVtep) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = match vtep.tunnel_address {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    msg.header.ifindex = index;
    msg.header.state = NeighbourState::Permanent;
    msg.attributes
        .push(NeighbourAttribute::Destination(neighbour_address(
            vtep.tunnel_address,
        )));
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(vtep.mac.to_vec()));
    msg
}

/// The permanent FDB entry `VTEP MAC → node IP` on the device itself
/// (`NTF_SELF`: the VXLAN driver's table, not a bridge's).
pub fn fdb_message(index: u32, vtep: &RemoteVtep) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = index;
    msg.header.state = NeighbourState::Permanent;
    msg.header.flags = NeighbourFlags::Own;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(vtep.mac.to_vec()));
    msg.attributes
        .push(NeighbourAttribute::Destination(neighbour_address(
            vtep.node_address,
        )));
    msg
}

fn neighbour_address(ip: IpAddr) -> NeighbourAddress {
    match ip {
        IpAddr::V4(a) => NeighbourAddress::Inet(a),
        IpAddr::V6(a) => NeighbourAddress::Inet6(a),
    }
}

/// Install (or refresh) the neighbour and FDB entries for one remote node.
pub async fn set_remote(handle: &Handle, index: u32, vtep: &RemoteVtep) -> Result<(), VethError> {
    for msg in [neighbour_message(index, vtep), fdb_message(index, vtep)] {
        send(
            handle,
            RouteNetlinkMessage::NewNeighbour(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .await?;
    }
    Ok(())
}

/// Remove both entries for one remote node; entries already gone are fine.
pub async fn remove_remote(
    handle: &Handle,
    index: u32,
    vtep: &RemoteVtep,
) -> Result<(), VethError> {
    for msg in [neighbour_message(index, vtep), fdb_message(index, vtep)] {
        match send(handle, RouteNetlinkMessage::DelNeighbour(msg), 0).await {
            Err(VethError::Netlink(rtnetlink::Error::NetlinkError(e))) if e.raw_code() == -2 => {}
            other => other?,
        }
    }
    Ok(())
}

/// Send one request and wait for its ACK.
async fn send(handle: &Handle, msg: RouteNetlinkMessage, flags: u16) -> Result<(), VethError> {
    let mut req = NetlinkMessage::from(msg);
    req.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    let mut replies = handle.clone().request(req)?;
    while let Some(reply) = replies.next().await {
        if let NetlinkPayload::Error(err) = reply.payload
            && err.code.is_some()
        {
            return Err(rtnetlink::Error::NetlinkError(err).into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use rtnetlink::packet_core::Emitable;

    fn bytes(msg: &impl Emitable) -> Vec<u8> {
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        buf
    }

    const VTEP: RemoteVtep = RemoteVtep {
        node_address: IpAddr::V4(std::net::Ipv4Addr::new(10, 201, 2, 1)),
        tunnel_address: IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 2, 0)),
        mac: [0x66, 0x11, 0x22, 0x33, 0x44, 0x55],
    };

    /// ndmsg (family 2, pad, ifindex 6, state NUD_PERMANENT 0x80, flags 0,
    /// type 0), NDA_DST (1) 10.0.2.0, NDA_LLADDR (2) the MAC.
    #[test]
    fn neighbour_bytes() {
        assert_eq!(
            bytes(&neighbour_message(6, &VTEP)),
            [
                2, 0, 0, 0, 6, 0, 0, 0, 0x80, 0, 0, 0, 8, 0, 1, 0, 10, 0, 2, 0, 10, 0, 2, 0, 0x66,
                0x11, 0x22, 0x33, 0x44, 0x55, 0, 0
            ]
        );
    }

    /// ndmsg (family AF_BRIDGE 7, ifindex 6, NUD_PERMANENT, NTF_SELF 0x02),
    /// NDA_LLADDR the MAC, NDA_DST the remote node 10.201.2.1.
    #[test]
    fn fdb_bytes() {
        assert_eq!(
            bytes(&fdb_message(6, &VTEP)),
            [
                7, 0, 0, 0, 6, 0, 0, 0, 0x80, 0, 2, 0, 10, 0, 2, 0, 0x66, 0x11, 0x22, 0x33, 0x44,
                0x55, 0, 0, 8, 0, 1, 0, 10, 201, 2, 1
            ]
        );
    }

    #[test]
    fn device_message_carries_vni_port_parent_local_and_no_learning() {
        let dev = VxlanDevice {
            name: DEFAULT_DEVICE.into(),
            vni: DEFAULT_VNI,
            port: DEFAULT_PORT,
            uplink: 3,
            local: "10.201.1.1".parse().unwrap(),
            mac: vtep_mac("a"),
            mtu: 1450,
            tunnel_addresses: Vec::new(),
        };
        let msg = device_message(&dev);
        let attrs = &msg.attributes;
        assert!(attrs.contains(&LinkAttribute::IfName("vxlan.tabby".into())));
        assert!(attrs.contains(&LinkAttribute::Mtu(1450)));
        assert!(attrs.contains(&LinkAttribute::Address(vtep_mac("a").to_vec())));
        let data = attrs
            .iter()
            .find_map(|a| match a {
                LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                    LinkInfo::Data(InfoData::Vxlan(d)) => Some(d.clone()),
                    _ => None,
                }),
                _ => None,
            })
            .unwrap();
        for want in [
            InfoVxlan::Id(4096),
            InfoVxlan::Port(4789),
            InfoVxlan::Link(3),
            InfoVxlan::Learning(false),
            InfoVxlan::Local("10.201.1.1".parse().unwrap()),
        ] {
            assert!(data.contains(&want), "{want:?} missing from {data:?}");
        }
    }

    #[test]
    fn vtep_mac_is_stable_unicast_and_local() {
        let a = vtep_mac("node-a");
        assert_eq!(a, vtep_mac("node-a"));
        assert_ne!(a, vtep_mac("node-b"));
        assert_eq!(a[0] & 0x01, 0, "unicast");
        assert_eq!(a[0] & 0x02, 0x02, "locally administered");
    }
}
