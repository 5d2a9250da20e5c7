//! Long-lived graceful restart as helper (RFC 9494 §4), in the RIB
//! without I/O: a restarting peer's routes turn long-lived stale when its
//! restart time ends (LLGR_STALE attached, NO_LLGR routes dropped), lose
//! to any other path, reach only peers that announced LLGR (the others
//! are sent withdrawals), and go when the long-lived stale time ends or
//! the peer, back, sends them again and its End-of-RIB.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bgp::rib::*;
use bgp::wire::*;

const AS: u32 = 64512;
const RESTART: Duration = Duration::from_secs(120);
const LONG: Duration = Duration::from_secs(3600);

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}
/// The restarting peer: eBGP, AS 65001.
fn s() -> IpAddr {
    addr("198.51.100.1")
}
/// Another eBGP peer, AS 65002, with a longer path to one prefix.
fn c() -> IpAddr {
    addr("198.51.100.2")
}
/// iBGP peer that announced LLGR.
fn a() -> IpAddr {
    addr("192.0.2.2")
}
/// iBGP peer that did not.
fn b() -> IpAddr {
    addr("192.0.2.3")
}

fn p(s: &str) -> IpPrefix {
    s.parse().unwrap()
}
fn v4(s: &str) -> Ipv4Prefix {
    match p(s) {
        IpPrefix::V4(x) => x,
        IpPrefix::V6(_) => panic!("v4 only"),
    }
}

fn rib() -> Rib {
    let mut rib = Rib::new(LocalConfig {
        asn: AS,
        router_id: Ipv4Addr::new(10, 0, 0, 1),
        cluster_id: None,
        decision: DecisionConfig::default(),
    });
    for (i, x) in [s(), c(), a(), b()].into_iter().enumerate() {
        let external = x == s() || x == c();
        let mut cfg = PeerConfig::new(
            x,
            if x == s() {
                65001
            } else if x == c() {
                65002
            } else {
                AS
            },
        );
        cfg.local_v4 = Some(if external {
            Ipv4Addr::new(198, 51, 100, 254)
        } else {
            Ipv4Addr::new(192, 0, 2, 1)
        });
        if external {
            cfg.import = Some(Policy::accept_all());
            cfg.export = Some(Policy::accept_all());
        }
        rib.set_peer(cfg);
        let long_lived = if x == b() {
            Families::NONE
        } else {
            Families::of(&Family::ALL)
        };
        let id = Ipv4Addr::new(10, 0, 1, u8::try_from(i).unwrap() + 2);
        rib.peer_up(x, id, Families::of(&Family::ALL), long_lived)
            .unwrap();
        rib.flush(&x, &Context::default()).unwrap();
    }
    rib
}

/// S's session is up again (it announces LLGR, as before).
fn s_back(rib: &mut Rib) {
    rib.peer_up(
        s(),
        Ipv4Addr::new(10, 0, 1, 2),
        Families::of(&Family::ALL),
        Families::of(&Family::ALL),
    )
    .unwrap();
}

fn attrs(path: &[u32], next_hop: &str, communities: &[Community]) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence(path.to_vec())),
        next_hop: Some(next_hop.parse().unwrap()),
        communities: communities.to_vec(),
        ..PathAttributes::default()
    }
}

fn announce(prefixes: &[&str], a: PathAttributes) -> Update {
    Update {
        attributes: a,
        nlri: prefixes.iter().map(|x| Nlri::new(v4(x))).collect(),
        ..Update::default()
    }
}

/// What `peer` is sent now: announced (prefix, communities), withdrawn.
fn sent(rib: &mut Rib, peer: IpAddr) -> (Vec<(Ipv4Prefix, Vec<Community>)>, Vec<Ipv4Prefix>) {
    let ctx = Context::default();
    let out = rib.flush(&peer, &ctx).unwrap();
    let (mut ann, mut wd) = (Vec::new(), Vec::new());
    for u in out.updates(&ctx).unwrap() {
        wd.extend(u.withdrawn.iter().map(|n| n.prefix));
        ann.extend(
            u.nlri
                .iter()
                .map(|n| (n.prefix, u.attributes.communities.clone())),
        );
    }
    ann.sort_by_key(|(p, _)| *p);
    wd.sort();
    (ann, wd)
}

fn best_from(rib: &Rib, prefix: &str) -> Option<(IpAddr, bool)> {
    rib.loc_rib().best(&p(prefix)).first().map(|path| {
        (
            path.source.address,
            path.attrs().communities.contains(&Community::LLGR_STALE),
        )
    })
}

fn long_lived(at: Instant, graceful: Duration) -> Retention {
    Retention {
        at,
        families: vec![Kept {
            family: Family::Ipv4Unicast,
            graceful,
            long_lived: LONG,
        }],
    }
}

