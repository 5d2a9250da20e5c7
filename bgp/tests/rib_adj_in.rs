//! Adj-RIB-In and attribute interning, through the RIB that holds them:
//! UPDATEs of both families applied with their exact changes, ADD-PATH
//! paths kept apart, attribute sets shared, a route kept once unless
//! import policy changed or rejected it (and then kept as received too),
//! and graceful-restart staleness (RFC 4724 §4.2) driven by a caller's
//! clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bgp::rib::*;
use bgp::wire::*;

const AS: u32 = 64512;

fn peer() -> IpAddr {
    "192.0.2.1".parse().unwrap()
}

/// A RIB with one iBGP peer and no import policy.
fn rib() -> Rib {
    let mut rib = Rib::new(LocalConfig {
        asn: AS,
        router_id: Ipv4Addr::new(10, 0, 0, 1),
        cluster_id: None,
        decision: DecisionConfig::default(),
    });
    rib.set_peer(PeerConfig::new(peer(), AS));
    rib
}

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

fn prefixes(changes: Vec<BestPathChange>) -> Vec<IpPrefix> {
    let mut v: Vec<IpPrefix> = changes.into_iter().map(|c| c.prefix).collect();
    v.sort();
    v
}

fn received(rib: &Rib, key: &RouteKey) -> Option<Route> {
    rib.received(&peer())
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, r)| r)
}

fn adj_in(rib: &Rib) -> &AdjRibIn {
    rib.adj_rib_in(&peer()).unwrap()
}

#[test]
fn hundred_thousand_routes_with_three_sets_hold_three_allocations() {
    let mut rib = rib();
    for chunk in 0..100 {
        let nlri = (chunk * 1000..(chunk + 1) * 1000).map(v4).collect();
        rib.receive(&peer(), &announce(nlri, attrs(chunk % 3)))
            .unwrap();
    }
    let routes = rib.received(&peer());
    assert_eq!(routes.len(), 100_000);
    assert_eq!(adj_in(&rib).len(), 100_000);
    assert_eq!(rib.loc_rib().len(), 100_000);
    assert_eq!(
        adj_in(&rib).filtered_count(),
        0,
        "kept once, in the Loc-RIB"
    );
    assert_eq!(rib.attribute_sets(), 3);
    let distinct: HashSet<*const PathAttributes> =
        routes.iter().map(|(_, r)| Arc::as_ptr(r.attrs())).collect();
    assert_eq!(distinct.len(), 3, "every route points at one of 3 sets");
    // Each set is held by the interner and once per UPDATE that carried
    // it (its routes, in the Loc-RIB too, share that one), nothing else.
    let total: usize = distinct
        .iter()
        .map(|p| {
            let (_, r) = routes
                .iter()
                .find(|(_, r)| Arc::as_ptr(r.attrs()) == *p)
                .unwrap();
            Arc::strong_count(r.attrs()) - 1
        })
        .sum();
    assert_eq!(total, 100, "one per UPDATE");
    // The Loc-RIB path is the route as received, not a copy.
    let (k, r) = &routes[0];
    let best = rib.loc_rib().best(&k.prefix);
    assert!(Arc::ptr_eq(&best[0].data, r.data()));
}

#[test]
fn purge_drops_sets_no_route_uses() {
    let mut rib = rib();
    rib.receive(&peer(), &announce(vec![v4(1)], attrs(1)))
        .unwrap();
    rib.receive(&peer(), &announce(vec![v4(1)], attrs(2)))
        .unwrap();
    assert_eq!(rib.attribute_sets(), 2);
    assert_eq!(rib.purge(), 1);
    assert_eq!(rib.attribute_sets(), 1);
    let r = received(&rib, &key4(v4(1))).unwrap();
    assert_eq!(r.attrs().multi_exit_disc, Some(2));
}

