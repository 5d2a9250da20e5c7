//! The RIB end to end, without I/O: Loc-RIB best-path changes, import
//! checks and export rules (eBGP/iBGP, RFC 4456 route reflection, RFC
//! 8212), policy, Adj-RIB-Out differences and graceful restart as helper,
//! all observed through the UPDATEs a peer would receive.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bgp::rib::*;
use bgp::wire::*;

const AS: u32 = 64512;
const RID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const CLUSTER: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 1);

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}
/// iBGP route-reflector client.
fn a() -> IpAddr {
    addr("192.0.2.2")
}
/// iBGP non-client.
fn b() -> IpAddr {
    addr("192.0.2.3")
}
/// iBGP client.
fn c() -> IpAddr {
    addr("192.0.2.4")
}
/// iBGP non-client.
fn d() -> IpAddr {
    addr("192.0.2.5")
}
/// eBGP, AS 65001, with policies.
fn e() -> IpAddr {
    addr("198.51.100.1")
}
/// eBGP, AS 65002, without policies.
fn f() -> IpAddr {
    addr("198.51.100.2")
}

fn p(s: &str) -> IpPrefix {
    s.parse().unwrap()
}

fn peer(address: IpAddr) -> PeerConfig {
    let ebgp = address == e() || address == f();
    let mut cfg = PeerConfig::new(
        address,
        match address {
            x if x == e() => 65001,
            x if x == f() => 65002,
            _ => AS,
        },
    );
    cfg.rr_client = address == a() || address == c();
    cfg.local_v4 = Some(if ebgp {
        Ipv4Addr::new(198, 51, 100, 254)
    } else {
        Ipv4Addr::new(192, 0, 2, 1)
    });
    cfg.local_v6 = Some("2001:db8::1".parse().unwrap());
    if address == e() {
        cfg.import = Some(Policy::accept_all());
        cfg.export = Some(Policy::accept_all());
    }
    cfg
}

fn rib(cluster_id: Option<Ipv4Addr>) -> Rib {
    let mut rib = Rib::new(LocalConfig {
        asn: AS,
        router_id: RID,
        cluster_id,
        decision: DecisionConfig::default(),
    });
    for (i, x) in [a(), b(), c(), d(), e(), f()].into_iter().enumerate() {
        rib.set_peer(peer(x));
        let id = Ipv4Addr::new(10, 0, 1, u8::try_from(i).unwrap() + 2);
        rib.peer_up(x, id, Families::of(&Family::ALL), Families::NONE)
            .unwrap();
        // Drain the (empty) initial table and its End-of-RIB.
        rib.flush(&x, &Context::default()).unwrap();
    }
    rib
}

fn attrs(path: &[u32], next_hop: &str) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence(path.to_vec())),
        next_hop: Some(next_hop.parse().unwrap()),
        ..PathAttributes::default()
    }
}