/// S sends 203.0.113.0/24, 203.0.113.128/25 (NO_LLGR) and 198.18.0.0/15;
/// C a longer path to 198.18.0.0/15. Every peer's queue is drained.
fn table(rib: &mut Rib) {
    rib.receive(
        &s(),
        &announce(
            &["203.0.113.0/24", "198.18.0.0/15"],
            attrs(&[65001], "198.51.100.1", &[]),
        ),
    )
    .unwrap();
    rib.receive(
        &s(),
        &announce(
            &["203.0.113.128/25"],
            attrs(&[65001], "198.51.100.1", &[Community::NO_LLGR]),
        ),
    )
    .unwrap();
    rib.receive(
        &c(),
        &announce(
            &["198.18.0.0/15"],
            attrs(&[65002, 65010, 65011], "198.51.100.2", &[]),
        ),
    )
    .unwrap();
    for x in [a(), b()] {
        sent(rib, x);
    }
}

#[test]
fn after_the_restart_time_routes_turn_long_lived_stale_then_go() {
    let mut rib = rib();
    table(&mut rib);
    assert_eq!(best_from(&rib, "198.18.0.0/15"), Some((s(), false)));
    let t0 = Instant::now();
    let ch = rib.peer_down(&s(), Some(&long_lived(t0, RESTART))).unwrap();
    assert!(ch.is_empty(), "graceful restart first: nothing moves");
    assert_eq!(rib.next_deadline(), Some(t0 + RESTART));
    assert!(rib.expire(t0 + RESTART - Duration::from_secs(1)).is_empty());

    let ch = rib.expire(t0 + RESTART);
    assert_eq!(ch.len(), 3, "{ch:?}");
    let adj = rib.adj_rib_in(&s()).unwrap();
    assert_eq!(adj.long_lived(), Families::of(&[Family::Ipv4Unicast]));
    assert_eq!(adj.stale_count(), 2, "the NO_LLGR route went");
    assert_eq!(best_from(&rib, "203.0.113.0/24"), Some((s(), true)));
    assert_eq!(best_from(&rib, "203.0.113.128/25"), None);
    assert_eq!(
        best_from(&rib, "198.18.0.0/15"),
        Some((c(), false)),
        "C's longer path wins over the long-lived stale one"
    );
    // A (LLGR) gets the stale route marked; B only withdrawals.
    let (ann, wd) = sent(&mut rib, a());
    assert_eq!(
        ann,
        vec![
            (v4("198.18.0.0/15"), vec![]),
            (v4("203.0.113.0/24"), vec![Community::LLGR_STALE]),
        ]
    );
    assert_eq!(wd, vec![v4("203.0.113.128/25")]);
    let (ann, wd) = sent(&mut rib, b());
    assert_eq!(ann, vec![(v4("198.18.0.0/15"), vec![])]);
    assert_eq!(wd, vec![v4("203.0.113.0/24"), v4("203.0.113.128/25")]);

    // The long-lived stale time ends: they go.
    assert_eq!(rib.next_deadline(), Some(t0 + RESTART + LONG));
    assert!(
        rib.expire(t0 + RESTART + LONG - Duration::from_secs(1))
            .is_empty()
    );
    let ch = rib.expire(t0 + RESTART + LONG);
    assert_eq!(
        ch.len(),
        1,
        "S's path to 198.18.0.0/15 was not the best: {ch:?}"
    );
    assert_eq!(rib.adj_rib_in(&s()).unwrap().len(), 0);
    assert_eq!(best_from(&rib, "203.0.113.0/24"), None);
    assert_eq!(best_from(&rib, "198.18.0.0/15"), Some((c(), false)));
    assert_eq!(sent(&mut rib, a()).1, vec![v4("203.0.113.0/24")]);
    assert!(sent(&mut rib, b()).1.is_empty(), "B had none of them");
    assert_eq!(rib.next_deadline(), None);
    assert_eq!(rib.adj_rib_in(&s()).unwrap().long_lived(), Families::NONE);
}

#[test]
fn a_family_kept_only_long_lived_turns_at_once() {
    let mut rib = rib();
    table(&mut rib);
    let t0 = Instant::now();
    let ch = rib
        .peer_down(&s(), Some(&long_lived(t0, Duration::ZERO)))
        .unwrap();
    assert_eq!(ch.len(), 3);
    assert_eq!(best_from(&rib, "203.0.113.0/24"), Some((s(), true)));
    assert_eq!(rib.next_deadline(), Some(t0 + LONG));
    assert_eq!(
        sent(&mut rib, b()).1,
        vec![v4("203.0.113.0/24"), v4("203.0.113.128/25")]
    );
}

