//! The hash of the RIB's per-prefix tables (Adj-RIB-In, Loc-RIB,
//! Adj-RIB-Out): a multiplicative word hash in the style of rustc's
//! `FxHasher`, seeded per table from the standard library's random keys.
//!
//! Every received prefix is looked up several times on its way through
//! the RIB; with SipHash (std's default) hashing was the largest single
//! cost of a 100k-route table. Keys here are prefixes and Path
//! Identifiers, a few machine words, which this hash mixes in a couple of
//! instructions each. It is not a keyed PRF: a peer that crafted
//! colliding prefixes could slow its own lookups, which its max-prefix
//! limit bounds, as it bounds the table itself (BIRD and FRR hash
//! prefixes with fixed functions too).
//!
//! Also when those tables give memory back ([`shrink_if_sparse`] at once
//! after a bulk removal, [`Shrink`] amortised for removals one by one).

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};

/// A `HashMap` with the RIB's hash.
pub(crate) type Map<K, V> = HashMap<K, V, RibHash>;
/// A `HashSet` with the RIB's hash.
pub(crate) type Set<K> = HashSet<K, RibHash>;

/// Gives memory back at once if a table is mostly empty (a session down):
/// hashbrown never shrinks by itself. Shrinks when under a quarter full,
/// to twice what it holds.
pub(crate) fn shrink_if_sparse<K: Eq + std::hash::Hash, V>(map: &mut Map<K, V>) {
    let cap = map.capacity();
    if cap > 1024 && map.len() < cap / 4 {
        map.shrink_to(map.len() * 2);
    }
}

/// When a table that routes leave one by one gives its memory back: once
/// it is under a quarter full *and* as many removals as it has room for
/// have happened below that line. A peer that withdraws its whole table
/// and announces it again (a static protocol toggled, a policy reload
/// upstream) refills the same buckets instead of growing through a dozen
/// rehashes into fresh pages (a 100k refill: median 70 ms instead of 84,
/// eight alternating runs), while a table that stays small under churn
/// still shrinks, each shrink paid for by as many removals as it costs.
/// The price: an emptied table that sees no more removals keeps its
/// buckets (at most its peak size) until it is refilled or dropped.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Shrink {
    sparse_removals: usize,
}

impl Shrink {
    /// An entry just left `map`.
    pub(crate) fn after_remove<K: Eq + std::hash::Hash, V>(&mut self, map: &mut Map<K, V>) {
        if self.due(map.len(), map.capacity()) {
            map.shrink_to(map.len() * 2);
        }
    }

    /// An entry just left a table that now holds `len` in room for
    /// `cap`: whether to shrink it now (the caller does).
    pub(crate) fn due(&mut self, len: usize, cap: usize) -> bool {
        if cap <= 1024 || len >= cap / 4 {
            self.sparse_removals = 0;
            return false;
        }
        self.sparse_removals += 1;
        if self.sparse_removals >= cap {
            self.sparse_removals = 0;
            return true;
        }
        false
    }
}

/// The multiplier of rustc-hash 2 (an odd constant with good bit spread).
const K: u64 = 0xf135_7aea_2e62_a9c5;

/// Builds [`WordHasher`]s from a seed drawn once per table.
#[derive(Debug, Clone, Copy)]
pub struct RibHash {
    seed: u64,
}

impl Default for RibHash {
    fn default() -> Self {
        Self {
            seed: RandomState::new().hash_one(0x7ab_b1e5_u64),
        }
    }
}

impl BuildHasher for RibHash {
    type Hasher = WordHasher;

    fn build_hasher(&self) -> WordHasher {
        WordHasher { hash: self.seed }
    }
}

/// The hasher: each word is added, then the state multiplied by [`K`].
#[derive(Debug, Clone, Copy)]
pub struct WordHasher {
    hash: u64,
}

impl WordHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = self.hash.wrapping_add(word).wrapping_mul(K);
    }

    /// A 32-bit hash: the high half of the product, its best bits.
    #[inline]
    pub(crate) fn high_half(&self) -> u32 {
        (self.hash >> 32) as u32
    }
}

