//! The IPAM half of the plugin (`tabby-ipam`): allocate, release and
//! garbage-collect addresses for attachments, on top of [`ipam::Ipam`].
//!
//! The handle of an attachment is `<network name>.<CNI_CONTAINERID>`, as
//! calico-ipam makes it. Addresses are returned with their block's prefix
//! length (`10.0.1.5/26`), as calico-ipam returns them; the network half
//! narrows them to /32 and /128 on the pod. An ADD retried for a handle
//! that already holds the wanted addresses gets the same addresses back.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipam::{AllowedUse, AssignArgs, Attrs, Datastore, Ipam};
use ipnet::IpNet;

use super::annotations::PodRequest;
use super::config::NetConf;
use super::env::Attach;
use super::error::CniError;
use super::result::{CniResult, IpConfig};

/// Allocate the attachment's addresses (IPv4 and/or IPv6 per
/// `ipam.assign_ipv4`/`assign_ipv6`) on `node`; all or nothing. The pod's
/// annotations (`request`) may name other pools or exact addresses.
pub async fn assign<S: Datastore>(
    ipam: &Ipam<S>,
    conf: &NetConf,
    attach: &Attach,
    node: &str,
    node_labels: &BTreeMap<String, String>,
    request: &PodRequest,
) -> Result<Vec<IpNet>, CniError> {
    let handle = conf.handle(&attach.container_id);
    let num_v4 = usize::from(conf.ipam.assign_ipv4);
    let num_v6 = usize::from(conf.ipam.assign_ipv6);
    let held = ipam.ips_by_handle(&handle).await?;
    if !held.is_empty() {
        let v4 = held.iter().filter(|ip| ip.is_ipv4()).count();
        let same = if request.ip_addrs.is_empty() {
            v4 == num_v4 && held.len() - v4 == num_v6
        } else {
            let want: BTreeSet<&IpAddr> = request.ip_addrs.iter().collect();
            held.iter().collect::<BTreeSet<_>>() == want
        };
        if same {
            return with_block_prefix(ipam, &held).await;
        }
        ipam.release_by_handle(&handle).await?;
    }
    let mut attrs = Attrs::new();
    attrs.insert("namespace".into(), attach.namespace.clone());
    attrs.insert("pod".into(), attach.pod.clone());
    attrs.insert("containerID".into(), attach.container_id.clone());
    if !request.ip_addrs.is_empty() {
        return assign_exact(ipam, &handle, node, &attrs, &request.ip_addrs).await;
    }
    let args = AssignArgs {
        handle,
        node: node.to_string(),
        num_v4,
        num_v6,
        attrs,
        node_labels: node_labels.clone(),
        usage: AllowedUse::Workload,
        v4_pools: request
            .ipv4_pools
            .clone()
            .unwrap_or_else(|| conf.ipam.ipv4_pools.clone()),
        v6_pools: request
            .ipv6_pools
            .clone()
            .unwrap_or_else(|| conf.ipam.ipv6_pools.clone()),
    };
    let assigned = ipam.auto_assign(&args).await?;
    Ok(assigned
        .iter()
        .filter_map(|a| IpNet::new(a.ip, a.block.prefix_len()).ok())
        .collect())
}

/// Assign exactly `ips` (the `ipAddrs` annotation) to `handle`, all or
/// nothing: one that is taken releases the others.
async fn assign_exact<S: Datastore>(
    ipam: &Ipam<S>,
    handle: &str,
    node: &str,
    attrs: &Attrs,
    ips: &[IpAddr],
) -> Result<Vec<IpNet>, CniError> {
    let mut out = Vec::new();
    for ip in ips {
        match ipam.assign_ip(*ip, handle, node, attrs).await {
            Ok(a) => out
                .push(IpNet::new(a.ip, a.block.prefix_len()).unwrap_or_else(|_| IpNet::from(a.ip))),
            Err(e) => {
                if !out.is_empty() {
                    let _ = ipam.release_by_handle(handle).await;
                }
                return Err(e.into());
            }
        }
    }
    Ok(out)
}

