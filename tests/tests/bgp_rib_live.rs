//! tabby's router (speaker + RIB) exchanging routes with real BIRD 2, FRR
//! and GoBGP: routes each daemon originates reach tabby's Loc-RIB with
//! their attributes, routes tabby originates appear in each daemon's own
//! table (read with its CLI), withdrawals propagate both ways, eBGP
//! export prepends tabby's AS and rewrites NEXT_HOP, FRR's `clear bgp ...
//! soft in` (ROUTE-REFRESH) makes tabby send its table again, FRR
//! sending more than tabby's max-prefix limit gets Cease 6/1, and BIRD
//! helps tabby through graceful and long-lived graceful restart.
//!
//! Each test builds one switch with the daemon's node (10.200.0.1) and
//! tabby's (10.200.0.4); the daemon waits passively for tabby.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Result, bail};
use bgp::rib::{
    IpPrefix, MaxPrefix, MaxPrefixAction, MaxPrefixExceeded, Path, PeerConfig as RibPeer, Policy,
    PrefixSet, Rule,
};
use bgp::session::{SessionConfig, State};
use bgp::speaker::SpeakerConfig;
use bgp::speaker::router::{RoutedPeer, RouterEvent};
use bgp::wire::capability::{
    GracefulRestart, GracefulRestartFamily, LongLivedGracefulRestartFamily,
};
use bgp::wire::{Afi, Safi};
use bgp::wire::{AsPath, Capability, Community, Family, NextHop, Origin, PathAttributes};
use harness::bgp_lab::{self, Nodes, TABBY};
use harness::speaker::SpeakerInNs;
use harness::{Bird, Frr, GoBgp, Netns, require_live, wait_until};
use tokio::sync::broadcast::Receiver;

const PEER: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const AS: u32 = 64512;
const TABBY_EBGP_AS: u32 = 65001;
const WAIT: Duration = Duration::from_secs(30);

/// The daemon's node and tabby's on one switch.
struct Lab(Nodes);

impl Lab {
    fn daemon_ns(&self) -> &Netns {
        &self.0.nodes[0]
    }

    fn tabby_ns(&self) -> &Netns {
        &self.0.nodes[1]
    }
}

fn lab(tag: &str) -> Lab {
    Lab(Nodes::new(tag, &[("d", PEER), ("t", TABBY)]).unwrap())
}

fn peer_ip() -> IpAddr {
    IpAddr::V4(PEER)
}

fn p(s: &str) -> IpPrefix {
    s.parse().unwrap()
}

/// tabby (AS `local_as`) with a router, one peer at 10.200.0.1 in
/// `remote_as`; `rib` adjusts the RIB view of the peer. The router's
/// events are subscribed to before the peer is added.
fn tabby(
    lab: &Lab,
    local_as: u32,
    remote_as: u32,
    rib: impl FnOnce(&mut RibPeer),
) -> (SpeakerInNs, Receiver<RouterEvent>) {
    tabby_with(lab, local_as, remote_as, |_| {}, rib, |_| {})
}

/// [`tabby`], with `session_cfg` adjusting the session too, and `before`
/// run once the router is up and before the peer is added (to originate
/// routes that must be in the initial table).
fn tabby_with(
    lab: &Lab,
    local_as: u32,
    remote_as: u32,
    session_cfg: impl FnOnce(&mut SessionConfig),
    rib: impl FnOnce(&mut RibPeer),
    before: impl FnOnce(&SpeakerInNs),
) -> (SpeakerInNs, Receiver<RouterEvent>) {
    let cfg = SpeakerConfig {
        listen: vec![SocketAddr::new(IpAddr::V4(TABBY), 179)],
        ..Default::default()
    };
    let routing = bgp_lab::router_config(local_as, TABBY, None);
    let t = SpeakerInNs::start_routing(lab.tabby_ns(), cfg, routing).unwrap();
    let mut session = bgp_lab::session_config(local_as, remote_as, TABBY);
    session_cfg(&mut session);
    let RoutedPeer {
        session: speaker_peer,
        rib: mut rib_peer,
    } = bgp_lab::routed_peer(PEER, TABBY, session);
    rib(&mut rib_peer);
    before(&t);
    let events = t.router().subscribe();
    t.block_on(t.router().add_peer(RoutedPeer {
        session: speaker_peer,
        rib: rib_peer,
    }))
    .unwrap();
    (t, events)
}

/// The first max-prefix report among the router's events.
fn max_prefix_report(
    t: &SpeakerInNs,
    events: &mut Receiver<RouterEvent>,
) -> (IpAddr, MaxPrefixExceeded) {
    t.block_on(async {
        tokio::time::timeout(WAIT, async {
            loop {
                if let RouterEvent::MaxPrefix { peer, exceeded } = events.recv().await.unwrap() {
                    return (peer, exceeded);
                }
            }
        })
        .await
        .expect("a max-prefix report")
    })
}

