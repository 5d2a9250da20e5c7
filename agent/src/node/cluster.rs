//! The cluster as this node sees it: the other nodes and the node-to-node
//! mesh derived from them.
//!
//! Every pair of nodes has one iBGP session. Only one side initiates it:
//! the node with the lower address connects and the other one is passive.
//! Two nodes that both connect produce a collision, and Calico has had to
//! fix the race between collision resolution and graceful restart; with one
//! initiator per pair there is nothing to resolve.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// A node, as the agent needs it (the validated form of its Node resource).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    /// The node's address with its subnet (BGP `ipv4Address`).
    pub address: Ipv4Net,
    /// The node's IPv6 address with its subnet (BGP `ipv6Address`), when
    /// dual stack: the next hop of its IPv6 routes.
    pub address6: Option<Ipv6Net>,
    pub asn: u32,
    /// The VXLAN tunnel addresses and VTEP MAC, once the node has them.
    pub vxlan_tunnel: Option<Ipv4Addr>,
    pub vxlan_tunnel6: Option<Ipv6Addr>,
    pub vtep_mac: Option<[u8; 6]>,
    /// The Node resource's labels (BGPPeer node and peer selectors).
    pub labels: BTreeMap<String, String>,
    /// `routeReflectorClusterID`: the node reflects routes (RFC 4456) to
    /// its peers that are not reflectors of the same cluster.
    pub rr_cluster_id: Option<Ipv4Addr>,
}

/// What kind of peer a session is, in `calicoctl node status` words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerType {
    Mesh,
    Global,
    NodeSpecific,
}

impl PeerType {
    pub fn label(self) -> &'static str {
        match self {
            PeerType::Mesh => "node-to-node mesh",
            PeerType::Global => "global",
            PeerType::NodeSpecific => "node specific",
        }
    }
}

/// One BGP session this node should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshPeer {
    /// The other node, or the BGPPeer resource's name.
    pub node: String,
    pub address: IpAddr,
    pub asn: u32,
    /// Wait for the other side to connect (its address is lower).
    pub passive: bool,
    pub kind: PeerType,
    pub password: Option<String>,
    /// BGPPeer `maxPrefix`: more routes than this (per family) from the
    /// peer close the session with Cease 6/1; it restarts after 30 s.
    pub max_prefix: Option<u32>,
    /// BGPPeer `keepOriginalNextHop`: routes go to the peer with their
    /// next hop unchanged instead of this node's address.
    pub keep_original_next_hop: bool,
    /// The peer is another tabby node (mesh, or a BGPPeer `peerSelector`):
    /// iBGP within the cluster, everything exchanged, no RFC 8212 policy.
    pub is_node: bool,
    /// We reflect to this peer: we have a cluster ID and it is not a
    /// reflector of the same cluster (Calico's rule).
    pub rr_client: bool,
}

/// The mesh sessions of `me` with `nodes` (which may include `me`).
pub fn mesh(me: &NodeInfo, nodes: &[NodeInfo]) -> Vec<MeshPeer> {
    let mine = me.address.addr();
    let mut peers: Vec<MeshPeer> = nodes
        .iter()
        .filter(|n| n.name != me.name && n.address.addr() != mine)
        .map(|n| MeshPeer {
            node: n.name.clone(),
            address: IpAddr::V4(n.address.addr()),
            asn: n.asn,
            passive: n.address.addr() < mine,
            kind: PeerType::Mesh,
            password: None,
            max_prefix: None,
            keep_original_next_hop: false,
            is_node: true,
            rr_client: is_rr_client(me, n),
        })
        .collect();
    peers.sort_by_key(|p| p.address);
    peers.dedup_by_key(|p| p.address);
    peers
}

/// Whether `me` reflects routes to `peer`.
fn is_rr_client(me: &NodeInfo, peer: &NodeInfo) -> bool {
    me.rr_cluster_id.is_some() && peer.rr_cluster_id != me.rr_cluster_id
}

fn selects(selector: &str, labels: &BTreeMap<String, String>) -> bool {
    ipam::selector::Selector::parse(selector).is_ok_and(|s| s.matches(labels))
}

