//! A broad set of valid messages with the contexts to encode them under:
//! every message type, every capability tshark names, every attribute,
//! both AS widths, both families, ADD-PATH.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::{Ipv4Addr, Ipv6Addr};

use bgp::wire::capability::{
    AddPathFamily, AddPathMode, ExtendedNextHopFamily, GracefulRestart, GracefulRestartFamily,
};
use bgp::wire::notification::CEASE_ADMINISTRATIVE_SHUTDOWN;
use bgp::wire::*;

fn v4(s: &str) -> Nlri<Ipv4Prefix> {
    let (a, l) = s.split_once('/').unwrap();
    Nlri::new(Ipv4Prefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap())
}

fn v6(s: &str) -> Nlri<Ipv6Prefix> {
    let (a, l) = s.split_once('/').unwrap();
    Nlri::new(Ipv6Prefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap())
}

pub fn corpus() -> Vec<(Context, Message)> {
    let four = Context {
        four_octet_as: true,
        ..Context::default()
    };
    let two = Context::default();
    let open = Open::new(
        4_200_000_001,
        90,
        Ipv4Addr::new(10, 200, 0, 4),
        vec![
            Capability::Multiprotocol {
                afi: Afi::IPV4,
                safi: Safi::UNICAST,
            },
            Capability::Multiprotocol {
                afi: Afi::IPV6,
                safi: Safi::UNICAST,
            },
            Capability::RouteRefresh,
            Capability::EnhancedRouteRefresh,
            Capability::FourOctetAs(4_200_000_001),
            Capability::GracefulRestart(GracefulRestart {
                restart_state: true,
                notification: true,
                restart_time: 120,
                families: vec![GracefulRestartFamily {
                    afi: Afi::IPV4,
                    safi: Safi::UNICAST,
                    forwarding_state: true,
                }],
            }),
            Capability::AddPath(vec![
                AddPathFamily {
                    afi: Afi::IPV4,
                    safi: Safi::UNICAST,
                    mode: AddPathMode::Both,
                },
                AddPathFamily {
                    afi: Afi::IPV6,
                    safi: Safi::UNICAST,
                    mode: AddPathMode::Receive,
                },
            ]),
            Capability::ExtendedNextHop(vec![ExtendedNextHopFamily {
                nlri_afi: Afi::IPV4,
                nlri_safi: 1,
                next_hop_afi: Afi::IPV6,
            }]),
            Capability::ExtendedMessage,
            Capability::Fqdn {
                hostname: b"node4".to_vec(),
                domain: b"cluster.local".to_vec(),
            },
        ],
    );
    let calico = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        next_hop: Some(Ipv4Addr::new(10, 200, 0, 4)),
        local_pref: Some(100),
        ..PathAttributes::default()
    };
    let rich = PathAttributes {
        origin: Some(Origin::Incomplete),
        as_path: Some(AsPath {
            segments: vec![
                Segment {
                    kind: SegmentType::AsSequence,
                    asns: vec![65001, 4_200_000_001, 64512],
                },
                Segment {
                    kind: SegmentType::AsSet,
                    asns: vec![65010, 65011],
                },
            ],
        }),
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
        multi_exit_disc: Some(50),
        local_pref: Some(200),
        atomic_aggregate: true,
        aggregator: Some(Aggregator {
            asn: 65001,
            address: Ipv4Addr::new(192, 0, 2, 9),
        }),
        communities: vec![
            Community::new(64512, 100),
            Community::new(65001, 7),
            Community::NO_EXPORT,
        ],
        originator_id: Some(Ipv4Addr::new(10, 200, 0, 2)),
        cluster_list: vec![Ipv4Addr::new(10, 200, 0, 1), Ipv4Addr::new(10, 200, 0, 3)],
        extended_communities: vec![ExtendedCommunity::route_target(64512, 1)],
        large_communities: vec![
            LargeCommunity {
                global_admin: 4_200_000_001,
                local_data_1: 1,
                local_data_2: 2,
            },
            LargeCommunity {
                global_admin: 64512,
                local_data_1: 3,
                local_data_2: 4,
            },
        ],
        ..PathAttributes::default()
    };
    let blocks: Vec<_> = (0..64u32)
        .map(|i| {
            let a = Ipv4Addr::from_bits(0x0a00_0000 | (i << 6));
            Nlri::new(Ipv4Prefix::new(a, 26).unwrap())
        })
        .collect();
    let mut v6attrs = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence([64512])),
        ..PathAttributes::default()
    };
    v6attrs.mp_reach = Some(MpReach::Ipv6Unicast {
        next_hop: NextHop::V6 {
            global: "2001:db8::4".parse::<Ipv6Addr>().unwrap(),
            link_local: Some("fe80::4".parse().unwrap()),
        },
        nlri: vec![
            v6("fd00:10:244:1::/64"),
            v6("fd00:10:244:2::/64"),
            v6("2001:db8:1::/48"),
        ],
    });
    let mut long_large = rich.clone();
    long_large.large_communities = (0..30)
        .map(|i| LargeCommunity {
            global_admin: 64512,
            local_data_1: i,
            local_data_2: i * 7,
        })
        .collect();
    let mut v6_withdraw = Update::default();
    v6_withdraw.attributes.mp_unreach = Some(MpUnreach::Ipv6Unicast(vec![
        v6("fd00:10:244:1::/64"),
        v6("2001:db8:1::/48"),
    ]));
    let upd = |attributes: PathAttributes, nlri: Vec<Nlri<Ipv4Prefix>>| {
        Message::Update(Update {
            withdrawn: vec![],
            attributes,
            nlri,
        })
    };
    let add_path = Context {
        add_path: AddPath {
            receive: Families::NONE,
            send: Families::of(&[Family::Ipv4Unicast]),
        },
        ..four
    };
    let with_id = |s: &str, id| Nlri {
        path_id: Some(id),
        ..v4(s)
    };
    let add_path_update = Update {
        withdrawn: vec![with_id("10.0.9.0/26", 3)],
        attributes: calico.clone(),
        nlri: vec![with_id("10.0.1.64/26", 1), with_id("10.0.1.64/26", 2)],
    };
    vec![
        (add_path, Message::Update(add_path_update)),
        (two, Message::Keepalive),
        (two, Message::Open(open)),
        (
            four,
            upd(
                calico.clone(),
                vec![v4("10.0.1.64/26"), v4("10.0.1.128/26")],
            ),
        ),
        (four, upd(calico, blocks)),
        (
            four,
            upd(
                rich.clone(),
                vec![v4("203.0.113.0/24"), v4("0.0.0.0/0"), v4("10.1.2.3/32")],
            ),
        ),
        (two, upd(rich, vec![v4("198.51.100.0/22")])),
        (four, upd(long_large, vec![v4("172.16.0.0/12")])),
        (four, upd(v6attrs, vec![])),
        (four, Message::Update(v6_withdraw)),
        (
            four,
            Message::Update(Update {
                withdrawn: vec![v4("10.0.1.64/26"), v4("10.0.2.0/26")],
                ..Update::default()
            }),
        ),
        (
            four,
            Message::Update(Update::end_of_rib(Family::Ipv4Unicast)),
        ),
        (
            four,
            Message::Update(Update::end_of_rib(Family::Ipv6Unicast)),
        ),
        (
            two,
            Message::Notification(Notification::cease_with_communication(
                CEASE_ADMINISTRATIVE_SHUTDOWN,
                "maintenance window",
            )),
        ),
        (
            two,
            Message::Notification(Notification::new(ErrorCode::UpdateMessage, 10, [])),
        ),
        (
            two,
            Message::RouteRefresh(RouteRefresh {
                afi: Afi::IPV6,
                subtype: RouteRefreshSubtype::EndOfRouteRefresh,
                safi: Safi::UNICAST,
            }),
        ),
    ]
}
