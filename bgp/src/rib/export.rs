//! Import checks and export rules: what a route becomes on its way in
//! from a peer and out to a peer (RFC 4271 §5.1, §9.1.1, §9.1.3, §9.2;
//! RFC 4456 §8; RFC 8212; RFC 1997 well-known communities).
//!
//! Owns the per-speaker and per-peer configuration these rules need
//! ([`LocalConfig`], [`PeerConfig`]) and pure functions:
//!
//! * [`import`]: drops AS-path loops from eBGP (our AS in AS_PATH) and
//!   reflection loops (our router id as ORIGINATOR_ID, our cluster id in
//!   CLUSTER_LIST); ignores LOCAL_PREF from eBGP; refuses every eBGP
//!   route without an import policy (RFC 8212 §3); runs the policy.
//! * [`export`]: never back to the peer it came from; iBGP-learned routes
//!   to iBGP peers only when reflecting (RFC 4456 §8: from a client to
//!   all, from a non-client to clients only; ORIGINATOR_ID set if absent,
//!   our CLUSTER_ID prepended to CLUSTER_LIST); to eBGP: our AS prepended,
//!   NEXT_HOP ours unless kept, LOCAL_PREF, ORIGINATOR_ID and CLUSTER_LIST
//!   removed, MED removed unless we originated the route, and nothing
//!   without an export policy (RFC 8212 §3); to iBGP: LOCAL_PREF 100 when
//!   absent, next-hop-self when configured; NO_ADVERTISE and NO_EXPORT
//!   honoured; then the export policy.
//! * [`withheld_long_lived`]: long-lived stale routes (LLGR_STALE, RFC
//!   9494 §4.3) only to peers that announced LLGR.
//!
//! Both edit the caller's attributes and next hop in place; the
//! attributes stay borrowed ([`Cow`]) until something changes them, so
//! the caller interns only what is new.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::{AsPath, Community, NextHop, PathAttributes, Segment, SegmentType};

use super::decision::DecisionConfig;
use super::max_prefix::MaxPrefix;
use super::path::{PeerKind, Source};
use super::policy::Policy;
use super::prefix::IpPrefix;

/// This speaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalConfig {
    /// Our AS.
    pub asn: u32,
    /// Our BGP Identifier.
    pub router_id: Ipv4Addr,
    /// Our CLUSTER_ID when we are a route reflector (RFC 4456 §7);
    /// `None`: we do not reflect.
    pub cluster_id: Option<Ipv4Addr>,
    /// Decision process options.
    pub decision: DecisionConfig,
}

/// The next hop we send to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum NextHopMode {
    /// RFC 4271 §5.1.3: ours to eBGP peers, unchanged to iBGP peers.
    #[default]
    Auto,
    /// Always ours (next-hop-self).
    SelfAddr,
    /// Always unchanged (also to eBGP peers, for a route server).
    Keep,
}

/// One configured peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// The peer's address (its identity in the RIB).
    pub address: IpAddr,
    /// The peer's AS; ours means iBGP.
    pub asn: u32,
    /// The peer is our route-reflector client (RFC 4456 §2).
    pub rr_client: bool,
    /// Next-hop rewriting.
    pub next_hop: NextHopMode,
    /// Our IPv4 address towards the peer (the next hop we advertise).
    pub local_v4: Option<Ipv4Addr>,
    /// Our IPv6 address towards the peer.
    pub local_v6: Option<Ipv6Addr>,
    /// Import policy. Required for eBGP (RFC 8212); `None` on iBGP
    /// accepts everything.
    pub import: Option<Policy>,
    /// Export policy. Required for eBGP (RFC 8212); `None` on iBGP
    /// sends everything the rules allow.
    pub export: Option<Policy>,
    /// Upper bound on the routes per family the peer may send (RFC 4486
    /// §4); `None`: no limit.
    pub max_prefixes: Option<MaxPrefix>,
}

impl PeerConfig {
    /// A peer with defaults: not a client, next hop [`NextHopMode::Auto`],
    /// no local addresses, no policies, no prefix limit.
    pub fn new(address: IpAddr, asn: u32) -> Self {
        Self {
            address,
            asn,
            rr_client: false,
            next_hop: NextHopMode::Auto,
            local_v4: None,
            local_v6: None,
            import: None,
            export: None,
            max_prefixes: None,
        }
    }

    /// Whether the session is eBGP.
    pub fn is_external(&self, local: &LocalConfig) -> bool {
        self.asn != local.asn
    }

    /// Our next hop for `prefix`'s family, if configured.
    fn own_next_hop(&self, prefix: &IpPrefix) -> Option<NextHop> {
        match prefix {
            IpPrefix::V4(_) => self.local_v4.map(NextHop::V4),
            IpPrefix::V6(_) => self.local_v6.map(|global| NextHop::V6 {
                global,
                link_local: None,
            }),
        }
    }
}

/// Whether the packer can carry `next_hop` for `prefix`.
fn encodable(prefix: &IpPrefix, next_hop: &NextHop) -> bool {
    matches!(
        (prefix, next_hop),
        (IpPrefix::V4(_), NextHop::V4(_)) | (IpPrefix::V6(_), NextHop::V6 { .. })
    )
}

