//! Golden byte fixtures, both ways: each fixture decodes to the value
//! written out here, and encoding that value gives the same bytes. The
//! fixtures are written from the RFC field diagrams (lengths computed by
//! hand), not produced by the encoder under test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::{Ipv4Addr, Ipv6Addr};

use bgp::wire::capability::{AddPathFamily, AddPathMode, GracefulRestart, GracefulRestartFamily};
use bgp::wire::notification::CEASE_ADMINISTRATIVE_SHUTDOWN;
use bgp::wire::*;
use support::hex;

fn v4(a: [u8; 4], len: u8) -> Nlri<Ipv4Prefix> {
    Nlri::new(Ipv4Prefix::new(Ipv4Addr::from(a), len).unwrap())
}

/// Decodes `bytes` to `expected` and encodes `expected` back to `bytes`.
fn both_ways(bytes: &[u8], expected: &Message, rx: &Context) {
    assert_eq!(frame(bytes, rx), Ok(Some(bytes.len())), "frame");
    let got = decode(bytes, rx).expect("decode");
    assert!(
        got.errors.is_empty(),
        "unexpected RFC 7606 errors {:?}",
        got.errors
    );
    assert_eq!(&got.message, expected, "decoded value");
    let mut out = Vec::new();
    encode(expected, &rx.mirror(), &mut out).expect("encode");
    assert_eq!(
        support::to_hex(&out),
        support::to_hex(bytes),
        "encoded bytes"
    );
}

#[test]
fn keepalive() {
    both_ways(
        &hex("ffffffffffffffffffffffffffffffff 0013 04"),
        &Message::Keepalive,
        &Context::default(),
    );
}

#[test]
fn open_with_bird_like_capabilities() {
    let bytes = hex("ffffffffffffffffffffffffffffffff 0048 01
         04 fc00 00f0 0ac80001 2b 02 29
         01 04 0001 00 01   02 00   46 00   41 04 0000fc00
         40 06 0078 0001 01 80   45 04 0001 01 03   06 00
         49 07 05 6e6f646531 00");
    let open = Open {
        my_as: 64512,
        hold_time: 240,
        bgp_identifier: Ipv4Addr::new(10, 200, 0, 1),
        capabilities: vec![
            Capability::Multiprotocol {
                afi: Afi::IPV4,
                safi: Safi::UNICAST,
            },
            Capability::RouteRefresh,
            Capability::EnhancedRouteRefresh,
            Capability::FourOctetAs(64512),
            Capability::GracefulRestart(GracefulRestart {
                restart_state: false,
                notification: false,
                restart_time: 120,
                families: vec![GracefulRestartFamily {
                    afi: Afi::IPV4,
                    safi: Safi::UNICAST,
                    forwarding_state: true,
                }],
            }),
            Capability::AddPath(vec![AddPathFamily {
                afi: Afi::IPV4,
                safi: Safi::UNICAST,
                mode: AddPathMode::Both,
            }]),
            Capability::ExtendedMessage,
            Capability::Fqdn {
                hostname: b"node1".to_vec(),
                domain: Vec::new(),
            },
        ],
    };
    assert_eq!(open.asn(), 64512);
    both_ways(&bytes, &Message::Open(open), &Context::default());
}

#[test]
fn update_calico_ibgp_two_blocks() {
    let bytes = hex("ffffffffffffffffffffffffffffffff 0036 02 0000 0015
         400101 00  400200  400304 0ac80001  400504 00000064
         1a 0a000140  1a 0a000180");
    let update = Update {
        withdrawn: vec![],
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::default()),
            next_hop: Some(Ipv4Addr::new(10, 200, 0, 1)),
            local_pref: Some(100),
            ..PathAttributes::default()
        },
        nlri: vec![v4([10, 0, 1, 64], 26), v4([10, 0, 1, 128], 26)],
    };
    let ctx = Context {
        four_octet_as: true,
        ..Context::default()
    };
    both_ways(&bytes, &Message::Update(update), &ctx);
}

#[test]
fn update_ebgp_two_octet_session_with_as4_path() {
    let bytes = hex("ffffffffffffffffffffffffffffffff 0071 02 0000 0054
         400101 00
         400206 02 02 fde9 5ba0
         400304 c0000201
         800404 00000032
         c00808 fde90064 ffffff01
         c01008 0002fde900000064
         c0110a 02 02 0000fde9 fa56ea01
         c0200c fa56ea01 00000001 00000002
         e09904 deadbeef
         08 0a  18 c0a801");
    let update = Update {
        withdrawn: vec![],
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence([65001, 4_200_000_001])),
            next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
            multi_exit_disc: Some(50),
            communities: vec![Community::new(65001, 100), Community::NO_EXPORT],
            extended_communities: vec![ExtendedCommunity::route_target(65001, 100)],
            large_communities: vec![LargeCommunity {
                global_admin: 4_200_000_001,
                local_data_1: 1,
                local_data_2: 2,
            }],
            unknown: vec![RawAttribute {
                type_code: 0x99,
                value: vec![0xde, 0xad, 0xbe, 0xef],
            }],
            ..PathAttributes::default()
        },
        nlri: vec![v4([10, 0, 0, 0], 8), v4([192, 168, 1, 0], 24)],
    };
    both_ways(&bytes, &Message::Update(update), &Context::default());
}

