//! The Routing Information Base (RFC 4271 §3.2, §9): Adj-RIB-In per peer,
//! the Loc-RIB with the decision process, Adj-RIB-Out per peer, and the
//! UPDATEs that bring a peer's Adj-RIB-Out into the peer.
//!
//! Sans-IO: nothing here reads a socket, spawns a task or looks at a
//! clock. Time enters as an [`std::time::Instant`] argument (graceful
//! restart deadlines, RFC 4724 §4.2); the speaker owns the one [`Rib`] and
//! feeds it decoded UPDATEs and session events. No input may panic.
//!
//! Path attribute sets are interned ([`intern`]): every route holds an
//! `Arc` to one shared [`PathAttributes`](crate::wire::PathAttributes),
//! so a table of 100k routes with a few distinct sets holds a few sets.
//! The next hop is kept beside the set, not in it, so routes that differ
//! only in next hop still share their attributes; UPDATEs are packed by
//! (attribute set, next hop).
//!
//! | module | owns |
//! |---|---|
//! | [`intern`] | the attribute-set interner |
//! | `hash` | the fast seeded hash of the per-prefix tables |
//! | [`prefix`] | [`IpPrefix`], a prefix of either family |
//! | [`path`] | [`Path`] and its [`Source`] |
//! | [`adj_rib_in`] | routes as received, per peer (kept in the Loc-RIB unless import changed them); graceful-restart staleness (RFC 4724 §4.2) |
//! | [`retention`] | how long a peer's stale routes are kept, per family: graceful restart (RFC 4724), long-lived (RFC 9494), refresh (RFC 7313) |
//! | [`decision`] | the decision process (RFC 4271 §9.1.2.2, RFC 4456 §9), ECMP |
//! | [`loc_rib`] | the best path(s) per prefix and their changes (RFC 4271 §9.1.2) |
//! | [`policy`] | import and export filters as values |
//! | [`max_prefix`] | per-peer prefix limits and their Cease 6/1 (RFC 4486 §4) |
//! | [`export`] | import checks and export rules: eBGP/iBGP, route reflection (RFC 4456 §8), RFC 8212 |
//! | [`adj_rib_out`] | what each peer was sent and what it still must be sent (RFC 4271 §9.2) |
//! | [`generate`] | packing Adj-RIB-Out changes into UPDATEs, End-of-RIB (RFC 4724 §2) |
//! | [`base`] | [`Rib`]: all of it together, the API the speaker drives |

pub mod adj_rib_in;
pub mod adj_rib_out;
pub mod base;
pub mod decision;
pub mod export;
pub mod generate;
mod hash;
pub mod intern;
pub mod loc_rib;
pub mod max_prefix;
pub mod path;
pub mod policy;
pub mod prefix;
pub mod retention;
mod slot_index;

pub use adj_rib_in::{AdjRibIn, Route, RouteKey};
pub use adj_rib_out::{AdjRibOut, Advert};
pub use base::Rib;
pub use decision::{Candidates, DecisionConfig, IgpCost, Selection, Step, Verdict, ZeroCost};
pub use export::{LocalConfig, NextHopMode, PeerConfig};
pub use generate::Outbound;
pub use intern::{AttrSet, Interner};
pub use loc_rib::{BestPathChange, ChangeKind, LocRib};
pub use max_prefix::{MaxPrefix, MaxPrefixAction, MaxPrefixExceeded};
pub use path::{Path, PeerKind, RouteData, Source};
pub use policy::{Disposition, Match, Modify, Policy, PrefixRange, PrefixSet, Rule};
pub use prefix::IpPrefix;
pub use retention::{Kept, Retention};

use std::net::IpAddr;

use thiserror::Error;

use crate::wire::{DecodeError, EncodeError, Family};

/// What can go wrong in the RIB. None of these is the peer's fault in a
/// way the session must answer: the decoder has already sent the
/// NOTIFICATION or applied RFC 7606 for anything malformed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RibError {
    /// An UPDATE or a command named a peer that is not configured.
    #[error("peer {0} is not configured")]
    UnknownPeer(IpAddr),
    /// An UPDATE announced IPv4 NLRI without a NEXT_HOP (the decoder
    /// treats that as withdraw, RFC 7606 §3 d, so only hand-built UPDATEs
    /// get here).
    #[error("IPv4 NLRI without NEXT_HOP")]
    MissingNextHop,
    /// A route's next hop is not of a kind this family can carry on the
    /// wire (for example an IPv6 next hop for IPv4 NLRI, RFC 8950, which
    /// the packer does not emit yet).
    #[error("next hop unusable for {0:?}")]
    NextHopFamily(Family),
    /// Packing UPDATEs failed: an attribute set does not fit a message.
    #[error("encoding UPDATE: {0}")]
    Encode(#[from] EncodeError),
    /// An UPDATE we packed did not decode again, or decoded with RFC 7606
    /// errors (a bug in this module or the codec).
    #[error("re-reading a packed UPDATE: {0:?}")]
    Repack(Option<DecodeError>),
}
