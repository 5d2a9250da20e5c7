//! The Loc-RIB's index: which slot holds a prefix's destination.
//!
//! A hash table of slot numbers whose keys are not stored in it: each
//! entry is the slot number and the key's 32-bit hash, 8 octets, and the
//! prefix it stands for is read from the slot itself (the caller's
//! `prefix_of`) only when the stored hash matches. A 100k-route table's
//! index is then 1.2 MB instead of 3.3 MB with the prefix beside its slot
//! number, small enough to stay in a core's L2 cache while a first table
//! is written: inserting a prefix seen for the first time touches only the
//! index and the end of the slots. A lookup of a known prefix reads its
//! slot, which the caller was about to read anyway. Growing the table
//! rehashes from the stored hashes, without visiting the slots.
//!
//! Hashes come from the RIB's hash ([`RibHash`]); the 32 bits kept are
//! the high half of its product, which feed both the bucket (low bits)
//! and hashbrown's tag (top bits) of the 64-bit hash handed to the table.
//! Above 2^25 buckets the two would overlap, which only weakens the tag's
//! filtering, far beyond any routing table.

use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;
use hashbrown::hash_table::{Entry as TableEntry, OccupiedEntry};

use super::hash::RibHash;
use super::prefix::IpPrefix;

/// One entry: a slot number and its prefix's hash.
#[derive(Debug, Clone, Copy)]
struct Entry {
    at: u32,
    hash: u32,
}

impl Entry {
    fn table_hash(&self) -> u64 {
        widen(self.hash)
    }
}

/// Whether `e` stands for `prefix`, whose hash is `hash`: the stored
/// hash first, the slot's prefix only if that matches.
fn stands_for<'a>(
    hash: u32,
    prefix: &'a IpPrefix,
    prefix_of: impl Fn(u32) -> Option<IpPrefix> + 'a,
) -> impl Fn(&Entry) -> bool + 'a {
    move |e| e.hash == hash && prefix_of(e.at).as_ref() == Some(prefix)
}

/// The 64-bit hash the table sees for a 32-bit one.
fn widen(hash: u32) -> u64 {
    (u64::from(hash) << 32) | u64::from(hash)
}

/// A prefix found in the index.
pub(super) struct Found<'a>(OccupiedEntry<'a, Entry>);

impl Found<'_> {
    /// Its slot.
    pub(super) fn at(&self) -> u32 {
        self.0.get().at
    }

    /// Takes the prefix out of the index.
    pub(super) fn remove(self) {
        self.0.remove();
    }
}

/// Prefix → slot number, keyed by the slots' own prefixes.
#[derive(Debug, Default)]
pub(super) struct SlotIndex {
    table: HashTable<Entry>,
    hasher: RibHash,
}

impl SlotIndex {
    fn hash(&self, prefix: &IpPrefix) -> u32 {
        let mut h = self.hasher.build_hasher();
        prefix.hash(&mut h);
        h.high_half()
    }

    /// The slot of `prefix`; `prefix_of` says which prefix a slot holds.
    pub(super) fn get(
        &self,
        prefix: &IpPrefix,
        prefix_of: impl Fn(u32) -> Option<IpPrefix>,
    ) -> Option<u32> {
        let hash = self.hash(prefix);
        self.table
            .find(widen(hash), stands_for(hash, prefix, prefix_of))
            .map(|e| e.at)
    }

    /// The slot of `prefix`, or the one `take` gives it (`None` from
    /// `take`: nothing inserted, `None` returned).
    pub(super) fn get_or_insert(
        &mut self,
        prefix: &IpPrefix,
        prefix_of: impl Fn(u32) -> Option<IpPrefix>,
        take: impl FnOnce() -> Option<u32>,
    ) -> Option<u32> {
        let hash = self.hash(prefix);
        let eq = stands_for(hash, prefix, prefix_of);
        match self.table.entry(widen(hash), eq, Entry::table_hash) {
            TableEntry::Occupied(e) => Some(e.get().at),
            TableEntry::Vacant(e) => {
                let at = take()?;
                e.insert(Entry { at, hash });
                Some(at)
            }
        }
    }

    /// The entry of `prefix`, to read its slot and perhaps remove it with
    /// no second lookup.
    pub(super) fn find(
        &mut self,
        prefix: &IpPrefix,
        prefix_of: impl Fn(u32) -> Option<IpPrefix>,
    ) -> Option<Found<'_>> {
        let hash = self.hash(prefix);
        let eq = stands_for(hash, prefix, prefix_of);
        self.table.find_entry(widen(hash), eq).ok().map(Found)
    }

    /// Keeps the slots `keep` returns true for, which may renumber them.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&mut u32) -> bool) {
        self.table.retain(|e| keep(&mut e.at));
    }

    /// Gives back room beyond `min` entries.
    pub(super) fn shrink_to(&mut self, min: usize) {
        self.table.shrink_to(min, Entry::table_hash);
    }

    /// Number of prefixes.
    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether there are none.
    pub(super) fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Room before the table grows.
    pub(super) fn capacity(&self) -> usize {
        self.table.capacity()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn prefix(i: u32) -> IpPrefix {
        IpPrefix::new(
            std::net::Ipv4Addr::from_bits(0x0a00_0000 | i << 6).into(),
            26,
        )
        .unwrap()
    }

    #[test]
    fn finds_inserts_and_removes_by_the_slots_prefixes() {
        let mut slots: Vec<IpPrefix> = Vec::new();
        let mut index = SlotIndex::default();
        for i in 0..10_000 {
            let p = prefix(i);
            let of = |at: u32| slots.get(at as usize).copied();
            let next = u32::try_from(slots.len()).unwrap();
            let at = index.get_or_insert(&p, of, || Some(next)).unwrap();
            assert_eq!(at, next);
            slots.push(p);
        }
        let of = |at: u32| slots.get(at as usize).copied();
        assert_eq!(index.len(), 10_000);
        for i in 0..10_000 {
            assert_eq!(index.get(&prefix(i), of), Some(i));
            // Known: not inserted again.
            let again = index.get_or_insert(&prefix(i), of, || panic!("inserted twice"));
            assert_eq!(again, Some(i));
        }
        assert_eq!(index.get(&prefix(10_000), of), None);
        let found = index.find(&prefix(7), of).unwrap();
        assert_eq!(found.at(), 7);
        found.remove();
        assert!(index.find(&prefix(7), of).is_none());
        assert_eq!(index.get(&prefix(7), of), None);
        assert_eq!(index.len(), 9_999);
        // Renumbered: slot n -> n + 1 (the caller moved them).
        index.retain(|at| {
            *at += 1;
            *at % 2 == 0
        });
        slots.insert(0, prefix(99_999));
        let of = |at: u32| slots.get(at as usize).copied();
        assert_eq!(index.get(&prefix(9), of), Some(10));
        assert_eq!(index.get(&prefix(8), of), None);
        index.shrink_to(index.len());
        assert!(index.capacity() < 10_000);
        assert_eq!(index.get(&prefix(9), of), Some(10));
    }

    #[test]
    fn an_exhausted_slot_supply_inserts_nothing() {
        let mut index = SlotIndex::default();
        assert_eq!(index.get_or_insert(&prefix(1), |_| None, || None), None);
        assert!(index.is_empty());
    }
}