fn announce(prefixes: &[&str], a: PathAttributes) -> Update {
    Update {
        attributes: a,
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

fn withdraw(prefixes: &[&str]) -> Update {
    Update {
        withdrawn: announce(prefixes, PathAttributes::default()).nlri,
        ..Update::default()
    }
}

/// What `peer` is sent now: (announced prefix, attributes) and withdrawn
/// prefixes, read back from the packed bytes.
fn sent(rib: &mut Rib, peer: IpAddr) -> (Vec<(Ipv4Prefix, PathAttributes)>, Vec<Ipv4Prefix>) {
    let ctx = Context::default();
    let out = rib.flush(&peer, &ctx).unwrap();
    let (mut ann, mut wd) = (Vec::new(), Vec::new());
    for u in out.updates(&ctx).unwrap() {
        wd.extend(u.withdrawn.iter().map(|n| n.prefix));
        ann.extend(u.nlri.iter().map(|n| (n.prefix, u.attributes.clone())));
    }
    (ann, wd)
}

fn v4(s: &str) -> Ipv4Prefix {
    match p(s) {
        IpPrefix::V4(x) => x,
        IpPrefix::V6(_) => panic!(),
    }
}

#[test]
fn loc_rib_reports_added_changed_removed() {
    let mut rib = rib(None);
    let ch = rib
        .receive(
            &e(),
            &announce(&["203.0.113.0/24"], attrs(&[65001], "198.51.100.1")),
        )
        .unwrap();
    assert_eq!(ch.len(), 1);
    assert_eq!(ch[0].kind, ChangeKind::Added);
    assert_eq!(ch[0].best[0].source.address, e());
    // The same again: no change.
    let again = announce(&["203.0.113.0/24"], attrs(&[65001], "198.51.100.1"));
    assert!(rib.receive(&e(), &again).unwrap().is_empty());
    // A better path over iBGP (LOCAL_PREF 200) takes over.
    let mut better = attrs(&[65009], "192.0.2.2");
    better.local_pref = Some(200);
    let ch = rib
        .receive(&a(), &announce(&["203.0.113.0/24"], better))
        .unwrap();
    assert_eq!(ch[0].kind, ChangeKind::Changed);
    assert_eq!(ch[0].best[0].source.address, a());
    // A worse path changes nothing.
    let worse = announce(&["203.0.113.0/24"], attrs(&[65001, 65002], "192.0.2.3"));
    assert!(rib.receive(&b(), &worse).unwrap().is_empty());
    // Withdrawing the best falls back to the next best (eBGP over iBGP).
    let ch = rib.receive(&a(), &withdraw(&["203.0.113.0/24"])).unwrap();
    assert_eq!(ch[0].kind, ChangeKind::Changed);
    assert_eq!(ch[0].best[0].source.address, e());
    rib.receive(&b(), &withdraw(&["203.0.113.0/24"])).unwrap();
    let ch = rib.receive(&e(), &withdraw(&["203.0.113.0/24"])).unwrap();
    assert_eq!(ch[0].kind, ChangeKind::Removed);
    assert!(ch[0].best.is_empty());
    assert!(rib.loc_rib().is_empty());
}

#[test]
fn local_routes_win_and_withdraw_restores_the_learned_path() {
    let mut rib = rib(None);
    rib.receive(&a(), &announce(&["10.0.1.0/26"], attrs(&[], "192.0.2.2")))
        .unwrap();
    let nh = NextHop::V4(Ipv4Addr::new(192, 0, 2, 1));
    let ch = rib.originate(p("10.0.1.0/26"), attrs(&[], "0.0.0.0"), nh);
    assert_eq!(ch[0].best[0].source.kind, PeerKind::Local);
    assert_eq!(ch[0].best[0].next_hop(), nh);
    let ch = rib.withdraw(p("10.0.1.0/26"));
    assert_eq!(ch[0].best[0].source.address, a());
}

#[test]
fn multipath_changes_carry_every_equal_path() {
    let mut rib = Rib::new(LocalConfig {
        asn: AS,
        router_id: RID,
        cluster_id: None,
        decision: DecisionConfig {
            multipath: true,
            ..DecisionConfig::default()
        },
    });
    for x in [a(), b()] {
        rib.set_peer(peer(x));
        rib.peer_up(
            x,
            Ipv4Addr::LOCALHOST,
            Families::of(&Family::ALL),
            Families::NONE,
        )
        .unwrap();
    }
    rib.receive(&b(), &announce(&["10.0.1.0/26"], attrs(&[], "192.0.2.3")))
        .unwrap();
    let ch = rib
        .receive(&a(), &announce(&["10.0.1.0/26"], attrs(&[], "192.0.2.2")))
        .unwrap();
    assert_eq!(ch[0].best.len(), 2);
    let hops: Vec<_> = ch[0].best.iter().map(|p| p.next_hop()).collect();
    assert!(hops.contains(&NextHop::V4(Ipv4Addr::new(192, 0, 2, 2))));
    assert!(hops.contains(&NextHop::V4(Ipv4Addr::new(192, 0, 2, 3))));
}

#[test]
fn ebgp_export_prepends_as_sets_next_hop_and_strips_local_pref_and_med() {
    let mut rib = rib(None);
    let mut at = attrs(&[65009], "192.0.2.2");
    at.local_pref = Some(300);
    at.multi_exit_disc = Some(50);
    rib.receive(&a(), &announce(&["203.0.113.0/24"], at))
        .unwrap();
    let (ann, _) = sent(&mut rib, e());
    assert_eq!(ann.len(), 1);
    let (prefix, got) = &ann[0];
    assert_eq!(*prefix, v4("203.0.113.0/24"));
    assert_eq!(got.as_path, Some(AsPath::sequence([AS, 65009])));
    assert_eq!(got.next_hop, Some(Ipv4Addr::new(198, 51, 100, 254)));
    assert_eq!(got.local_pref, None);
    assert_eq!(got.multi_exit_disc, None);
    // RFC 8212: F has no export policy and gets nothing.
    assert!(sent(&mut rib, f()).0.is_empty());
    // A local route keeps its MED towards eBGP and gets AS_PATH [ours].
    let mut local = attrs(&[], "0.0.0.0");
    local.multi_exit_disc = Some(7);
    rib.originate(
        p("10.0.1.0/26"),
        local,
        NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)),
    );
    let (ann, _) = sent(&mut rib, e());
    assert_eq!(ann[0].1.as_path, Some(AsPath::sequence([AS])));
    assert_eq!(ann[0].1.multi_exit_disc, Some(7));
}

