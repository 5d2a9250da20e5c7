//! `/liveness`, `/readiness` and `/metrics` over plain HTTP/1.1.
//!
//! Calico has no BGP metrics; tabby exports, in the Prometheus text format
//! (0.0.4), per peer: session state, whether it is Established, uptime,
//! Established transitions, messages and UPDATEs in and out, prefixes
//! received, accepted (past import policy, in the Loc-RIB) and sent; and
//! for the node: routes programmed and how long programming took, IPAM
//! operations with their latency and errors, datastore errors and failed
//! rounds. The text is written here rather than through the `prometheus`
//! crates: a dozen families of gauges, counters and summaries need no
//! registry, and the tests parse it with `prometheus-parse`. The HTTP
//! server is a few lines on a tokio listener: three fixed GET paths need no
//! framework.
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
    /// Received prefixes the import policy accepted (in the Loc-RIB).
    pub prefixes_accepted: usize,
    pub prefixes_sent: usize,
}

/// Count, errors and total time of one kind of operation (a summary).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timings {
    pub count: u64,
    pub errors: u64,
    pub seconds: f64,
}

impl Timings {
    /// One more operation that took `took`.
    pub fn record(&mut self, took: Duration, ok: bool) {
        self.count += 1;
        self.errors += u64::from(!ok);
        self.seconds += took.as_secs_f64();
    }
}

/// Await `op`, recording its time and outcome into `timings` under `name`.
pub async fn timed<T, E>(
    timings: &mut std::collections::BTreeMap<&'static str, Timings>,
    name: &'static str,
    op: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let started = std::time::Instant::now();
    let result = op.await;
    timings
        .entry(name)
        .or_default()
        .record(started.elapsed(), result.is_ok());
    result
}

/// What the HTTP task serves, refreshed by the daemon every round.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    pub alive: bool,
    pub ready: bool,
    pub peers: Vec<PeerMetrics>,
    pub routes_programmed: usize,
    pub failed_rounds: u64,
    /// Route programming by the dataplane thread: from handing it a new
    /// desired set to the kernel holding it.
    pub programming: Timings,
    /// The last programming's duration, seconds.
    pub programming_last_seconds: f64,
    /// The agent's IPAM operations, by name (`snapshot`,
    /// `assign_tunnel_address`).
    pub ipam: Vec<(String, Timings)>,
    /// Datastore (etcd) requests that failed.
    pub datastore_errors: u64,
}

fn labels(p: &PeerMetrics) -> String {
    format!("peer=\"{}\",type=\"{}\"", p.address, p.peer_type)
}

/// One metric family: `# HELP`, `# TYPE`, then each sample as
/// `name<suffix>{labels} value` (the suffix is `_sum`/`_count` for a
/// summary's samples, empty otherwise).
fn family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: &[(&str, String, String)],
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (suffix, labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name}{suffix} {value}");
        } else {
            let _ = writeln!(out, "{name}{suffix}{{{labels}}} {value}");
        }
    }
}

/// A per-peer metric family: name, type, help, and the value of a peer.
type PeerFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&PeerMetrics) -> String,
);

