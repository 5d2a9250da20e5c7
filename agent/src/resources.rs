//! Datastore resources the CNI plugin and the node agent share: `Node` and
//! `WorkloadEndpoint`, with Calico v3 field names, and the keys they live
//! under:
//!
//! ```text
//! /tabby/v1/nodes/<node>                                          Node
//! /tabby/v1/workloadendpoints/<node>/<namespace>/<pod>/<ifname>   WorkloadEndpoint
//! ```
//!
//! The node agent writes its `Node` at start-up; the CNI plugin waits for
//! it before the first ADD (it supplies the labels pools select on). The
//! plugin writes one `WorkloadEndpoint` per attachment on ADD and deletes it
//! on DEL; the agent reads them back to know which `<ip>/32 dev caliX`
//! routes are its own (see [`crate::cni`]). Values are JSON; unknown fields
//! are ignored on read so either side may grow first.

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Prefix of every `Node`.
pub const NODES: &str = "/tabby/v1/nodes/";
/// Prefix of every `WorkloadEndpoint`.
pub const WORKLOAD_ENDPOINTS: &str = "/tabby/v1/workloadendpoints/";

pub const API_VERSION: &str = "projectcalico.org/v3";

pub fn node_key(node: &str) -> String {
    format!("{NODES}{node}")
}

/// All workload endpoints of `node`.
pub fn node_endpoints_prefix(node: &str) -> String {
    format!("{WORKLOAD_ENDPOINTS}{node}/")
}

