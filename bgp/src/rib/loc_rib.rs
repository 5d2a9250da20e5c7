//! Loc-RIB: for each destination, every usable path (after import policy)
//! and the ones the decision process selected (RFC 4271 §3.2, §9.1.2).
//!
//! Owns the candidate paths per prefix — from every peer's Adj-RIB-In and
//! from local origination — and reports each change of the selected
//! path(s) as a [`BestPathChange`]: the stream the agent's dataplane
//! follows and the input of every peer's Adj-RIB-Out. It does not apply
//! policy and does not know peers beyond a path's [`Source`].

use std::net::IpAddr;

use smallvec::SmallVec;

use super::adj_rib_in::RouteKey;
use super::decision::{Candidates, DecisionConfig, IgpCost};
use super::hash::Shrink;
use super::path::{Path, Source};
use super::prefix::IpPrefix;
use super::slot_index::SlotIndex;

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
/// path in the slot costs less than a heap block per destination).
type Paths = SmallVec<[Path; 1]>;

/// One destination, in its slot; a slot whose paths are empty is free.
#[derive(Debug)]
struct Destination {
    prefix: IpPrefix,
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
///
/// Destinations live in slots of one vector, in the order they arrived
/// (BIRD's table takes its nodes from a slab the same way), and a hash
/// index maps each prefix to its slot: 8 octets per prefix in the hash
/// table ([`SlotIndex`]: the slot number and a hash, the prefix read
/// from the slot) instead of the whole destination, and a first table
/// written front to back instead of into random lines of a table many
/// times the size (`rib_bench`, 8 alternating runs against a hash table
/// of destinations: first table median 41.4 -> 30.4 ms, its withdrawal
/// 35.2 -> 25.5 ms, announced again 41.2 -> 32.5 ms). Removed
/// destinations' slots are reused first; the vector is compacted when the
/// index shrinks (`Shrink`'s policy), or at once after a bulk removal
/// that leaves it mostly empty.
#[derive(Debug, Default)]
pub struct LocRib {
    index: SlotIndex,
    slots: Vec<Destination>,
    /// Free slots, reused last-freed first.
    free: Vec<u32>,
    shrink: Shrink,
    cfg: DecisionConfig,
}

/// Which prefix a slot holds, for the index.
fn prefix_in(slots: &[Destination]) -> impl Fn(u32) -> Option<IpPrefix> + '_ {
    |at| slots.get(at as usize).map(|d| d.prefix)
}

fn same(path: &Path, source: &Source, path_id: u32) -> bool {
    path.path_id == path_id && path.source.same_peer(source)
}

impl LocRib {
    /// An empty Loc-RIB selecting with `cfg`.
    pub fn new(cfg: DecisionConfig) -> Self {
        Self {
            cfg,
            ..Self::default()
        }
    }

    /// The slot of `prefix`, taken if it has none; `None` only when the
    /// slots' numbers (32 bits) have run out.
    fn slot_or_insert(&mut self, prefix: IpPrefix) -> Option<&mut Destination> {
        let (slots, free) = (&self.slots, &mut self.free);
        let mut pushed = false;
        let at = self.index.get_or_insert(&prefix, prefix_in(slots), || {
            free.pop().or_else(|| {
                pushed = true;
                u32::try_from(slots.len()).ok()
            })
        })?;
        if pushed {
            self.slots.push(Destination {
                prefix,
                paths: Paths::new(),
                selected: 0,
            });
        }
        let dest = self.slots.get_mut(at as usize)?;
        dest.prefix = prefix;
        Some(dest)
    }

    /// The destination of `prefix`, if it has paths.
    fn get(&self, prefix: &IpPrefix) -> Option<&Destination> {
        self.index
            .get(prefix, prefix_in(&self.slots))
            .and_then(|at| self.slots.get(at as usize))
    }

    /// The destinations holding paths, in slot order.
    fn live(&self) -> impl Iterator<Item = &Destination> {
        self.slots.iter().filter(|d| !d.paths.is_empty())
    }

    /// Slot `at` was emptied (its prefix already left the index): free it,
    /// and compact the slots when the index is due to shrink.
    fn release(&mut self, at: u32) {
        if self.shrink.due(self.index.len(), self.index.capacity()) {
            self.compact();
        } else if self.index.is_empty() {
            // Emptied: the next table fills its slots front to back
            // again, whatever order this one left in.
            self.slots.clear();
            self.free.clear();
        } else {
            self.free.push(at);
        }
    }

