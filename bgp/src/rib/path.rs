//! A path: one route to a destination as the decision process sees it
//! (RFC 4271 §9.1), and where it came from.
//!
//! Owns [`Path`] (ADD-PATH identifier, source, and a shared
//! [`RouteData`]: attributes and next hop) and [`Source`] (the peer facts
//! the decision process and the export rules need: internal or external,
//! BGP Identifier, address, route-reflector client). A `Source` is shared
//! by all paths from one peer.

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
    /// Whether `other` is the same peer (or both are this speaker): a
    /// peer is its address, whatever else its configuration says now.
    pub fn same_peer(&self, other: &Source) -> bool {
        self.address == other.address
            && (self.kind == PeerKind::Local) == (other.kind == PeerKind::Local)
    }

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

/// What a route says beyond where it came from: its interned attribute
/// set and its next hop. Held once for every route of one UPDATE (or of
/// one origination, or one import-policy result) and pointed to by each,
/// so a path costs two pointers and an identifier, not the 33-octet next
/// hop inline (BIRD's `rta` shares the next hop with the attributes too).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RouteData {
    /// The interned attribute set (without next hop and MP attributes).
    pub attrs: AttrSet,
    /// The next hop (NEXT_HOP, or the MP_REACH_NLRI next hop).
    pub next_hop: NextHop,
}

impl RouteData {
    /// A shared record of `attrs` and `next_hop`.
    pub fn shared(attrs: AttrSet, next_hop: NextHop) -> Arc<Self> {
        Arc::new(Self { attrs, next_hop })
    }

    /// Whether `other` holds the same attributes and next hop.
    pub fn same_as(self: &Arc<Self>, other: &Arc<Self>) -> bool {
        Arc::ptr_eq(self, other)
            || (self.next_hop == other.next_hop
                && (Arc::ptr_eq(&self.attrs, &other.attrs) || self.attrs == other.attrs))
    }
}

/// One path to a prefix.
#[derive(Debug, Clone)]
pub struct Path {
    /// Who it came from.
    pub source: Arc<Source>,
    /// Attributes and next hop, shared with the other routes of its UPDATE.
    pub data: Arc<RouteData>,
    /// ADD-PATH Path Identifier (RFC 7911); 0 without ADD-PATH.
    pub path_id: u32,
}

impl PartialEq for Path {
    fn eq(&self, other: &Self) -> bool {
        self.path_id == other.path_id
            && self.data.same_as(&other.data)
            && (Arc::ptr_eq(&self.source, &other.source) || self.source == other.source)
    }
}

impl Eq for Path {}

impl Path {
    /// The interned attribute set (without next hop and MP attributes).
    pub fn attrs(&self) -> &AttrSet {
        &self.data.attrs
    }

    /// The next hop (NEXT_HOP, or the MP_REACH_NLRI next hop).
    pub fn next_hop(&self) -> NextHop {
        self.data.next_hop
    }

    /// Whether `other` is the same path (same peer, same Path Identifier),
    /// whatever its attributes.
    pub fn same_origin(&self, other: &Path) -> bool {
        self.path_id == other.path_id && self.source.same_peer(&other.source)
    }
}
