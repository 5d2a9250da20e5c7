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

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};

/// A `HashMap` with the RIB's hash.
pub(crate) type Map<K, V> = HashMap<K, V, RibHash>;
/// A `HashSet` with the RIB's hash.
pub(crate) type Set<K> = HashSet<K, RibHash>;

/// Gives memory back once a table is mostly empty (a peer's table
/// withdrawn, a session down): hashbrown never shrinks by itself. Shrinks
/// when under a quarter full, to twice what it holds, so that a table
/// that empties gradually is rehashed a logarithmic number of times.
pub(crate) fn shrink_if_sparse<K: Eq + std::hash::Hash, V>(map: &mut Map<K, V>) {
    let cap = map.capacity();
    if cap > 1024 && map.len() < cap / 4 {
        map.shrink_to(map.len() * 2);
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
        for i in 0..99_000 {
            m.remove(&i);
            shrink_if_sparse(&mut m);
        }
        assert!(m.capacity() < full / 16, "{} of {full}", m.capacity());
        assert_eq!(m.len(), 1000);
        assert!((99_000..100_000).all(|i| m.contains_key(&i)));
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