pub fn workload_endpoint_key(node: &str, namespace: &str, pod: &str, ifname: &str) -> String {
    format!("{WORKLOAD_ENDPOINTS}{node}/{namespace}/{pod}/{ifname}")
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Calico's `Node` (projectcalico.org/v3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    #[serde(default = "api_version")]
    pub api_version: String,
    #[serde(default = "node_kind")]
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: NodeSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<NodeBgpSpec>,
    #[serde(
        default,
        rename = "ipv4VXLANTunnelAddr",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_vxlan_tunnel_addr: Option<String>,
    #[serde(
        default,
        rename = "vxlanTunnelMACAddr",
        skip_serializing_if = "Option::is_none"
    )]
    pub vxlan_tunnel_mac_addr: Option<String>,
    #[serde(
        default,
        rename = "ipv6VXLANTunnelAddr",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv6_vxlan_tunnel_addr: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orch_refs: Vec<OrchRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<NodeAddress>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeBgpSpec {
    /// `ip/len`, e.g. `192.0.2.11/24`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<String>,
    /// Absent: the cluster default (`BGPConfiguration.asNumber`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<u32>,
    #[serde(
        default,
        rename = "ipv4IPIPTunnelAddr",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_ipip_tunnel_addr: Option<String>,
    #[serde(
        default,
        rename = "routeReflectorClusterID",
        skip_serializing_if = "Option::is_none"
    )]
    pub route_reflector_cluster_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrchRef {
    pub node_name: String,
    pub orchestrator: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddress {
    pub address: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// Calico's `WorkloadEndpoint` (projectcalico.org/v3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadEndpoint {
    #[serde(default = "api_version")]
    pub api_version: String,
    #[serde(default = "wep_kind")]
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: WorkloadEndpointSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadEndpointSpec {
    /// `k8s`, or `cni` outside Kubernetes.
    pub orchestrator: String,
    #[serde(default)]
    pub workload: String,
    pub node: String,
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub pod: String,
    /// The interface inside the pod (CNI_IFNAME).
    pub endpoint: String,
    /// The host side of the veth pair.
    pub interface_name: String,
    /// The pod side's MAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Each a host prefix (`/32`, `/128`).
    pub ip_networks: Vec<IpNet>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
}

fn api_version() -> String {
    API_VERSION.into()
}
fn node_kind() -> String {
    "Node".into()
}
fn wep_kind() -> String {
    "WorkloadEndpoint".into()
}

impl Node {
    pub fn new(name: &str) -> Node {
        Node {
            api_version: api_version(),
            kind: node_kind(),
            metadata: ObjectMeta {
                name: name.into(),
                ..ObjectMeta::default()
            },
            spec: NodeSpec::default(),
        }
    }

    pub fn from_json(bytes: &[u8]) -> Result<Node, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

impl WorkloadEndpoint {
    /// A workload endpoint for `spec`, named as Calico names it.
    pub fn new(namespace: &str, spec: WorkloadEndpointSpec) -> WorkloadEndpoint {
        let name = endpoint_name(&spec.node, &spec.orchestrator, &spec.pod, &spec.endpoint);
        WorkloadEndpoint {
            api_version: api_version(),
            kind: wep_kind(),
            metadata: ObjectMeta {
                name,
                namespace: Some(namespace.into()),
                labels: BTreeMap::new(),
            },
            spec,
        }
    }

    pub fn from_json(bytes: &[u8]) -> Result<WorkloadEndpoint, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Plain data with string keys: serialisation cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The key this endpoint is stored under.
    pub fn key(&self) -> String {
        workload_endpoint_key(
            &self.spec.node,
            self.metadata.namespace.as_deref().unwrap_or("default"),
            &self.spec.pod,
            &self.spec.endpoint,
        )
    }
}

/// Calico's endpoint name: `<node>-<orchestrator>-<pod>-<endpoint>`, each
/// part's `-` doubled (libcalico-go `names.WorkloadEndpointIdentifiers`).
pub fn endpoint_name(node: &str, orchestrator: &str, pod: &str, endpoint: &str) -> String {
    [node, orchestrator, pod, endpoint]
        .iter()
        .map(|p| p.replace('-', "--"))
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_keys_follow_the_documented_layout() {
        assert_eq!(
            endpoint_name("n1", "k8s", "pod-a", "eth0"),
            "n1-k8s-pod--a-eth0"
        );
        assert_eq!(node_key("n1"), "/tabby/v1/nodes/n1");
        let wep = WorkloadEndpoint::new(
            "default",
            WorkloadEndpointSpec {
                orchestrator: "k8s".into(),
                node: "n1".into(),
                container_id: "abc".into(),
                pod: "pod-a".into(),
                endpoint: "eth0".into(),
                interface_name: "cali0123456789a".into(),
                ip_networks: vec!["10.0.1.5/32".parse().unwrap()],
                ..WorkloadEndpointSpec::default()
            },
        );
        assert_eq!(
            wep.key(),
            "/tabby/v1/workloadendpoints/n1/default/pod-a/eth0"
        );
        assert!(wep.key().starts_with(&node_endpoints_prefix("n1")));
        let json: serde_json::Value = serde_json::from_slice(&wep.to_json()).unwrap();
        assert_eq!(json["spec"]["containerID"], "abc");
        assert_eq!(json["spec"]["interfaceName"], "cali0123456789a");
        assert_eq!(json["spec"]["ipNetworks"][0], "10.0.1.5/32");
        assert_eq!(json["metadata"]["name"], "n1-k8s-pod--a-eth0");
        assert_eq!(WorkloadEndpoint::from_json(&wep.to_json()).unwrap(), wep);
    }

    #[test]
    fn a_calico_node_parses() {
        let node = Node::from_json(
            br#"{"apiVersion":"projectcalico.org/v3","kind":"Node",
                "metadata":{"name":"n1","labels":{"zone":"a"}},
                "spec":{"bgp":{"ipv4Address":"192.0.2.11/24","asNumber":64512,
                        "ipv4IPIPTunnelAddr":"10.0.1.1"},
                        "orchRefs":[{"nodeName":"n1","orchestrator":"k8s"}]},
                "status":{}}"#,
        )
        .unwrap();
        assert_eq!(node.metadata.labels["zone"], "a");
        let bgp = node.spec.bgp.unwrap();
        assert_eq!(bgp.as_number, Some(64512));
        assert_eq!(bgp.ipv4_ipip_tunnel_addr.as_deref(), Some("10.0.1.1"));
        assert_eq!(
            Node::from_json(br#"{"metadata":{"name":"x"}}"#)
                .unwrap()
                .kind,
            "Node"
        );
    }
}

/// Where BGPPeer resources live.
pub const BGP_PEERS: &str = "/tabby/v1/resources/bgppeers/";

/// The key of BGPPeer `name`.
pub fn bgp_peer_key(name: &str) -> String {
    format!("{BGP_PEERS}{name}")
}

/// Calico's `BGPPeer` (projectcalico.org/v3): an external peer (a
/// top-of-rack router, a route reflector) for every node (no `node`) or
/// for one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BgpPeer {
    #[serde(default = "api_version")]
    pub api_version: String,
    #[serde(default = "bgp_peer_kind")]
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: BgpPeerSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpPeerSpec {
    /// The peer's address (empty with `peerSelector`).
    #[serde(rename = "peerIP", default, skip_serializing_if = "String::is_empty")]
    pub peer_ip: String,
    pub as_number: u32,
    /// Only this node peers with it; absent: every node (a global peer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// TCP MD5 password (Calico reads it from a Secret; tabby accepts the
    /// value inline as `password.value`, or nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<BgpPassword>,
    #[serde(default)]
    pub keep_original_next_hop: bool,
    /// Largest number of prefixes accepted from the peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_prefix: Option<u32>,
    /// The nodes this peering applies to (a selector on Node labels);
    /// with `peerSelector` and without `node`/`nodeSelector`: every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<String>,
    /// Instead of `peerIP`: peer with every node whose labels match (how
    /// Calico sets up route reflectors: `peerSelector: has(route-reflector)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_selector: Option<String>,
}

/// Only an inline `value` is accepted: Calico's `secretKeyRef` (a
/// Kubernetes Secret) is refused by name rather than ignored, since a
/// session without the password would silently run unauthenticated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpPassword {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

fn bgp_peer_kind() -> String {
    "BGPPeer".into()
}

/// Where BGPConfiguration resources live (`default` is the cluster's).
pub const BGP_CONFIGURATIONS: &str = "/tabby/v1/resources/bgpconfigurations/";

/// The key of BGPConfiguration `name`.
pub fn bgp_configuration_key(name: &str) -> String {
    format!("{BGP_CONFIGURATIONS}{name}")
}

/// Calico's `BGPConfiguration` (projectcalico.org/v3). `default` holds the
/// cluster-wide settings; tabby reads the fields below and refuses others
/// by name (a setting silently ignored is worse than a refusal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BgpConfiguration {
    #[serde(default = "api_version")]
    pub api_version: String,
    #[serde(default = "bgp_configuration_kind")]
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: BgpConfigurationSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpConfigurationSpec {
    /// The node-to-node full mesh; `false` leaves peering to BGPPeers
    /// (route reflectors, ToRs). Absent: on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_to_node_mesh_enabled: Option<bool>,
    /// The AS of nodes that do not set their own (`AS`); absent: 64512.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<u32>,
    /// Accepted for compatibility; tabby's log level is `TABBY_LOG`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_severity_screen: Option<String>,
}

impl BgpConfiguration {
    /// Whether the node-to-node mesh is on.
    pub fn mesh_enabled(&self) -> bool {
        self.spec.node_to_node_mesh_enabled.unwrap_or(true)
    }
}

fn bgp_configuration_kind() -> String {
    "BGPConfiguration".into()
}