/// What tabby announces in these tests: 172.30.4.0/24, MED 7, community
/// 64512:200, next hop `next_hop`.
fn originate(t: &SpeakerInNs, prefix: &str, next_hop: Ipv4Addr) {
    let attrs = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        local_pref: Some(100),
        multi_exit_disc: Some(7),
        communities: vec![Community::new(64512, 200)],
        ..PathAttributes::default()
    };
    t.block_on(
        t.router()
            .originate(p(prefix), attrs, NextHop::V4(next_hop)),
    )
    .unwrap();
}

/// The best path tabby's Loc-RIB holds for `prefix`, once it has one.
fn wait_best(t: &SpeakerInNs, prefix: &str) -> Path {
    let mut found = None;
    wait_until(&format!("{prefix} in tabby's Loc-RIB"), WAIT, || {
        found = t.block_on(t.router().best(p(prefix)))?.into_iter().next();
        Ok(found.is_some())
    })
    .unwrap();
    found.unwrap()
}

fn wait_gone(t: &SpeakerInNs, prefix: &str) {
    wait_until(&format!("{prefix} gone from tabby's Loc-RIB"), WAIT, || {
        Ok(t.block_on(t.router().best(p(prefix)))?.is_empty())
    })
    .unwrap();
}

fn wait_up(t: &SpeakerInNs) {
    t.wait_established(&[peer_ip()], WAIT).unwrap();
}

fn v4(path: &Path) -> Ipv4Addr {
    match path.next_hop() {
        NextHop::V4(a) => a,
        NextHop::V6 { .. } => panic!("IPv6 next hop for an IPv4 route"),
    }
}

/// Waits until `probe` returns output that satisfies `ok`; returns it.
fn wait_output(
    what: &str,
    probe: impl Fn() -> Result<String>,
    ok: impl Fn(&str) -> bool,
) -> String {
    match bgp_lab::wait_output(what, WAIT, probe, ok) {
        Ok(out) => out,
        Err(e) => panic!("{e:#}"),
    }
}

// --- BIRD -------------------------------------------------------------

fn bird_config() -> String {
    format!(
        "router id {PEER};\n\
         protocol device {{ scan time 10; }}\n\
         protocol direct {{ ipv4; interface \"eth0\"; }}\n\
         protocol kernel {{ ipv4 {{ import none; export none; }}; }}\n\
         protocol static s1 {{ ipv4; route 172.31.1.0/24 blackhole; }}\n\
         protocol static s2 {{ ipv4; route 172.31.11.0/24 blackhole; }}\n\
         filter to_tabby {{\n  if net = 172.31.11.0/24 then {{ bgp_med = 50; bgp_community.add((64512,100)); }}\n  accept;\n}}\n\
         protocol bgp tabby {{\n  local {PEER} as {AS};\n  neighbor {TABBY} as {AS};\n  direct;\n  passive on;\n  \
         connect delay time 1; connect retry time 5; error wait time 1, 10;\n  \
         ipv4 {{ import all; export filter to_tabby; gateway direct; }};\n}}\n"
    )
}

#[test]
fn routes_flow_both_ways_with_bird() {
    if !require_live("routes_flow_both_ways_with_bird", &["bird", "birdc"]) {
        return;
    }
    let lab = lab("ribbird");
    let bird = Bird::start(lab.daemon_ns(), &bird_config()).unwrap();
    let (t, _events) = tabby(&lab, AS, AS, |_| {});
    originate(&t, "172.30.4.0/24", TABBY);
    wait_up(&t);

    // BIRD's routes in tabby's Loc-RIB: next hop BIRD, iBGP attributes.
    let plain = wait_best(&t, "172.31.1.0/24");
    assert_eq!(v4(&plain), PEER);
    assert_eq!(plain.attrs().origin, Some(Origin::Igp));
    assert_eq!(
        plain.attrs().as_path.as_ref().map(AsPath::route_len),
        Some(0)
    );
    assert_eq!(plain.attrs().local_pref, Some(100));
    assert_eq!(plain.attrs().multi_exit_disc, None);
    let marked = wait_best(&t, "172.31.11.0/24");
    assert_eq!(v4(&marked), PEER);
    assert_eq!(marked.attrs().multi_exit_disc, Some(50));
    assert_eq!(marked.attrs().communities, [Community::new(64512, 100)]);

    // tabby's route in BIRD's table, as BIRD shows it.
    let show = || bird.birdc("show route 172.30.4.0/24 all");
    let out = wait_output("tabby's route in BIRD", show, |o| o.contains("BGP.med: 7"));
    assert!(out.contains("via 10.200.0.4"), "{out}");
    assert!(out.contains("BGP.origin: IGP"), "{out}");
    assert!(out.contains("BGP.community: (64512,200)"), "{out}");
    assert!(out.contains("BGP.local_pref: 100"), "{out}");

    // Withdrawals, both ways.
    t.block_on(t.router().withdraw(p("172.30.4.0/24"))).unwrap();
    // `show route <prefix>` fails once the prefix is gone: read the table.
    let table = || bird.birdc("show route");
    wait_output("tabby's withdrawal in BIRD", table, |o| {
        !o.contains("172.30.4.0/24")
    });
    bird.birdc("disable s2").unwrap();
    wait_gone(&t, "172.31.11.0/24");
    assert!(
        !t.block_on(t.router().best(p("172.31.1.0/24")))
            .unwrap()
            .is_empty()
    );
}

