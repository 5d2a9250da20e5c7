//! IPAM garbage collection driven by Kubernetes: addresses whose pod or
//! node no longer exists are released, as Calico's kube-controllers do.
//!
//! Where it runs: in tabby-node, on the one agent that holds the
//! [`IPAM_GC_LEASE`](super::lease::IPAM_GC_LEASE) Lease — not in a separate
//! controller Deployment, so a tabby install stays one DaemonSet and the GC
//! keeps working whenever any agent runs (a controller pod needs a working
//! pod network to be scheduled and reach the API).
//!
//! Rules (the IPAM crate's [`ipam::check`] and [`Ipam::release_leaks`] do
//! the datastore part):
//! - a workload allocation (attributes `namespace` and `pod`, as tabby-cni
//!   and calico-ipam record them) is live while that pod exists and is
//!   bound to the allocation's node (or not bound yet), and that node
//!   exists;
//! - a tunnel address is live while its node exists;
//! - anything else (no pod attributes: someone else's allocation) is left
//!   alone;
//! - an address is released only if two scans at least the grace period
//!   apart both report it leaked, identically (same handle, same sequence
//!   number), all or nothing per handle, re-validated just before the write.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use ipam::check::{self, LiveOwners, Report};
use ipam::{Datastore, Ipam, IpamState, Repair};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::ListParams;

/// A pod as the collector needs it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    /// `spec.nodeName`; `None` while unscheduled.
    pub node: Option<String>,
}

impl PodRef {
    pub fn from_pod(pod: &Pod) -> Option<PodRef> {
        Some(PodRef {
            namespace: pod.metadata.namespace.clone()?,
            name: pod.metadata.name.clone()?,
            node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        })
    }
}

/// Who owns addresses right now, from the pod and node lists.
pub fn live_owners(state: &IpamState, pods: &[PodRef], nodes: &BTreeSet<String>) -> LiveOwners {
    let mut live = LiveOwners {
        workloads: BTreeSet::new(),
        nodes: nodes.clone(),
    };
    for block in state.blocks.values() {
        for a in block.value.allocations() {
            let Some(handle) = a.handle else { continue };
            let node = a.attrs.get("node");
            let owned = match (a.attrs.get("namespace"), a.attrs.get("pod")) {
                (Some(ns), Some(name)) => {
                    node.is_none_or(|n| nodes.contains(n))
                        && pods.iter().any(|p| {
                            p.namespace == *ns
                                && p.name == *name
                                && match (&p.node, node) {
                                    (Some(bound), Some(n)) => bound == n,
                                    _ => true,
                                }
                        })
                }
                // Not a pod's address: tunnel addresses are decided by
                // their node (LiveOwners::owns); anything else is not ours
                // to judge.
                _ => true,
            };
            if owned {
                live.workloads.insert(handle.to_string());
            }
        }
    }
    live
}

/// The scans so far, to confirm a leak against one a grace period older.
#[derive(Debug)]
pub struct Collector {
    pub grace: Duration,
    history: VecDeque<(Instant, Report)>,
}

impl Collector {
    pub fn new(grace: Duration) -> Collector {
        Collector {
            grace,
            history: VecDeque::new(),
        }
    }

    /// Remember `report` (taken at `now`) and return the newest earlier
    /// report at least the grace period old, to confirm against.
    pub fn observe(&mut self, now: Instant, report: Report) -> Option<Report> {
        let old_enough = |at: &Instant| now.duration_since(*at) >= self.grace;
        // Keep only the newest report that is old enough, and those after it.
        while self.history.len() >= 2 && old_enough(&self.history[1].0) {
            self.history.pop_front();
        }
        let earlier = self
            .history
            .front()
            .filter(|(at, _)| old_enough(at))
            .map(|(_, r)| r.clone());
        self.history.push_back((now, report));
        earlier
    }
}

/// The pods and nodes that exist (two LISTs).
pub async fn cluster_state(
    client: &kube::Client,
) -> Result<(Vec<PodRef>, BTreeSet<String>), kube::Error> {
    let pods = Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    Ok((
        pods.items.iter().filter_map(PodRef::from_pod).collect(),
        nodes
            .items
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .collect(),
    ))
}

/// Why a collection round did nothing.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("Kubernetes: {0}")]
    Kube(#[from] kube::Error),
    #[error("IPAM: {0}")]
    Ipam(#[from] ipam::IpamError),
}

/// One scan: list pods and nodes, check IPAM against them, and release
/// what this scan and one a grace period older agree is leaked.
pub async fn collect<S: Datastore>(
    client: &kube::Client,
    ipam: &Ipam<S>,
    collector: &mut Collector,
    now: Instant,
) -> Result<Repair, GcError> {
    let (pods, nodes) = cluster_state(client).await?;
    let state = ipam.snapshot().await?;
    let live = live_owners(&state, &pods, &nodes);
    let mut report = check::check(&state, &live);
    // Allocations without a handle have no owner to judge by: left alone.
    report.leaked.retain(|l| l.handle.is_some());
    let Some(earlier) = collector.observe(now, report.clone()) else {
        return Ok(Repair::default());
    };
    Ok(ipam.release_leaks(&earlier, &report, &live).await?)
}
