//! What tabby-node does once at start, before its loop: find the node
//! address and make sure the default pool exists.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use ipam::{EtcdStore, IpPool, Ipam};
use ipnet::{IpNet, Ipv4Net};

use super::config::NodeConfig;
use crate::dataplane::autodetect::{Method, choose, host_addresses, source_for};

/// The node's IPv4 address with its prefix: `IP`, or autodetected.
pub fn node_address(cfg: &NodeConfig) -> Result<Ipv4Net> {
    if cfg.ip != "autodetect" {
        return cfg
            .ip
            .parse()
            .with_context(|| format!("IP {:?} is not an address/prefix", cfg.ip));
    }
    let method = Method::parse(&cfg.ip_autodetection_method)?;
    let found = choose(&method, &host_addresses()?, false, source_for)?;
    match found.address {
        IpNet::V4(n) => Ok(n),
        IpNet::V6(_) => bail!("autodetection found an IPv6 address"),
    }
}

/// Create the default pool from `TABBY_IPV4POOL_*` if no pool exists yet
/// (another node may win the race; that is fine).
pub async fn ensure_default_pool(cfg: &NodeConfig, ipam: &Ipam<Arc<EtcdStore>>) -> Result<()> {
    let Some(cidr) = &cfg.ipv4pool_cidr else {
        return Ok(());
    };
    if !ipam.pools().await?.is_empty() {
        return Ok(());
    }
    let pool = serde_json::json!({
        "apiVersion": "projectcalico.org/v3",
        "kind": "IPPool",
        "metadata": {"name": "default-ipv4-ippool"},
        "spec": {
            "cidr": cidr,
            "blockSize": cfg.ipv4pool_block_size,
            "ipipMode": cfg.ipv4pool_ipip,
            "vxlanMode": cfg.ipv4pool_vxlan,
            "natOutgoing": true,
        }
    });
    let pool: IpPool = serde_json::from_value(pool).context("default pool")?;
    match ipam.apply_pool(&pool).await {
        Ok(_) => Ok(()),
        // Another node created it first.
        Err(_) if !ipam.pools().await?.is_empty() => Ok(()),
        Err(e) => Err(e.into()),
    }
}
