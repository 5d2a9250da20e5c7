//! Adj-RIB-In and attribute interning: UPDATEs of both families applied
//! with their exact changes, ADD-PATH paths kept apart, attribute sets
//! shared, and graceful-restart staleness (RFC 4724 §4.2) driven by a
//! caller's clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bgp::rib::{AdjRibIn, Interner, IpPrefix, RouteKey};
use bgp::wire::*;

fn v4(i: u32) -> Nlri<Ipv4Prefix> {
    Nlri::new(Ipv4Prefix::new(Ipv4Addr::from_bits(0x0a00_0000 | i << 6), 26).unwrap())
}

fn v6(i: u16) -> Nlri<Ipv6Prefix> {
    Nlri::new(Ipv6Prefix::new(Ipv6Addr::new(0xfd00, i, 0, 0, 0, 0, 0, 0), 64).unwrap())
}

fn attrs(med: u32) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence([65001])),
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
        multi_exit_disc: Some(med),
        ..PathAttributes::default()
    }
}

fn announce(nlri: Vec<Nlri<Ipv4Prefix>>, a: PathAttributes) -> Update {
    Update {
        attributes: a,
        nlri,
        ..Update::default()
    }
}

fn key4(n: Nlri<Ipv4Prefix>) -> RouteKey {
    RouteKey {
        prefix: IpPrefix::V4(n.prefix),
        path_id: n.path_id.unwrap_or(0),
    }
}

fn sorted(mut v: Vec<RouteKey>) -> Vec<RouteKey> {
    v.sort();
    v
}

#[test]
fn hundred_thousand_routes_with_three_sets_hold_three_allocations() {
    let mut interner = Interner::new();
    let mut rib = AdjRibIn::new();
    for chunk in 0..100 {
        let nlri = (chunk * 1000..(chunk + 1) * 1000).map(v4).collect();
        rib.apply(&announce(nlri, attrs(chunk % 3)), &mut interner)
            .unwrap();
    }
    assert_eq!(rib.len(), 100_000);
    assert_eq!(interner.len(), 3);
    let distinct: HashSet<*const PathAttributes> =
        rib.iter().map(|(_, r)| Arc::as_ptr(r.attrs())).collect();
    assert_eq!(distinct.len(), 3, "every route points at one of 3 sets");
    // Each set is held by the interner and once per UPDATE that carried
    // it (its routes share that one), nothing else.
    let total: usize = rib
        .iter()
        .map(|(_, r)| Arc::as_ptr(r.attrs()))
        .collect::<HashSet<_>>()
        .iter()
        .map(|p| {
            let r = rib
                .iter()
                .find(|(_, r)| Arc::as_ptr(r.attrs()) == *p)
                .unwrap();
            Arc::strong_count(r.1.attrs()) - 1
        })
        .sum();
    assert_eq!(total, 100, "one per UPDATE");
}

#[test]
fn purge_drops_sets_no_route_uses() {
    let mut interner = Interner::new();
    let mut rib = AdjRibIn::new();
    rib.apply(&announce(vec![v4(1)], attrs(1)), &mut interner)
        .unwrap();
    rib.apply(&announce(vec![v4(1)], attrs(2)), &mut interner)
        .unwrap();
    assert_eq!(interner.len(), 2);
    assert_eq!(interner.purge(), 1);
    assert_eq!(interner.len(), 1);
    let kept = interner.intern(PathAttributes {
        next_hop: None,
        ..attrs(2)
    });
    assert!(Arc::ptr_eq(&kept, rib.route(&key4(v4(1))).unwrap().attrs()));
}

#[test]
fn ipv4_announce_replace_withdraw_report_exact_changes() {
    let mut i = Interner::new();
    let mut rib = AdjRibIn::new();
    let c = rib
        .apply(&announce(vec![v4(1), v4(2)], attrs(0)), &mut i)
        .unwrap();
    assert_eq!(sorted(c), vec![key4(v4(1)), key4(v4(2))]);
    // The same again: nothing changed.
    let c = rib.apply(&announce(vec![v4(1)], attrs(0)), &mut i).unwrap();
    assert!(c.is_empty());
    // New MED for 2: only 2 changed.
    let c = rib.apply(&announce(vec![v4(2)], attrs(7)), &mut i).unwrap();
    assert_eq!(c, vec![key4(v4(2))]);
    assert_eq!(
        rib.route(&key4(v4(2))).unwrap().attrs().multi_exit_disc,
        Some(7)
    );
    // New next hop only: a change, attributes still shared.
    let mut moved = attrs(7);
    moved.next_hop = Some(Ipv4Addr::new(192, 0, 2, 9));
    let c = rib.apply(&announce(vec![v4(2)], moved), &mut i).unwrap();
    assert_eq!(c, vec![key4(v4(2))]);
    assert_eq!(i.len(), 2);
    // Withdraw 1 and a prefix never announced.
    let u = Update {
        withdrawn: vec![v4(1), v4(99)],
        ..Update::default()
    };
    assert_eq!(rib.apply(&u, &mut i).unwrap(), vec![key4(v4(1))]);
    assert_eq!(rib.len(), 1);
    // The stored attributes carry neither NEXT_HOP nor MP attributes.
    let r = rib.route(&key4(v4(2))).unwrap();
    assert_eq!(r.attrs().next_hop, None);
    assert_eq!(r.next_hop(), NextHop::V4(Ipv4Addr::new(192, 0, 2, 9)));
}

