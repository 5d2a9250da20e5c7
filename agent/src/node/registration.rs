//! This node's Node resource in the datastore, and reading everyone's.
//!
//! Stored as Calico v3 JSON ([`crate::resources::Node`]) under
//! `/tabby/v1/nodes/<name>`:
//! `{"apiVersion":"projectcalico.org/v3","kind":"Node","metadata":{"name":…},
//!   "spec":{"bgp":{"ipv4Address":"10.200.0.1/24","ipv6Address":"fd00:200::1/64",
//!   "asNumber":64512},"ipv4VXLANTunnelAddr":"10.0.1.0",
//!   "ipv6VXLANTunnelAddr":"fd00:10::","vxlanTunnelMACAddr":"66:…"}}`
//! (the IPv6 fields only on dual-stack nodes).
//! Writes are compare-and-swap on the key's revision, retried on conflict.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipam::Datastore;
use ipam::store::{Compare, Op, TxnOutcome};
use ipnet::{Ipv4Net, Ipv6Net};

use super::cluster::NodeInfo;
use crate::resources::{NODES, Node, NodeBgpSpec, node_key};

/// Why a Node resource could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("datastore: {0}")]
    Store(String),
    #[error("node {key}: {reason}")]
    Bad { key: String, reason: String },
    #[error("node {0}: too many concurrent updates")]
    Contended(String),
}

/// A MAC as Calico writes it: `66:0a:01:02:03:04`.
pub fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let bytes: Vec<u8> = text
        .split(':')
        .filter_map(|p| u8::from_str_radix(p, 16).ok())
        .collect();
    bytes.try_into().ok()
}

/// The agent's view of a Node resource; `None` if it has no usable BGP
/// address yet (another agent still starting, or a non-BGP node).
pub fn info(node: &Node) -> Option<NodeInfo> {
    let bgp = node.spec.bgp.as_ref()?;
    let address: Ipv4Net = bgp.ipv4_address.as_deref()?.parse().ok()?;
    Some(NodeInfo {
        name: node.metadata.name.clone(),
        address,
        address6: bgp.ipv6_address.as_deref().and_then(|a| a.parse().ok()),
        asn: bgp.as_number.unwrap_or(64512),
        vxlan_tunnel: node
            .spec
            .ipv4_vxlan_tunnel_addr
            .as_deref()
            .and_then(|a| a.parse().ok()),
        vxlan_tunnel6: node
            .spec
            .ipv6_vxlan_tunnel_addr
            .as_deref()
            .and_then(|a| a.parse().ok()),
        vtep_mac: node
            .spec
            .vxlan_tunnel_mac_addr
            .as_deref()
            .and_then(parse_mac),
        labels: node.metadata.labels.clone(),
        rr_cluster_id: bgp
            .route_reflector_cluster_id
            .as_deref()
            .and_then(|c| c.parse().ok()),
    })
}

/// Every node with a usable BGP address.
pub async fn nodes(store: &impl Datastore) -> Result<Vec<NodeInfo>, RegistrationError> {
    let range = store
        .range(NODES)
        .await
        .map_err(|e| RegistrationError::Store(e.to_string()))?;
    Ok(range
        .kvs
        .iter()
        .filter_map(|kv| Node::from_json(&kv.value).ok())
        .filter_map(|n| info(&n))
        .collect())
}

/// The labels on node `name`'s resource (none if it is not registered).
pub async fn labels(
    store: &impl Datastore,
    name: &str,
) -> Result<BTreeMap<String, String>, RegistrationError> {
    let key = node_key(name);
    let kv = store
        .get(&key)
        .await
        .map_err(|e| RegistrationError::Store(e.to_string()))?;
    match kv {
        None => Ok(BTreeMap::new()),
        Some(kv) => Node::from_json(&kv.value)
            .map(|n| n.metadata.labels)
            .map_err(|e| RegistrationError::Bad {
                key,
                reason: e.to_string(),
            }),
    }
}

/// The cluster's BGPConfiguration (`default`), if there is one that
/// decodes; an undecodable one is an error, never a silent default.
pub async fn bgp_configuration(
    store: &impl Datastore,
) -> Result<Option<crate::resources::BgpConfiguration>, RegistrationError> {
    let key = crate::resources::bgp_configuration_key("default");
    let kv = store
        .get(&key)
        .await
        .map_err(|e| RegistrationError::Store(e.to_string()))?;
    kv.map(|kv| {
        serde_json::from_slice(&kv.value).map_err(|e| RegistrationError::Bad {
            key: key.clone(),
            reason: e.to_string(),
        })
    })
    .transpose()
}