/// BIRD with graceful restart on, originating `statics` (one static
/// protocol each).
fn bird_gr_config(statics: &[&str]) -> String {
    let mut c = format!(
        "router id {PEER};\n\
         protocol device {{ scan time 10; }}\n\
         protocol kernel {{ ipv4 {{ import none; export none; }}; }}\n"
    );
    for (i, net) in statics.iter().enumerate() {
        c.push_str(&format!(
            "protocol static s{i} {{ ipv4; route {net} blackhole; }}\n"
        ));
    }
    c.push_str(&format!(
        "protocol bgp tabby {{\n  local {PEER} as {AS};\n  neighbor {TABBY} as {AS};\n  direct;\n  \
         passive on;\n  graceful restart on;\n  graceful restart time 60;\n  \
         connect delay time 1; connect retry time 5; error wait time 1, 10;\n  \
         ipv4 {{ import all; export where source = RTS_STATIC; gateway direct; }};\n}}\n"
    ));
    c
}

#[test]
fn bird_crashing_with_graceful_restart_keeps_its_routes_until_its_end_of_rib() {
    if !require_live(
        "bird_crashing_with_graceful_restart_keeps_its_routes_until_its_end_of_rib",
        &["bird", "birdc"],
    ) {
        return;
    }
    let lab = lab("ribgr");
    let mut bird = Bird::start(
        lab.daemon_ns(),
        &bird_gr_config(&["172.31.1.0/24", "172.31.11.0/24"]),
    )
    .unwrap();
    // tabby as a helper: the capability without families (RFC 4724 §3).
    let helper = |s: &mut SessionConfig| {
        s.capabilities
            .push(Capability::GracefulRestart(GracefulRestart {
                restart_state: false,
                notification: false,
                restart_time: 120,
                families: vec![],
            }));
    };
    let (t, _events) = tabby_with(&lab, AS, AS, helper, |_| {}, |_| {});
    wait_up(&t);
    wait_best(&t, "172.31.1.0/24");
    wait_best(&t, "172.31.11.0/24");
    let neg = t.peer(peer_ip()).unwrap().negotiated.unwrap();
    let gr = neg
        .peer_graceful_restart
        .expect("BIRD announces graceful restart");
    assert_eq!(gr.restart_time, 60);

    // BIRD dies: no NOTIFICATION, the connection just ends.
    bird.crash();
    wait_until("tabby's session to drop", WAIT, || {
        Ok(t.peer(peer_ip())?.state != State::Established)
    })
    .unwrap();
    let kept = t
        .block_on(t.router().peer_routes(peer_ip()))
        .unwrap()
        .unwrap();
    assert_eq!((kept.received, kept.stale), (2, 2), "kept, stale: {kept:?}");
    for n in ["172.31.1.0/24", "172.31.11.0/24"] {
        assert!(
            !t.block_on(t.router().best(p(n))).unwrap().is_empty(),
            "{n}"
        );
    }

    // BIRD comes back (-R) without 172.31.11.0/24: once its End-of-RIB
    // is in, the route it no longer sends is gone and the other is fresh.
    bird.restart_graceful(lab.daemon_ns(), &bird_gr_config(&["172.31.1.0/24"]))
        .unwrap();
    wait_up(&t);
    wait_gone(&t, "172.31.11.0/24");
    let after = t
        .block_on(t.router().peer_routes(peer_ip()))
        .unwrap()
        .unwrap();
    assert_eq!((after.received, after.stale), (1, 0), "{after:?}");
    assert!(
        !t.block_on(t.router().best(p("172.31.1.0/24")))
            .unwrap()
            .is_empty()
    );
    let status = t.peer(peer_ip()).unwrap();
    assert_eq!(status.counters.established, 2, "{status:?}");
    // BIRD kept its forwarding state (F bit), so tabby kept the stale
    // routes past the new OPEN: only BIRD's End-of-RIB (long before the
    // 60 s restart time or the 360 s stale-path time) can have flushed
    // 172.31.11.0/24.
    let gr = status.negotiated.unwrap().peer_graceful_restart.unwrap();
    assert!(gr.restart_state, "BIRD restarted with the R bit: {gr:?}");
    assert!(
        gr.families.iter().all(|f| f.forwarding_state),
        "F bit: {gr:?}"
    );
}