#[test]
fn ipv6_via_mp_reach_and_mp_unreach() {
    let mut i = Interner::new();
    let mut rib = AdjRibIn::new();
    let nh = NextHop::V6 {
        global: "2001:db8::1".parse().unwrap(),
        link_local: None,
    };
    let mut a = attrs(0);
    a.next_hop = None;
    a.mp_reach = Some(MpReach::Ipv6Unicast {
        next_hop: nh,
        nlri: vec![v6(1), v6(2)],
    });
    let u = Update {
        attributes: a,
        ..Update::default()
    };
    assert_eq!(rib.apply(&u, &mut i).unwrap().len(), 2);
    let k1 = RouteKey {
        prefix: IpPrefix::V6(v6(1).prefix),
        path_id: 0,
    };
    let r = rib.route(&k1).unwrap();
    assert_eq!(r.next_hop(), nh);
    assert!(r.attrs().mp_reach.is_none());
    let mut w = Update::default();
    w.attributes.mp_unreach = Some(MpUnreach::Ipv6Unicast(vec![v6(1)]));
    assert_eq!(rib.apply(&w, &mut i).unwrap(), vec![k1]);
    assert_eq!(rib.len(), 1);
}

#[test]
fn add_path_identifiers_are_separate_routes() {
    let mut i = Interner::new();
    let mut rib = AdjRibIn::new();
    let p = |id| Nlri {
        path_id: Some(id),
        ..v4(5)
    };
    rib.apply(&announce(vec![p(1), p(2)], attrs(0)), &mut i)
        .unwrap();
    assert_eq!(rib.len(), 2);
    let u = Update {
        withdrawn: vec![p(1)],
        ..Update::default()
    };
    assert_eq!(rib.apply(&u, &mut i).unwrap(), vec![key4(p(1))]);
    assert!(rib.route(&key4(p(2))).is_some());
}

#[test]
fn nlri_without_next_hop_is_an_error_not_a_panic() {
    let mut i = Interner::new();
    let mut rib = AdjRibIn::new();
    let mut a = attrs(0);
    a.next_hop = None;
    assert!(rib.apply(&announce(vec![v4(1)], a), &mut i).is_err());
}

#[test]
fn graceful_restart_stale_until_end_of_rib() {
    let mut i = Interner::new();
    let mut rib = AdjRibIn::new();
    rib.apply(&announce(vec![v4(1), v4(2), v4(3)], attrs(0)), &mut i)
        .unwrap();
    let mut a = attrs(0);
    a.mp_reach = Some(MpReach::Ipv6Unicast {
        next_hop: NextHop::V6 {
            global: Ipv6Addr::LOCALHOST,
            link_local: None,
        },
        nlri: vec![v6(1)],
    });
    rib.apply(
        &Update {
            attributes: a,
            ..Update::default()
        },
        &mut i,
    )
    .unwrap();
    let t0 = Instant::now();
    // The peer preserved IPv4 only: its IPv6 route goes at once.
    let gone = rib.mark_stale(
        Families::of(&[Family::Ipv4Unicast]),
        t0 + Duration::from_secs(120),
    );
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].prefix.family(), Family::Ipv6Unicast);
    assert_eq!(rib.stale_count(), 3);
    // Re-announced after the restart: 1 unchanged (not a change, but no
    // longer stale), 2 with new attributes.
    assert!(
        rib.apply(&announce(vec![v4(1)], attrs(0)), &mut i)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        rib.apply(&announce(vec![v4(2)], attrs(5)), &mut i).unwrap(),
        vec![key4(v4(2))]
    );
    assert_eq!(rib.stale_count(), 1);
    // End-of-RIB for IPv6 does not touch IPv4's stale route.
    assert!(rib.end_of_rib(Family::Ipv6Unicast).is_empty());
    assert_eq!(rib.end_of_rib(Family::Ipv4Unicast), vec![key4(v4(3))]);
    assert_eq!(rib.len(), 2);
    assert_eq!(rib.stale_deadline(), None);
}

#[test]
fn graceful_restart_stale_flushed_at_the_deadline_and_not_before() {
    let mut i = Interner::new();
    let mut rib = AdjRibIn::new();
    rib.apply(&announce(vec![v4(1), v4(2)], attrs(0)), &mut i)
        .unwrap();
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(120);
    rib.mark_stale(Families::of(&Family::ALL), deadline);
    assert_eq!(rib.stale_deadline(), Some(deadline));
    assert!(rib.expire(t0 + Duration::from_secs(119)).is_empty());
    assert_eq!(rib.len(), 2);
    rib.apply(&announce(vec![v4(1)], attrs(0)), &mut i).unwrap();
    assert_eq!(rib.expire(deadline), vec![key4(v4(2))]);
    assert_eq!(rib.len(), 1);
    assert!(rib.route(&key4(v4(1))).is_some());
    assert!(!rib.is_stale(&key4(v4(1))));
}