#[test]
fn ebgp_import_drops_own_as_ignores_local_pref_and_requires_policy() {
    let mut rib = rib(None);
    let looped = announce(
        &["203.0.113.0/24"],
        attrs(&[65001, AS, 65003], "198.51.100.1"),
    );
    assert!(rib.receive(&e(), &looped).unwrap().is_empty());
    assert_eq!(rib.adj_rib_in(&e()).unwrap().len(), 1, "kept before policy");
    // RFC 8212: F has no import policy.
    let from_f = announce(&["198.18.0.0/15"], attrs(&[65002], "198.51.100.2"));
    assert!(rib.receive(&f(), &from_f).unwrap().is_empty());
    let mut lp = attrs(&[65001], "198.51.100.1");
    lp.local_pref = Some(1000);
    let ch = rib
        .receive(&e(), &announce(&["192.0.2.128/25"], lp))
        .unwrap();
    assert_eq!(ch[0].best[0].attrs().local_pref, None);
    // Sent to iBGP with LOCAL_PREF 100 and the eBGP next hop kept.
    let (ann, _) = sent(&mut rib, b());
    assert_eq!(ann[0].1.local_pref, Some(100));
    assert_eq!(ann[0].1.next_hop, Some(Ipv4Addr::new(198, 51, 100, 1)));
}

#[test]
fn ibgp_routes_go_to_ebgp_only_when_not_reflecting() {
    let mut rib = rib(None);
    rib.receive(
        &a(),
        &announce(&["203.0.113.0/24"], attrs(&[], "192.0.2.2")),
    )
    .unwrap();
    for x in [a(), b(), c(), d()] {
        assert!(sent(&mut rib, x).0.is_empty(), "{x}");
    }
    assert_eq!(sent(&mut rib, e()).0.len(), 1);
}

