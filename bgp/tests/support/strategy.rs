//! proptest strategies: arbitrary contexts, and arbitrary messages that are
//! valid under a given context (so that `decode(encode(m)) == m` must hold).
#![allow(dead_code)]

use std::net::{Ipv4Addr, Ipv6Addr};

use bgp::wire::capability::{
    AddPathFamily, AddPathMode, ExtendedNextHopFamily, GracefulRestart, GracefulRestartFamily,
    LongLivedGracefulRestartFamily, code,
};
use bgp::wire::*;
use proptest::collection::vec;
use proptest::prelude::*;

pub fn families() -> impl Strategy<Value = Families> {
    (any::<bool>(), any::<bool>()).prop_map(|(a, b)| {
        let mut f = Families::NONE;
        if a {
            f.insert(Family::Ipv4Unicast);
        }
        if b {
            f.insert(Family::Ipv6Unicast);
        }
        f
    })
}

pub fn context() -> impl Strategy<Value = Context> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        families(),
        families(),
    )
        .prop_map(
            |(four_octet_as, extended_message, enhanced_route_refresh, receive, send)| Context {
                four_octet_as,
                extended_message,
                enhanced_route_refresh,
                add_path: AddPath { receive, send },
            },
        )
}

fn afi_safi() -> impl Strategy<Value = (Afi, Safi)> {
    prop_oneof![
        Just((Afi::IPV4, Safi::UNICAST)),
        Just((Afi::IPV6, Safi::UNICAST)),
        (any::<u16>(), any::<u8>()).prop_map(|(a, s)| (Afi(a), Safi(s))),
    ]
}

pub fn capability() -> impl Strategy<Value = Capability> {
    let mode = prop_oneof![
        Just(AddPathMode::Receive),
        Just(AddPathMode::Send),
        Just(AddPathMode::Both)
    ];
    prop_oneof![
        afi_safi().prop_map(|(afi, safi)| Capability::Multiprotocol { afi, safi }),
        Just(Capability::RouteRefresh),
        Just(Capability::EnhancedRouteRefresh),
        Just(Capability::ExtendedMessage),
        (1u32..).prop_map(Capability::FourOctetAs),
        vec((any::<u16>(), any::<u16>(), any::<u16>()), 0..5).prop_map(|v| {
            Capability::ExtendedNextHop(
                v.into_iter()
                    .map(|(a, s, n)| ExtendedNextHopFamily {
                        nlri_afi: Afi(a),
                        nlri_safi: s,
                        next_hop_afi: Afi(n),
                    })
                    .collect(),
            )
        }),
        (
            any::<bool>(),
            any::<bool>(),
            0u16..0x1000,
            vec((afi_safi(), any::<bool>()), 0..5)
        )
            .prop_map(|(r, n, t, f)| {
                Capability::GracefulRestart(GracefulRestart {
                    restart_state: r,
                    notification: n,
                    restart_time: t,
                    families: f
                        .into_iter()
                        .map(|((afi, safi), fwd)| GracefulRestartFamily {
                            afi,
                            safi,
                            forwarding_state: fwd,
                        })
                        .collect(),
                })
            }),
        vec((afi_safi(), mode), 0..5).prop_map(|v| {
            Capability::AddPath(
                v.into_iter()
                    .map(|((afi, safi), mode)| AddPathFamily { afi, safi, mode })
                    .collect(),
            )
        }),
        vec((afi_safi(), any::<bool>(), 0u32..0x0100_0000), 0..5).prop_map(|v| {
            Capability::LongLivedGracefulRestart(
                v.into_iter()
                    .map(|((afi, safi), f, t)| LongLivedGracefulRestartFamily {
                        afi,
                        safi,
                        forwarding_state: f,
                        stale_time: t,
                    })
                    .collect(),
            )
        }),
        (vec(any::<u8>(), 0..40), vec(any::<u8>(), 0..40))
            .prop_map(|(hostname, domain)| Capability::Fqdn { hostname, domain }),
        (
            any::<u8>().prop_filter("unknown code", |c| !code::KNOWN.contains(c)),
            vec(any::<u8>(), 0..30)
        )
            .prop_map(|(code, value)| Capability::Unknown { code, value }),
    ]
}

pub fn open() -> impl Strategy<Value = Open> {
    (
        1u16..,
        prop_oneof![Just(0u16), 3u16..],
        1u32..,
        vec(capability(), 0..24),
    )
        .prop_map(|(my_as, hold_time, id, capabilities)| Open {
            my_as,
            hold_time,
            bgp_identifier: Ipv4Addr::from_bits(id),
            capabilities,
        })
}

fn v4_prefix() -> impl Strategy<Value = Ipv4Prefix> {
    (any::<u32>(), 0u8..=32).prop_map(|(a, l)| Ipv4Prefix::new(Ipv4Addr::from_bits(a), l).unwrap())
}

fn v6_prefix() -> impl Strategy<Value = Ipv6Prefix> {
    (any::<u128>(), 0u8..=128)
        .prop_map(|(a, l)| Ipv6Prefix::new(Ipv6Addr::from_bits(a), l).unwrap())
}