#[test]
fn ipv4_announce_replace_withdraw_report_exact_changes() {
    let mut rib = rib();
    let c = rib
        .receive(&peer(), &announce(vec![v4(1), v4(2)], attrs(0)))
        .unwrap();
    assert_eq!(prefixes(c), vec![key4(v4(1)).prefix, key4(v4(2)).prefix]);
    // The same again: nothing changed.
    let c = rib
        .receive(&peer(), &announce(vec![v4(1)], attrs(0)))
        .unwrap();
    assert!(c.is_empty());
    // New MED for 2: only 2 changed.
    let c = rib
        .receive(&peer(), &announce(vec![v4(2)], attrs(7)))
        .unwrap();
    assert_eq!(prefixes(c), vec![key4(v4(2)).prefix]);
    let r = received(&rib, &key4(v4(2))).unwrap();
    assert_eq!(r.attrs().multi_exit_disc, Some(7));
    // New next hop only: a change, attributes still shared.
    let mut moved = attrs(7);
    moved.next_hop = Some(Ipv4Addr::new(192, 0, 2, 9));
    let c = rib.receive(&peer(), &announce(vec![v4(2)], moved)).unwrap();
    assert_eq!(prefixes(c), vec![key4(v4(2)).prefix]);
    assert_eq!(rib.attribute_sets(), 2);
    // Withdraw 1 and a prefix never announced.
    let u = Update {
        withdrawn: vec![v4(1), v4(99)],
        ..Update::default()
    };
    let c = rib.receive(&peer(), &u).unwrap();
    assert_eq!(prefixes(c), vec![key4(v4(1)).prefix]);
    assert_eq!(adj_in(&rib).len(), 1);
    // The stored attributes carry neither NEXT_HOP nor MP attributes.
    let r = received(&rib, &key4(v4(2))).unwrap();
    assert_eq!(r.attrs().next_hop, None);
    assert_eq!(r.next_hop(), NextHop::V4(Ipv4Addr::new(192, 0, 2, 9)));
}

#[test]
fn ipv6_via_mp_reach_and_mp_unreach() {
    let mut rib = rib();
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
    assert_eq!(rib.receive(&peer(), &u).unwrap().len(), 2);
    assert_eq!(adj_in(&rib).count(Family::Ipv6Unicast), 2);
    assert_eq!(adj_in(&rib).count(Family::Ipv4Unicast), 0);
    let k1 = RouteKey {
        prefix: IpPrefix::V6(v6(1).prefix),
        path_id: 0,
    };
    let r = received(&rib, &k1).unwrap();
    assert_eq!(r.next_hop(), nh);
    assert!(r.attrs().mp_reach.is_none());
    let mut w = Update::default();
    w.attributes.mp_unreach = Some(MpUnreach::Ipv6Unicast(vec![v6(1)]));
    assert_eq!(prefixes(rib.receive(&peer(), &w).unwrap()), vec![k1.prefix]);
    assert_eq!(adj_in(&rib).len(), 1);
}

#[test]
fn add_path_identifiers_are_separate_routes() {
    let mut rib = rib();
    let p = |id| Nlri {
        path_id: Some(id),
        ..v4(5)
    };
    rib.receive(&peer(), &announce(vec![p(1), p(2)], attrs(0)))
        .unwrap();
    assert_eq!(adj_in(&rib).len(), 2);
    let prefix = key4(p(1)).prefix;
    assert_eq!(rib.loc_rib().paths(&prefix).len(), 2);
    let u = Update {
        withdrawn: vec![p(1)],
        ..Update::default()
    };
    rib.receive(&peer(), &u).unwrap();
    assert!(received(&rib, &key4(p(1))).is_none());
    assert!(received(&rib, &key4(p(2))).is_some());
    assert_eq!(rib.loc_rib().paths(&prefix).len(), 1);
}

#[test]
fn nlri_without_next_hop_is_an_error_and_changes_nothing() {
    let mut rib = rib();
    rib.receive(&peer(), &announce(vec![v4(1)], attrs(0)))
        .unwrap();
    let mut a = attrs(0);
    a.next_hop = None;
    let bad = Update {
        withdrawn: vec![v4(1)],
        ..announce(vec![v4(2)], a)
    };
    assert_eq!(rib.receive(&peer(), &bad), Err(RibError::MissingNextHop));
    assert!(
        received(&rib, &key4(v4(1))).is_some(),
        "withdrawal not applied"
    );
    assert_eq!(adj_in(&rib).len(), 1);
}

