//! The decision process: which path to a destination is best (RFC 4271
//! §9.1.2.2, with RFC 4456 §9 for reflected routes and RFC 5065 §5.3 for
//! confederation segments), and which paths are equal enough for ECMP.
//!
//! Owns the tie-breaking order, applied to the paths that remain after
//! each step, as §9.1.2.2 prescribes:
//!
//! 0. next hop resolvable (§9.1.2.1): the [`IgpCost`] hook answers `None`
//!    for a next hop it cannot reach;
//! 1. not long-lived stale: a path with the LLGR_STALE community loses to
//!    any path without it (RFC 9494 §4.3: "treated as the least
//!    preferred"), before any other step, as in BIRD;
//! 2. highest LOCAL_PREF (missing: [`DecisionConfig::default_local_pref`]);
//! 3. shortest AS_PATH (an AS_SET counts 1, confederation segments 0);
//! 4. lowest ORIGIN (IGP < EGP < INCOMPLETE);
//! 5. MED (§9.1.2.2 c): a path is removed when a path from the same
//!    neighbouring AS that survived steps 0–4 has a lower MED (missing MED
//!    is 0); with [`DecisionConfig::always_compare_med`] the neighbouring
//!    AS does not matter;
//! 6. locally originated over eBGP over iBGP (d; local first is tabby's
//!    choice, as in BIRD and FRR);
//! 7. lowest IGP cost to the next hop (e);
//! 8. lowest BGP Identifier, the ORIGINATOR_ID when present (f; RFC 4456
//!    §9);
//! 9. shortest CLUSTER_LIST (RFC 4456 §9);
//! 10. lowest peer address (g);
//! 11. lowest ADD-PATH Path Identifier (paths from one peer).
//!
//! Step 5 is not a comparison of two paths: which paths it removes depends
//! on which others are present. Comparing MEDs pairwise only between
//! paths of one neighbouring AS would not be transitive (the classic MED
//! cycle). [`Candidates`] therefore first computes, over the whole set,
//! whether each path survives the MED step, and then compares paths
//! lexicographically; within one set that order is total and transitive,
//! and the best path does not depend on arrival order.

use std::cmp::Ordering;
use std::net::{IpAddr, Ipv4Addr};

use crate::wire::{Community, NextHop, Origin, SegmentType};

use super::path::{Path, PeerKind};

/// Options of the decision process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionConfig {
    /// Compare MED between paths from different neighbouring ASes too.
    pub always_compare_med: bool,
    /// Return every path equal to the best through the IGP-cost step
    /// (ECMP); otherwise only the best.
    pub multipath: bool,
    /// The LOCAL_PREF of a path that carries none (eBGP-learned paths,
    /// whose LOCAL_PREF is not taken from the peer).
    pub default_local_pref: u32,
}

impl Default for DecisionConfig {
    fn default() -> Self {
        Self {
            always_compare_med: false,
            multipath: false,
            default_local_pref: 100,
        }
    }
}

/// The IGP-cost hook (RFC 4271 §9.1.2.2 e, §9.1.2.1): the cost to reach a
/// next hop, or `None` when it is not resolvable (such paths are never
/// selected).
pub trait IgpCost {
    /// The cost to `next_hop`.
    fn cost(&self, next_hop: &NextHop) -> Option<u32>;
}

impl<F: Fn(&NextHop) -> Option<u32>> IgpCost for F {
    fn cost(&self, next_hop: &NextHop) -> Option<u32> {
        self(next_hop)
    }
}

/// Every next hop resolvable at cost 0 (the default: a node agent has no
/// IGP).
#[derive(Debug, Clone, Copy, Default)]
pub struct ZeroCost;

impl IgpCost for ZeroCost {
    fn cost(&self, _: &NextHop) -> Option<u32> {
        Some(0)
    }
}

