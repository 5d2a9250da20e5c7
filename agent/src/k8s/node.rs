//! This node's Node object: what tabby reads from it (labels for pool
//! `nodeSelector`s, the InternalIP for `IP_AUTODETECTION_METHOD=
//! kubernetes-internal-ip`, podCIDRs) and what it writes to it (the
//! `NetworkUnavailable` condition, as calico-node does with reason
//! `CalicoIsUp`/`CalicoIsDown`; annotations like Calico's under
//! [`ANNOTATION_PREFIX`]).
//!
//! The condition goes out as a strategic-merge PATCH of `nodes/<n>/status`
//! (the condition list merges on `type`, so other conditions stay); the
//! annotations as a JSON merge PATCH of the Node, where `null` removes one
//! that no longer applies.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use super::{ANNOTATION_PREFIX, FIELD_MANAGER};

/// What tabby takes from its Node object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFacts {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `status.addresses[type=InternalIP]`, in the API server's order.
    pub internal_ips: Vec<IpAddr>,
    /// `spec.podCIDRs` (or the older `spec.podCIDR`).
    pub pod_cidrs: Vec<String>,
}

impl NodeFacts {
    pub fn from_node(node: &Node) -> NodeFacts {
        let internal_ips = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .map(|list| {
                list.iter()
                    .filter(|a| a.type_ == "InternalIP")
                    .filter_map(|a| a.address.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let spec = node.spec.as_ref();
        let pod_cidrs = spec
            .and_then(|s| s.pod_cidrs.clone())
            .filter(|l| !l.is_empty())
            .or_else(|| spec.and_then(|s| s.pod_cidr.clone()).map(|c| vec![c]))
            .unwrap_or_default();
        NodeFacts {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            internal_ips,
            pod_cidrs,
        }
    }

    /// The first IPv4 InternalIP.
    pub fn internal_ipv4(&self) -> Option<Ipv4Addr> {
        self.internal_ips.iter().find_map(|ip| match ip {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        })
    }
}

/// `GET /api/v1/nodes/<name>`.
pub async fn read(client: &kube::Client, name: &str) -> Result<NodeFacts, kube::Error> {
    let node = Api::<Node>::all(client.clone()).get(name).await?;
    Ok(NodeFacts::from_node(&node))
}

/// The status patch that sets `NetworkUnavailable`: `False`/`TabbyIsUp`
/// once the agent is ready, `True`/`TabbyIsDown` when it stops.
pub fn network_condition_patch(up: bool, now: Timestamp) -> Value {
    let (status, reason, message) = if up {
        ("False", "TabbyIsUp", "tabby is running on this node")
    } else {
        ("True", "TabbyIsDown", "tabby is shutting down on this node")
    };
    let now = serde_json::to_value(Time(now)).unwrap_or(Value::Null);
    json!({"status": {"conditions": [{
        "type": "NetworkUnavailable",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now,
        "lastHeartbeatTime": now,
    }]}})
}

fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

/// `PATCH /api/v1/nodes/<name>/status` (strategic merge) with
/// [`network_condition_patch`].
pub async fn set_network_unavailable(
    client: &kube::Client,
    name: &str,
    up: bool,
    now: Timestamp,
) -> Result<(), kube::Error> {
    let patch = network_condition_patch(up, now);
    Api::<Node>::all(client.clone())
        .patch_status(name, &params(), &Patch::Strategic(patch))
        .await
        .map(drop)
}

/// What tabby publishes on its Node, like calico-node's KDD annotations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeAnnotations {
    /// `tabby.dev/IPv4Address`, CIDR form (`10.200.0.1/24`).
    pub ipv4_address: Option<Ipv4Net>,
    /// `tabby.dev/ASNumber`.
    pub as_number: Option<u32>,
    /// `tabby.dev/IPv4VXLANTunnelAddr`.
    pub ipv4_vxlan_tunnel_addr: Option<Ipv4Addr>,
    /// `tabby.dev/IPv4IPIPTunnelAddr`.
    pub ipv4_ipip_tunnel_addr: Option<Ipv4Addr>,
    /// `tabby.dev/VXLANTunnelMACAddr`.
    pub vxlan_tunnel_mac_addr: Option<String>,
}

impl NodeAnnotations {
    /// Every annotation tabby owns, set (`Some`) or to be removed (`None`).
    pub fn entries(&self) -> Vec<(String, Option<String>)> {
        fn text<T: ToString>(v: Option<T>) -> Option<String> {
            v.map(|v| v.to_string())
        }
        [
            ("IPv4Address", text(self.ipv4_address)),
            ("ASNumber", text(self.as_number)),
            ("IPv4VXLANTunnelAddr", text(self.ipv4_vxlan_tunnel_addr)),
            ("IPv4IPIPTunnelAddr", text(self.ipv4_ipip_tunnel_addr)),
            ("VXLANTunnelMACAddr", self.vxlan_tunnel_mac_addr.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (format!("{ANNOTATION_PREFIX}{k}"), v))
        .collect()
    }

    /// The JSON merge patch: set what is known, remove (`null`) the rest.
    pub fn patch(&self) -> Value {
        let annotations: serde_json::Map<String, Value> = self
            .entries()
            .into_iter()
            .map(|(k, v)| (k, v.map_or(Value::Null, Value::String)))
            .collect();
        json!({"metadata": {"annotations": annotations}})
    }
}

/// `PATCH /api/v1/nodes/<name>` (JSON merge) with [`NodeAnnotations::patch`].
pub async fn annotate(
    client: &kube::Client,
    name: &str,
    annotations: &NodeAnnotations,
) -> Result<(), kube::Error> {
    Api::<Node>::all(client.clone())
        .patch(name, &params(), &Patch::Merge(annotations.patch()))
        .await
        .map(drop)
}