/// NLRI whose Path Identifiers are present exactly when `add_path`.
fn nlri<P: Prefix + 'static>(
    prefix: impl Strategy<Value = P> + 'static,
    add_path: bool,
    max: usize,
) -> BoxedStrategy<Vec<Nlri<P>>> {
    vec((prefix, any::<u32>()), 0..max)
        .prop_map(move |v| {
            v.into_iter()
                .map(|(prefix, id)| Nlri {
                    path_id: add_path.then_some(id),
                    prefix,
                })
                .collect()
        })
        .boxed()
}

/// A usable host address (RFC 4271 §6.3 would reject others with NLRI).
fn host_v4() -> impl Strategy<Value = Ipv4Addr> {
    (1u8..224, any::<u8>(), any::<u8>(), 1u8..255)
        .prop_filter("not loopback", |(a, ..)| *a != 127)
        .prop_map(|(a, b, c, d)| Ipv4Addr::new(a, b, c, d))
}

fn next_hop(v6_only: bool) -> BoxedStrategy<NextHop> {
    let v6 = (any::<u128>(), proptest::option::of(any::<u128>())).prop_map(|(g, l)| NextHop::V6 {
        global: Ipv6Addr::from_bits(g),
        link_local: l.map(Ipv6Addr::from_bits),
    });
    if v6_only {
        v6.boxed()
    } else {
        prop_oneof![host_v4().prop_map(NextHop::V4), v6].boxed()
    }
}

fn other_family() -> impl Strategy<Value = (Afi, Safi)> {
    (any::<u16>(), any::<u8>())
        .prop_filter("not a parsed family", |(a, s)| {
            Family::from_afi_safi(Afi(*a), Safi(*s)).is_none()
        })
        .prop_map(|(a, s)| (Afi(a), Safi(s)))
}

fn mp_reach(ctx: Context) -> BoxedStrategy<MpReach> {
    prop_oneof![
        (
            next_hop(false),
            nlri(v4_prefix(), ctx.add_path_send(Family::Ipv4Unicast), 30)
        )
            .prop_map(|(next_hop, nlri)| MpReach::Ipv4Unicast { next_hop, nlri }),
        (
            next_hop(true),
            nlri(v6_prefix(), ctx.add_path_send(Family::Ipv6Unicast), 30)
        )
            .prop_map(|(next_hop, nlri)| MpReach::Ipv6Unicast { next_hop, nlri }),
        (other_family(), vec(any::<u8>(), 0..40)).prop_map(|((afi, safi), value)| MpReach::Other {
            afi,
            safi,
            value
        }),
    ]
    .boxed()
}

fn mp_unreach(ctx: Context) -> BoxedStrategy<MpUnreach> {
    prop_oneof![
        nlri(v4_prefix(), ctx.add_path_send(Family::Ipv4Unicast), 30)
            .prop_map(MpUnreach::Ipv4Unicast),
        nlri(v6_prefix(), ctx.add_path_send(Family::Ipv6Unicast), 30)
            .prop_map(MpUnreach::Ipv6Unicast),
        (other_family(), vec(any::<u8>(), 0..40))
            .prop_map(|((afi, safi), value)| MpUnreach::Other { afi, safi, value }),
    ]
    .boxed()
}

fn asn(two_octet_only: bool) -> BoxedStrategy<u32> {
    if two_octet_only {
        (1u32..=0xffff).boxed()
    } else {
        prop_oneof![1u32..=0xffff, any::<u32>()].boxed()
    }
}

/// An AS path whose confederation segments lead (RFC 5065 §5.3) and, on a
/// 2-octet session, hold only 2-octet ASes (they never go in AS4_PATH).
fn as_path(four: bool) -> impl Strategy<Value = AsPath> {
    let seg = |kinds: Vec<SegmentType>, two: bool| {
        (proptest::sample::select(kinds), vec(asn(two), 1..12))
            .prop_map(|(kind, asns)| Segment { kind, asns })
    };
    let confed = vec(
        seg(
            vec![SegmentType::AsConfedSequence, SegmentType::AsConfedSet],
            !four,
        ),
        0..3,
    );
    let plain = vec(
        seg(vec![SegmentType::AsSequence, SegmentType::AsSet], false),
        0..4,
    );
    let long = vec(asn(false), 250..300).prop_map(|asns| Segment {
        kind: SegmentType::AsSequence,
        asns,
    });
    (confed, plain, proptest::option::weighted(0.05, long)).prop_map(|(mut c, p, l)| {
        c.extend(p);
        // A sequence longer than 255 is split on the wire; only <= 255 here.
        if let Some(mut l) = l {
            l.asns.truncate(255);
            c.push(l);
        }
        AsPath { segments: c }
    })
}

/// `Some` always when `p >= 1.0`, else with probability `p`.
fn maybe<S: Strategy + 'static>(p: f64, s: S) -> BoxedStrategy<Option<S::Value>>
where
    S::Value: Clone,
{
    if p >= 1.0 {
        s.prop_map(Some).boxed()
    } else {
        proptest::option::weighted(p, s).boxed()
    }
}