/// The steps of the decision process, in order. A [`Verdict`] names the
/// step that decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// Next hop resolvable (§9.1.2.1).
    Resolvable,
    /// Not long-lived stale (RFC 9494 §4.3).
    LongLivedStale,
    /// Highest LOCAL_PREF (§9.1.2.1).
    LocalPref,
    /// Shortest AS_PATH (§9.1.2.2 a).
    AsPathLen,
    /// Lowest ORIGIN (§9.1.2.2 b).
    Origin,
    /// MED (§9.1.2.2 c).
    Med,
    /// Local over eBGP over iBGP (§9.1.2.2 d).
    PeerType,
    /// Lowest IGP cost (§9.1.2.2 e).
    IgpCost,
    /// Lowest BGP Identifier / ORIGINATOR_ID (§9.1.2.2 f, RFC 4456 §9).
    RouterId,
    /// Shortest CLUSTER_LIST (RFC 4456 §9).
    ClusterListLen,
    /// Lowest peer address (§9.1.2.2 g).
    PeerAddress,
    /// Lowest Path Identifier (RFC 7911).
    PathId,
    /// Not told apart.
    Equal,
}

/// The outcome of comparing two paths: `Less` means the first is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The order: `Less` when the first path is preferred.
    pub ordering: Ordering,
    /// The step that decided.
    pub step: Step,
}

/// What the decision process selected.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    /// Index of the best path; `None` when no path is usable.
    pub best: Option<usize>,
    /// With multipath: indices of the paths equal to the best through the
    /// IGP-cost step, best first, then in decision order. Without it: the
    /// best alone. Empty when there is no best.
    pub multipath: Vec<usize>,
}

/// The per-path values the steps compare.
#[derive(Debug, Clone)]
struct Facts {
    resolvable: bool,
    long_lived_stale: bool,
    local_pref: u32,
    as_len: usize,
    origin: Origin,
    neighbor_as: Option<u32>,
    med: u32,
    med_survives: bool,
    peer_rank: u8,
    igp: u32,
    router_id: Ipv4Addr,
    cluster_len: usize,
    address: IpAddr,
    path_id: u32,
}

/// The neighbouring AS of §9.1.2.2 c: the first AS of the path after any
/// confederation segments, or `None` (our own AS) for a path that is
/// empty or begins with an AS_SET.
fn neighbor_as(path: &Path) -> Option<u32> {
    let first = path.attrs().as_path.as_ref().and_then(|p| {
        p.segments
            .iter()
            .find(|s| !s.kind.is_confed() && !s.asns.is_empty())
    })?;
    match first.kind {
        SegmentType::AsSequence => first.asns.first().copied(),
        _ => None,
    }
}

/// A set of paths to one destination, ready to compare.
#[derive(Debug)]
pub struct Candidates<'a> {
    paths: &'a [Path],
    facts: Vec<Facts>,
}

impl<'a> Candidates<'a> {
    /// Evaluates `paths` (the IGP hook is asked once per path).
    pub fn new(paths: &'a [Path], cfg: &DecisionConfig, igp: &dyn IgpCost) -> Self {
        let mut facts: Vec<Facts> = paths
            .iter()
            .map(|p| {
                let a = p.attrs();
                let cost = igp.cost(&p.next_hop());
                Facts {
                    resolvable: cost.is_some(),
                    long_lived_stale: a.communities.contains(&Community::LLGR_STALE),
                    local_pref: a.local_pref.unwrap_or(cfg.default_local_pref),
                    as_len: a.as_path.as_ref().map_or(0, |p| p.route_len()),
                    origin: a.origin.unwrap_or(Origin::Incomplete),
                    neighbor_as: neighbor_as(p),
                    med: a.multi_exit_disc.unwrap_or(0),
                    med_survives: true,
                    peer_rank: match p.source.kind {
                        PeerKind::Local => 0,
                        PeerKind::External => 1,
                        PeerKind::Internal => 2,
                    },
                    igp: cost.unwrap_or(u32::MAX),
                    router_id: a.originator_id.unwrap_or(p.source.router_id),
                    cluster_len: a.cluster_list.len(),
                    address: p.source.address,
                    path_id: p.path_id,
                }
            })
            .collect();
        // Step 5 over the set: within each class of paths equal through
        // step 4 (and from one neighbouring AS unless always-compare), only
        // those with the class's lowest MED survive.
        let same_class = |a: &Facts, b: &Facts| {
            a.resolvable == b.resolvable
                && a.long_lived_stale == b.long_lived_stale
                && a.local_pref == b.local_pref
                && a.as_len == b.as_len
                && a.origin == b.origin
                && (cfg.always_compare_med || a.neighbor_as == b.neighbor_as)
        };
        let survives: Vec<bool> = facts
            .iter()
            .map(|f| !facts.iter().any(|g| same_class(f, g) && g.med < f.med))
            .collect();
        for (f, s) in facts.iter_mut().zip(survives) {
            f.med_survives = s;
        }
        Self { paths, facts }
    }

