//! What tabby-node does once at start, before its loop: find the node
//! address and make sure the default pool exists.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use ipam::{EtcdConfig, EtcdStore, EtcdTls, IpPool, Ipam};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::config::NodeConfig;
use crate::dataplane::autodetect::{Method, choose, host_addresses, source_for};
use crate::k8s::node::NodeFacts;

/// The node's IPv4 address with its prefix: `IP`, or autodetected
/// (`kubernetes-internal-ip` uses the Node's InternalIPs from `facts`).
pub fn node_address(cfg: &NodeConfig, facts: Option<&NodeFacts>) -> Result<Ipv4Net> {
    if cfg.ip != "autodetect" {
        return cfg
            .ip
            .parse()
            .with_context(|| format!("IP {:?} is not an address/prefix", cfg.ip));
    }
    let mut method = Method::parse(&cfg.ip_autodetection_method)?;
    if matches!(method, Method::KubernetesInternalIp(_)) {
        let Some(facts) = facts else {
            bail!(
                "IP_AUTODETECTION_METHOD=kubernetes-internal-ip needs Kubernetes (TABBY_KUBERNETES=auto in a pod, or on)"
            );
        };
        if facts.internal_ips.is_empty() {
            bail!(
                "Node {:?} has no InternalIP in status.addresses",
                facts.name
            );
        }
        method = method.with_internal_ips(&facts.internal_ips);
    }
    let found = choose(&method, &host_addresses()?, false, source_for)?;
    match found.address {
        IpNet::V4(n) => Ok(n),
        IpNet::V6(_) => bail!("autodetection found an IPv6 address"),
    }
}

/// The node's IPv6 address with its prefix (`IP6`), or `None` for
/// `IP6=none`; `autodetect` applies IP6_AUTODETECTION_METHOD to the host's
/// global IPv6 addresses.
pub fn node_address6(cfg: &NodeConfig) -> Result<Option<Ipv6Net>> {
    match cfg.ip6.as_str() {
        "" | "none" => Ok(None),
        "autodetect" => {
            let method = Method::parse(&cfg.ip6_autodetection_method)?;
            if matches!(method, Method::KubernetesInternalIp(_)) {
                bail!("IP6_AUTODETECTION_METHOD=kubernetes-internal-ip is not supported");
            }
            let found = choose(&method, &host_addresses()?, true, source_for)?;
            match found.address {
                IpNet::V6(n) => Ok(Some(n)),
                IpNet::V4(_) => bail!("IPv6 autodetection found an IPv4 address"),
            }
        }
        text => text.parse().map(Some).with_context(|| {
            format!("IP6 {text:?} is not an IPv6 address/prefix (or none, autodetect)")
        }),
    }
}

/// The etcd client settings: `ETCD_ENDPOINTS` and, when any is set, the
/// `ETCD_CA_CERT_FILE`/`ETCD_CERT_FILE`/`ETCD_KEY_FILE` TLS files.
pub fn etcd_config(cfg: &NodeConfig) -> EtcdConfig {
    let mut c = EtcdConfig::new(cfg.etcd_endpoints.clone());
    c.tls = EtcdTls::from_files(
        cfg.etcd_ca_cert_file.clone(),
        cfg.etcd_cert_file.clone(),
        cfg.etcd_key_file.clone(),
    );
    c
}

/// Bytes a tunnel adds to every packet: VXLAN 50 (outer IPv4 20, UDP 8,
/// VXLAN 8, inner Ethernet 14), IPIP 20, as Calico counts them.
const VXLAN_OVERHEAD: u32 = 50;
const IPIP_OVERHEAD: u32 = 20;

/// The pods' MTU: `TABBY_MTU` when set, else the uplink's minus the largest
/// overhead any enabled pool's encapsulation adds (Calico's auto MTU).
pub fn pod_mtu(configured: u32, uplink_mtu: u32, pools: &[ipam::Pool]) -> u32 {
    if configured > 0 {
        return configured;
    }
    let overhead = pools
        .iter()
        .filter(|p| !p.disabled)
        .map(|p| {
            if p.vxlan_mode != ipam::EncapMode::Never {
                VXLAN_OVERHEAD
            } else if p.ipip_mode != ipam::EncapMode::Never {
                IPIP_OVERHEAD
            } else {
                0
            }
        })
        .max()
        .unwrap_or(0);
    uplink_mtu.saturating_sub(overhead).max(68)
}