/// The BGPPeer resources that apply to `me`: global ones, those for this
/// node (`node`) or selecting it (`nodeSelector`). A `peerIP` peer is one
/// session; a `peerSelector` peer is a session with every other node whose
/// labels match it (route reflectors), initiated by the lower address as
/// in the mesh. A selector that does not parse selects nothing (routectl
/// apply refuses it before it gets here).
pub fn external_peers(
    me: &NodeInfo,
    nodes: &[NodeInfo],
    peers: &[crate::resources::BgpPeer],
) -> Vec<MeshPeer> {
    let mut out: Vec<MeshPeer> = Vec::new();
    for p in peers {
        // `node`, else `nodeSelector`, else every node.
        let on = |n: &NodeInfo| match (&p.spec.node, &p.spec.node_selector) {
            (Some(name), _) => *name == n.name,
            (None, Some(sel)) => selects(sel, &n.labels),
            (None, None) => true,
        };
        let kind = if p.spec.node.is_some() {
            PeerType::NodeSpecific
        } else {
            PeerType::Global
        };
        let common = |address: IpAddr, asn: u32| MeshPeer {
            node: p.metadata.name.clone(),
            address,
            asn,
            passive: false,
            kind,
            password: p.spec.password.as_ref().and_then(|pw| pw.value.clone()),
            max_prefix: p.spec.max_prefix,
            keep_original_next_hop: p.spec.keep_original_next_hop,
            is_node: false,
            rr_client: false,
        };
        match &p.spec.peer_selector {
            // Between nodes, and symmetric as in Calico: the nodes `on`
            // peer with those the selector matches, and so the other way.
            Some(sel) => {
                let mine = me.address.addr();
                for n in nodes
                    .iter()
                    .filter(|n| n.name != me.name && n.address.addr() != mine)
                    .filter(|n| {
                        (on(me) && selects(sel, &n.labels)) || (selects(sel, &me.labels) && on(n))
                    })
                {
                    let address = IpAddr::V4(n.address.addr());
                    if out.iter().any(|q| q.address == address) {
                        continue;
                    }
                    out.push(MeshPeer {
                        node: n.name.clone(),
                        passive: n.address.addr() < mine,
                        is_node: true,
                        rr_client: is_rr_client(me, n),
                        ..common(address, n.asn)
                    });
                }
            }
            None if on(me) => {
                if let Ok(address) = p.spec.peer_ip.parse() {
                    out.push(common(address, p.spec.as_number));
                }
            }
            None => {}
        }
    }
    out
}

/// The node whose address (IPv4, or IPv6 when dual stack) is `addr`.
pub fn node_at(nodes: &[NodeInfo], addr: IpAddr) -> Option<&NodeInfo> {
    nodes.iter().find(|n| match addr {
        IpAddr::V4(a) => n.address.addr() == a,
        IpAddr::V6(a) => n.address6.is_some_and(|n6| n6.addr() == a),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, addr: &str) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            address: addr.parse().unwrap(),
            address6: None,
            asn: 64512,
            vxlan_tunnel: None,
            vxlan_tunnel6: None,
            vtep_mac: None,
            labels: BTreeMap::new(),
            rr_cluster_id: None,
        }
    }

    #[test]
    fn exactly_one_side_of_each_pair_initiates() {
        let nodes = [
            node("a", "10.200.0.1/24"),
            node("b", "10.200.0.2/24"),
            node("c", "10.201.0.3/24"),
        ];
        for me in &nodes {
            let peers = mesh(me, &nodes);
            assert_eq!(peers.len(), 2, "{}: everyone but itself", me.name);
            for p in &peers {
                let other = nodes.iter().find(|n| n.name == p.node).unwrap();
                let back = mesh(other, &nodes)
                    .into_iter()
                    .find(|q| q.node == me.name)
                    .unwrap();
                assert_ne!(p.passive, back.passive, "{} <-> {}", me.name, other.name);
            }
        }
        assert!(
            !mesh(&nodes[0], &nodes).iter().any(|p| p.passive),
            "the lowest address connects to all"
        );
    }
}

#[cfg(test)]
mod reflector_tests {
    use super::*;
    use crate::resources::{BgpPeer, BgpPeerSpec, ObjectMeta};

    fn node(name: &str, addr: &str, rr: bool) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            address: addr.parse().unwrap(),
            address6: None,
            asn: 64512,
            vxlan_tunnel: None,
            vxlan_tunnel6: None,
            vtep_mac: None,
            labels: if rr {
                [("rr".to_string(), "true".to_string())].into()
            } else {
                BTreeMap::new()
            },
            rr_cluster_id: rr.then(|| "244.0.0.1".parse().unwrap()),
        }
    }

    #[test]
    fn peer_selectors_make_reflector_sessions_both_ways() {
        let nodes = [
            node("rr1", "10.200.0.1/24", true),
            node("rr2", "10.200.0.2/24", true),
            node("c3", "10.201.0.3/24", false),
            node("c4", "10.201.0.4/24", false),
        ];
        let peer = BgpPeer {
            api_version: "projectcalico.org/v3".into(),
            kind: "BGPPeer".into(),
            metadata: ObjectMeta {
                name: "to-reflectors".into(),
                ..ObjectMeta::default()
            },
            spec: BgpPeerSpec {
                as_number: 64512,
                node_selector: Some("all()".into()),
                peer_selector: Some("rr == 'true'".into()),
                ..BgpPeerSpec::default()
            },
        };
        let of = |i: usize| external_peers(&nodes[i], &nodes, std::slice::from_ref(&peer));
        // a client peers with both reflectors, not with the other client
        let c3_peers = of(2);
        let c3: Vec<&str> = c3_peers.iter().map(|p| p.node.as_str()).collect();
        assert_eq!(c3, ["rr1", "rr2"]);
        assert!(of(2).iter().all(|p| p.is_node && !p.rr_client));
        // a reflector peers with everyone; clients are its RR clients, the
        // other reflector of its cluster is not
        let rr1 = of(0);
        let names: Vec<(&str, bool)> = rr1.iter().map(|p| (p.node.as_str(), p.rr_client)).collect();
        assert_eq!(names, [("rr2", false), ("c3", true), ("c4", true)]);
        // one initiator per pair
        for p in &rr1 {
            let i = nodes.iter().position(|n| n.name == p.node).unwrap();
            let back = of(i).into_iter().find(|q| q.node == "rr1").unwrap();
            assert_ne!(p.passive, back.passive, "{}", p.node);
        }
    }
}