/// Every BGPPeer resource (undecodable ones are skipped).
pub async fn bgp_peers(
    store: &impl Datastore,
) -> Result<Vec<crate::resources::BgpPeer>, RegistrationError> {
    let range = store
        .range(crate::resources::BGP_PEERS)
        .await
        .map_err(|e| RegistrationError::Store(e.to_string()))?;
    Ok(range
        .kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
        .collect())
}

/// What this node writes into its Node resource.
#[derive(Debug, Clone)]
pub struct Registration<'a> {
    pub address: Ipv4Net,
    /// `IP6`; `None` removes a previous `ipv6Address` (Calico's `IP6=none`).
    pub address6: Option<Ipv6Net>,
    pub asn: u32,
    /// The VXLAN tunnel addresses (one device carries both families) and
    /// the VTEP MAC.
    pub vxlan: Option<Ipv4Addr>,
    pub vxlan6: Option<Ipv6Addr>,
    pub vtep_mac: Option<[u8; 6]>,
    /// The IPIP tunnel address on tunl0 (`bgp.ipv4IPIPTunnelAddr`).
    pub ipip: Option<Ipv4Addr>,
    /// The Kubernetes Node's labels, when in a cluster: they replace the
    /// resource's labels, which pool `nodeSelector`s match; `None` keeps
    /// them.
    pub labels: Option<&'a BTreeMap<String, String>>,
}

/// Create or update this node's resource with its addresses, AS and VXLAN
/// tunnel (CAS on the revision, retried), keeping fields others wrote.
pub async fn register(
    store: &impl Datastore,
    name: &str,
    me: &Registration<'_>,
) -> Result<(), RegistrationError> {
    let key = node_key(name);
    for _ in 0..20 {
        let current = store
            .get(&key)
            .await
            .map_err(|e| RegistrationError::Store(e.to_string()))?;
        let (mut node, compare) = match &current {
            Some(kv) => {
                let node = Node::from_json(&kv.value).map_err(|e| RegistrationError::Bad {
                    key: key.clone(),
                    reason: e.to_string(),
                })?;
                (node, Compare::at(&key, kv.mod_revision))
            }
            None => (Node::new(name), Compare::absent(&key)),
        };
        if let Some(labels) = me.labels {
            node.metadata.labels = labels.clone();
        }
        let bgp = node.spec.bgp.get_or_insert_with(NodeBgpSpec::default);
        bgp.ipv4_address = Some(me.address.to_string());
        bgp.ipv6_address = me.address6.map(|a| a.to_string());
        bgp.as_number = Some(me.asn);
        if let Some(tunnel) = me.ipip {
            bgp.ipv4_ipip_tunnel_addr = Some(tunnel.to_string());
        }
        if let Some(tunnel) = me.vxlan {
            node.spec.ipv4_vxlan_tunnel_addr = Some(tunnel.to_string());
        }
        if let Some(mac) = me.vtep_mac {
            node.spec.vxlan_tunnel_mac_addr = Some(mac_text(mac));
        }
        if let Some(tunnel) = me.vxlan6 {
            node.spec.ipv6_vxlan_tunnel_addr = Some(tunnel.to_string());
        }
        let value = serde_json::to_vec(&node).map_err(|e| RegistrationError::Bad {
            key: key.clone(),
            reason: e.to_string(),
        })?;
        if current.as_ref().is_some_and(|kv| kv.value == value) {
            return Ok(());
        }
        match store.txn(vec![compare], vec![Op::put(&key, value)]).await {
            Ok(TxnOutcome::Committed { .. }) => return Ok(()),
            Ok(TxnOutcome::Conflict { .. }) => continue,
            Err(e) => return Err(RegistrationError::Store(e.to_string())),
        }
    }
    Err(RegistrationError::Contended(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dual_stack_registration_reads_back_as_the_mesh_sees_it() {
        let store = ipam::MemoryStore::new();
        let mut me = Registration {
            address: "10.200.0.1/24".parse().unwrap(),
            address6: Some("fd00:200::1/64".parse().unwrap()),
            asn: 64512,
            vxlan: Some("10.0.1.0".parse().unwrap()),
            vxlan6: Some("fd00:10:0:1::".parse().unwrap()),
            vtep_mac: Some([0x66, 1, 2, 3, 4, 5]),
            ipip: None,
            labels: None,
        };
        register(&store, "n1", &me).await.unwrap();
        let n = nodes(&store).await.unwrap().pop().unwrap();
        assert_eq!(n.address6, me.address6);
        assert_eq!(n.vxlan_tunnel6, me.vxlan6);
        assert_eq!(n.vtep_mac, me.vtep_mac);
        // IP6=none later: the IPv6 address goes (Calico's behaviour).
        me.address6 = None;
        register(&store, "n1", &me).await.unwrap();
        let n = nodes(&store).await.unwrap().pop().unwrap();
        assert_eq!(n.address6, None);
        assert_eq!(n.address, me.address);
    }
}
