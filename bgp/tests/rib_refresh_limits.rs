//! The RIB's answers to ROUTE-REFRESH (RFC 2918 §4), max-prefix limits
//! (RFC 4486 §4) and a helped peer coming back from its restart (RFC 4724
//! §4.2), without I/O and on a virtual clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bgp::rib::*;
use bgp::wire::*;

const AS: u32 = 64512;

fn peer_addr() -> IpAddr {
    "192.0.2.2".parse().unwrap()
}

fn other_addr() -> IpAddr {
    "192.0.2.3".parse().unwrap()
}

fn p(s: &str) -> IpPrefix {
    s.parse().unwrap()
}

fn rib_with(max: Option<MaxPrefix>) -> Rib {
    let mut rib = Rib::new(LocalConfig {
        asn: AS,
        router_id: Ipv4Addr::new(10, 0, 0, 1),
        cluster_id: None,
        decision: DecisionConfig::default(),
    });
    for (i, a) in [peer_addr(), other_addr()].into_iter().enumerate() {
        let mut cfg = PeerConfig::new(a, AS);
        cfg.local_v4 = Some(Ipv4Addr::new(192, 0, 2, 1));
        cfg.max_prefixes = max;
        rib.set_peer(cfg);
        let id = Ipv4Addr::new(10, 0, 1, u8::try_from(i).unwrap() + 2);
        rib.peer_up(a, id, Families::of(&[Family::Ipv4Unicast]), Families::NONE)
            .unwrap();
        rib.flush(&a, &Context::default()).unwrap();
    }
    rib
}

fn attrs(med: u32) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 9)),
        multi_exit_disc: Some(med),
        ..PathAttributes::default()
    }
}

fn announce(prefixes: &[&str]) -> Update {
    Update {
        attributes: attrs(0),
        nlri: prefixes
            .iter()
            .map(|s| match p(s) {
                IpPrefix::V4(x) => Nlri::new(x),
                IpPrefix::V6(_) => panic!("v4 only"),
            })
            .collect(),
        ..Update::default()
    }
}

/// The prefixes announced and withdrawn in what `peer` is sent now.
fn sent(rib: &mut Rib, peer: IpAddr) -> (Vec<String>, Vec<String>) {
    let ctx = Context::default();
    let out = rib.flush(&peer, &ctx).unwrap();
    let (mut ann, mut wd) = (Vec::new(), Vec::new());
    for u in out.updates(&ctx).unwrap() {
        ann.extend(u.nlri.iter().map(|n| n.prefix.to_string()));
        wd.extend(u.withdrawn.iter().map(|n| n.prefix.to_string()));
    }
    (ann, wd)
}

#[test]
fn route_refresh_resends_the_whole_table_of_that_family_once() {
    let mut rib = rib_with(None);
    for (i, s) in ["10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24"]
        .into_iter()
        .enumerate()
    {
        rib.originate(
            p(s),
            attrs(u32::try_from(i).unwrap()),
            NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)),
        );
    }
    let (first, _) = sent(&mut rib, peer_addr());
    assert_eq!(first.len(), 3);
    assert_eq!(sent(&mut rib, peer_addr()), (vec![], vec![]), "nothing new");

    assert_eq!(rib.resend(&peer_addr(), Family::Ipv4Unicast).unwrap(), 3);
    // Offering the same state again does not cancel the resend.
    rib.originate(
        p("10.1.0.0/24"),
        attrs(0),
        NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)),
    );
    let (mut again, wd) = sent(&mut rib, peer_addr());
    again.sort();
    assert_eq!(again, ["10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24"]);
    assert!(wd.is_empty());
    assert_eq!(sent(&mut rib, peer_addr()), (vec![], vec![]), "once");
    // A family the session does not carry resends nothing.
    assert_eq!(rib.resend(&peer_addr(), Family::Ipv6Unicast).unwrap(), 0);
}

#[test]
fn a_withdrawal_during_a_resend_still_reaches_the_peer() {
    let mut rib = rib_with(None);
    let nh = NextHop::V4(Ipv4Addr::new(192, 0, 2, 1));
    rib.originate(p("10.1.0.0/24"), attrs(0), nh);
    rib.originate(p("10.2.0.0/24"), attrs(0), nh);
    sent(&mut rib, peer_addr());
    rib.resend(&peer_addr(), Family::Ipv4Unicast).unwrap();
    rib.withdraw(p("10.2.0.0/24"));
    let (ann, wd) = sent(&mut rib, peer_addr());
    assert_eq!(ann, ["10.1.0.0/24"]);
    assert_eq!(wd, ["10.2.0.0/24"]);
    assert_eq!(rib.adj_rib_out(&peer_addr()).unwrap().len(), 1);
}

