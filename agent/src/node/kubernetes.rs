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
    ipip: Option<std::net::Ipv4Addr>,
) {
    let annotations = NodeAnnotations {
        ipv4_address: Some(address),
        as_number: Some(asn),
        ipv4_vxlan_tunnel_addr: vxlan.as_ref().map(|v| v.0),
        ipv4_ipip_tunnel_addr: ipip,
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

/// Where the kubelet mounts the pod's service account.
const SERVICE_ACCOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// How often the CNI kubeconfig is refreshed (the kubelet rotates the
/// projected token well before it expires, typically hourly).
const CNI_KUBECONFIG_REFRESH: Duration = Duration::from_secs(60);

/// The kubeconfig tabby-cni reads pod annotations with: the API server
/// the pod sees, the cluster CA (a file beside it) and this agent's token.
pub fn cni_kubeconfig_text(
    host: &str,
    port: &str,
    ca_file: &std::path::Path,
    token: &str,
) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    format!(
        "# Written by tabby-node for tabby-cni; rewritten as the token rotates.\n\
         apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: https://{host}:{port}\n\
         \x20   certificate-authority: {}\nusers:\n- name: tabby-cni\n  user:\n    token: {}\n\
         contexts:\n- name: tabby\n  context:\n    cluster: local\n    user: tabby-cni\ncurrent-context: tabby\n",
        ca_file.display(),
        token.trim()
    )
}

fn write_if_changed(path: &std::path::Path, text: &[u8]) -> std::io::Result<bool> {
    use std::os::unix::fs::OpenOptionsExt;
    if std::fs::read(path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    std::io::Write::write_all(&mut f, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(true)
}

/// Keep `TABBY_CNI_KUBECONFIG` (and the CA beside it) current from this
/// pod's service account, so tabby-cni on the host can read pod
/// annotations. Needs the service account mount; off when the path is empty.
pub fn spawn_cni_kubeconfig(cfg: &NodeConfig) {
    let Some(path) = cfg
        .cni_kubeconfig
        .clone()
        .filter(|p| !p.as_os_str().is_empty())
    else {
        return;
    };
    let sa = std::path::Path::new(SERVICE_ACCOUNT);
    let (Ok(host), Ok(port)) = (
        std::env::var("KUBERNETES_SERVICE_HOST"),
        std::env::var("KUBERNETES_SERVICE_PORT"),
    ) else {
        tracing::info!("not in a pod: no CNI kubeconfig written");
        return;
    };
    if !sa.join("token").exists() {
        tracing::warn!("no service account token in {SERVICE_ACCOUNT}: no CNI kubeconfig written");
        return;
    }
    tokio::spawn(async move {
        let ca = path.with_file_name("tabby-ca.crt");
        loop {
            let written = std::fs::read(sa.join("ca.crt"))
                .and_then(|c| write_if_changed(&ca, &c))
                .and_then(|_| {
                    let token = std::fs::read_to_string(sa.join("token"))?;
                    write_if_changed(
                        &path,
                        cni_kubeconfig_text(&host, &port, &ca, &token).as_bytes(),
                    )
                });
            match written {
                Ok(true) => tracing::info!(path = %path.display(), "CNI kubeconfig written"),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), "cannot write the CNI kubeconfig: {e}")
                }
            }
            tokio::time::sleep(CNI_KUBECONFIG_REFRESH).await;
        }
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cni_kubeconfig_is_one_kube_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("tabby-ca.crt");
        let text = cni_kubeconfig_text("10.96.0.1", "443", &ca, "tok-en\n");
        let kc: kube::config::Kubeconfig = serde_saphyr::from_str(&text).unwrap();
        let cluster = kc.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://10.96.0.1:443"));
        assert_eq!(
            cluster.certificate_authority.as_deref(),
            Some(ca.to_str().unwrap())
        );
        assert!(kc.auth_infos[0].auth_info.as_ref().unwrap().token.is_some());
        let raw: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(raw["users"][0]["user"]["token"], "tok-en");
        assert!(cni_kubeconfig_text("fd00::1", "443", &ca, "t").contains("https://[fd00::1]:443"));
        let path = dir.path().join("kc");
        assert!(write_if_changed(&path, b"a").unwrap());
        assert!(!write_if_changed(&path, b"a").unwrap());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