pub fn path_attributes(
    ctx: Context,
    mandatory: bool,
    v4_nlri: bool,
) -> BoxedStrategy<PathAttributes> {
    let four = ctx.four_octet_as;
    let origin = prop_oneof![
        Just(Origin::Igp),
        Just(Origin::Egp),
        Just(Origin::Incomplete)
    ];
    let m = if mandatory { 1.0 } else { 0.5 };
    (
        (
            maybe(m, origin),
            maybe(m, as_path(four)),
            maybe(if v4_nlri { 1.0 } else { 0.3 }, host_v4()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
            any::<bool>(),
            proptest::option::of((asn(false), any::<u32>()).prop_map(|(asn, a)| Aggregator {
                asn,
                address: Ipv4Addr::from_bits(a),
            })),
        ),
        (
            vec(any::<u32>().prop_map(Community), 0..80),
            proptest::option::of(any::<u32>().prop_map(Ipv4Addr::from_bits)),
            vec(any::<u32>().prop_map(Ipv4Addr::from_bits), 0..5),
            proptest::option::weighted(0.3, mp_reach(ctx)),
            proptest::option::weighted(0.3, mp_unreach(ctx)),
            vec(any::<[u8; 8]>().prop_map(ExtendedCommunity), 0..5),
            vec(
                any::<(u32, u32, u32)>().prop_map(|(a, b, c)| LargeCommunity {
                    global_admin: a,
                    local_data_1: b,
                    local_data_2: c,
                }),
                0..5,
            ),
            proptest::collection::btree_map(
                any::<u8>().prop_filter("unknown", |c| {
                    ![1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 32].contains(c)
                }),
                vec(any::<u8>(), 0..300),
                0..3,
            ),
        ),
    )
        .prop_map(
            move |(
                (origin, as_path, next_hop, med, local_pref, atomic, aggregator),
                (
                    communities,
                    originator_id,
                    cluster_list,
                    mp_reach,
                    mp_unreach,
                    ext,
                    large,
                    unknown,
                ),
            )| PathAttributes {
                origin,
                as_path,
                next_hop,
                multi_exit_disc: med,
                local_pref,
                atomic_aggregate: atomic,
                aggregator,
                communities,
                originator_id,
                cluster_list,
                mp_reach,
                mp_unreach,
                extended_communities: ext,
                large_communities: large,
                unknown: unknown
                    .into_iter()
                    .map(|(type_code, value)| RawAttribute { type_code, value })
                    .collect(),
            },
        )
        .prop_filter("mandatory attributes for MP_REACH NLRI", move |a| {
            let mp = a.mp_reach.as_ref().is_some_and(MpReach::has_nlri);
            mandatory || !mp
        })
        .boxed()
}

/// An UPDATE that is valid under `ctx` (as the encoder's context).
pub fn update(ctx: Context) -> BoxedStrategy<Update> {
    let add_path = ctx.add_path_send(Family::Ipv4Unicast);
    (
        nlri(v4_prefix(), add_path, 40),
        nlri(v4_prefix(), add_path, 40),
        any::<bool>(),
    )
        .prop_flat_map(move |(withdrawn, nlri, mandatory)| {
            let v4 = !nlri.is_empty();
            path_attributes(ctx, mandatory || v4, v4).prop_map(move |attributes| Update {
                withdrawn: withdrawn.clone(),
                attributes,
                nlri: nlri.clone(),
            })
        })
        .boxed()
}

pub fn notification() -> impl Strategy<Value = Notification> {
    (any::<u8>(), any::<u8>(), vec(any::<u8>(), 0..64)).prop_map(|(code, subcode, data)| {
        Notification {
            code,
            subcode,
            data,
        }
    })
}

pub fn route_refresh() -> impl Strategy<Value = RouteRefresh> {
    (any::<u16>(), any::<u8>(), any::<u8>()).prop_map(|(afi, st, safi)| RouteRefresh {
        afi: Afi(afi),
        subtype: match st {
            0 => RouteRefreshSubtype::Request,
            1 => RouteRefreshSubtype::BeginningOfRouteRefresh,
            2 => RouteRefreshSubtype::EndOfRouteRefresh,
            other => RouteRefreshSubtype::Other(other),
        },
        safi: Safi(safi),
    })
}

/// Any message valid under `ctx`.
pub fn message(ctx: Context) -> BoxedStrategy<Message> {
    prop_oneof![
        1 => Just(Message::Keepalive),
        2 => open().prop_map(Message::Open),
        6 => update(ctx).prop_map(Message::Update),
        1 => notification().prop_map(Message::Notification),
        1 => route_refresh().prop_map(Message::RouteRefresh),
    ]
    .boxed()
}

/// A context and a message valid under it.
pub fn context_and_message() -> impl Strategy<Value = (Context, Message)> {
    context().prop_flat_map(|ctx| message(ctx).prop_map(move |m| (ctx, m)))
}