#[test]
fn route_reflection_follows_rfc4456_client_rules() {
    let mut rib = rib(Some(CLUSTER));
    // From client A: to every iBGP peer but A, with ORIGINATOR_ID = A's
    // router id and our CLUSTER_ID in front of CLUSTER_LIST.
    let mut at = attrs(&[], "192.0.2.2");
    at.cluster_list = vec![Ipv4Addr::new(9, 9, 9, 9)];
    rib.receive(&a(), &announce(&["10.0.1.0/26"], at)).unwrap();
    assert!(sent(&mut rib, a()).0.is_empty(), "never back to the source");
    for x in [b(), c(), d()] {
        let (ann, _) = sent(&mut rib, x);
        assert_eq!(ann.len(), 1, "{x}");
        assert_eq!(ann[0].1.originator_id, Some(Ipv4Addr::new(10, 0, 1, 2)));
        assert_eq!(
            ann[0].1.cluster_list,
            vec![CLUSTER, Ipv4Addr::new(9, 9, 9, 9)]
        );
        assert_eq!(ann[0].1.next_hop, Some(Ipv4Addr::new(192, 0, 2, 2)));
    }
    // eBGP gets it without the reflection attributes.
    let (ann, _) = sent(&mut rib, e());
    assert_eq!(ann[0].1.originator_id, None);
    assert!(ann[0].1.cluster_list.is_empty());
    // From non-client B: to clients A and C only; ORIGINATOR_ID kept.
    let mut bt = attrs(&[], "192.0.2.3");
    bt.originator_id = Some(Ipv4Addr::new(10, 9, 9, 9));
    rib.receive(&b(), &announce(&["10.0.2.0/26"], bt)).unwrap();
    for (x, n) in [(a(), 1), (c(), 1), (b(), 0), (d(), 0)] {
        let (ann, _) = sent(&mut rib, x);
        assert_eq!(ann.len(), n, "{x}");
        if n == 1 {
            assert_eq!(ann[0].1.originator_id, Some(Ipv4Addr::new(10, 9, 9, 9)));
        }
    }
}

