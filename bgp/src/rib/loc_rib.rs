//! Loc-RIB: for each destination, every usable path (after import policy)
//! and the ones the decision process selected (RFC 4271 §3.2, §9.1.2).
//!
//! Owns the candidate paths per prefix — from every peer's Adj-RIB-In and
//! from local origination — and reports each change of the selected
//! path(s) as a [`BestPathChange`]: the stream the agent's dataplane
//! follows and the input of every peer's Adj-RIB-Out. It does not apply
//! policy and does not know peers beyond a path's [`Source`].

use std::collections::hash_map::Entry;

use smallvec::SmallVec;

use super::adj_rib_in::RouteKey;
use super::decision::{Candidates, DecisionConfig, IgpCost};
use super::hash::{Map, Shrink, shrink_if_sparse};
use super::path::{Path, Source};
use super::prefix::IpPrefix;

/// How a destination's selection changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// The destination had no best path and now has one.
    Added,
    /// The best path, its attributes, or the multipath set changed.
    Changed,
    /// The destination has no best path any more.
    Removed,
}

/// A change of a destination's selected path(s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BestPathChange {
    /// The destination.
    pub prefix: IpPrefix,
    /// What happened.
    pub kind: ChangeKind,
    /// The selected paths now, best first (several with multipath);
    /// empty when removed. Inline when one, the common case: a first
    /// table makes a change per route, and each would allocate.
    pub best: SmallVec<[Path; 1]>,
}

/// A destination's paths: inline when one, the common case (a 24-octet
/// path in the table slot costs less than a heap block per destination).
type Paths = SmallVec<[Path; 1]>;

#[derive(Debug, Default)]
struct Destination {
    /// All candidate paths; `paths[..selected]` is the selection, best
    /// first.
    paths: Paths,
    selected: usize,
}

impl Destination {
    /// A copy of the selected paths (inline when one).
    fn selection(&self) -> Paths {
        self.paths
            .get(..self.selected)
            .unwrap_or(&[])
            .iter()
            .cloned()
            .collect()
    }
}

/// The Loc-RIB.
#[derive(Debug, Default)]
pub struct LocRib {
    dests: Map<IpPrefix, Destination>,
    shrink: Shrink,
    cfg: DecisionConfig,
}

fn same(path: &Path, source: &Source, path_id: u32) -> bool {
    path.path_id == path_id && path.source.same_peer(source)
}

impl LocRib {
    /// An empty Loc-RIB selecting with `cfg`.
    pub fn new(cfg: DecisionConfig) -> Self {
        Self {
            dests: Map::default(),
            shrink: Shrink::default(),
            cfg,
        }
    }

    /// The decision options.
    pub fn config(&self) -> &DecisionConfig {
        &self.cfg
    }

    /// Adds `path` for `prefix`, replacing the path with the same source
    /// and Path Identifier; returns the selection change, if any.
    pub fn upsert(
        &mut self,
        prefix: IpPrefix,
        path: Path,
        igp: &dyn IgpCost,
    ) -> Option<BestPathChange> {
        self.replace(prefix, path, igp).1
    }

    /// [`LocRib::upsert`], also saying whether a path of that source and
    /// Path Identifier was there before.
    pub(super) fn replace(
        &mut self,
        prefix: IpPrefix,
        path: Path,
        igp: &dyn IgpCost,
    ) -> (bool, Option<BestPathChange>) {
        let dest = self.dests.entry(prefix).or_default();
        let old = dest.selection();
        let had = match dest
            .paths
            .iter_mut()
            .find(|p| same(p, &path.source, path.path_id))
        {
            Some(slot) => {
                *slot = path;
                true
            }
            None => {
                // The first path fits inline; beyond it, room for exactly
                // one more (a push would reserve room for several).
                dest.paths.reserve_exact(1);
                dest.paths.push(path);
                false
            }
        };
        (had, Self::reselect(prefix, dest, old, &self.cfg, igp))
    }

    /// Removes the path of `source` with `path_id` for `prefix`; returns
    /// the selection change, if any.
    pub fn remove(
        &mut self,
        prefix: IpPrefix,
        source: &Source,
        path_id: u32,
        igp: &dyn IgpCost,
    ) -> Option<BestPathChange> {
        self.take(prefix, source, path_id, igp).1
    }

    /// [`LocRib::remove`], also saying whether there was such a path.
    pub(super) fn take(
        &mut self,
        prefix: IpPrefix,
        source: &Source,
        path_id: u32,
        igp: &dyn IgpCost,
    ) -> (bool, Option<BestPathChange>) {
        let Entry::Occupied(mut slot) = self.dests.entry(prefix) else {
            return (false, None);
        };
        let dest = slot.get_mut();
        let Some(at) = dest.paths.iter().position(|p| same(p, source, path_id)) else {
            return (false, None);
        };
        let old = dest.selection();
        dest.paths.remove(at);
        dest.selected = dest.selected.min(dest.paths.len());
        let change = Self::reselect(prefix, dest, old, &self.cfg, igp);
        if dest.paths.is_empty() {
            slot.remove();
            self.shrink.after_remove(&mut self.dests);
        }
        (true, change)
    }