impl Hasher for WordHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 56));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    /// The low bits pick the bucket and the high bits the tag, in
    /// hashbrown; the multiply leaves its best bits high, so rotate them
    /// down (as rustc-hash 2 does).
    #[inline]
    fn finish(&self) -> u64 {
        self.hash.rotate_left(26)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rib::IpPrefix;

    fn hash_of(b: &RibHash, p: &IpPrefix) -> u64 {
        b.hash_one(p)
    }

    #[test]
    fn distinct_prefixes_spread_over_buckets() {
        let b = RibHash::default();
        let mut buckets = std::collections::HashSet::new();
        for i in 0..4096u32 {
            let p: IpPrefix = format!("{}/26", std::net::Ipv4Addr::from(0x0a00_0000 + (i << 6)))
                .parse()
                .unwrap();
            buckets.insert(hash_of(&b, &p) & 4095);
        }
        // A uniform hash fills about 63% of 4096 buckets with 4096 keys.
        assert!(buckets.len() > 2400, "{} buckets used", buckets.len());
    }

    #[test]
    fn a_table_that_empties_gives_its_memory_back() {
        let mut m: Map<u32, u64> = Map::default();
        m.extend((0..100_000).map(|i| (i, 0)));
        let full = m.capacity();
        shrink_if_sparse(&mut m);
        assert_eq!(m.capacity(), full, "full: kept");
        m.retain(|k, _| *k >= 99_000);
        shrink_if_sparse(&mut m);
        assert!(m.capacity() < full / 16, "{} of {full}", m.capacity());
        assert_eq!(m.len(), 1000);
        assert!((99_000..100_000).all(|i| m.contains_key(&i)));
    }

    fn remove_one(m: &mut Map<u32, u64>, shrink: &mut Shrink, k: u32) {
        if m.remove(&k).is_some() {
            shrink.after_remove(m);
        }
    }

    #[test]
    fn a_table_withdrawn_route_by_route_keeps_its_buckets_for_the_refill() {
        let mut m: Map<u32, u64> = Map::default();
        let mut shrink = Shrink::default();
        m.extend((0..100_000).map(|i| (i, 0)));
        let full = m.capacity();
        for i in 0..100_000 {
            remove_one(&mut m, &mut shrink, i);
        }
        assert!(m.is_empty());
        // hashbrown counts a removal's tombstone against the room left,
        // so "kept" is the same buckets, somewhat less room.
        assert!(
            m.capacity() > full / 2,
            "emptied: kept ({} of {full})",
            m.capacity()
        );
        m.extend((0..100_000).map(|i| (i, 1)));
        assert_eq!(m.capacity(), full, "refilled into the same buckets");
    }

    #[test]
    fn a_small_table_under_churn_still_gives_its_memory_back() {
        let mut m: Map<u32, u64> = Map::default();
        let mut shrink = Shrink::default();
        m.extend((0..100_000).map(|i| (i, 0)));
        let full = m.capacity();
        for i in 0..99_000 {
            remove_one(&mut m, &mut shrink, i);
        }
        assert!(m.capacity() > full / 2);
        // A thousand routes that keep changing: each removal below the
        // quarter line counts, and after as many as the table has room
        // for, it shrinks.
        let mut k = 100_000;
        let limit = 100_000 + 2 * u32::try_from(full).unwrap();
        while m.capacity() > full / 2 && k < limit {
            m.insert(k, 0);
            remove_one(&mut m, &mut shrink, k);
            k += 1;
        }
        assert!(m.capacity() < full / 16, "{} of {full}", m.capacity());
        assert_eq!(m.len(), 1000);
    }

    #[test]
    fn equal_keys_hash_equal_and_length_counts() {
        let b = RibHash::default();
        let p: IpPrefix = "10.0.0.0/26".parse().unwrap();
        let q: IpPrefix = "10.0.0.0/27".parse().unwrap();
        assert_eq!(hash_of(&b, &p), hash_of(&b, &p));
        assert_ne!(hash_of(&b, &p), hash_of(&b, &q));
        let mut short = b.build_hasher();
        short.write(&[1]);
        let mut long = b.build_hasher();
        long.write(&[1, 0]);
        assert_ne!(short.finish(), long.finish());
    }
}
