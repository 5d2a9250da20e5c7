//! The decision process (RFC 4271 §9.1.2.2, RFC 4456 §9, RFC 9494 §4.3): one table row
//! per tie-break step, proving both the winner and the step that decided;
//! the MED rules; ECMP; and property tests that the order is total and
//! transitive, that the best path does not depend on arrival order, and
//! that it is the path the RFC's step-by-step elimination leaves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cmp::Ordering;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use bgp::rib::decision::select;
use bgp::rib::{Candidates, DecisionConfig, Path, PeerKind, RouteData, Source, Step, ZeroCost};
use bgp::wire::{AsPath, Community, NextHop, Origin, PathAttributes, Segment, SegmentType};
use proptest::prelude::*;

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, last)
}

/// A path from peer 192.0.2.`peer` (router id 10.0.0.`peer`), eBGP
/// unless changed, with LOCAL_PREF 100, AS_PATH [65001], ORIGIN IGP.
fn path(peer: u8) -> Path {
    Path {
        source: Arc::new(Source {
            kind: PeerKind::External,
            address: IpAddr::V4(ip(peer)),
            router_id: Ipv4Addr::new(10, 0, 0, peer),
            asn: 65001,
            rr_client: false,
        }),
        data: RouteData::shared(
            Arc::new(PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::sequence([65001])),
                local_pref: Some(100),
                ..PathAttributes::default()
            }),
            NextHop::V4(ip(peer)),
        ),
        path_id: 0,
    }
}

fn with(mut p: Path, f: impl FnOnce(&mut PathAttributes)) -> Path {
    let mut attrs = PathAttributes::clone(p.attrs());
    f(&mut attrs);
    p.data = RouteData::shared(Arc::new(attrs), p.next_hop());
    p
}

fn kind(mut p: Path, kind: PeerKind) -> Path {
    Arc::make_mut(&mut p.source).kind = kind;
    p
}

fn segs(s: &[(SegmentType, &[u32])]) -> AsPath {
    AsPath {
        segments: s
            .iter()
            .map(|(kind, asns)| Segment {
                kind: *kind,
                asns: asns.to_vec(),
            })
            .collect(),
    }
}