/// tabby's graceful restart capability: Restart Time 60 s, IPv4 unicast
/// with forwarding state preserved, R bit as given.
fn restarting(restart_state: bool) -> impl FnOnce(&mut SessionConfig) {
    move |s: &mut SessionConfig| {
        s.capabilities
            .push(Capability::GracefulRestart(GracefulRestart {
                restart_state,
                notification: false,
                restart_time: 60,
                families: vec![GracefulRestartFamily {
                    afi: Afi::IPV4,
                    safi: Safi::UNICAST,
                    forwarding_state: true,
                }],
            }));
    }
}

#[test]
fn bird_keeps_our_routes_while_tabby_restarts_gracefully() {
    if !require_live(
        "bird_keeps_our_routes_while_tabby_restarts_gracefully",
        &["bird", "birdc"],
    ) {
        return;
    }
    let lab = lab("ribgrt");
    let bird = Bird::start(lab.daemon_ns(), &bird_gr_config(&["172.31.1.0/24"])).unwrap();
    let ours = |t: &SpeakerInNs| originate(t, "172.30.4.0/24", TABBY);
    let (t, _events) = tabby_with(&lab, AS, AS, restarting(false), |_| {}, ours);
    wait_up(&t);
    let show = || bird.birdc("show route 172.30.4.0/24 all");
    wait_output("tabby's route in BIRD", show, |o| {
        o.contains("via 10.200.0.4")
    });

    // tabby's speaker dies without a NOTIFICATION: BIRD helps.
    t.crash();
    let proto = || bird.birdc("show protocols all tabby");
    wait_output("BIRD to keep tabby's routes", proto, |o| {
        !o.contains("Established") && o.contains("Neighbor graceful restart active")
    });
    let kept = show().unwrap();
    assert!(kept.contains("via 10.200.0.4"), "kept, stale: {kept}");

    // Back with the R bit, originating the same route before its table
    // and End-of-RIB go out: BIRD never lost it.
    let (t, _events) = tabby_with(&lab, AS, AS, restarting(true), |_| {}, ours);
    wait_up(&t);
    wait_output("BIRD Established with tabby, restart over", proto, |o| {
        o.contains("Established") && !o.contains("graceful restart active")
    });
    let after = wait_output("tabby's route fresh in BIRD", show, |o| {
        o.contains("via 10.200.0.4")
    });
    assert!(after.contains("BGP.med: 7"), "{after}");
}

/// tabby down past its 1 s restart time: BIRD keeps its route as a
/// long-lived stale one (RFC 9494, tabby's Long-lived Stale Time 60 s),
/// marked LLGR_STALE, until tabby is back and sends it again.
#[test]
fn bird_keeps_our_routes_long_lived_past_our_restart_time() {
    if !require_live(
        "bird_keeps_our_routes_long_lived_past_our_restart_time",
        &["bird", "birdc"],
    ) {
        return;
    }
    let lab = lab("ribllgr");
    let bird = Bird::start(lab.daemon_ns(), &bird_gr_config(&["172.31.1.0/24"])).unwrap();
    let ours = |t: &SpeakerInNs| originate(t, "172.30.4.0/24", TABBY);
    let long_lived = |restart_state: bool| {
        move |s: &mut SessionConfig| {
            s.capabilities.extend([
                Capability::GracefulRestart(GracefulRestart {
                    restart_state,
                    notification: false,
                    restart_time: 1,
                    families: vec![GracefulRestartFamily {
                        afi: Afi::IPV4,
                        safi: Safi::UNICAST,
                        forwarding_state: true,
                    }],
                }),
                Capability::LongLivedGracefulRestart(vec![LongLivedGracefulRestartFamily {
                    afi: Afi::IPV4,
                    safi: Safi::UNICAST,
                    forwarding_state: true,
                    stale_time: 60,
                }]),
            ]);
        }
    };
    let (t, _events) = tabby_with(&lab, AS, AS, long_lived(false), |_| {}, ours);
    wait_up(&t);
    let show = || bird.birdc("show route 172.30.4.0/24 all");
    wait_output("tabby's route in BIRD", show, |o| {
        o.contains("via 10.200.0.4")
    });

    // tabby's speaker dies without a NOTIFICATION; a second later its
    // restart time is over and BIRD keeps the route long-lived.
    t.crash();
    let kept = wait_output("BIRD to keep tabby's route long-lived stale", show, |o| {
        o.contains("via 10.200.0.4") && o.contains("(65535,6)")
    });
    assert!(kept.contains("BGP.med: 7"), "{kept}");
    let proto = bird.birdc("show protocols all tabby").unwrap();
    assert!(!proto.contains("Established"), "{proto}");

    // Back with the R bit: the route is fresh, no longer marked.
    let (t, _events) = tabby_with(&lab, AS, AS, long_lived(true), |_| {}, ours);
    wait_up(&t);
    wait_output("tabby's route fresh in BIRD", show, |o| {
        o.contains("via 10.200.0.4") && !o.contains("(65535,6)")
    });
}