#[test]
fn reflection_loops_are_dropped_on_import() {
    let mut rib = rib(Some(CLUSTER));
    let mut looped = attrs(&[], "192.0.2.2");
    looped.cluster_list = vec![Ipv4Addr::new(9, 9, 9, 9), CLUSTER];
    assert!(
        rib.receive(&a(), &announce(&["10.0.1.0/26"], looped))
            .unwrap()
            .is_empty()
    );
    let mut ours = attrs(&[], "192.0.2.2");
    ours.originator_id = Some(RID);
    assert!(
        rib.receive(&a(), &announce(&["10.0.2.0/26"], ours))
            .unwrap()
            .is_empty()
    );
    let mut fine = attrs(&[], "192.0.2.2");
    fine.cluster_list = vec![Ipv4Addr::new(9, 9, 9, 9)];
    assert_eq!(
        rib.receive(&a(), &announce(&["10.0.3.0/26"], fine))
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn next_hop_self_and_keep_per_peer() {
    let mut rib = rib(None);
    let mut cfg = peer(b());
    cfg.next_hop = NextHopMode::SelfAddr;
    rib.set_peer(cfg);
    let mut cfg = peer(e());
    cfg.next_hop = NextHopMode::Keep;
    rib.set_peer(cfg);
    let mut from_f = peer(f());
    from_f.import = Some(Policy::accept_all());
    rib.set_peer(from_f);
    rib.receive(
        &f(),
        &announce(&["203.0.113.0/24"], attrs(&[65002], "198.51.100.2")),
    )
    .unwrap();
    assert_eq!(
        sent(&mut rib, b()).0[0].1.next_hop,
        Some(Ipv4Addr::new(192, 0, 2, 1))
    );
    assert_eq!(
        sent(&mut rib, c()).0[0].1.next_hop,
        Some(Ipv4Addr::new(198, 51, 100, 2))
    );
    assert_eq!(
        sent(&mut rib, e()).0[0].1.next_hop,
        Some(Ipv4Addr::new(198, 51, 100, 2))
    );
}

#[test]
fn adj_rib_out_sends_only_differences() {
    let mut rib = rib(None);
    let route = announce(&["203.0.113.0/24"], attrs(&[65001], "198.51.100.1"));
    rib.receive(&e(), &route).unwrap();
    assert_eq!(sent(&mut rib, a()).0.len(), 1);
    assert_eq!(rib.adj_rib_out(&a()).unwrap().len(), 1);
    assert!(rib.flush(&a(), &Context::default()).unwrap().is_empty());
    // A flap that ends where it started sends nothing.
    rib.receive(&e(), &withdraw(&["203.0.113.0/24"])).unwrap();
    rib.receive(&e(), &route).unwrap();
    assert!(rib.flush(&a(), &Context::default()).unwrap().is_empty());
    // A real change is one announcement; a withdrawal one withdrawal.
    rib.receive(
        &e(),
        &announce(&["203.0.113.0/24"], attrs(&[65001, 65005], "198.51.100.1")),
    )
    .unwrap();
    assert_eq!(sent(&mut rib, a()).0.len(), 1);
    rib.receive(&e(), &withdraw(&["203.0.113.0/24"])).unwrap();
    let (ann, wd) = sent(&mut rib, a());
    assert!(ann.is_empty());
    assert_eq!(wd, vec![v4("203.0.113.0/24")]);
}

#[test]
fn graceful_restart_helper_keeps_routes_until_end_of_rib() {
    let mut rib = rib(None);
    let t0 = Instant::now();
    rib.receive(
        &e(),
        &announce(
            &["203.0.113.0/24", "198.18.0.0/15"],
            attrs(&[65001], "198.51.100.1"),
        ),
    )
    .unwrap();
    sent(&mut rib, a());
    let ch = rib
        .peer_down(
            &e(),
            Some(&Retention::graceful(
                Families::of(&Family::ALL),
                t0,
                Duration::from_secs(120),
            )),
        )
        .unwrap();
    assert!(ch.is_empty(), "stale routes stay selected");
    assert!(sent(&mut rib, a()).1.is_empty(), "and are not withdrawn");
    assert_eq!(rib.next_deadline(), Some(t0 + Duration::from_secs(120)));
    rib.peer_up(
        e(),
        Ipv4Addr::new(10, 0, 1, 6),
        Families::of(&Family::ALL),
        Families::NONE,
    )
    .unwrap();
    rib.receive(
        &e(),
        &announce(&["203.0.113.0/24"], attrs(&[65001], "198.51.100.1")),
    )
    .unwrap();
    // End-of-RIB: what E did not send again goes.
    let ch = rib
        .receive(&e(), &Update::end_of_rib(Family::Ipv4Unicast))
        .unwrap();
    assert_eq!(ch.len(), 1);
    assert_eq!(ch[0].prefix, p("198.18.0.0/15"));
    assert_eq!(ch[0].kind, ChangeKind::Removed);
    assert_eq!(sent(&mut rib, a()).1, vec![v4("198.18.0.0/15")]);
    assert_eq!(rib.next_deadline(), None);
}

#[test]
fn graceful_restart_helper_flushes_at_restart_time_expiry() {
    let mut rib = rib(None);
    let t0 = Instant::now();
    rib.receive(
        &e(),
        &announce(&["203.0.113.0/24"], attrs(&[65001], "198.51.100.1")),
    )
    .unwrap();
    let deadline = t0 + Duration::from_secs(120);
    rib.peer_down(
        &e(),
        Some(&Retention::graceful(
            Families::of(&Family::ALL),
            t0,
            Duration::from_secs(120),
        )),
    )
    .unwrap();
    assert!(rib.expire(t0 + Duration::from_secs(60)).is_empty());
    let ch = rib.expire(deadline);
    assert_eq!(ch.len(), 1);
    assert_eq!(ch[0].kind, ChangeKind::Removed);
    // Without graceful restart everything goes at once.
    rib.peer_up(
        e(),
        Ipv4Addr::new(10, 0, 1, 6),
        Families::of(&Family::ALL),
        Families::NONE,
    )
    .unwrap();
    rib.receive(
        &e(),
        &announce(&["203.0.113.0/24"], attrs(&[65001], "198.51.100.1")),
    )
    .unwrap();
    assert_eq!(rib.peer_down(&e(), None).unwrap().len(), 1);
}

#[test]
fn unknown_peers_are_errors() {
    let mut rib = rib(None);
    let x = addr("203.0.113.77");
    assert_eq!(
        rib.receive(&x, &Update::default()),
        Err(RibError::UnknownPeer(x))
    );
    assert!(rib.flush(&x, &Context::default()).is_err());
}
