//! Shared pieces for the tests and benchmarks that run tabby's router
//! against real daemons: nodes on one switch, tabby's session and RIB
//! view of a peer with the lab's fast timers, and waiting on a daemon's
//! CLI output.
//!
//! The daemons themselves are in [`crate::daemon`]; the three-daemon
//! interop fixture is [`crate::mesh`]. Nothing here starts a process.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bgp::rib::{DecisionConfig, LocalConfig, PeerConfig as RibPeer, Policy};
use bgp::session::SessionConfig;
use bgp::speaker::PeerConfig;
use bgp::speaker::router::{RoutedPeer, RouterConfig};

use crate::{Netns, Switch, wait_until};

/// Where tabby's node sits in these labs (the daemons' usual guest slot,
/// `shared/reference/lab-facts.md` §9).
pub const TABBY: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 4);

/// Nodes on one switch, 10.200.0.0/24. Field order is drop order: the
/// nodes go before the switch.
#[derive(Debug)]
pub struct Nodes {
    /// In the order given to [`Nodes::new`].
    pub nodes: Vec<Netns>,
    /// Each node's address, same order.
    pub addrs: Vec<Ipv4Addr>,
    pub switch: Switch,
}

impl Nodes {
    /// A switch tagged `tag` and one node per `(name, address)`, named
    /// `<tag>-<name>`, with `eth0` at `address/24`.
    pub fn new(tag: &str, nodes: &[(&str, Ipv4Addr)]) -> Result<Nodes> {
        let switch = Switch::new(tag)?;
        let mut ns = Vec::new();
        for (name, addr) in nodes {
            let n = Netns::new(&format!("{tag}-{name}"))?;
            switch.attach(&n, "eth0", &format!("{addr}/24"))?;
            ns.push(n);
        }
        Ok(Nodes {
            nodes: ns,
            addrs: nodes.iter().map(|(_, a)| *a).collect(),
            switch,
        })
    }
}

/// A router for tabby in `asn` with BGP Identifier `router_id`, reflecting
/// as `cluster_id` when given.
pub fn router_config(asn: u32, router_id: Ipv4Addr, cluster_id: Option<Ipv4Addr>) -> RouterConfig {
    RouterConfig::new(LocalConfig {
        asn,
        router_id,
        cluster_id,
        decision: DecisionConfig::default(),
    })
}

/// tabby's session with a lab peer: its defaults with the lab's short
/// timers (hold 9 s, connect retry 2 s, idle hold 0.2–2 s), so a daemon
/// that starts late or restarts is reached again quickly.
pub fn session_config(local_as: u32, remote_as: u32, router_id: Ipv4Addr) -> SessionConfig {
    let mut session = SessionConfig::new(local_as, remote_as, router_id);
    session.hold_time = Duration::from_secs(9);
    session.connect_retry = Duration::from_secs(2);
    session.idle_hold = Duration::from_millis(200);
    session.idle_hold_max = Duration::from_secs(2);
    session
}

/// The peer at `peer` (in `remote_as`) as tabby's router knows it: the
/// session from `local` (our address, also our next hop) with `session`,
/// and a RIB view with accept-all policies on eBGP (RFC 8212 requires
/// explicit ones) and none on iBGP.
pub fn routed_peer(peer: Ipv4Addr, local: Ipv4Addr, session: SessionConfig) -> RoutedPeer {
    let remote_as = session.remote_as;
    let external = session.local_as != remote_as;
    let mut speaker_peer = PeerConfig::new(IpAddr::V4(peer), session);
    speaker_peer.local_address = Some(IpAddr::V4(local));
    let mut rib = RibPeer::new(IpAddr::V4(peer), remote_as);
    rib.local_v4 = Some(local);
    if external {
        rib.import = Some(Policy::accept_all());
        rib.export = Some(Policy::accept_all());
    }
    RoutedPeer {
        session: speaker_peer,
        rib,
    }
}

/// Waits up to `timeout` until `probe` returns output that satisfies
/// `ok`, and returns that output; the error carries the last output.
pub fn wait_output(
    what: &str,
    timeout: Duration,
    probe: impl Fn() -> Result<String>,
    ok: impl Fn(&str) -> bool,
) -> Result<String> {
    let mut last = String::new();
    wait_until(what, timeout, || {
        last = probe()?;
        Ok(ok(&last))
    })
    .with_context(|| format!("last output:\n{last}"))?;
    Ok(last)
}

/// The route count in BIRD's `show protocols all <name>` output: the
/// `imported` figure of its `Routes:` line (what the protocol holds from
/// its peer, kept as a counter, so asking is cheap at any table size).
pub fn bird_imported(show_protocols_all: &str) -> Result<usize> {
    for line in show_protocols_all.lines() {
        let Some(rest) = line.trim().strip_prefix("Routes:") else {
            continue;
        };
        let n = rest
            .split_whitespace()
            .next()
            .context("empty Routes: line")?;
        return Ok(n.parse()?);
    }
    // A protocol that is not up has no Routes: line.
    if show_protocols_all.contains("Established") {
        bail!("no Routes: line in:\n{show_protocols_all}");
    }
    Ok(0)
}

/// The prefixes FRR holds from `neighbor`, from `show bgp ipv4 unicast
/// summary json` (`pfxRcd`; 0 while the session is not up).
pub fn frr_received(summary: &serde_json::Value, neighbor: Ipv4Addr) -> usize {
    summary["peers"][neighbor.to_string()]["pfxRcd"]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bird_imported_reads_the_routes_line() {
        let out = "Name       Proto      Table      State  Since         Info\n\
                   src        BGP        ---        up     12:00:00.000  Established\n  \
                   BGP state:          Established\n  Channel ipv4\n    State:          UP\n    \
                   Routes:         100000 imported, 0 exported, 100000 preferred\n";
        assert_eq!(bird_imported(out).unwrap(), 100_000);
        assert_eq!(bird_imported("src BGP --- start Active\n").unwrap(), 0);
        assert!(bird_imported("src BGP --- up Established\n").is_err());
    }

    #[test]
    fn frr_received_reads_pfx_rcd() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"routerId":"10.200.0.3","peers":{"10.200.0.1":{"pfxRcd":42,"state":"Established"}}}"#,
        )
        .unwrap();
        assert_eq!(frr_received(&v, Ipv4Addr::new(10, 200, 0, 1)), 42);
        assert_eq!(frr_received(&v, Ipv4Addr::new(10, 200, 0, 2)), 0);
    }
}