// --- GoBGP ------------------------------------------------------------

fn gobgp_config() -> String {
    format!(
        "[global.config]\n  as = {AS}\n  router-id = \"{PEER}\"\n  local-address-list = [\"{PEER}\"]\n\
         [[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{TABBY}\"\n    peer-as = {AS}\n  \
         [neighbors.timers.config]\n    connect-retry = 5\n  \
         [neighbors.transport.config]\n    passive-mode = true\n  \
         [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-unicast\"\n"
    )
}

#[test]
fn routes_flow_both_ways_with_gobgp() {
    if !require_live("routes_flow_both_ways_with_gobgp", &["gobgpd", "gobgp"]) {
        return;
    }
    let lab = lab("ribgobgp");
    let gobgp = GoBgp::start(lab.daemon_ns(), &gobgp_config()).unwrap();
    let add = [
        "global",
        "rib",
        "add",
        "-a",
        "ipv4",
        "172.31.2.0/24",
        "origin",
        "egp",
        "med",
        "20",
        "community",
        "64512:300",
    ];
    gobgp.gobgp(&add).unwrap();
    gobgp
        .gobgp(&["global", "rib", "add", "-a", "ipv4", "172.31.12.0/24"])
        .unwrap();
    let (t, _events) = tabby(&lab, AS, AS, |_| {});
    originate(&t, "172.30.4.0/24", TABBY);
    wait_up(&t);

    let marked = wait_best(&t, "172.31.2.0/24");
    assert_eq!(v4(&marked), PEER);
    assert_eq!(marked.attrs().origin, Some(Origin::Egp));
    assert_eq!(
        marked.attrs().as_path.as_ref().map(AsPath::route_len),
        Some(0)
    );
    assert_eq!(marked.attrs().multi_exit_disc, Some(20));
    assert_eq!(marked.attrs().communities, [Community::new(64512, 300)]);
    let plain = wait_best(&t, "172.31.12.0/24");
    // `gobgp global rib add` defaults to ORIGIN INCOMPLETE.
    assert_eq!(plain.attrs().origin, Some(Origin::Incomplete));
    assert_eq!(plain.attrs().multi_exit_disc, None);

    let show = || gobgp.gobgp(&["global", "rib", "-a", "ipv4", "172.30.4.0/24"]);
    let out = wait_output("tabby's route in GoBGP", show, |o| {
        o.contains("172.30.4.0/24")
    });
    let line = out
        .lines()
        .find(|l| l.contains("172.30.4.0/24"))
        .unwrap_or_default();
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert!(columns.contains(&"10.200.0.4"), "next hop: {out}");
    for attr in [
        "{Origin: i}",
        "{Med: 7}",
        "{LocalPref: 100}",
        "{Communities: 64512:200}",
    ] {
        assert!(line.contains(attr), "{attr}: {out}");
    }
    t.block_on(t.router().withdraw(p("172.30.4.0/24"))).unwrap();
    wait_output("tabby's withdrawal in GoBGP", show, |o| {
        !o.contains("172.30.4.0/24")
    });
    gobgp
        .gobgp(&["global", "rib", "del", "-a", "ipv4", "172.31.2.0/24"])
        .unwrap();
    wait_gone(&t, "172.31.2.0/24");
    assert!(
        !t.block_on(t.router().best(p("172.31.12.0/24")))
            .unwrap()
            .is_empty()
    );
}

// --- FRR --------------------------------------------------------------