#[test]
fn routes_import_changes_or_rejects_are_kept_as_received_too() {
    let mut rib = rib();
    let mut cfg = PeerConfig::new(peer(), AS);
    cfg.import = Some(Policy {
        rules: vec![
            Rule {
                matches: vec![Match::Prefix(PrefixSet(vec![PrefixRange::exact(
                    key4(v4(1)).prefix,
                )]))],
                set: vec![Modify::LocalPref(250)],
                then: Disposition::Accept,
            },
            Rule {
                matches: vec![Match::Prefix(PrefixSet(vec![PrefixRange::exact(
                    key4(v4(2)).prefix,
                )]))],
                set: vec![],
                then: Disposition::Reject,
            },
        ],
        default: Disposition::Accept,
    });
    rib.set_peer(cfg);
    rib.receive(&peer(), &announce(vec![v4(1), v4(2), v4(3)], attrs(0)))
        .unwrap();
    let a = adj_in(&rib);
    assert_eq!(a.len(), 3, "rejected routes count as received");
    assert_eq!(a.count(Family::Ipv4Unicast), 3);
    assert_eq!(a.filtered_count(), 2, "the changed and the rejected one");
    assert_eq!(rib.loc_rib().len(), 2);
    let best = |rib: &Rib, i| rib.loc_rib().best(&key4(v4(i)).prefix).to_vec();
    assert_eq!(best(&rib, 1)[0].attrs().local_pref, Some(250));
    assert!(best(&rib, 2).is_empty());
    // As received, whatever import made of them.
    assert_eq!(rib.received(&peer()).len(), 3);
    let r1 = received(&rib, &key4(v4(1))).unwrap();
    assert_eq!(r1.attrs().local_pref, None);
    // The policy goes: every route is imported again from what was
    // received, with no route refresh, and is held once again.
    let changes = rib.set_peer(PeerConfig::new(peer(), AS));
    assert_eq!(
        prefixes(changes),
        vec![key4(v4(1)).prefix, key4(v4(2)).prefix]
    );
    assert_eq!(adj_in(&rib).filtered_count(), 0);
    assert_eq!(rib.loc_rib().len(), 3);
    assert_eq!(best(&rib, 1)[0].attrs().local_pref, None);
    assert!(Arc::ptr_eq(&best(&rib, 1)[0].data, r1.data()));
    // A withdrawal of a rejected route empties what was held for it.
    let mut cfg = PeerConfig::new(peer(), AS);
    cfg.import = Some(Policy::reject_all());
    rib.set_peer(cfg);
    assert_eq!(rib.loc_rib().len(), 0);
    assert_eq!(adj_in(&rib).filtered_count(), 3);
    let u = Update {
        withdrawn: vec![v4(1), v4(2), v4(3)],
        ..Update::default()
    };
    assert!(rib.receive(&peer(), &u).unwrap().is_empty());
    assert_eq!(adj_in(&rib).len(), 0);
    assert_eq!(adj_in(&rib).filtered_count(), 0);
}

#[test]
fn a_peer_that_becomes_external_keeps_one_path_per_route() {
    let mut rib = rib();
    rib.receive(&peer(), &announce(vec![v4(1)], attrs(0)))
        .unwrap();
    // The peer's AS changes (iBGP to eBGP) with a policy that accepts:
    // its route is imported again as external, in place of the old path.
    let mut cfg = PeerConfig::new(peer(), 65001);
    cfg.import = Some(Policy::accept_all());
    let changes = rib.set_peer(cfg);
    assert_eq!(changes.len(), 1);
    let paths = rib.loc_rib().paths(&key4(v4(1)).prefix);
    assert_eq!(paths.len(), 1);
    assert_eq!(paths[0].source.kind, PeerKind::External);
    // And a session down takes it away entirely.
    rib.peer_down(&peer(), None).unwrap();
    assert!(rib.loc_rib().is_empty());
    assert_eq!(adj_in(&rib).len(), 0);
}