    /// The paths being compared.
    pub fn paths(&self) -> &'a [Path] {
        self.paths
    }

    /// Compares paths `i` and `j` of the set; `Less` means `i` is better.
    /// An index out of range compares as worse than any path.
    pub fn compare(&self, i: usize, j: usize) -> Verdict {
        let (a, b) = match (self.facts.get(i), self.facts.get(j)) {
            (Some(a), Some(b)) => (a, b),
            (None, None) => return verdict(Ordering::Equal, Step::Equal),
            (None, Some(_)) => return verdict(Ordering::Greater, Step::Resolvable),
            (Some(_), None) => return verdict(Ordering::Less, Step::Resolvable),
        };
        let steps = [
            (b.resolvable.cmp(&a.resolvable), Step::Resolvable),
            (
                a.long_lived_stale.cmp(&b.long_lived_stale),
                Step::LongLivedStale,
            ),
            (b.local_pref.cmp(&a.local_pref), Step::LocalPref),
            (a.as_len.cmp(&b.as_len), Step::AsPathLen),
            (a.origin.cmp(&b.origin), Step::Origin),
            (b.med_survives.cmp(&a.med_survives), Step::Med),
            (a.peer_rank.cmp(&b.peer_rank), Step::PeerType),
            (a.igp.cmp(&b.igp), Step::IgpCost),
            (a.router_id.cmp(&b.router_id), Step::RouterId),
            (a.cluster_len.cmp(&b.cluster_len), Step::ClusterListLen),
            (a.address.cmp(&b.address), Step::PeerAddress),
            (a.path_id.cmp(&b.path_id), Step::PathId),
        ];
        steps
            .into_iter()
            .find(|(o, _)| o.is_ne())
            .map_or(verdict(Ordering::Equal, Step::Equal), |(o, s)| {
                verdict(o, s)
            })
    }

    /// Runs the decision process.
    pub fn select(&self, cfg: &DecisionConfig) -> Selection {
        let n = self.facts.len();
        let Some(best) = (1..n).try_fold(0, |best, k| {
            Some(if self.compare(k, best).ordering.is_lt() {
                k
            } else {
                best
            })
        }) else {
            return Selection::default();
        };
        if n == 0 || !self.facts.get(best).is_some_and(|f| f.resolvable) {
            return Selection::default();
        }
        let mut multipath = vec![best];
        if cfg.multipath {
            for k in (0..n).filter(|k| *k != best) {
                if self.compare(best, k).step > Step::IgpCost {
                    // Insertion in decision order; never panics, whatever
                    // the comparison says.
                    let at = multipath
                        .iter()
                        .skip(1)
                        .position(|m| self.compare(k, *m).ordering.is_lt())
                        .map_or(multipath.len(), |p| p + 1);
                    multipath.insert(at, k);
                }
            }
        }
        Selection {
            best: Some(best),
            multipath,
        }
    }
}

const fn verdict(ordering: Ordering, step: Step) -> Verdict {
    Verdict { ordering, step }
}

/// Runs the decision process over `paths`.
pub fn select(paths: &[Path], cfg: &DecisionConfig, igp: &dyn IgpCost) -> Selection {
    Candidates::new(paths, cfg, igp).select(cfg)
}