/// FRR in AS 64512 with tabby in `tabby_as`, originating 172.31.3.0/24
/// (MED 30, community 64512:400, ORIGIN INCOMPLETE) and `extra` plain
/// networks.
fn frr_config(tabby_as: u32, extra: &[&str]) -> String {
    let mut c = format!(
        "frr defaults traditional\nhostname d\nrouter bgp {AS}\n bgp router-id {PEER}\n \
         no bgp ebgp-requires-policy\n no bgp network import-check\n \
         neighbor {TABBY} remote-as {tabby_as}\n neighbor {TABBY} passive\n \
         neighbor {TABBY} timers connect 5\n \
         address-family ipv4 unicast\n  network 172.31.3.0/24 route-map SETATTR\n"
    );
    for n in extra {
        c.push_str(&format!("  network {n}\n"));
    }
    c.push_str(
        " exit-address-family\n\
         route-map SETATTR permit 10\n set metric 30\n set community 64512:400\n set origin incomplete\n",
    );
    c
}

/// FRR's view of its neighbor tabby.
fn frr_neighbor(frr: &Frr) -> Result<serde_json::Value> {
    let all = frr.json(&format!("show bgp neighbors {TABBY} json"))?;
    Ok(all[TABBY.to_string()].clone())
}

fn frr_route(frr: &Frr, prefix: &str) -> Result<serde_json::Value> {
    frr.json(&format!("show bgp ipv4 unicast {prefix} json"))
}

fn frr_has(frr: &Frr, prefix: &str) -> Result<bool> {
    Ok(!frr.paths(prefix)?.is_empty())
}

fn counter(v: &serde_json::Value, key: &str) -> u64 {
    v["messageStats"][key].as_u64().unwrap_or(0)
}

fn frr_bins() -> [&'static str; 2] {
    ["/usr/lib/frr/bgpd", "vtysh"]
}

