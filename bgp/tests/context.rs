//! `Context::negotiate`: what both OPENs decide (RFC 5492 §3, RFC 6793,
//! RFC 7911 §4, RFC 8654, RFC 7313).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::Ipv4Addr;

use bgp::wire::capability::{AddPathFamily, AddPathMode};
use bgp::wire::*;

fn open(caps: Vec<Capability>) -> Open {
    Open::new(64512, 90, Ipv4Addr::new(10, 0, 0, 1), caps)
}

fn add_path(v4: Option<AddPathMode>, v6: Option<AddPathMode>) -> Capability {
    let mut entries = Vec::new();
    for (mode, afi) in [(v4, Afi::IPV4), (v6, Afi::IPV6)] {
        if let Some(mode) = mode {
            entries.push(AddPathFamily {
                afi,
                safi: Safi::UNICAST,
                mode,
            });
        }
    }
    Capability::AddPath(entries)
}

#[test]
fn a_capability_counts_only_when_both_sides_advertise_it() {
    let all = vec![
        Capability::FourOctetAs(64512),
        Capability::ExtendedMessage,
        Capability::EnhancedRouteRefresh,
    ];
    let both = Context::negotiate(&open(all.clone()), &open(all.clone()));
    assert!(both.four_octet_as && both.extended_message && both.enhanced_route_refresh);
    assert_eq!(both.max_message_len(), 65535);
    for one_sided in [
        Context::negotiate(&open(all.clone()), &open(vec![])),
        Context::negotiate(&open(vec![]), &open(all)),
    ] {
        assert_eq!(one_sided, Context::default());
        assert_eq!(one_sided.max_message_len(), 4096);
    }
}

#[test]
fn add_path_is_decided_per_family_and_direction() {
    use AddPathMode::{Both, Receive, Send};
    // We receive IPv4 paths and send both ways on IPv6; the peer sends
    // IPv4 paths and only receives on IPv6.
    let ours = open(vec![add_path(Some(Receive), Some(Both))]);
    let theirs = open(vec![add_path(Some(Send), Some(Receive))]);
    let ctx = Context::negotiate(&ours, &theirs);
    assert!(ctx.add_path_receive(Family::Ipv4Unicast));
    assert!(!ctx.add_path_send(Family::Ipv4Unicast));
    assert!(!ctx.add_path_receive(Family::Ipv6Unicast));
    assert!(ctx.add_path_send(Family::Ipv6Unicast));
    // The peer's own view is the mirror image.
    assert_eq!(Context::negotiate(&theirs, &ours), ctx.mirror());
    // Both advertising only Receive gives nothing.
    let recv = open(vec![add_path(Some(Receive), Some(Receive))]);
    assert_eq!(
        Context::negotiate(&recv, &recv).add_path,
        AddPath::default()
    );
}

#[test]
fn four_octet_as_comes_from_the_capability() {
    let o = Open::new(
        4_200_000_001,
        90,
        Ipv4Addr::new(10, 0, 0, 1),
        vec![Capability::FourOctetAs(4_200_000_001)],
    );
    assert_eq!(o.my_as, 23456);
    assert_eq!(o.asn(), 4_200_000_001);
    let mut out = Vec::new();
    encode(&Message::Open(o.clone()), &Context::default(), &mut out).unwrap();
    let Message::Open(back) = decode(&out, &Context::default()).unwrap().message else {
        panic!("not an OPEN")
    };
    assert_eq!(back, o);
}