    /// Moves the live destinations to the front of fresh slots, renumbers
    /// the index, and gives the rest back.
    fn compact(&mut self) {
        let old = std::mem::take(&mut self.slots);
        self.free = Vec::new();
        let mut renumber = vec![u32::MAX; old.len()];
        let mut slots = Vec::with_capacity(self.index.len());
        for (at, dest) in old.into_iter().enumerate() {
            if !dest.paths.is_empty()
                && let (Some(to), Ok(n)) = (renumber.get_mut(at), u32::try_from(slots.len()))
            {
                *to = n;
                slots.push(dest);
            }
        }
        self.index.retain(|at| {
            *at = renumber.get(*at as usize).copied().unwrap_or(u32::MAX);
            *at != u32::MAX
        });
        self.index.shrink_to(self.index.len() * 2);
        self.slots = slots;
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
        let cfg = self.cfg;
        let Some(dest) = self.slot_or_insert(prefix) else {
            return (false, None);
        };
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
        (had, Self::reselect(dest, old, &cfg, igp))
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
        let Some(found) = self.index.find(&prefix, prefix_in(&self.slots)) else {
            return (false, None);
        };
        let at = found.at();
        let Some(dest) = self.slots.get_mut(at as usize) else {
            return (false, None);
        };
        let Some(i) = dest.paths.iter().position(|p| same(p, source, path_id)) else {
            return (false, None);
        };
        let old = dest.selection();
        dest.paths.remove(i);
        dest.selected = dest.selected.min(dest.paths.len());
        let change = Self::reselect(dest, old, &self.cfg, igp);
        if dest.paths.is_empty() {
            // An emptied slot keeps no heap block of paths.
            dest.paths = Paths::new();
            found.remove();
            self.release(at);
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
        self.live().flat_map(move |d| {
            d.paths
                .iter()
                .filter(|p| p.source.same_peer(source))
                .map(move |p| {
                    let key = RouteKey {
                        prefix: d.prefix,
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
        let mut emptied = Vec::new();
        for (at, dest) in self.slots.iter_mut().enumerate() {
            let prefix = dest.prefix;
            if !dest.paths.iter().any(|p| goes(prefix, p)) {
                continue;
            }
            let old = dest.selection();
            dest.paths.retain(|p| !goes(prefix, p));
            dest.selected = dest.selected.min(dest.paths.len());
            changes.extend(Self::reselect(dest, old, &cfg, igp));
            if dest.paths.is_empty() {
                dest.paths = Paths::new();
                emptied.extend(u32::try_from(at).ok());
            }
        }
        if !emptied.is_empty() {
            if emptied.len() == self.index.len() {
                // All gone (a session down): the memory goes too.
                self.index = SlotIndex::default();
                self.slots = Vec::new();
                self.free = Vec::new();
                return changes;
            }
            let slots = &self.slots;
            self.index
                .retain(|at| slots.get(*at as usize).is_some_and(|d| !d.paths.is_empty()));
            self.free.extend(emptied.iter().rev());
            let cap = self.index.capacity();
            if cap > 1024 && self.index.len() < cap / 4 {
                self.compact();
            }
        }
        changes
    }

    /// Runs the decision process again for every destination (after the
    /// IGP costs changed); returns the changes.
    pub fn reselect_all(&mut self, igp: &dyn IgpCost) -> Vec<BestPathChange> {
        let cfg = self.cfg;
        self.slots
            .iter_mut()
            .filter(|d| !d.paths.is_empty())
            .filter_map(|dest| {
                let old = dest.selection();
                Self::reselect(dest, old, &cfg, igp)
            })
            .collect()
    }

    fn reselect(
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
            prefix: dest.prefix,
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
        self.get(prefix)
            .and_then(|d| d.paths.get(..d.selected))
            .unwrap_or(&[])
    }

    /// Every candidate path for `prefix`, selected ones first.
    pub fn paths(&self, prefix: &IpPrefix) -> &[Path] {
        self.get(prefix).map_or(&[], |d| d.paths.as_slice())
    }

    /// Every destination with a selection, and its selected paths.
    pub fn iter_best(&self) -> impl Iterator<Item = (IpPrefix, &[Path])> {
        self.live().filter_map(|d| {
            d.paths
                .get(..d.selected)
                .filter(|s| !s.is_empty())
                .map(|s| (d.prefix, s))
        })
    }

    /// How many candidate paths (accepted by import policy) each peer
    /// contributes, by peer address; local routes are not counted.
    pub fn accepted_by_peer(&self) -> std::collections::HashMap<IpAddr, usize> {
        let mut out = std::collections::HashMap::new();
        for d in self.live() {
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
        self.index.len()
    }

    /// Whether no destination holds a path.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::net::Ipv4Addr;
    use std::sync::Arc;

    use super::*;
    use crate::rib::decision::ZeroCost;
    use crate::rib::intern::Interner;
    use crate::rib::path::{PeerKind, RouteData};
    use crate::wire::{NextHop, PathAttributes};

    fn source(last: u8) -> Arc<Source> {
        Arc::new(Source {
            kind: PeerKind::Internal,
            address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)),
            router_id: Ipv4Addr::new(10, 0, 0, last),
            asn: 64512,
            rr_client: false,
        })
    }

    fn prefix(i: u32) -> IpPrefix {
        format!("{}/26", Ipv4Addr::from(0x0a00_0000 + (i << 6)))
            .parse()
            .unwrap()
    }

    fn path(source: &Arc<Source>) -> Path {
        let attrs = Interner::new().intern(PathAttributes::default());
        Path {
            source: Arc::clone(source),
            data: RouteData::shared(attrs, NextHop::V4(Ipv4Addr::new(192, 0, 2, 9))),
            path_id: 0,
        }
    }

    /// Every prefix of `want` is found with one path, and nothing else.
    fn holds_exactly(rib: &LocRib, want: &[u32], n: u32) {
        assert_eq!(rib.len(), want.len());
        assert_eq!(rib.iter_best().count(), want.len());
        for i in 0..n {
            let expected = usize::from(want.contains(&i));
            assert_eq!(rib.paths(&prefix(i)).len(), expected, "prefix {i}");
            assert_eq!(rib.best(&prefix(i)).len(), expected, "prefix {i}");
        }
        for (p, best) in rib.iter_best() {
            assert_eq!(best.len(), 1);
            assert!(rib.get(&p).is_some_and(|d| d.prefix == p));
        }
    }

    #[test]
    fn an_emptied_table_refills_the_same_slots() {
        let (mut rib, a) = (LocRib::default(), source(2));
        for i in 0..2000 {
            rib.upsert(prefix(i), path(&a), &ZeroCost);
        }
        for i in 0..2000 {
            assert!(rib.remove(prefix(i), &a, 0, &ZeroCost).is_some());
        }
        assert!(rib.is_empty());
        assert!(rib.slots.is_empty(), "emptied: filled from the front again");
        assert!(rib.slots.capacity() >= 2000, "room kept for the refill");
        // Half of it again, out of order: then removed in another order,
        // its slots are reused.
        for i in (0..2000).rev() {
            rib.upsert(prefix(i), path(&a), &ZeroCost);
        }
        for i in (0..2000).filter(|i| i % 2 == 0) {
            rib.remove(prefix(i), &a, 0, &ZeroCost);
        }
        for i in (0..2000).filter(|i| i % 2 == 0) {
            rib.upsert(prefix(i), path(&a), &ZeroCost);
        }
        assert_eq!(rib.slots.len(), 2000, "no slot added");
        assert!(rib.free.is_empty());
        holds_exactly(&rib, &(0..2000).collect::<Vec<_>>(), 2000);
    }

    #[test]
    fn removals_one_by_one_compact_the_slots_and_keep_the_rest() {
        let (mut rib, a) = (LocRib::default(), source(2));
        let n = 20_000;
        for i in 0..n {
            rib.upsert(prefix(i), path(&a), &ZeroCost);
        }
        // Remove all but every hundredth, then churn the survivors' room
        // until the policy compacts.
        for i in (0..n).filter(|i| i % 100 != 0) {
            rib.remove(prefix(i), &a, 0, &ZeroCost);
        }
        for _ in 0..4 {
            for i in 0..n {
                if i % 100 != 50 {
                    continue;
                }
                rib.upsert(prefix(i), path(&a), &ZeroCost);
                rib.remove(prefix(i), &a, 0, &ZeroCost);
            }
            for i in 0..40_000 {
                rib.upsert(prefix(n + i), path(&a), &ZeroCost);
                rib.remove(prefix(n + i), &a, 0, &ZeroCost);
            }
        }
        let kept: Vec<u32> = (0..n).filter(|i| i % 100 == 0).collect();
        assert!(
            rib.slots.len() < 1000,
            "compacted: {} slots",
            rib.slots.len()
        );
        holds_exactly(&rib, &kept, n);
    }

    #[test]
    fn a_peer_removed_in_bulk_leaves_the_others_findable() {
        let (mut rib, a, b) = (LocRib::default(), source(2), source(3));
        let n = 10_000;
        for i in 0..n {
            rib.upsert(prefix(i), path(&a), &ZeroCost);
            if i % 50 == 0 {
                rib.upsert(prefix(i), path(&b), &ZeroCost);
            }
        }
        assert_eq!(rib.paths_of(&a).count(), n as usize);
        let changes = rib.remove_of(&a, |_| true, &ZeroCost);
        assert_eq!(changes.len(), n as usize);
        let removed = changes.iter().filter(|c| c.kind == ChangeKind::Removed);
        assert_eq!(removed.count(), (n - n / 50) as usize);
        let kept: Vec<u32> = (0..n).filter(|i| i % 50 == 0).collect();
        assert!(rib.slots.len() <= kept.len(), "compacted");
        holds_exactly(&rib, &kept, n);
        assert_eq!(rib.paths_of(&b).count(), kept.len());
        // New destinations after the compaction land in fresh slots.
        rib.upsert(prefix(n + 1), path(&a), &ZeroCost);
        assert_eq!(rib.best(&prefix(n + 1)).len(), 1);
        assert_eq!(rib.len(), kept.len() + 1);
    }
}