#[test]
fn routes_flow_both_ways_with_frr() {
    if !require_live("routes_flow_both_ways_with_frr", &frr_bins()) {
        return;
    }
    let lab = lab("ribfrr");
    let frr = Frr::start(lab.daemon_ns(), &frr_config(AS, &["172.31.13.0/24"]), false).unwrap();
    let (t, _events) = tabby(&lab, AS, AS, |_| {});
    originate(&t, "172.30.4.0/24", TABBY);
    wait_up(&t);

    let marked = wait_best(&t, "172.31.3.0/24");
    assert_eq!(v4(&marked), PEER);
    assert_eq!(marked.attrs().origin, Some(Origin::Incomplete));
    assert_eq!(
        marked.attrs().as_path.as_ref().map(AsPath::route_len),
        Some(0)
    );
    assert_eq!(marked.attrs().multi_exit_disc, Some(30));
    assert_eq!(marked.attrs().local_pref, Some(100));
    assert_eq!(marked.attrs().communities, [Community::new(64512, 400)]);
    let plain = wait_best(&t, "172.31.13.0/24");
    assert_eq!(plain.attrs().origin, Some(Origin::Igp));

    let mut route = serde_json::Value::Null;
    wait_until("tabby's route in FRR", WAIT, || {
        route = frr_route(&frr, "172.30.4.0/24")?;
        Ok(route["paths"].as_array().is_some_and(|a| !a.is_empty()))
    })
    .unwrap();
    let path = &route["paths"][0];
    assert_eq!(path["nexthops"][0]["ip"], "10.200.0.4", "{route}");
    assert_eq!(path["metric"], 7, "{route}");
    assert_eq!(path["origin"], "IGP", "{route}");
    assert_eq!(path["community"]["string"], "64512:200", "{route}");
    assert_eq!(path["aspath"]["length"], 0, "{route}");

    t.block_on(t.router().withdraw(p("172.30.4.0/24"))).unwrap();
    wait_until("tabby's withdrawal in FRR", WAIT, || {
        Ok(!frr_has(&frr, "172.30.4.0/24")?)
    })
    .unwrap();
    frr.configure(&[
        &format!("router bgp {AS}"),
        "address-family ipv4 unicast",
        "no network 172.31.13.0/24",
    ])
    .unwrap();
    wait_gone(&t, "172.31.13.0/24");
    assert!(
        !t.block_on(t.router().best(p("172.31.3.0/24")))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn ebgp_with_frr_prepends_our_as_and_rewrites_the_next_hop() {
    if !require_live(
        "ebgp_with_frr_prepends_our_as_and_rewrites_the_next_hop",
        &frr_bins(),
    ) {
        return;
    }
    let lab = lab("ribebgp");
    let frr = Frr::start(lab.daemon_ns(), &frr_config(TABBY_EBGP_AS, &[]), false).unwrap();
    let (t, _events) = tabby(&lab, TABBY_EBGP_AS, AS, |_| {});
    // Originated with someone else's next hop: eBGP export puts ours.
    originate(&t, "172.30.4.0/24", Ipv4Addr::new(10, 200, 0, 9));
    wait_up(&t);

    let mut route = serde_json::Value::Null;
    wait_until("tabby's route in FRR", WAIT, || {
        route = frr_route(&frr, "172.30.4.0/24")?;
        Ok(route["paths"].as_array().is_some_and(|a| !a.is_empty()))
    })
    .unwrap();
    let path = &route["paths"][0];
    assert_eq!(path["aspath"]["string"], "65001", "{route}");
    assert_eq!(path["nexthops"][0]["ip"], "10.200.0.4", "{route}");
    assert_eq!(path["metric"], 7, "ours, so MED stays: {route}");
    assert!(path["locPrf"].is_null() || path["locPrf"] == 100, "{route}");

    // FRR's route over eBGP: its AS first, its next hop, no LOCAL_PREF.
    let learned = wait_best(&t, "172.31.3.0/24");
    assert_eq!(v4(&learned), PEER);
    let as_path = learned.attrs().as_path.clone().unwrap();
    assert_eq!(as_path.route_len(), 1, "{as_path:?}");
    assert_eq!(as_path.segments[0].asns, [AS]);
    assert_eq!(learned.attrs().local_pref, None);
    assert_eq!(learned.attrs().multi_exit_disc, Some(30));
}

#[test]
fn frr_soft_in_gets_our_table_again_and_we_can_ask_frr_for_its_own() {
    if !require_live(
        "frr_soft_in_gets_our_table_again_and_we_can_ask_frr_for_its_own",
        &frr_bins(),
    ) {
        return;
    }
    let lab = lab("ribrr");
    let frr = Frr::start(lab.daemon_ns(), &frr_config(AS, &["172.31.13.0/24"]), false).unwrap();
    let (t, _events) = tabby(&lab, AS, AS, |_| {});
    for n in ["172.30.4.0/24", "172.30.5.0/24", "172.30.6.0/24"] {
        originate(&t, n, TABBY);
    }
    wait_up(&t);
    wait_until("tabby's table in FRR", WAIT, || {
        Ok(frr_has(&frr, "172.30.4.0/24")?
            && frr_has(&frr, "172.30.5.0/24")?
            && frr_has(&frr, "172.30.6.0/24")?)
    })
    .unwrap();
    wait_best(&t, "172.31.13.0/24");
    // Quiet: the initial table and End-of-RIB are out.
    let before = t.peer(peer_ip()).unwrap().counters;
    let frr_before = frr_neighbor(&frr).unwrap();
    assert!(
        t.block_on(t.router().peer_routes(peer_ip()))
            .unwrap()
            .is_some_and(|r| r.advertised == 3 && r.pending == 0)
    );

    // Both sides announce enhanced route refresh (RFC 7313), so tabby's
    // answer is framed by BoRR and EoRR, which FRR takes without a fuss.
    assert_eq!(
        frr_before["neighborCapabilities"]["enhancedRouteRefresh"], "advertisedAndReceived",
        "{}",
        frr_before["neighborCapabilities"]
    );
    // FRR asks (ROUTE-REFRESH); tabby sends its three routes again.
    frr.vtysh(&format!("clear bgp ipv4 unicast {TABBY} soft in"))
        .unwrap();
    wait_until("tabby resends its table", WAIT, || {
        Ok(t.peer(peer_ip())?.counters.updates_out > before.updates_out)
    })
    .unwrap();
    wait_until("FRR sees the refresh answered", WAIT, || {
        let now = frr_neighbor(&frr)?;
        Ok(
            counter(&now, "routeRefreshSent") > counter(&frr_before, "routeRefreshSent")
                && counter(&now, "updatesRecv") > counter(&frr_before, "updatesRecv"),
        )
    })
    .unwrap();
    let after = t.peer(peer_ip()).unwrap();
    assert_eq!(after.counters.established, 1, "no session reset: {after:?}");
    assert!(frr_has(&frr, "172.30.5.0/24").unwrap());

    // Import policy change: reject 172.31.13.0/24, then allow it again and
    // ask FRR for its table (ROUTE-REFRESH from tabby).
    let mut rib = RibPeer::new(peer_ip(), AS);
    rib.local_v4 = Some(TABBY);
    rib.import = Some(Policy {
        rules: vec![Rule::reject(PrefixSet::parse(["172.31.13.0/24"]).unwrap())],
        default: bgp::rib::Disposition::Accept,
    });
    t.block_on(t.router().set_policy(rib.clone())).unwrap();
    wait_gone(&t, "172.31.13.0/24");
    rib.import = None;
    t.block_on(t.router().set_policy(rib)).unwrap();
    wait_best(&t, "172.31.13.0/24");
    let before = t.peer(peer_ip()).unwrap().counters;
    let frr_before = frr_neighbor(&frr).unwrap();
    assert!(
        t.block_on(t.router().refresh(peer_ip(), Family::Ipv4Unicast))
            .unwrap()
    );
    wait_until("FRR answers tabby's ROUTE-REFRESH", WAIT, || {
        let now = frr_neighbor(&frr)?;
        Ok(
            counter(&now, "routeRefreshRecv") > counter(&frr_before, "routeRefreshRecv")
                && t.peer(peer_ip())?.counters.updates_in > before.updates_in,
        )
    })
    .unwrap();
    assert_eq!(t.peer(peer_ip()).unwrap().counters.established, 1);
}

/// FRR's reason for the last reset of its session with tabby.
fn frr_last_reset(frr: &Frr) -> Result<String> {
    let n = frr_neighbor(frr)?;
    let fields = [
        "lastResetDueTo",
        "lastNotificationReason",
        "lastErrorCodeSubcode",
    ];
    let text: Vec<String> = fields
        .iter()
        .filter_map(|f| n[*f].as_str().map(|v| format!("{f}: {v}")))
        .collect();
    if text.is_empty() {
        bail!("no reset recorded yet: {n}");
    }
    Ok(text.join("; "))
}

#[test]
fn frr_over_our_max_prefix_limit_gets_cease_6_1_and_we_restart_later() {
    if !require_live(
        "frr_over_our_max_prefix_limit_gets_cease_6_1_and_we_restart_later",
        &frr_bins(),
    ) {
        return;
    }
    let lab = lab("ribmax");
    let extra = ["172.31.13.0/24", "172.31.14.0/24", "172.31.15.0/24"];
    let frr = Frr::start(lab.daemon_ns(), &frr_config(AS, &extra), false).unwrap();
    let limit = MaxPrefix {
        restart_after: Some(Duration::from_secs(3)),
        ..MaxPrefix::new(2)
    };
    let (t, mut events) = tabby(&lab, AS, AS, |r| r.max_prefixes = Some(limit));
    wait_up(&t);

    let reset = wait_output(
        "FRR records the Cease",
        || frr_last_reset(&frr),
        |r| r.contains("lastErrorCodeSubcode: 0601"),
    );
    assert!(
        reset.contains("Notification received")
            && reset.contains("Cease/Maximum Number of Prefixes Reached"),
        "{reset}"
    );
    let status = t.peer(peer_ip()).unwrap();
    assert_eq!(
        status.last_error.as_deref(),
        Some("sent NOTIFICATION 6/1"),
        "{status:?}"
    );
    let over = max_prefix_report(&t, &mut events);
    assert_eq!(over.0, peer_ip());
    assert_eq!(over.1.limit, 2);
    assert!(over.1.count > 2);
    assert!(matches!(over.1.action, MaxPrefixAction::Cease { .. }));
    // The routes went with the session.
    wait_gone(&t, "172.31.3.0/24");
    // After the restart delay the session comes back (and is closed again).
    wait_until("tabby's session starts again", WAIT, || {
        Ok(t.peer(peer_ip())?.counters.established >= 2)
    })
    .unwrap();
    let frr_n = frr_neighbor(&frr).unwrap();
    assert!(
        frr_n["connectionsEstablished"].as_u64().unwrap_or(0) >= 2,
        "{frr_n}"
    );
}

#[test]
fn max_prefix_warn_only_keeps_the_session_and_the_routes() {
    if !require_live(
        "max_prefix_warn_only_keeps_the_session_and_the_routes",
        &frr_bins(),
    ) {
        return;
    }
    let lab = lab("ribwarn");
    let extra = ["172.31.13.0/24", "172.31.14.0/24"];
    let frr = Frr::start(lab.daemon_ns(), &frr_config(AS, &extra), false).unwrap();
    let limit = MaxPrefix {
        warn_only: true,
        ..MaxPrefix::new(1)
    };
    let (t, mut events) = tabby(&lab, AS, AS, |r| r.max_prefixes = Some(limit));
    wait_up(&t);
    for n in ["172.31.3.0/24", "172.31.13.0/24", "172.31.14.0/24"] {
        wait_best(&t, n);
    }
    let action = max_prefix_report(&t, &mut events).1.action;
    assert_eq!(action, MaxPrefixAction::Warn);
    let status = t.peer(peer_ip()).unwrap();
    assert_eq!(status.state, State::Established, "{status:?}");
    assert_eq!(status.counters.established, 1, "{status:?}");
    assert_eq!(frr.established().unwrap(), 1);
}