/// (name, the path expected to win, the loser, the deciding step).
fn table() -> Vec<(&'static str, Path, Path, Step)> {
    use SegmentType::*;
    vec![
        (
            "a long-lived stale path (LLGR_STALE) loses to any other, whatever its LOCAL_PREF",
            with(path(9), |a| {
                a.as_path = Some(AsPath::sequence([65001, 65002, 65003]))
            }),
            with(path(1), |a| {
                a.local_pref = Some(500);
                a.communities = vec![Community::LLGR_STALE];
            }),
            Step::LongLivedStale,
        ),
        (
            "higher LOCAL_PREF",
            with(path(9), |a| a.local_pref = Some(200)),
            path(1),
            Step::LocalPref,
        ),
        (
            "missing LOCAL_PREF is the default 100, below 150",
            with(path(9), |a| a.local_pref = Some(150)),
            with(path(1), |a| a.local_pref = None),
            Step::LocalPref,
        ),
        (
            "shorter AS_PATH",
            path(9),
            with(path(1), |a| {
                a.as_path = Some(AsPath::sequence([65001, 65002]))
            }),
            Step::AsPathLen,
        ),
        (
            "an AS_SET counts 1: [1 {2 3 4}] is shorter than [1 2 3]",
            with(path(9), |a| {
                a.as_path = Some(segs(&[(AsSequence, &[1]), (AsSet, &[2, 3, 4])]))
            }),
            with(path(1), |a| a.as_path = Some(AsPath::sequence([1, 2, 3]))),
            Step::AsPathLen,
        ),
        (
            "confederation segments count 0",
            with(path(9), |a| {
                a.as_path = Some(segs(&[(AsConfedSequence, &[7, 8, 9]), (AsSequence, &[1])]))
            }),
            with(path(1), |a| a.as_path = Some(AsPath::sequence([1, 2]))),
            Step::AsPathLen,
        ),
        (
            "lower ORIGIN: IGP over EGP",
            path(9),
            with(path(1), |a| a.origin = Some(Origin::Egp)),
            Step::Origin,
        ),
        (
            "lower ORIGIN: EGP over INCOMPLETE",
            with(path(9), |a| a.origin = Some(Origin::Egp)),
            with(path(1), |a| a.origin = Some(Origin::Incomplete)),
            Step::Origin,
        ),
        (
            "lower MED from the same neighbouring AS",
            with(path(9), |a| a.multi_exit_disc = Some(5)),
            with(path(1), |a| a.multi_exit_disc = Some(10)),
            Step::Med,
        ),
        (
            "missing MED is 0, the lowest",
            with(path(9), |a| a.multi_exit_disc = None),
            with(path(1), |a| a.multi_exit_disc = Some(1)),
            Step::Med,
        ),
        (
            "eBGP over iBGP",
            path(9),
            kind(path(1), PeerKind::Internal),
            Step::PeerType,
        ),
        (
            "local over eBGP",
            kind(path(9), PeerKind::Local),
            path(1),
            Step::PeerType,
        ),
        ("lower router id", path(1), path(9), Step::RouterId),
        (
            "ORIGINATOR_ID stands in for the router id",
            with(kind(path(9), PeerKind::Internal), |a| {
                a.originator_id = Some(Ipv4Addr::new(10, 0, 0, 0))
            }),
            kind(path(1), PeerKind::Internal),
            Step::RouterId,
        ),
        (
            "shorter CLUSTER_LIST",
            with(kind(path(9), PeerKind::Internal), |a| {
                a.originator_id = Some(Ipv4Addr::new(1, 1, 1, 1));
                a.cluster_list = vec![Ipv4Addr::new(9, 9, 9, 9)];
            }),
            with(kind(path(1), PeerKind::Internal), |a| {
                a.originator_id = Some(Ipv4Addr::new(1, 1, 1, 1));
                a.cluster_list = vec![Ipv4Addr::new(9, 9, 9, 9), Ipv4Addr::new(8, 8, 8, 8)];
            }),
            Step::ClusterListLen,
        ),
        (
            "lower peer address",
            {
                let mut p = path(5);
                Arc::make_mut(&mut p.source).router_id = Ipv4Addr::new(10, 0, 0, 1);
                p
            },
            {
                let mut p = path(6);
                Arc::make_mut(&mut p.source).router_id = Ipv4Addr::new(10, 0, 0, 1);
                p
            },
            Step::PeerAddress,
        ),
        (
            "lower Path Identifier from one peer",
            path(1),
            Path {
                path_id: 7,
                ..path(1)
            },
            Step::PathId,
        ),
    ]
}

#[test]
fn each_tie_break_step_decides_in_the_rfc_order() {
    let cfg = DecisionConfig::default();
    for (name, winner, loser, step) in table() {
        for paths in [
            vec![winner.clone(), loser.clone()],
            vec![loser.clone(), winner.clone()],
        ] {
            let c = Candidates::new(&paths, &cfg, &ZeroCost);
            let w = paths.iter().position(|p| *p == winner).unwrap();
            let v = c.compare(w, 1 - w);
            assert_eq!(v.ordering, Ordering::Less, "{name}");
            assert_eq!(v.step, step, "{name}");
            assert_eq!(c.select(&cfg).best, Some(w), "{name}");
        }
    }
}

