//! Interned path attribute sets (the sharing RFC 4271 §9.2 packing relies
//! on; BIRD `rta_lookup`, FRR `bgp_attr_intern`).
//!
//! Owns the table from attribute-set value to the one shared
//! [`AttrSet`] holding it. Routes with equal attributes hold clones of
//! one `Arc`, so equality between them is a pointer comparison and a
//! table of many routes costs one allocation per distinct set. Sets are
//! interned without MP_REACH_NLRI / MP_UNREACH_NLRI and without NEXT_HOP:
//! those travel per route. The interner is owned by the RIB; it is not a
//! global and needs no lock.

use std::sync::Arc;

use crate::wire::PathAttributes;

use super::hash::Map;

/// A shared, immutable attribute set.
pub type AttrSet = Arc<PathAttributes>;

/// The attribute-set interner.
#[derive(Debug, Default)]
pub struct Interner {
    sets: Map<AttrSet, ()>,
}

impl Interner {
    /// An empty interner.
    pub fn new() -> Self {
        Self::default()
    }

    /// The shared set equal to `attrs`, creating it if it is new.
    pub fn intern(&mut self, attrs: PathAttributes) -> AttrSet {
        if let Some((set, ())) = self.sets.get_key_value(&attrs) {
            return Arc::clone(set);
        }
        let set = Arc::new(attrs);
        self.sets.insert(Arc::clone(&set), ());
        set
    }

    /// The shared set equal to `*attrs`, reusing `attrs` itself when it
    /// is new, so an already shared value is never copied.
    pub fn intern_arc(&mut self, attrs: AttrSet) -> AttrSet {
        if let Some((set, ())) = self.sets.get_key_value(&*attrs) {
            return Arc::clone(set);
        }
        self.sets.insert(Arc::clone(&attrs), ());
        attrs
    }

    /// Number of distinct sets held.
    pub fn len(&self) -> usize {
        self.sets.len()
    }

    /// Whether no set is held.
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// Drops the sets no route uses any more (held only by the interner);
    /// returns how many were dropped.
    pub fn purge(&mut self) -> usize {
        let before = self.sets.len();
        self.sets.retain(|set, ()| Arc::strong_count(set) > 1);
        before - self.sets.len()
    }
}
