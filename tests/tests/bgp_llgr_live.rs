//! Long-lived graceful restart (RFC 9494) live: tabby helps a real BIRD
//! through a restart that outlasts its restart time, and passes the
//! long-lived stale routes on only to a peer that announced LLGR.
//!
//! One switch: the origin BIRD (10.200.0.1, AS 65001, eBGP to tabby;
//! graceful restart time 2 s, long-lived stale time 60 s), tabby
//! (10.200.0.4, AS 64512), and two iBGP receivers of tabby: BIRD
//! (10.200.0.2, graceful restart on, so LLGR-aware) and FRR (10.200.0.3,
//! graceful restart off, so no LLGR: FRR announces LLGR whenever it
//! announces graceful restart). The origin dies without a NOTIFICATION; after its 2 s the
//! routes it sent turn long-lived stale in tabby: LLGR_STALE attached
//! (seen in the BIRD receiver's `show route all`), the NO_LLGR one
//! dropped, and FRR sent withdrawals. The origin comes back and its
//! routes are fresh again everywhere.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Result;
use bgp::rib::{IpPrefix, Path, Policy};
use bgp::session::State;
use bgp::speaker::SpeakerConfig;
use bgp::wire::capability::GracefulRestart;
use bgp::wire::{Capability, Community};
use harness::bgp_lab::{self, Nodes, TABBY};
use harness::speaker::SpeakerInNs;
use harness::{Bird, Frr, require_live, wait_until};

const ORIGIN: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const RX_BIRD: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);
const RX_FRR: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 3);
const AS: u32 = 64512;
const ORIGIN_AS: u32 = 65001;
const WAIT: Duration = Duration::from_secs(30);
const KEPT: &str = "172.31.1.0/24";
const NO_LLGR: &str = "172.31.11.0/24";

fn p(s: &str) -> IpPrefix {
    s.parse().unwrap()
}

/// The origin: `statics`, the second marked NO_LLGR (65535,7); graceful
/// restart 2 s, then long-lived for 60 s.
fn origin_config(statics: &[&str]) -> String {
    let mut c = format!(
        "router id {ORIGIN};\n\
         protocol device {{ scan time 10; }}\n\
         protocol kernel {{ ipv4 {{ import none; export none; }}; }}\n"
    );
    for (i, net) in statics.iter().enumerate() {
        c.push_str(&format!(
            "protocol static s{i} {{ ipv4; route {net} blackhole; }}\n"
        ));
    }
    c.push_str(&format!(
        "filter to_tabby {{\n  if net = {NO_LLGR} then bgp_community.add((65535,7));\n  accept;\n}}\n\
         protocol bgp tabby {{\n  local {ORIGIN} as {ORIGIN_AS};\n  neighbor {TABBY} as {AS};\n  direct;\n  \
         passive on;\n  graceful restart on;\n  graceful restart time 2;\n  \
         long lived graceful restart on;\n  long lived stale time 60;\n  \
         connect delay time 1; connect retry time 5; error wait time 1, 10;\n  \
         ipv4 {{ import none; export filter to_tabby; next hop self; }};\n}}\n"
    ));
    c
}

fn rx_bird_config() -> String {
    format!(
        "router id {RX_BIRD};\nprotocol device {{ scan time 10; }}\n\
         protocol bgp tabby {{\n  local {RX_BIRD} as {AS};\n  neighbor {TABBY} as {AS};\n  direct;\n  \
         passive on;\n  graceful restart on;\n  \
         connect delay time 1; connect retry time 5; error wait time 1, 10;\n  \
         ipv4 {{ import all; export none; gateway direct; }};\n}}\n"
    )
}

fn rx_frr_config() -> String {
    format!(
        "frr defaults traditional\nhostname rxfrr\nrouter bgp {AS}\n bgp router-id {RX_FRR}\n \
         no bgp ebgp-requires-policy\n no bgp network import-check\n \
         bgp graceful-restart-disable\n \
         neighbor {TABBY} remote-as {AS}\n neighbor {TABBY} passive\n"
    )
}

/// tabby with a router and its three peers; graceful restart as helper
/// and the long-lived capability (helper only: no families) on every
/// session.
fn tabby(lab: &Nodes) -> SpeakerInNs {
    let cfg = SpeakerConfig {
        listen: vec![SocketAddr::new(IpAddr::V4(TABBY), 179)],
        ..Default::default()
    };
    let routing = bgp_lab::router_config(AS, TABBY, None);
    let t = SpeakerInNs::start_routing(&lab.nodes[1], cfg, routing).unwrap();
    for (peer, asn) in [(ORIGIN, ORIGIN_AS), (RX_BIRD, AS), (RX_FRR, AS)] {
        let mut session = bgp_lab::session_config(AS, asn, TABBY);
        session.capabilities.extend([
            Capability::GracefulRestart(GracefulRestart {
                restart_state: false,
                notification: false,
                restart_time: 120,
                families: vec![],
            }),
            Capability::LongLivedGracefulRestart(vec![]),
        ]);
        let mut routed = bgp_lab::routed_peer(peer, TABBY, session);
        if asn != AS {
            routed.rib.import = Some(Policy::accept_all());
            routed.rib.export = Some(Policy::accept_all());
        }
        t.block_on(t.router().add_peer(routed)).unwrap();
    }
    t
}

fn best(t: &SpeakerInNs, prefix: &str) -> Option<Path> {
    t.block_on(t.router().best(p(prefix)))
        .unwrap()
        .into_iter()
        .next()
}

fn stale_mark(path: &Path) -> bool {
    path.attrs().communities.contains(&Community::LLGR_STALE)
}

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