/// The addresses `held`, each with the prefix length of its pool's blocks.
async fn with_block_prefix<S: Datastore>(
    ipam: &Ipam<S>,
    held: &[IpAddr],
) -> Result<Vec<IpNet>, CniError> {
    let pools = ipam.pools().await?;
    Ok(held
        .iter()
        .map(|ip| {
            let len = pools
                .iter()
                .find(|p| p.cidr.contains(ip))
                .map_or(host_len(ip), |p| p.block_size);
            IpNet::new(*ip, len).unwrap_or_else(|_| IpNet::from(*ip))
        })
        .collect())
}

fn host_len(ip: &IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

/// Release the attachment's addresses; nothing held is not an error.
pub async fn release<S: Datastore>(
    ipam: &Ipam<S>,
    conf: &NetConf,
    container_id: &str,
) -> Result<Vec<IpAddr>, CniError> {
    Ok(ipam.release_by_handle(&conf.handle(container_id)).await?)
}

/// The IPAM result for `ips` (no interfaces; routes and DNS from the config).
pub fn ipam_result(conf: &NetConf, ips: &[IpNet]) -> CniResult {
    CniResult {
        cni_version: conf.cni_version.as_str().into(),
        interfaces: Vec::new(),
        ips: ips
            .iter()
            .map(|ip| IpConfig {
                address: *ip,
                gateway: None,
                interface: None,
            })
            .collect(),
        routes: conf.ipam.routes.clone(),
        dns: conf.dns.clone(),
    }
}

/// GC: release every handle of this network whose addresses were allocated
/// for `node` and whose container is not in `valid`. Handles of other nodes
/// are never touched: a runtime only knows its own node's attachments.
/// Returns the released handles.
pub async fn gc<S: Datastore>(
    ipam: &Ipam<S>,
    conf: &NetConf,
    node: &str,
    valid: &BTreeSet<String>,
) -> Result<Vec<String>, CniError> {
    let prefix = format!("{}.", conf.name);
    let snapshot = ipam.snapshot().await?;
    let mut stale = BTreeSet::new();
    for block in snapshot.blocks.values() {
        for a in block.value.allocations() {
            let Some(handle) = a.handle else { continue };
            let Some(container) = handle.strip_prefix(&prefix) else {
                continue;
            };
            let on_node = a.attrs.get("node").is_some_and(|n| n == node);
            if on_node && !valid.contains(container) {
                stale.insert(handle.to_string());
            }
        }
    }
    let mut released = Vec::new();
    for handle in stale {
        ipam.release_by_handle(&handle).await?;
        released.push(handle);
    }
    Ok(released)
}

#[cfg(test)]
mod tests {
    use ipam::{IpPool, MemoryStore};

    use super::*;

    fn conf(v6: bool) -> NetConf {
        let json = format!(
            r#"{{"cniVersion":"1.1.0","name":"net","type":"tabby",
                "etcd_endpoints":"http://127.0.0.1:2379",
                "ipam":{{"type":"tabby-ipam","assign_ipv6":"{v6}"}}}}"#
        );
        NetConf::parse(json.as_bytes()).unwrap()
    }

    fn attach(id: &str) -> Attach {
        Attach {
            container_id: id.into(),
            netns: None,
            ifname: "eth0".into(),
            namespace: "default".into(),
            pod: format!("pod-{id}"),
            orchestrator: "k8s",
        }
    }

    async fn ipam() -> Ipam<MemoryStore> {
        let ipam = Ipam::new(MemoryStore::new());
        ipam.apply_pool(&IpPool::new("v4", "10.10.0.0/16"))
            .await
            .unwrap();
        ipam.apply_pool(&IpPool::new("v6", "fd00:10::/48"))
            .await
            .unwrap();
        ipam
    }

    #[tokio::test]
    async fn assign_is_idempotent_per_handle_and_release_is_too() {
        let ipam = ipam().await;
        let c = conf(true);
        let labels = BTreeMap::new();
        let first = assign(
            &ipam,
            &c,
            &attach("a"),
            "n1",
            &labels,
            &PodRequest::default(),
        )
        .await
        .unwrap();
        assert_eq!(first.len(), 2);
        assert_eq!(first[0].prefix_len(), 26, "{first:?}");
        let again = assign(
            &ipam,
            &c,
            &attach("a"),
            "n1",
            &labels,
            &PodRequest::default(),
        )
        .await
        .unwrap();
        assert_eq!(again, first);
        assert_eq!(ipam.ips_by_handle("net.a").await.unwrap().len(), 2);
        assert_eq!(release(&ipam, &c, "a").await.unwrap().len(), 2);
        assert!(release(&ipam, &c, "a").await.unwrap().is_empty());
        let r = ipam_result(&c, &first);
        assert_eq!(r.ips.len(), 2);
        assert!(r.interfaces.is_empty() && r.ips[0].interface.is_none());
    }

    #[tokio::test]
    async fn annotations_choose_exact_addresses_or_other_pools() {
        let ipam = ipam().await;
        ipam.apply_pool(&IpPool::new("v4b", "10.20.0.0/16"))
            .await
            .unwrap();
        let c = conf(true);
        let labels = BTreeMap::new();
        let exact = PodRequest {
            ip_addrs: vec!["10.10.5.5".parse().unwrap(), "fd00:10::5".parse().unwrap()],
            ..PodRequest::default()
        };
        let got = assign(&ipam, &c, &attach("a"), "n1", &labels, &exact)
            .await
            .unwrap();
        let ips: Vec<String> = got.iter().map(|n| n.addr().to_string()).collect();
        assert_eq!(ips, ["10.10.5.5", "fd00:10::5"]);
        // the same request again (a retried ADD) gets the same addresses
        let again = assign(&ipam, &c, &attach("a"), "n1", &labels, &exact)
            .await
            .unwrap();
        assert_eq!(again, got);
        // another pod asking for a taken address gets nothing at all
        let taken = PodRequest {
            ip_addrs: vec!["10.10.9.9".parse().unwrap(), "fd00:10::5".parse().unwrap()],
            ..PodRequest::default()
        };
        let e = assign(&ipam, &c, &attach("b"), "n1", &labels, &taken)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("fd00:10::5"), "{e}");
        assert!(ipam.ips_by_handle("net.b").await.unwrap().is_empty());
        // pools from the annotation replace the conflist's
        let pools = PodRequest {
            ipv4_pools: Some(vec!["v4b".into()]),
            ..PodRequest::default()
        };
        let got = assign(&ipam, &c, &attach("c"), "n1", &labels, &pools)
            .await
            .unwrap();
        assert!(got[0].addr().to_string().starts_with("10.20."), "{got:?}");
    }

    #[tokio::test]
    async fn gc_releases_only_this_nodes_invalid_attachments() {
        let ipam = ipam().await;
        let c = conf(false);
        let labels = BTreeMap::new();
        for (id, node) in [("keep", "n1"), ("gone", "n1"), ("other", "n2")] {
            assign(
                &ipam,
                &c,
                &attach(id),
                node,
                &labels,
                &PodRequest::default(),
            )
            .await
            .unwrap();
        }
        let valid: BTreeSet<String> = ["keep".to_string()].into();
        let released = gc(&ipam, &c, "n1", &valid).await.unwrap();
        assert_eq!(released, ["net.gone"]);
        assert_eq!(ipam.ips_by_handle("net.keep").await.unwrap().len(), 1);
        assert_eq!(ipam.ips_by_handle("net.other").await.unwrap().len(), 1);
        assert!(ipam.ips_by_handle("net.gone").await.unwrap().is_empty());
    }
}