#[test]
fn igp_cost_hook_decides_and_unresolvable_next_hops_are_never_best() {
    let cfg = DecisionConfig::default();
    let paths = vec![path(1), path(9)];
    // 192.0.2.1 costs 20, 192.0.2.9 costs 10: the lower router id loses.
    let cost = |nh: &NextHop| match nh {
        NextHop::V4(a) if *a == ip(1) => Some(20),
        _ => Some(10),
    };
    let c = Candidates::new(&paths, &cfg, &cost);
    assert_eq!(c.compare(1, 0).step, Step::IgpCost);
    assert_eq!(c.select(&cfg).best, Some(1));
    // 192.0.2.9 unreachable: it loses despite LOCAL_PREF 300.
    let paths = vec![path(1), with(path(9), |a| a.local_pref = Some(300))];
    let cost = |nh: &NextHop| (*nh == NextHop::V4(ip(1))).then_some(0);
    let c = Candidates::new(&paths, &cfg, &cost);
    assert_eq!(c.compare(0, 1).step, Step::Resolvable);
    assert_eq!(c.select(&cfg).best, Some(0));
    // Nothing reachable: no best.
    let none = |_: &NextHop| None;
    assert_eq!(select(&paths, &cfg, &none).best, None);
    assert_eq!(select(&[], &cfg, &ZeroCost).best, None);
}

#[test]
fn med_is_compared_only_within_one_neighbouring_as_unless_always_compare() {
    let from = |peer, asn, med| {
        with(path(peer), |a| {
            a.as_path = Some(AsPath::sequence([asn]));
            a.multi_exit_disc = Some(med);
        })
    };
    // AS 1 with MED 50 (router id .1) against AS 2 with MED 10 (.9).
    let paths = vec![from(1, 1, 50), from(9, 2, 10)];
    let cfg = DecisionConfig::default();
    let c = Candidates::new(&paths, &cfg, &ZeroCost);
    assert_eq!(c.compare(0, 1).step, Step::RouterId);
    assert_eq!(c.select(&cfg).best, Some(0));
    let always = DecisionConfig {
        always_compare_med: true,
        ..cfg
    };
    let c = Candidates::new(&paths, &always, &ZeroCost);
    assert_eq!(c.compare(1, 0).step, Step::Med);
    assert_eq!(c.select(&always).best, Some(1));
}

#[test]
fn the_med_cycle_is_resolved_by_elimination_over_the_set() {
    // A: AS 1 MED 10 id .3; B: AS 1 MED 5 id .5; C: AS 2 id .4.
    // Pairwise: B beats A (MED), C beats B (id), A beats C (id): a cycle.
    // RFC 4271 §9.1.2.2 c removes A (B has a lower MED in AS 1); C then
    // beats B on router id.
    let from = |peer, asn, med| {
        with(path(peer), |a| {
            a.as_path = Some(AsPath::sequence([asn]));
            a.multi_exit_disc = Some(med);
        })
    };
    let (a, b, c) = (from(3, 1, 10), from(5, 1, 5), from(4, 2, 0));
    let cfg = DecisionConfig::default();
    for order in [
        [&a, &b, &c],
        [&a, &c, &b],
        [&b, &a, &c],
        [&b, &c, &a],
        [&c, &a, &b],
        [&c, &b, &a],
    ] {
        let paths: Vec<Path> = order.iter().map(|p| (*p).clone()).collect();
        let best = select(&paths, &cfg, &ZeroCost).best.unwrap();
        assert_eq!(paths[best], c);
    }
}

#[test]
fn multipath_returns_paths_equal_through_igp_cost() {
    let cfg = DecisionConfig {
        multipath: true,
        ..DecisionConfig::default()
    };
    let paths = vec![
        path(7),
        path(3),
        with(path(5), |a| a.local_pref = Some(50)),
        path(1),
        kind(path(2), PeerKind::Internal),
    ];
    let s = select(&paths, &cfg, &ZeroCost);
    // .1 best (router id), then .3, .7; not the low LOCAL_PREF, not iBGP.
    assert_eq!(s.best, Some(3));
    assert_eq!(s.multipath, vec![3, 1, 0]);
    // Unequal IGP cost splits the set.
    let cost = |nh: &NextHop| Some(u32::from(*nh == NextHop::V4(ip(3))));
    assert_eq!(select(&paths, &cfg, &cost).multipath, vec![3, 0]);
    // Without multipath, the best alone.
    let s = select(&paths, &DecisionConfig::default(), &ZeroCost);
    assert_eq!(s.multipath, vec![3]);
}