/// Whether FRR's table has `prefix` (from tabby, the only sender).
fn frr_has(frr: &Frr, prefix: &str) -> Result<bool> {
    Ok(!frr.paths(prefix)?.is_empty())
}

#[test]
fn bird_down_past_its_restart_time_stays_long_lived_stale_for_llgr_peers_only() {
    if !require_live(
        "bird_down_past_its_restart_time_stays_long_lived_stale_for_llgr_peers_only",
        &["bird", "birdc", "vtysh"],
    ) {
        return;
    }
    let lab = Nodes::new(
        "llgr",
        &[("o", ORIGIN), ("t", TABBY), ("rb", RX_BIRD), ("rf", RX_FRR)],
    )
    .unwrap();
    let mut origin = Bird::start(&lab.nodes[0], &origin_config(&[KEPT, NO_LLGR])).unwrap();
    let rx_bird = Bird::start(&lab.nodes[2], &rx_bird_config()).unwrap();
    let rx_frr = Frr::start(&lab.nodes[3], &rx_frr_config(), false).unwrap();
    let t = tabby(&lab);
    let all = [ORIGIN, RX_BIRD, RX_FRR].map(IpAddr::V4);
    t.wait_established(&all, WAIT).unwrap();

    // Who announced what: the origin both capabilities with its times,
    // the BIRD receiver long-lived graceful restart, FRR not.
    let caps = |a: Ipv4Addr| {
        t.peer(IpAddr::V4(a))
            .unwrap()
            .negotiated
            .unwrap()
            .peer_open
            .capabilities
    };
    let llgr = |a: Ipv4Addr| {
        caps(a).into_iter().find_map(|c| match c {
            Capability::LongLivedGracefulRestart(f) => Some(f),
            _ => None,
        })
    };
    let of_origin = llgr(ORIGIN).expect("the origin announces LLGR");
    assert!(
        of_origin.iter().all(|f| f.stale_time == 60),
        "{of_origin:?}"
    );
    assert!(
        llgr(RX_BIRD).is_some(),
        "BIRD with graceful restart is LLGR-aware"
    );
    assert!(llgr(RX_FRR).is_none(), "FRR announces no LLGR here");

    let rxb = &rx_bird;
    let show = |prefix: &'static str| move || rxb.birdc(&format!("show route {prefix} all"));
    for prefix in [KEPT, NO_LLGR] {
        wait_output(
            &format!("{prefix} in the BIRD receiver"),
            show(prefix),
            |o| o.contains("from 10.200.0.4"),
        );
        wait_until(&format!("{prefix} in FRR"), WAIT, || {
            frr_has(&rx_frr, prefix)
        })
        .unwrap();
    }

    // The origin dies: graceful restart keeps both for its 2 s, then the
    // one without NO_LLGR turns long-lived stale.
    origin.crash();
    wait_until("tabby's session with the origin to drop", WAIT, || {
        Ok(t.peer(IpAddr::V4(ORIGIN))?.state != State::Established)
    })
    .unwrap();
    // Graceful restart first: stale, still unmarked (its 2 s).
    let kept = t
        .block_on(t.router().peer_routes(IpAddr::V4(ORIGIN)))
        .unwrap()
        .unwrap();
    assert_eq!(kept.stale, 2, "{kept:?}");
    assert!(best(&t, KEPT).is_some_and(|p| !stale_mark(&p)));
    wait_until("the origin's route to turn long-lived stale", WAIT, || {
        Ok(best(&t, KEPT).is_some_and(|p| stale_mark(&p)))
    })
    .unwrap();
    assert!(best(&t, NO_LLGR).is_none(), "NO_LLGR: gone, not kept");
    let kept = t
        .block_on(t.router().peer_routes(IpAddr::V4(ORIGIN)))
        .unwrap()
        .unwrap();
    assert_eq!((kept.received, kept.stale), (1, 1), "{kept:?}");

    // The BIRD receiver (LLGR) holds it with LLGR_STALE, FRR not at all.
    let marked = wait_output("LLGR_STALE in the BIRD receiver", show(KEPT), |o| {
        o.contains("(65535,6)")
    });
    assert!(marked.contains("from 10.200.0.4"), "{marked}");
    wait_output(
        "the NO_LLGR route gone from the BIRD receiver",
        || rxb.birdc("show route"),
        |o| o.contains(KEPT) && !o.contains(NO_LLGR),
    );
    for prefix in [KEPT, NO_LLGR] {
        wait_until(&format!("{prefix} withdrawn from FRR"), WAIT, || {
            Ok(!frr_has(&rx_frr, prefix)?)
        })
        .unwrap();
    }

    // The origin comes back (-R): its route is fresh again everywhere.
    origin
        .restart_graceful(&lab.nodes[0], &origin_config(&[KEPT]))
        .unwrap();
    t.wait_established(&all, WAIT).unwrap();
    wait_until("the origin's route fresh in tabby", WAIT, || {
        Ok(best(&t, KEPT).is_some_and(|p| !stale_mark(&p)))
    })
    .unwrap();
    wait_output("the route fresh in the BIRD receiver", show(KEPT), |o| {
        o.contains("from 10.200.0.4") && !o.contains("(65535,6)")
    });
    wait_until("the route back in FRR", WAIT, || frr_has(&rx_frr, KEPT)).unwrap();
    wait_until("the origin's End-of-RIB to end the restart", WAIT, || {
        let r = t
            .block_on(t.router().peer_routes(IpAddr::V4(ORIGIN)))?
            .unwrap();
        Ok(r.stale == 0)
    })
    .unwrap();
    let after = t
        .block_on(t.router().peer_routes(IpAddr::V4(ORIGIN)))
        .unwrap()
        .unwrap();
    assert_eq!((after.received, after.stale), (1, 0), "{after:?}");
}
