//! tabby-node's side of [`crate::k8s`]: when it runs in a cluster, what it
//! asks Kubernetes at start (its Node's labels and InternalIP), what it
//! tells it (annotations after registration; `NetworkUnavailable=False`
//! once ready, `True` on SIGTERM), and the IPAM garbage collector it runs
//! while it holds the `tabby-ipam-gc` Lease.
//!
//! Kubernetes is optional: `TABBY_KUBERNETES=auto` (the default) uses it
//! when `KUBERNETES_SERVICE_HOST` is set (every pod has it), `on` requires
//! it (with `KUBECONFIG`, for an agent run by hand), `off` never asks.
//! Failures after start are logged and retried, never fatal: the datastore
//! is etcd, and pods keep their network if the API server is away.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ipam::{EtcdStore, Ipam};
use ipnet::Ipv4Net;
use k8s_openapi::jiff::Timestamp;

use super::config::NodeConfig;
use crate::k8s::gc::{self, Collector};
use crate::k8s::lease::{Elector, IPAM_GC_LEASE, LeaseConfig};
use crate::k8s::node::{self, NodeAnnotations, NodeFacts};

/// How long calico-node retries the condition patch at start; tabby too.
const CONDITION_RETRY: Duration = Duration::from_secs(30);
/// The bound on the shutdown patch: SIGTERM must still exit promptly.
const SHUTDOWN_PATCH: Duration = Duration::from_secs(5);
/// client-go's defaults: 15 s lease, renewed every 5 s here.
const LEASE_DURATION: Duration = Duration::from_secs(15);
const LEASE_ROUND: Duration = Duration::from_secs(5);

/// A connection to the cluster and what the Node said at start.
#[derive(Clone)]
pub struct KubeLink {
    pub client: kube::Client,
    pub node: String,
    pub facts: NodeFacts,
}

impl std::fmt::Debug for KubeLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeLink")
            .field("node", &self.node)
            .field("facts", &self.facts)
            .finish()
    }
}

/// Whether `TABBY_KUBERNETES` asks for Kubernetes here.
pub fn wanted(cfg: &NodeConfig) -> Result<bool> {
    match cfg.kubernetes.as_str() {
        "auto" => Ok(crate::k8s::in_cluster()),
        "on" => Ok(true),
        "off" => Ok(false),
        other => bail!("TABBY_KUBERNETES {other:?}: expected auto, on or off"),
    }
}

/// Connect and read this node's Node, if Kubernetes is wanted. A Node that
/// cannot be read at start is fatal: its labels decide the pools.
pub async fn connect(cfg: &NodeConfig) -> Result<Option<KubeLink>> {
    if !wanted(cfg)? {
        return Ok(None);
    }
    let client = crate::k8s::client()
        .await
        .context("Kubernetes client (service account or KUBECONFIG)")?;
    let facts = node::read(&client, &cfg.nodename)
        .await
        .with_context(|| format!("reading Node {:?} from Kubernetes", cfg.nodename))?;
    tracing::info!(
        node = %cfg.nodename,
        labels = facts.labels.len(),
        internal_ip = ?facts.internal_ipv4(),
        "read the Node from Kubernetes"
    );
    Ok(Some(KubeLink {
        client,
        node: cfg.nodename.clone(),
        facts,
    }))
}

/// Publish the node's address, AS and tunnel on its Node (best effort).
pub async fn annotate(
    link: &KubeLink,
    address: Ipv4Net,
    asn: u32,
    vxlan: Option<(std::net::Ipv4Addr, String)>,
) {
    let annotations = NodeAnnotations {
        ipv4_address: Some(address),
        as_number: Some(asn),
        ipv4_vxlan_tunnel_addr: vxlan.as_ref().map(|v| v.0),
        ipv4_ipip_tunnel_addr: None,
        vxlan_tunnel_mac_addr: vxlan.map(|v| v.1),
    };
    match node::annotate(&link.client, &link.node, &annotations).await {
        Ok(()) => tracing::info!("annotated the Node"),
        Err(e) => tracing::warn!("cannot annotate the Node: {e}"),
    }
}

/// Tell Kubernetes the node's network is up, retrying for 30 s in the
/// background (the agent does not wait for it).
pub fn announce_up(link: &KubeLink) {
    let link = link.clone();
    tokio::spawn(async move {
        let until = Instant::now() + CONDITION_RETRY;
        loop {
            match node::set_network_unavailable(&link.client, &link.node, true, Timestamp::now())
                .await
            {
                Ok(()) => {
                    tracing::info!("NetworkUnavailable=False (TabbyIsUp)");
                    return;
                }
                Err(e) if Instant::now() < until => {
                    tracing::debug!("NetworkUnavailable patch failed, retrying: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => {
                    tracing::warn!("cannot set NetworkUnavailable=False: {e}");
                    return;
                }
            }
        }
    });
}

/// Tell Kubernetes the node's network is going down (bounded: SIGTERM
/// must still exit promptly).
pub async fn announce_down(link: &KubeLink) {
    let patch = node::set_network_unavailable(&link.client, &link.node, false, Timestamp::now());
    match tokio::time::timeout(SHUTDOWN_PATCH, patch).await {
        Ok(Ok(())) => tracing::info!("NetworkUnavailable=True (TabbyIsDown)"),
        Ok(Err(e)) => tracing::warn!("cannot set NetworkUnavailable=True: {e}"),
        Err(_) => {
            tracing::warn!("NetworkUnavailable=True not acknowledged within {SHUTDOWN_PATCH:?}")
        }
    }
}

/// Run the IPAM garbage collector on whichever agent holds the Lease:
/// lease rounds every 5 s, a scan every half grace period while leading.
/// A new leader starts with no observations of its own.
pub fn spawn_gc(link: &KubeLink, store: Arc<EtcdStore>, cfg: &NodeConfig) {
    if cfg.ipam_gc_grace_seconds == 0 {
        tracing::info!("IPAM garbage collection is off (TABBY_IPAM_GC_GRACE_SECONDS=0)");
        return;
    }
    let grace = Duration::from_secs(cfg.ipam_gc_grace_seconds);
    let scan_every = (grace / 2).max(LEASE_ROUND);
    let client = link.client.clone();
    let mut elector = Elector::new(LeaseConfig {
        name: IPAM_GC_LEASE.into(),
        namespace: cfg.pod_namespace.clone(),
        identity: cfg.nodename.clone(),
        duration: LEASE_DURATION,
    });
    tokio::spawn(async move {
        let ipam = Ipam::new(store);
        let mut collector = Collector::new(grace);
        let mut next_scan = Instant::now();
        let mut tick = tokio::time::interval(LEASE_ROUND);
        loop {
            tick.tick().await;
            let was_leader = elector.is_leader();
            match elector.round(&client).await {
                Ok(true) if !was_leader => tracing::info!("leading IPAM garbage collection"),
                Ok(false) if was_leader => {
                    tracing::info!("no longer leading IPAM garbage collection");
                    collector = Collector::new(grace);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("IPAM GC lease: {e}"),
            }
            if !elector.is_leader() || Instant::now() < next_scan {
                continue;
            }
            next_scan = Instant::now() + scan_every;
            match gc::collect(&client, &ipam, &mut collector, Instant::now()).await {
                Ok(r) if !r.released.is_empty() => {
                    tracing::info!(released = ?r.released, skipped = r.skipped.len(), "IPAM GC released leaked addresses")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("IPAM GC scan failed: {e}"),
            }
        }
    });
}