// ---- properties ----------------------------------------------------------

fn arb_path() -> impl Strategy<Value = Path> {
    let seg = (0..4u8, proptest::collection::vec(1..4u32, 1..3)).prop_map(|(k, asns)| Segment {
        kind: match k {
            0 => SegmentType::AsSet,
            1 => SegmentType::AsConfedSequence,
            _ => SegmentType::AsSequence,
        },
        asns,
    });
    (
        (
            prop_oneof![3 => Just(Some(100u32)), 1 => prop::option::of(prop::sample::select(vec![50u32, 200]))],
            // Mostly one-AS paths, so that many paths tie through ORIGIN
            // and the MED rules matter.
            prop_oneof![
                3 => (1..3u32).prop_map(|asn| AsPath::sequence([asn]).segments),
                1 => proptest::collection::vec(seg, 0..3),
            ],
            prop_oneof![3 => Just(0u8), 1 => 1..3u8],
            prop::option::of(prop::sample::select(vec![0u32, 5, 10])),
            0..3u8,
        ),
        (
            1..4u8,
            prop::option::of(1..4u8),
            0..3usize,
            1..4u8,
            0..3u8,
        ),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |((lp, segments, origin, med, kind), (rid, originator, clusters, addr, nh), stale)| Path {
                source: Arc::new(Source {
                    kind: match kind {
                        0 => PeerKind::Local,
                        1 => PeerKind::External,
                        _ => PeerKind::Internal,
                    },
                    address: IpAddr::V4(ip(addr)),
                    router_id: Ipv4Addr::new(10, 0, 0, rid),
                    asn: 65000,
                    rr_client: false,
                }),
                data: RouteData::shared(
                    Arc::new(PathAttributes {
                        origin: Some(
                            [Origin::Igp, Origin::Egp, Origin::Incomplete][usize::from(origin)],
                        ),
                        as_path: Some(AsPath { segments }),
                        local_pref: lp,
                        multi_exit_disc: med,
                        originator_id: originator.map(|o| Ipv4Addr::new(10, 0, 0, o)),
                        cluster_list: vec![Ipv4Addr::LOCALHOST; clusters],
                        communities: if stale {
                            vec![Community::LLGR_STALE]
                        } else {
                            Vec::new()
                        },
                        ..PathAttributes::default()
                    }),
                    NextHop::V4(ip(nh)),
                ),
                path_id: 0,
            },
        )
}

/// Up to 7 paths, each with a distinct Path Identifier so that no two
/// are indistinguishable.
fn arb_set() -> impl Strategy<Value = Vec<Path>> {
    proptest::collection::vec(arb_path(), 1..8).prop_map(|mut v| {
        for (i, p) in v.iter_mut().enumerate() {
            p.path_id = u32::try_from(i).unwrap();
        }
        v
    })
}

/// IGP cost by next hop: .1 costs 0, .2 costs 5, anything else is
/// unreachable.
fn cost(nh: &NextHop) -> Option<u32> {
    match nh {
        NextHop::V4(a) if *a == ip(1) => Some(0),
        NextHop::V4(a) if *a == ip(2) => Some(5),
        _ => None,
    }
}