#[test]
fn update_ipv6_mp_reach_with_path_id() {
    let bytes = hex("ffffffffffffffffffffffffffffffff 0059 02 0000 0042
         800e32 0002 01 20 20010db8000000000000000000000001
                          fe800000000000000000000000000001
                00  00000007 40 fd00000000000001
         400101 00
         400206 02 01 0000fc00");
    let prefix = Ipv6Prefix::new("fd00:0:0:1::".parse().unwrap(), 64).unwrap();
    let update = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence([64512])),
            mp_reach: Some(MpReach::Ipv6Unicast {
                next_hop: NextHop::V6 {
                    global: "2001:db8::1".parse::<Ipv6Addr>().unwrap(),
                    link_local: Some("fe80::1".parse().unwrap()),
                },
                nlri: vec![Nlri {
                    path_id: Some(7),
                    prefix,
                }],
            }),
            ..PathAttributes::default()
        },
        ..Update::default()
    };
    let ctx = Context {
        four_octet_as: true,
        add_path: AddPath {
            receive: Families::of(&[Family::Ipv6Unicast]),
            send: Families::NONE,
        },
        ..Context::default()
    };
    both_ways(&bytes, &Message::Update(update), &ctx);
}

#[test]
fn withdraw_ipv4_with_path_ids() {
    let bytes = hex("ffffffffffffffffffffffffffffffff 0029 02 0012
         00000001 1a 0a000140  00000002 20 0a000105
         0000");
    let mut a = v4([10, 0, 1, 64], 26);
    a.path_id = Some(1);
    let mut b = v4([10, 0, 1, 5], 32);
    b.path_id = Some(2);
    let update = Update {
        withdrawn: vec![a, b],
        ..Update::default()
    };
    let ctx = Context {
        add_path: AddPath {
            receive: Families::of(&[Family::Ipv4Unicast]),
            send: Families::NONE,
        },
        ..Context::default()
    };
    both_ways(&bytes, &Message::Update(update), &ctx);
}

#[test]
fn end_of_rib_both_families() {
    let v4 = hex("ffffffffffffffffffffffffffffffff 0017 02 0000 0000");
    let v6 = hex("ffffffffffffffffffffffffffffffff 001d 02 0000 0006 800f03 0002 01");
    for (bytes, family) in [(v4, Family::Ipv4Unicast), (v6, Family::Ipv6Unicast)] {
        let eor = Update::end_of_rib(family);
        assert_eq!(eor.end_of_rib_family(), Some(family));
        both_ways(&bytes, &Message::Update(eor), &Context::default());
    }
    let mut not_eor = Update::end_of_rib(Family::Ipv4Unicast);
    not_eor.attributes.origin = Some(Origin::Igp);
    assert_eq!(not_eor.end_of_rib_family(), None);
}

#[test]
fn notification_with_shutdown_communication() {
    let bytes = hex("ffffffffffffffffffffffffffffffff 0021 03 06 02 0b 6d61696e74656e616e6365");
    let n = Notification::cease_with_communication(CEASE_ADMINISTRATIVE_SHUTDOWN, "maintenance");
    assert_eq!(n.shutdown_communication(), Some("maintenance"));
    both_ways(&bytes, &Message::Notification(n), &Context::default());
}

#[test]
fn shutdown_communication_is_cut_at_a_character_boundary() {
    let long = "é".repeat(200); // 400 octets
    let n = Notification::cease_with_communication(CEASE_ADMINISTRATIVE_SHUTDOWN, &long);
    assert_eq!(n.data.first(), Some(&254));
    assert_eq!(n.shutdown_communication().map(str::len), Some(254));
}

#[test]
fn route_refresh_beginning_of_route_refresh() {
    let bytes = hex("ffffffffffffffffffffffffffffffff 0017 05 0001 01 01");
    let rr = RouteRefresh {
        afi: Afi::IPV4,
        subtype: RouteRefreshSubtype::BeginningOfRouteRefresh,
        safi: Safi::UNICAST,
    };
    both_ways(&bytes, &Message::RouteRefresh(rr), &Context::default());
}