#[test]
fn a_peer_back_replaces_its_long_lived_routes_and_its_end_of_rib_flushes_the_rest() {
    let mut rib = rib();
    table(&mut rib);
    let t0 = Instant::now();
    rib.peer_down(&s(), Some(&long_lived(t0, RESTART))).unwrap();
    rib.expire(t0 + RESTART);
    for x in [a(), b()] {
        sent(&mut rib, x);
    }
    // Back (preserving IPv4): what is stale waits for End-of-RIB, and
    // no longer for the long-lived stale time.
    let back = t0 + RESTART + Duration::from_secs(30);
    s_back(&mut rib);
    let v4only = Families::of(&[Family::Ipv4Unicast]);
    assert!(
        rib.peer_restarted(&s(), v4only, back + Duration::from_secs(360))
            .unwrap()
            .is_empty()
    );
    assert_eq!(rib.next_deadline(), Some(back + Duration::from_secs(360)));
    rib.receive(
        &s(),
        &announce(&["198.18.0.0/15"], attrs(&[65001], "198.51.100.1", &[])),
    )
    .unwrap();
    assert_eq!(best_from(&rib, "198.18.0.0/15"), Some((s(), false)));
    assert_eq!(
        sent(&mut rib, b()).0,
        vec![(v4("198.18.0.0/15"), vec![])],
        "fresh again, B gets it back"
    );
    let ch = rib
        .receive(&s(), &Update::end_of_rib(Family::Ipv4Unicast))
        .unwrap();
    assert_eq!(ch.len(), 1);
    assert_eq!(ch[0].prefix, p("203.0.113.0/24"));
    assert_eq!(sent(&mut rib, a()).1, vec![v4("203.0.113.0/24")]);
    assert_eq!(rib.next_deadline(), None);
    assert_eq!(rib.adj_rib_in(&s()).unwrap().long_lived(), Families::NONE);
}

#[test]
fn routes_received_long_lived_stale_lose_and_reach_only_llgr_peers() {
    let mut rib = rib();
    // C relays a long-lived stale route (shorter path); S a fresh one.
    rib.receive(
        &c(),
        &announce(
            &["203.0.113.0/24"],
            attrs(&[65002], "198.51.100.2", &[Community::LLGR_STALE]),
        ),
    )
    .unwrap();
    assert_eq!(best_from(&rib, "203.0.113.0/24"), Some((c(), true)));
    assert!(sent(&mut rib, b()).0.is_empty(), "B is not sent it");
    assert_eq!(sent(&mut rib, a()).0.len(), 1);
    rib.receive(
        &s(),
        &announce(
            &["203.0.113.0/24"],
            attrs(&[65001, 65020, 65021], "198.51.100.1", &[]),
        ),
    )
    .unwrap();
    assert_eq!(best_from(&rib, "203.0.113.0/24"), Some((s(), false)));
    assert_eq!(sent(&mut rib, b()).0, vec![(v4("203.0.113.0/24"), vec![])]);
}

#[test]
fn a_peer_down_again_before_its_end_of_rib_is_long_lived_at_once_for_what_was_left() {
    let mut rib = rib();
    table(&mut rib);
    let t0 = Instant::now();
    rib.peer_down(&s(), Some(&long_lived(t0, RESTART))).unwrap();
    rib.expire(t0 + RESTART);
    let back = t0 + RESTART + Duration::from_secs(100);
    s_back(&mut rib);
    let stale_path = back + Duration::from_secs(360);
    rib.peer_restarted(&s(), Families::of(&[Family::Ipv4Unicast]), stale_path)
        .unwrap();
    // It sends one new route, then goes down again before End-of-RIB.
    rib.receive(
        &s(),
        &announce(&["192.0.2.128/25"], attrs(&[65001], "198.51.100.1", &[])),
    )
    .unwrap();
    let down = back + Duration::from_secs(5);
    rib.peer_down(&s(), Some(&long_lived(down, RESTART)))
        .unwrap();
    // No new 120 s of graceful restart: marked at once, and kept no
    // longer than the stale-path time it was given when it came back.
    assert_eq!(best_from(&rib, "192.0.2.128/25"), Some((s(), true)));
    assert_eq!(best_from(&rib, "203.0.113.0/24"), Some((s(), true)));
    assert_eq!(rib.next_deadline(), Some(stale_path));
    rib.expire(stale_path);
    assert_eq!(best_from(&rib, "192.0.2.128/25"), None);
    assert_eq!(best_from(&rib, "203.0.113.0/24"), None);
    assert_eq!(rib.next_deadline(), None);
}

#[test]
fn a_refresh_on_a_session_back_from_a_restart_never_turns_long_lived() {
    let mut rib = rib();
    let t0 = Instant::now();
    // S had no routes when it went down: nothing is kept, nothing waits.
    rib.peer_down(&s(), Some(&long_lived(t0, RESTART))).unwrap();
    assert_eq!(rib.next_deadline(), None);
    s_back(&mut rib);
    rib.receive(
        &s(),
        &announce(&["203.0.113.0/24"], attrs(&[65001], "198.51.100.1", &[])),
    )
    .unwrap();
    // A BoRR before its End-of-RIB: its routes wait for the EoRR (360 s
    // at most), and do not turn long-lived when the restart time ends.
    rib.refresh_marker(
        &s(),
        Family::Ipv4Unicast,
        RouteRefreshSubtype::BeginningOfRouteRefresh,
        t0 + Duration::from_secs(360),
    )
    .unwrap();
    assert!(rib.expire(t0 + RESTART).is_empty());
    assert_eq!(best_from(&rib, "203.0.113.0/24"), Some((s(), false)));
    assert_eq!(rib.adj_rib_in(&s()).unwrap().long_lived(), Families::NONE);
    assert_eq!(rib.next_deadline(), Some(t0 + Duration::from_secs(360)));
}