/// Write what tabby-cni reads from the state dir: `nodename` (its
/// `nodename_file`) and `mtu` (its `mtu_file`), each replaced atomically.
pub fn write_state_files(cfg: &NodeConfig, mtu: u32) -> Result<()> {
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("state dir {}", cfg.state_dir.display()))?;
    for (name, text) in [("nodename", cfg.nodename.clone()), ("mtu", mtu.to_string())] {
        let path = cfg.state_dir.join(name);
        let tmp = cfg.state_dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, format!("{text}\n"))
            .and_then(|()| std::fs::rename(&tmp, &path))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Create the default pools, as calico-node does, per family: from
/// `TABBY_IPV4POOL_*` if no IPv4 pool exists yet, and from
/// `TABBY_IPV6POOL_*` (with `IP6` set) if no IPv6 pool exists yet. Another
/// node may win the race; that is fine.
pub async fn ensure_default_pool(cfg: &NodeConfig, ipam: &Ipam<Arc<EtcdStore>>) -> Result<()> {
    if let Some(cidr) = &cfg.ipv4pool_cidr {
        let spec = serde_json::json!({
            "cidr": cidr,
            "blockSize": cfg.ipv4pool_block_size,
            "ipipMode": cfg.ipv4pool_ipip,
            "vxlanMode": cfg.ipv4pool_vxlan,
            "natOutgoing": true,
        });
        ensure_pool(ipam, "default-ipv4-ippool", spec, false).await?;
    }
    if let Some(cidr) = &cfg.ipv6pool_cidr
        && !matches!(cfg.ip6.as_str(), "" | "none")
    {
        let spec = serde_json::json!({
            "cidr": cidr,
            "blockSize": cfg.ipv6pool_block_size,
            "vxlanMode": cfg.ipv6pool_vxlan,
            "natOutgoing": cfg.ipv6pool_nat_outgoing,
        });
        ensure_pool(ipam, "default-ipv6-ippool", spec, true).await?;
    }
    Ok(())
}

async fn ensure_pool(
    ipam: &Ipam<Arc<EtcdStore>>,
    name: &str,
    spec: serde_json::Value,
    ipv6: bool,
) -> Result<()> {
    let has_family = |pools: &[ipam::Pool]| pools.iter().any(|p| p.cidr.addr().is_ipv6() == ipv6);
    if has_family(&ipam.pools().await?) {
        return Ok(());
    }
    let pool = serde_json::json!({
        "apiVersion": "projectcalico.org/v3",
        "kind": "IPPool",
        "metadata": {"name": name},
        "spec": spec,
    });
    let pool: IpPool = serde_json::from_value(pool).with_context(|| format!("pool {name}"))?;
    match ipam.apply_pool(&pool).await {
        Ok(_) => Ok(()),
        // Another node created it first.
        Err(_) if has_family(&ipam.pools().await?) => Ok(()),
        Err(e) => Err(anyhow::Error::from(e).context(format!("pool {name}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(vxlan: &str, ipip: &str) -> ipam::Pool {
        let mut p = IpPool::new("p", "10.0.0.0/16");
        p.spec.vxlan_mode = serde_json::from_value(vxlan.into()).unwrap();
        p.spec.ipip_mode = serde_json::from_value(ipip.into()).unwrap();
        p.validate(&[]).unwrap()
    }

    #[test]
    fn pod_mtu_is_the_uplinks_minus_the_largest_tunnel_overhead() {
        assert_eq!(pod_mtu(0, 1500, &[]), 1500);
        assert_eq!(pod_mtu(0, 1500, &[pool("Never", "Never")]), 1500);
        assert_eq!(pod_mtu(0, 1500, &[pool("Never", "Always")]), 1480);
        assert_eq!(
            pod_mtu(
                0,
                9000,
                &[pool("Never", "Always"), pool("CrossSubnet", "Never")]
            ),
            8950
        );
        assert_eq!(pod_mtu(1400, 9000, &[pool("Always", "Never")]), 1400);
    }
}
