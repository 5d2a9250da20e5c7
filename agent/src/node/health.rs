//! `/liveness`, `/readiness` and `/metrics` over plain HTTP/1.1.
//!
//! Calico has no BGP metrics; tabby exports, in the Prometheus text format
//! (0.0.4), per peer: session state, whether it is Established, uptime,
//! Established transitions, messages and UPDATEs in and out, prefixes
//! received and sent; and for the node: routes programmed, failed rounds
//! (datastore or dataplane errors). The HTTP server is a few lines on a
//! tokio listener: three fixed GET paths need no framework.
//!
//! Ready means: the last round succeeded (datastore reachable, dataplane
//! handed its state), and every peer is Established during the first
//! [`STARTUP`] after start, at least one later (or there are no peers).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// After this long, readiness needs only one Established peer.
pub const STARTUP: Duration = Duration::from_secs(60);

/// One peer's numbers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerMetrics {
    pub address: String,
    pub peer_type: String,
    /// RFC 4271 state number: 1 Idle … 6 Established.
    pub state: u8,
    pub uptime_secs: u64,
    pub established_total: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub updates_in: u64,
    pub updates_out: u64,
    pub prefixes_received: usize,
    pub prefixes_sent: usize,
}

/// What the HTTP task serves, refreshed by the daemon every round.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    pub alive: bool,
    pub ready: bool,
    pub peers: Vec<PeerMetrics>,
    pub routes_programmed: usize,
    pub failed_rounds: u64,
}

fn labels(p: &PeerMetrics) -> String {
    format!("peer=\"{}\",type=\"{}\"", p.address, p.peer_type)
}

/// The Prometheus text exposition of `h`.
pub fn metrics_text(h: &Health) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {value}");
            } else {
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        }
    };
    let per = |f: fn(&PeerMetrics) -> String| -> Vec<(String, String)> {
        h.peers.iter().map(|p| (labels(p), f(p))).collect()
    };
    family(
        "tabby_bgp_peer_state",
        "gauge",
        "BGP session state (1 Idle .. 6 Established).",
        per(|p| p.state.to_string()),
    );
    family(
        "tabby_bgp_peer_established",
        "gauge",
        "1 if the BGP session is Established.",
        per(|p| u8::from(p.state == 6).to_string()),
    );
    family(
        "tabby_bgp_peer_uptime_seconds",
        "gauge",
        "Seconds since the session's last state change.",
        per(|p| p.uptime_secs.to_string()),
    );
    family(
        "tabby_bgp_peer_established_transitions_total",
        "counter",
        "Times the session reached Established.",
        per(|p| p.established_total.to_string()),
    );
    family(
        "tabby_bgp_messages_received_total",
        "counter",
        "BGP messages received.",
        per(|p| p.messages_in.to_string()),
    );
    family(
        "tabby_bgp_messages_sent_total",
        "counter",
        "BGP messages sent.",
        per(|p| p.messages_out.to_string()),
    );
    family(
        "tabby_bgp_updates_received_total",
        "counter",
        "UPDATE messages received.",
        per(|p| p.updates_in.to_string()),
    );
    family(
        "tabby_bgp_updates_sent_total",
        "counter",
        "UPDATE messages sent.",
        per(|p| p.updates_out.to_string()),
    );
    family(
        "tabby_bgp_prefixes_received",
        "gauge",
        "Prefixes in the peer's Adj-RIB-In.",
        per(|p| p.prefixes_received.to_string()),
    );
    family(
        "tabby_bgp_prefixes_sent",
        "gauge",
        "Prefixes in the peer's Adj-RIB-Out.",
        per(|p| p.prefixes_sent.to_string()),
    );
    family(
        "tabby_routes_programmed",
        "gauge",
        "Routes the node wants in its kernel.",
        vec![(String::new(), h.routes_programmed.to_string())],
    );
    family(
        "tabby_failed_rounds_total",
        "counter",
        "Reconciliation rounds that failed (datastore or dataplane).",
        vec![(String::new(), h.failed_rounds.to_string())],
    );
    out
}

/// Serve `/liveness`, `/readiness` and `/metrics` on `addr` until the
/// process ends.
pub async fn serve(addr: SocketAddr, health: watch::Receiver<Health>) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let health = health.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                let n = match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
                    .await
                {
                    Ok(Ok(n)) => n,
                    _ => return,
                };
                let request = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let h = health.borrow().clone();
                let (status, body, kind) = match path {
                    "/liveness" if h.alive => ("200 OK", "alive\n".to_string(), "text/plain"),
                    "/liveness" => (
                        "503 Service Unavailable",
                        "not alive\n".to_string(),
                        "text/plain",
                    ),
                    "/readiness" if h.ready => ("200 OK", "ready\n".to_string(), "text/plain"),
                    "/readiness" => (
                        "503 Service Unavailable",
                        "not ready\n".to_string(),
                        "text/plain",
                    ),
                    "/metrics" => (
                        "200 OK",
                        metrics_text(&h),
                        "text/plain; version=0.0.4; charset=utf-8",
                    ),
                    _ => ("404 Not Found", "not found\n".to_string(), "text/plain"),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_labelled_per_peer_and_typed() {
        let h = Health {
            alive: true,
            ready: true,
            peers: vec![PeerMetrics {
                address: "10.200.0.2".into(),
                peer_type: "node-to-node mesh".into(),
                state: 6,
                prefixes_received: 3,
                ..PeerMetrics::default()
            }],
            routes_programmed: 7,
            failed_rounds: 0,
        };
        let text = metrics_text(&h);
        assert!(text.contains("# TYPE tabby_bgp_peer_state gauge"));
        assert!(text.contains(
            "tabby_bgp_peer_established{peer=\"10.200.0.2\",type=\"node-to-node mesh\"} 1"
        ));
        assert!(text.contains(
            "tabby_bgp_prefixes_received{peer=\"10.200.0.2\",type=\"node-to-node mesh\"} 3"
        ));
        assert!(text.contains("tabby_routes_programmed 7"));
    }
}
