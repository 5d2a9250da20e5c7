//! The dataplane thread of the node daemon and how long its programming
//! takes.
//!
//! The thread owns a [`RouteReconciler`]: it adopts what a previous run
//! left in the kernel, then applies each desired set the daemon sends
//! (only the differences) and re-reads the kernel every 30 s to repair
//! drift. Routes on live workload interfaces are tabby-cni's until the pod
//! goes: it never deletes them. The time from a desired set that changes
//! the kernel being handed over to the kernel holding it is measured for
//! the metrics ([`Programming`]).

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::health::Timings;
use crate::dataplane::reconciler::{RoundOutcome, RouteCommand, RouteReconciler};
use crate::dataplane::route::Target;
use crate::dataplane::workload::is_workload_interface;

/// How often the thread re-reads the kernel to repair drift.
const RESYNC: Duration = Duration::from_secs(30);

/// Route programming latency, shared with the dataplane thread.
#[derive(Debug, Default)]
pub struct Programming {
    /// When a desired set not yet applied was handed over.
    pub sent_at: Option<Instant>,
    pub timings: Timings,
    pub last_seconds: f64,
}

impl Programming {
    /// A desired set is being handed over (the oldest unapplied one
    /// counts).
    pub fn handing_over(&mut self) {
        self.sent_at.get_or_insert_with(Instant::now);
    }
}

/// Start the thread; the sender for desired sets and the shared timings.
/// `interface_prefix` names the workload interfaces whose routes stay.
pub fn spawn(
    interface_prefix: String,
) -> std::io::Result<(Sender<RouteCommand>, Arc<Mutex<Programming>>)> {
    let (routes_tx, routes_rx) = std::sync::mpsc::channel();
    let programming = Arc::new(Mutex::new(Programming::default()));
    let measured = Arc::clone(&programming);
    let workload = move |_: &IpNet, t: &Target| matches!(t, Target::Device { ifindex } if is_workload_interface(*ifindex, &interface_prefix));
    std::thread::Builder::new()
        .name("dataplane".into())
        .spawn(
            move || match RouteReconciler::start().map(|r| r.protect(workload)) {
                Ok(r) => {
                    let log = |outcome: RoundOutcome| {
                        if let RoundOutcome::Applied(r) = &outcome
                            && let Ok(mut p) = measured.lock()
                            && let Some(sent) = p.sent_at.take()
                            && r.requests > 0
                        {
                            let took = sent.elapsed();
                            p.timings.record(took, r.failed.is_empty());
                            p.last_seconds = took.as_secs_f64();
                        }
                        log_round(outcome)
                    };
                    if let Err(e) = r.serve(&routes_rx, RESYNC, log) {
                        tracing::error!("dataplane stopped: {e}");
                    }
                }
                Err(e) => tracing::error!("dataplane: {e}"),
            },
        )?;
    Ok((routes_tx, programming))
}

/// One line per round that changed something (never one per route).
fn log_round(outcome: RoundOutcome) {
    match outcome {
        RoundOutcome::Applied(r) | RoundOutcome::Resynced(r) if r.requests > 0 => {
            tracing::info!(
                added = r.added,
                replaced = r.replaced,
                deleted = r.deleted,
                failed = r.failed.len(),
                "routes programmed"
            )
        }
        RoundOutcome::Failed(e) => tracing::warn!("dataplane round failed: {e}"),
        _ => {}
    }
}