/// RFC 4271 §9.1.2.2 read literally: keep narrowing the set.
fn reference(paths: &[Path], always_compare_med: bool) -> Option<Path> {
    fn keep_min<K: Ord>(s: &mut Vec<Path>, key: impl Fn(&Path) -> K) {
        if let Some(m) = s.iter().map(&key).min() {
            s.retain(|p| key(p) == m);
        }
    }
    let mut s: Vec<Path> = paths
        .iter()
        .filter(|p| cost(&p.next_hop()).is_some())
        .cloned()
        .collect();
    // RFC 9494 §4.3: long-lived stale paths are the least preferred.
    keep_min(&mut s, |p| {
        p.attrs().communities.contains(&Community::LLGR_STALE)
    });
    keep_min(&mut s, |p| {
        std::cmp::Reverse(p.attrs().local_pref.unwrap_or(100))
    });
    keep_min(&mut s, |p| p.attrs().as_path.as_ref().unwrap().route_len());
    keep_min(&mut s, |p| p.attrs().origin);
    let nas = |p: &Path| {
        let first = p
            .attrs()
            .as_path
            .as_ref()?
            .segments
            .iter()
            .find(|s| !s.kind.is_confed())?;
        (first.kind == SegmentType::AsSequence).then(|| first.asns[0])
    };
    let med = |p: &Path| p.attrs().multi_exit_disc.unwrap_or(0);
    let all = s.clone();
    s.retain(|p| {
        !all.iter()
            .any(|q| (always_compare_med || nas(q) == nas(p)) && med(q) < med(p))
    });
    for k in [PeerKind::Local, PeerKind::External] {
        if s.iter().any(|p| p.source.kind == k) {
            s.retain(|p| p.source.kind == k);
            break;
        }
    }
    keep_min(&mut s, |p| cost(&p.next_hop()));
    keep_min(&mut s, |p| {
        p.attrs().originator_id.unwrap_or(p.source.router_id)
    });
    keep_min(&mut s, |p| p.attrs().cluster_list.len());
    keep_min(&mut s, |p| p.source.address);
    keep_min(&mut s, |p| p.path_id);
    assert!(s.len() <= 1, "distinct path ids leave one path");
    s.pop()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn order_is_antisymmetric_and_transitive(paths in arb_set(), always in any::<bool>()) {
        let cfg = DecisionConfig { always_compare_med: always, ..DecisionConfig::default() };
        let c = Candidates::new(&paths, &cfg, &cost);
        let n = paths.len();
        for i in 0..n {
            prop_assert_eq!(c.compare(i, i).ordering, Ordering::Equal);
            for j in 0..n {
                let (ij, ji) = (c.compare(i, j), c.compare(j, i));
                prop_assert_eq!(ij.ordering, ji.ordering.reverse());
                prop_assert_eq!(ij.step, ji.step);
                if i != j {
                    prop_assert_ne!(ij.ordering, Ordering::Equal, "distinct paths are told apart");
                }
                for k in 0..n {
                    if c.compare(i, j).ordering.is_le() && c.compare(j, k).ordering.is_le() {
                        prop_assert!(c.compare(i, k).ordering.is_le(), "{} {} {}", i, j, k);
                    }
                }
            }
        }
    }

    #[test]
    fn best_is_the_rfc_elimination_result_whatever_the_arrival_order(
        (paths, shuffled) in arb_set().prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
        always in any::<bool>(),
    ) {
        let cfg = DecisionConfig { always_compare_med: always, ..DecisionConfig::default() };
        let pick = |v: &[Path]| select(v, &cfg, &cost).best.map(|b| v[b].clone());
        let expected = reference(&paths, always);
        prop_assert_eq!(pick(&paths), expected.clone());
        prop_assert_eq!(pick(&shuffled), expected);
    }

    #[test]
    fn multipath_members_equal_the_best_through_igp_cost(paths in arb_set()) {
        let cfg = DecisionConfig { multipath: true, ..DecisionConfig::default() };
        let s = select(&paths, &cfg, &cost);
        let c = Candidates::new(&paths, &cfg, &cost);
        if let Some(best) = s.best {
            prop_assert_eq!(s.multipath.first(), Some(&best));
            for k in 0..paths.len() {
                let member = s.multipath.contains(&k);
                prop_assert_eq!(member, k == best || c.compare(best, k).step > Step::IgpCost);
            }
        } else {
            prop_assert!(s.multipath.is_empty());
        }
    }
}
