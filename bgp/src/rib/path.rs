//! A path: one route to a destination as the decision process sees it
//! (RFC 4271 §9.1), and where it came from.
//!
//! Owns [`Path`] (attributes, next hop, ADD-PATH identifier, source) and
//! [`Source`] (the peer facts the decision process and the export rules
//! need: internal or external, BGP Identifier, address, route-reflector
//! client). A `Source` is shared by all paths from one peer.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use crate::wire::NextHop;

use super::intern::AttrSet;

/// How a path entered the RIB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerKind {
    /// Originated by this speaker (the handle API).
    Local,
    /// Learned from an external peer (eBGP).
    External,
    /// Learned from an internal peer (iBGP).
    Internal,
}

/// The peer a path was learned from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Source {
    /// Local, external or internal.
    pub kind: PeerKind,
    /// The peer's address (unspecified for local routes).
    pub address: IpAddr,
    /// The peer's BGP Identifier (ours for local routes).
    pub router_id: Ipv4Addr,
    /// The peer's AS (ours for local routes).
    pub asn: u32,
    /// The peer is one of our route-reflector clients (RFC 4456 §2).
    pub rr_client: bool,
}

impl Source {
    /// The source of locally originated routes.
    pub fn local(router_id: Ipv4Addr, asn: u32) -> Self {
        Self {
            kind: PeerKind::Local,
            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            router_id,
            asn,
            rr_client: false,
        }
    }
}

/// One path to a prefix.
#[derive(Debug, Clone)]
pub struct Path {
    /// Who it came from.
    pub source: Arc<Source>,
    /// ADD-PATH Path Identifier (RFC 7911); 0 without ADD-PATH.
    pub path_id: u32,
    /// The next hop (NEXT_HOP, or the MP_REACH_NLRI next hop).
    pub next_hop: NextHop,
    /// The interned attribute set (without next hop and MP attributes).
    pub attrs: AttrSet,
}

impl PartialEq for Path {
    fn eq(&self, other: &Self) -> bool {
        self.path_id == other.path_id
            && self.next_hop == other.next_hop
            && (Arc::ptr_eq(&self.attrs, &other.attrs) || self.attrs == other.attrs)
            && (Arc::ptr_eq(&self.source, &other.source) || self.source == other.source)
    }
}

impl Eq for Path {}

impl Path {
    /// Whether `other` is the same path (same peer, same Path Identifier),
    /// whatever its attributes.
    pub fn same_origin(&self, other: &Path) -> bool {
        self.path_id == other.path_id
            && self.source.kind == other.source.kind
            && self.source.address == other.source.address
    }
}