#[test]
fn max_prefix_reports_the_crossing_once_and_again_after_falling_back() {
    let mut rib = rib_with(Some(MaxPrefix::new(2)));
    let peer = peer_addr();
    rib.receive(&peer, &announce(&["10.1.0.0/24", "10.2.0.0/24"]))
        .unwrap();
    assert_eq!(rib.check_max_prefix(&peer), None, "at the limit is fine");
    rib.receive(&peer, &announce(&["10.3.0.0/24"])).unwrap();
    let over = rib.check_max_prefix(&peer).unwrap();
    assert_eq!(
        (over.family, over.count, over.limit),
        (Family::Ipv4Unicast, 3, 2)
    );
    assert_eq!(
        over.action,
        MaxPrefixAction::Cease {
            restart_after: None
        }
    );
    let n = over.notification();
    assert_eq!(
        (n.code, n.subcode, n.data.as_slice()),
        (6, 1, &[0, 1, 1, 0, 0, 0, 2][..])
    );
    // Reported once while over the limit.
    rib.receive(&peer, &announce(&["10.4.0.0/24"])).unwrap();
    assert_eq!(rib.check_max_prefix(&peer), None);
    // Back under it, then over again: reported again.
    let back = Update {
        withdrawn: announce(&["10.3.0.0/24", "10.4.0.0/24"]).nlri,
        ..Update::default()
    };
    rib.receive(&peer, &back).unwrap();
    assert_eq!(rib.check_max_prefix(&peer), None);
    rib.receive(&peer, &announce(&["10.5.0.0/24"])).unwrap();
    assert!(rib.check_max_prefix(&peer).is_some());
    // Another peer is not affected.
    assert_eq!(rib.check_max_prefix(&other_addr()), None);
}

#[test]
fn max_prefix_counts_routes_not_updates_and_resets_with_the_session() {
    let cfg = MaxPrefix {
        warn_only: true,
        ..MaxPrefix::new(1)
    };
    let mut rib = rib_with(Some(cfg));
    let peer = peer_addr();
    // The same prefix announced twice is one route.
    rib.receive(&peer, &announce(&["10.1.0.0/24"])).unwrap();
    rib.receive(&peer, &announce(&["10.1.0.0/24"])).unwrap();
    assert_eq!(rib.adj_rib_in(&peer).unwrap().count(Family::Ipv4Unicast), 1);
    assert_eq!(rib.check_max_prefix(&peer), None);
    rib.receive(&peer, &announce(&["10.2.0.0/24"])).unwrap();
    assert_eq!(
        rib.check_max_prefix(&peer).map(|o| o.action),
        Some(MaxPrefixAction::Warn)
    );
    // Warn-only keeps the routes.
    assert_eq!(rib.loc_rib().len(), 2);
    rib.peer_down(&peer, None).unwrap();
    assert_eq!(rib.adj_rib_in(&peer).unwrap().count(Family::Ipv4Unicast), 0);
    rib.peer_up(
        peer,
        Ipv4Addr::new(10, 0, 1, 2),
        Families::of(&[Family::Ipv4Unicast]),
        Families::NONE,
    )
    .unwrap();
    rib.receive(&peer, &announce(&["10.1.0.0/24", "10.2.0.0/24"]))
        .unwrap();
    assert!(
        rib.check_max_prefix(&peer).is_some(),
        "new session, new report"
    );
}

#[test]
fn a_helped_peer_that_no_longer_preserves_a_family_loses_its_stale_routes_at_once() {
    let mut rib = rib_with(None);
    let peer = peer_addr();
    let t0 = Instant::now();
    rib.receive(&peer, &announce(&["10.1.0.0/24", "10.2.0.0/24"]))
        .unwrap();
    let keep = Families::of(&[Family::Ipv4Unicast]);
    rib.peer_down(
        &peer,
        Some(&Retention::graceful(keep, t0, Duration::from_secs(120))),
    )
    .unwrap();
    assert_eq!(rib.loc_rib().len(), 2, "stale routes kept");
    rib.peer_up(peer, Ipv4Addr::new(10, 0, 1, 2), keep, Families::NONE)
        .unwrap();
    // Back, preserving IPv4: routes stay until End-of-RIB or the new
    // deadline.
    let changes = rib
        .peer_restarted(&peer, keep, t0 + Duration::from_secs(10))
        .unwrap();
    assert!(changes.is_empty());
    assert_eq!(rib.next_deadline(), Some(t0 + Duration::from_secs(10)));
    rib.receive(&peer, &announce(&["10.1.0.0/24"])).unwrap();
    let gone = rib.expire(t0 + Duration::from_secs(10));
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].prefix, p("10.2.0.0/24"));

    // Down again, and back without the F bit: everything stale goes now.
    rib.peer_down(
        &peer,
        Some(&Retention::graceful(keep, t0, Duration::from_secs(300))),
    )
    .unwrap();
    rib.peer_up(peer, Ipv4Addr::new(10, 0, 1, 2), keep, Families::NONE)
        .unwrap();
    let changes = rib
        .peer_restarted(&peer, Families::NONE, t0 + Duration::from_secs(400))
        .unwrap();
    assert_eq!(changes.len(), 1);
    assert!(rib.loc_rib().is_empty());
    assert_eq!(rib.next_deadline(), None);
}