    /// Every path from the peer `source`, with its key: a walk of the
    /// whole table (for the peer's bulk operations, as BIRD walks its
    /// table).
    pub(super) fn paths_of<'a>(
        &'a self,
        source: &'a Source,
    ) -> impl Iterator<Item = (RouteKey, &'a Path)> + 'a {
        self.dests.iter().flat_map(move |(prefix, d)| {
            d.paths
                .iter()
                .filter(|p| p.source.same_peer(source))
                .map(move |p| {
                    let key = RouteKey {
                        prefix: *prefix,
                        path_id: p.path_id,
                    };
                    (key, p)
                })
        })
    }

    /// Removes every path from the peer `source` whose key `pick` chooses,
    /// in one walk of the table; returns the selection changes.
    pub(super) fn remove_of(
        &mut self,
        source: &Source,
        pick: impl Fn(&RouteKey) -> bool,
        igp: &dyn IgpCost,
    ) -> Vec<BestPathChange> {
        let cfg = self.cfg;
        let mut changes = Vec::new();
        let goes = |prefix: IpPrefix, p: &Path| {
            p.source.same_peer(source)
                && pick(&RouteKey {
                    prefix,
                    path_id: p.path_id,
                })
        };
        self.dests.retain(|prefix, dest| {
            if !dest.paths.iter().any(|p| goes(*prefix, p)) {
                return true;
            }
            let old = dest.selection();
            dest.paths.retain(|p| !goes(*prefix, p));
            dest.selected = dest.selected.min(dest.paths.len());
            changes.extend(Self::reselect(*prefix, dest, old, &cfg, igp));
            !dest.paths.is_empty()
        });
        shrink_if_sparse(&mut self.dests);
        changes
    }

    /// Runs the decision process again for every destination (after the
    /// IGP costs changed); returns the changes.
    pub fn reselect_all(&mut self, igp: &dyn IgpCost) -> Vec<BestPathChange> {
        let cfg = self.cfg;
        self.dests
            .iter_mut()
            .filter_map(|(prefix, dest)| {
                let old = dest.selection();
                Self::reselect(*prefix, dest, old, &cfg, igp)
            })
            .collect()
    }

    fn reselect(
        prefix: IpPrefix,
        dest: &mut Destination,
        old: Paths,
        cfg: &DecisionConfig,
        igp: &dyn IgpCost,
    ) -> Option<BestPathChange> {
        match dest.paths.as_slice() {
            // Most destinations have one path: it is the selection when
            // its next hop resolves (§9.1.2.1), and nothing moves.
            [] => dest.selected = 0,
            [only] => dest.selected = usize::from(igp.cost(&only.next_hop()).is_some()),
            _ => Self::order(dest, cfg, igp),
        }
        let new = dest.paths.get(..dest.selected).unwrap_or(&[]);
        let kind = match (old.is_empty(), new.is_empty()) {
            _ if old.as_slice() == new => return None,
            (true, _) => ChangeKind::Added,
            (false, true) => ChangeKind::Removed,
            (false, false) => ChangeKind::Changed,
        };
        Some(BestPathChange {
            prefix,
            kind,
            best: new.iter().cloned().collect(),
        })
    }

    /// Runs the decision process over several paths and puts the
    /// selection first, best first.
    fn order(dest: &mut Destination, cfg: &DecisionConfig, igp: &dyn IgpCost) {
        let selection = Candidates::new(&dest.paths, cfg, igp).select(cfg);
        let mut rest: Vec<Option<Path>> = std::mem::take(&mut dest.paths)
            .into_iter()
            .map(Some)
            .collect();
        // Exactly as many as there are (a collected Vec would reserve
        // room for four).
        let mut paths = Paths::with_capacity(rest.len());
        paths.extend(
            selection
                .multipath
                .iter()
                .filter_map(|i| rest.get_mut(*i).and_then(Option::take)),
        );
        dest.selected = paths.len();
        paths.extend(rest.into_iter().flatten());
        dest.paths = paths;
    }

    /// The selected paths for `prefix`, best first; empty if none.
    pub fn best(&self, prefix: &IpPrefix) -> &[Path] {
        self.dests
            .get(prefix)
            .and_then(|d| d.paths.get(..d.selected))
            .unwrap_or(&[])
    }

    /// Every candidate path for `prefix`, selected ones first.
    pub fn paths(&self, prefix: &IpPrefix) -> &[Path] {
        self.dests.get(prefix).map_or(&[], |d| d.paths.as_slice())
    }

    /// Every destination with a selection, and its selected paths.
    pub fn iter_best(&self) -> impl Iterator<Item = (IpPrefix, &[Path])> {
        self.dests.iter().filter_map(|(p, d)| {
            d.paths
                .get(..d.selected)
                .filter(|s| !s.is_empty())
                .map(|s| (*p, s))
        })
    }

    /// How many candidate paths (accepted by import policy) each peer
    /// contributes, by peer address; local routes are not counted.
    pub fn accepted_by_peer(&self) -> std::collections::HashMap<std::net::IpAddr, usize> {
        let mut out = std::collections::HashMap::new();
        for d in self.dests.values() {
            for p in &d.paths {
                if p.source.kind != super::path::PeerKind::Local {
                    *out.entry(p.source.address).or_insert(0) += 1;
                }
            }
        }
        out
    }

    /// Number of destinations holding any path.
    pub fn len(&self) -> usize {
        self.dests.len()
    }

    /// Whether no destination holds a path.
    pub fn is_empty(&self) -> bool {
        self.dests.is_empty()
    }
}