/// The Prometheus text exposition of `h`.
pub fn metrics_text(h: &Health) -> String {
    let mut out = String::new();
    let per = |f: fn(&PeerMetrics) -> String| -> Vec<(&str, String, String)> {
        h.peers.iter().map(|p| ("", labels(p), f(p))).collect()
    };
    let peer_families: [PeerFamily; 11] = [
        (
            "tabby_bgp_peer_state",
            "gauge",
            "BGP session state (1 Idle .. 6 Established).",
            |p| p.state.to_string(),
        ),
        (
            "tabby_bgp_peer_established",
            "gauge",
            "1 if the BGP session is Established.",
            |p| u8::from(p.state == 6).to_string(),
        ),
        (
            "tabby_bgp_peer_uptime_seconds",
            "gauge",
            "Seconds since the session's last state change.",
            |p| p.uptime_secs.to_string(),
        ),
        (
            "tabby_bgp_peer_established_transitions_total",
            "counter",
            "Times the session reached Established.",
            |p| p.established_total.to_string(),
        ),
        (
            "tabby_bgp_messages_received_total",
            "counter",
            "BGP messages received.",
            |p| p.messages_in.to_string(),
        ),
        (
            "tabby_bgp_messages_sent_total",
            "counter",
            "BGP messages sent.",
            |p| p.messages_out.to_string(),
        ),
        (
            "tabby_bgp_updates_received_total",
            "counter",
            "UPDATE messages received.",
            |p| p.updates_in.to_string(),
        ),
        (
            "tabby_bgp_updates_sent_total",
            "counter",
            "UPDATE messages sent.",
            |p| p.updates_out.to_string(),
        ),
        (
            "tabby_bgp_prefixes_received",
            "gauge",
            "Prefixes in the peer's Adj-RIB-In.",
            |p| p.prefixes_received.to_string(),
        ),
        (
            "tabby_bgp_prefixes_accepted",
            "gauge",
            "Received prefixes accepted by import policy (in the Loc-RIB).",
            |p| p.prefixes_accepted.to_string(),
        ),
        (
            "tabby_bgp_prefixes_sent",
            "gauge",
            "Prefixes in the peer's Adj-RIB-Out.",
            |p| p.prefixes_sent.to_string(),
        ),
    ];
    for (name, kind, help, f) in peer_families {
        family(&mut out, name, kind, help, &per(f));
    }
    let node = |v: String| [("", String::new(), v)];
    family(
        &mut out,
        "tabby_routes_programmed",
        "gauge",
        "Routes the node wants in its kernel.",
        &node(h.routes_programmed.to_string()),
    );
    family(
        &mut out,
        "tabby_route_programming_seconds",
        "summary",
        "Time from a new desired route set to the kernel holding it.",
        &[
            ("_sum", String::new(), h.programming.seconds.to_string()),
            ("_count", String::new(), h.programming.count.to_string()),
        ],
    );
    family(
        &mut out,
        "tabby_route_programming_last_seconds",
        "gauge",
        "Duration of the last route programming.",
        &node(h.programming_last_seconds.to_string()),
    );
    family(
        &mut out,
        "tabby_failed_rounds_total",
        "counter",
        "Reconciliation rounds that failed (datastore or dataplane).",
        &node(h.failed_rounds.to_string()),
    );
    family(
        &mut out,
        "tabby_datastore_errors_total",
        "counter",
        "Datastore (etcd) requests that failed.",
        &node(h.datastore_errors.to_string()),
    );
    let op = |o: &str| format!("operation=\"{o}\"");
    let ipam_seconds: Vec<(&str, String, String)> = h
        .ipam
        .iter()
        .flat_map(|(o, t)| {
            [
                ("_sum", op(o), t.seconds.to_string()),
                ("_count", op(o), t.count.to_string()),
            ]
        })
        .collect();
    family(
        &mut out,
        "tabby_ipam_operation_seconds",
        "summary",
        "The agent's IPAM operations and their latency.",
        &ipam_seconds,
    );
    let ipam_errors: Vec<(&str, String, String)> = h
        .ipam
        .iter()
        .map(|(o, t)| ("", op(o), t.errors.to_string()))
        .collect();
    family(
        &mut out,
        "tabby_ipam_operation_errors_total",
        "counter",
        "The agent's IPAM operations that failed.",
        &ipam_errors,
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
            programming: Timings {
                count: 4,
                errors: 0,
                seconds: 0.5,
            },
            ipam: vec![("snapshot".into(), Timings::default())],
            ..Health::default()
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
        assert!(text.contains("# TYPE tabby_route_programming_seconds summary"));
        assert!(text.contains("tabby_route_programming_seconds_sum 0.5\n"));
        assert!(text.contains("tabby_route_programming_seconds_count 4\n"));
        assert!(
            text.contains("tabby_ipam_operation_seconds_count{operation=\"snapshot\"} 0\n"),
            "{text}"
        );
        // Every sample line belongs to the family announced before it.
        let mut family = "";
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split_whitespace().next().unwrap();
            } else if !line.starts_with('#') {
                assert!(line.starts_with(family), "{line} outside {family}");
            }
        }
    }
}