#[test]
fn graceful_restart_stale_until_end_of_rib() {
    let mut rib = rib();
    rib.receive(&peer(), &announce(vec![v4(1), v4(2), v4(3)], attrs(0)))
        .unwrap();
    let mut a = attrs(0);
    a.mp_reach = Some(MpReach::Ipv6Unicast {
        next_hop: NextHop::V6 {
            global: Ipv6Addr::LOCALHOST,
            link_local: None,
        },
        nlri: vec![v6(1)],
    });
    let u = Update {
        attributes: a,
        ..Update::default()
    };
    rib.receive(&peer(), &u).unwrap();
    let t0 = Instant::now();
    // The peer preserved IPv4 only: its IPv6 route goes at once.
    let gone = rib
        .peer_down(
            &peer(),
            Some(&Retention::graceful(
                Families::of(&[Family::Ipv4Unicast]),
                t0,
                Duration::from_secs(120),
            )),
        )
        .unwrap();
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].prefix.family(), Family::Ipv6Unicast);
    assert_eq!(gone[0].kind, ChangeKind::Removed);
    assert_eq!(adj_in(&rib).stale_count(), 3);
    assert_eq!(adj_in(&rib).count(Family::Ipv6Unicast), 0);
    assert!(adj_in(&rib).is_stale(&key4(v4(1))));
    // Re-announced after the restart: 1 unchanged (not a change, but no
    // longer stale), 2 with new attributes.
    assert!(
        rib.receive(&peer(), &announce(vec![v4(1)], attrs(0)))
            .unwrap()
            .is_empty()
    );
    assert!(!adj_in(&rib).is_stale(&key4(v4(1))));
    let c = rib
        .receive(&peer(), &announce(vec![v4(2)], attrs(5)))
        .unwrap();
    assert_eq!(prefixes(c), vec![key4(v4(2)).prefix]);
    assert_eq!(adj_in(&rib).stale_count(), 1);
    // End-of-RIB for IPv6 does not touch IPv4's stale route.
    let eor = |family| {
        let mut u = Update::default();
        if family == Family::Ipv6Unicast {
            u.attributes.mp_unreach = Some(MpUnreach::Ipv6Unicast(Vec::new()));
        }
        u
    };
    assert!(
        rib.receive(&peer(), &eor(Family::Ipv6Unicast))
            .unwrap()
            .is_empty()
    );
    let c = rib.receive(&peer(), &eor(Family::Ipv4Unicast)).unwrap();
    assert_eq!(prefixes(c), vec![key4(v4(3)).prefix]);
    assert_eq!(adj_in(&rib).len(), 2);
    assert_eq!(adj_in(&rib).stale_deadline(), None);
    assert_eq!(rib.loc_rib().len(), 2);
}

#[test]
fn graceful_restart_stale_flushed_at_the_deadline_and_not_before() {
    let mut rib = rib();
    rib.receive(&peer(), &announce(vec![v4(1), v4(2)], attrs(0)))
        .unwrap();
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(120);
    let gone = rib
        .peer_down(
            &peer(),
            Some(&Retention::graceful(
                Families::of(&Family::ALL),
                t0,
                Duration::from_secs(120),
            )),
        )
        .unwrap();
    assert!(gone.is_empty(), "kept through the restart");
    assert_eq!(adj_in(&rib).stale_deadline(), Some(deadline));
    assert_eq!(rib.next_deadline(), Some(deadline));
    assert!(rib.expire(t0 + Duration::from_secs(119)).is_empty());
    assert_eq!(adj_in(&rib).len(), 2);
    rib.receive(&peer(), &announce(vec![v4(1)], attrs(0)))
        .unwrap();
    let c = rib.expire(deadline);
    assert_eq!(prefixes(c), vec![key4(v4(2)).prefix]);
    assert_eq!(adj_in(&rib).len(), 1);
    assert!(received(&rib, &key4(v4(1))).is_some());
    assert!(!adj_in(&rib).is_stale(&key4(v4(1))));
}
