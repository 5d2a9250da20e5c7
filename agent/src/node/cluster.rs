//! The cluster as this node sees it: the other nodes and the node-to-node
//! mesh derived from them.
//!
//! Every pair of nodes has one iBGP session. Only one side initiates it:
//! the node with the lower address connects and the other one is passive.
//! Two nodes that both connect produce a collision, and Calico has had to
//! fix the race between collision resolution and graceful restart; with one
//! initiator per pair there is nothing to resolve.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;

/// A node, as the agent needs it (the validated form of its Node resource).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    /// The node's address with its subnet (BGP `ipv4Address`).
    pub address: Ipv4Net,
    pub asn: u32,
    /// The VXLAN tunnel address and VTEP MAC, once the node has them.
    pub vxlan_tunnel: Option<Ipv4Addr>,
    pub vtep_mac: Option<[u8; 6]>,
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
        })
        .collect();
    peers.sort_by_key(|p| p.address);
    peers.dedup_by_key(|p| p.address);
    peers
}

/// The BGPPeer resources that apply to `me`: global ones and those for
/// this node. A peer that is also a mesh node is left to the mesh.
pub fn external_peers(me: &NodeInfo, peers: &[crate::resources::BgpPeer]) -> Vec<MeshPeer> {
    peers
        .iter()
        .filter(|p| p.spec.node.as_deref().is_none_or(|n| n == me.name))
        .filter_map(|p| {
            let address: IpAddr = p.spec.peer_ip.parse().ok()?;
            Some(MeshPeer {
                node: p.metadata.name.clone(),
                address,
                asn: p.spec.as_number,
                passive: false,
                kind: if p.spec.node.is_some() {
                    PeerType::NodeSpecific
                } else {
                    PeerType::Global
                },
                password: p.spec.password.as_ref().and_then(|pw| pw.value.clone()),
                max_prefix: p.spec.max_prefix,
                keep_original_next_hop: p.spec.keep_original_next_hop,
            })
        })
        .collect()
}

/// The node whose address is `addr`.
pub fn node_at(nodes: &[NodeInfo], addr: IpAddr) -> Option<&NodeInfo> {
    nodes.iter().find(|n| IpAddr::V4(n.address.addr()) == addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, addr: &str) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            address: addr.parse().unwrap(),
            asn: 64512,
            vxlan_tunnel: None,
            vtep_mac: None,
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