/// A route from `peer` entering the Loc-RIB: whether it is accepted, with
/// `attrs` and `next_hop` made what to use. Edited in place, not returned:
/// the attribute set is several hundred octets, and the common route that
/// no rule changes then moves nothing (returned, each route's `Cow` was
/// copied out: 8 % of a daemon's announce burst in `perf`).
pub fn import(
    local: &LocalConfig,
    peer: &PeerConfig,
    prefix: &IpPrefix,
    attrs: &mut Cow<'_, PathAttributes>,
    next_hop: &mut NextHop,
) -> bool {
    let external = peer.is_external(local);
    if attrs.originator_id == Some(local.router_id) {
        return false;
    }
    if local
        .cluster_id
        .is_some_and(|c| attrs.cluster_list.contains(&c))
    {
        return false;
    }
    if external {
        let has_loop = attrs
            .as_path
            .as_ref()
            .is_some_and(|p| p.segments.iter().any(|s| s.asns.contains(&local.asn)));
        if has_loop {
            return false;
        }
        if attrs.local_pref.is_some() {
            attrs.to_mut().local_pref = None;
        }
        // RFC 8212 §3: no policy, no routes.
        let Some(policy) = peer.import.as_ref() else {
            return false;
        };
        policy.apply(prefix, attrs, next_hop)
    } else {
        peer.import
            .as_ref()
            .is_none_or(|policy| policy.apply(prefix, attrs, next_hop))
    }
}

/// Prepends `asn` to the leftmost AS_SEQUENCE (a new one if the path
/// starts otherwise), RFC 4271 §5.1.2.
fn prepend(path: Option<&AsPath>, asn: u32) -> AsPath {
    let mut path = path.cloned().unwrap_or_default();
    match path.segments.first_mut() {
        Some(s) if s.kind == SegmentType::AsSequence => s.asns.insert(0, asn),
        _ => path.segments.insert(
            0,
            Segment {
                kind: SegmentType::AsSequence,
                asns: vec![asn],
            },
        ),
    }
    path
}

/// Whether no iBGP-learned path can ever go to `target`: an internal
/// peer of a speaker that does not reflect routes (RFC 4456 §8, iBGP
/// split horizon). [`export`] refuses every such path; this
/// says so once per peer, before a table's routes are offered.
pub fn ibgp_split_horizon(local: &LocalConfig, target: &PeerConfig) -> bool {
    local.cluster_id.is_none() && !target.is_external(local)
}

/// Whether a path with `attrs` is kept from a peer: one that carries
/// LLGR_STALE (a long-lived stale route, RFC 9494 §4.3) goes only to
/// peers that announced long-lived graceful restart for its family
/// (`peer_long_lived`). tabby does not use §4.3's option of sending them
/// to other iBGP peers with NO_EXPORT and LOCAL_PREF 0: a Calico mesh
/// peer without LLGR is sent a withdrawal, as BIRD does.
pub fn withheld_long_lived(attrs: &PathAttributes, peer_long_lived: bool) -> bool {
    !peer_long_lived && attrs.communities.contains(&Community::LLGR_STALE)
}

/// The best path for `prefix`, learned from `source`, as sent to
/// `target`: whether it is sent, with `attrs` and `next_hop` (the path's,
/// on entry) made what to send. Edited in place like [`import`]'s: a
/// returned `Cow` of the 280-octet attribute set was copied out for every
/// route offered to every peer (37 % of a 100k origination's samples
/// in `perf`).
pub fn export(
    local: &LocalConfig,
    prefix: &IpPrefix,
    source: &Source,
    target: &PeerConfig,
    attrs: &mut Cow<'_, PathAttributes>,
    next_hop: &mut NextHop,
) -> bool {
    let to_external = target.is_external(local);
    if source.kind != PeerKind::Local && source.address == target.address {
        return false;
    }
    if attrs.communities.contains(&Community::NO_ADVERTISE)
        || (to_external && attrs.communities.contains(&Community::NO_EXPORT))
    {
        return false;
    }
    if to_external {
        // RFC 8212 §3.
        let Some(policy) = target.export.as_ref() else {
            return false;
        };
        let a = attrs.to_mut();
        a.as_path = Some(prepend(a.as_path.as_ref(), local.asn));
        a.local_pref = None;
        a.originator_id = None;
        a.cluster_list.clear();
        if source.kind != PeerKind::Local {
            a.multi_exit_disc = None;
        }
        if target.next_hop != NextHopMode::Keep {
            let Some(own) = target.own_next_hop(prefix) else {
                return false;
            };
            *next_hop = own;
        }
        if !policy.apply(prefix, attrs, next_hop) {
            return false;
        }
    } else {
        if source.kind == PeerKind::Internal {
            // RFC 4456 §8.
            let Some(cluster_id) = local.cluster_id else {
                return false;
            };
            if !source.rr_client && !target.rr_client {
                return false;
            }
            let a = attrs.to_mut();
            a.originator_id.get_or_insert(source.router_id);
            a.cluster_list.insert(0, cluster_id);
        }
        if attrs.local_pref.is_none() {
            attrs.to_mut().local_pref = Some(local.decision.default_local_pref);
        }
        if target.next_hop == NextHopMode::SelfAddr {
            let Some(own) = target.own_next_hop(prefix) else {
                return false;
            };
            *next_hop = own;
        }
        if let Some(policy) = &target.export
            && !policy.apply(prefix, attrs, next_hop)
        {
            return false;
        }
    }
    encodable(prefix, next_hop)
}
