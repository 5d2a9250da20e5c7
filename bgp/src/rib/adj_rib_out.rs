//! Adj-RIB-Out: per peer, what it was sent and what it still must be
//! sent (RFC 4271 §3.2, §9.2).
//!
//! Owns the record of every route advertised to one peer (after export
//! rules and policy) and the pending difference between that and what
//! the Loc-RIB wants the peer to have. Offering the state a peer already
//! has cancels the pending change, so a flap that ends where it started
//! produces no UPDATE. It does not encode; [`super::generate`] does.

use crate::wire::{Family, NextHop};

use super::hash::{Map, Set, shrink_if_sparse};
use super::intern::AttrSet;
use super::prefix::IpPrefix;

/// One route as advertised.
#[derive(Debug, Clone)]
pub struct Advert {
    /// Interned attributes, as sent (without NEXT_HOP and MP attributes).
    pub attrs: AttrSet,
    /// The next hop sent.
    pub next_hop: NextHop,
}

impl PartialEq for Advert {
    fn eq(&self, other: &Self) -> bool {
        self.next_hop == other.next_hop
            && (AttrSet::ptr_eq(&self.attrs, &other.attrs) || self.attrs == other.attrs)
    }
}

impl Eq for Advert {}

/// One peer's Adj-RIB-Out.
#[derive(Debug, Default)]
pub struct AdjRibOut {
    sent: Map<IpPrefix, Advert>,
    pending: Map<IpPrefix, Option<Advert>>,
    /// Pending because the peer asked for them again ([`AdjRibOut::resend`]).
    resending: Set<IpPrefix>,
    /// How many changes the current burst may queue ([`AdjRibOut::expect`]).
    burst: usize,
}

impl AdjRibOut {
    /// An empty Adj-RIB-Out.
    pub fn new() -> Self {
        Self::default()
    }

    /// The peer should now have `want` for `prefix` (`None`: nothing).
    pub fn offer(&mut self, prefix: IpPrefix, want: Option<Advert>) {
        // The empty checks spare a hash and a probe for each route a peer
        // is not sent (split horizon, iBGP to iBGP), the common case.
        let sent = if self.sent.is_empty() {
            None
        } else {
            self.sent.get(&prefix)
        };
        let resending = !self.resending.is_empty() && self.resending.contains(&prefix);
        if sent == want.as_ref() && !resending {
            if !self.pending.is_empty() {
                self.pending.remove(&prefix);
            }
        } else {
            if self.burst > 0 {
                self.pending.reserve(self.burst);
                self.burst = 0;
            }
            self.pending.insert(prefix, want);
        }
    }

    /// Up to `changes` offers follow (0: the burst is over): the first one
    /// that queues anything makes room for all of them at once, so a
    /// whole table is not queued through a dozen rehashes; a peer that is
    /// sent none of it allocates nothing.
    pub fn expect(&mut self, changes: usize) {
        self.burst = changes;
    }

    /// Number of prefixes with a change not yet sent.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The pending changes (`None`: withdraw), left pending until
    /// [`AdjRibOut::commit`]. Borrowed, not collected: a 100k table's
    /// adverts copied out (a reference count each) only to be dropped
    /// once packed took over a quarter of a flush.
    pub fn pending(&self) -> impl Iterator<Item = (IpPrefix, Option<&Advert>)> + '_ {
        self.pending.iter().map(|(p, a)| (*p, a.as_ref()))
    }

    /// Records the pending changes as sent.
    pub fn commit(&mut self) {
        self.resending.clear();
        // Room for what is new (withdrawals need none).
        self.sent
            .reserve(self.pending.len().saturating_sub(self.sent.len()));
        for (prefix, advert) in self.pending.drain() {
            match advert {
                Some(a) => {
                    self.sent.insert(prefix, a);
                }
                None => {
                    self.sent.remove(&prefix);
                }
            }
        }
        shrink_if_sparse(&mut self.sent);
        self.release_pending();
    }

    /// A burst (a whole table at session start) leaves the pending map
    /// with room for all of it; give that back once it is sent.
    fn release_pending(&mut self) {
        if self.pending.capacity() > 64 {
            self.pending.shrink_to_fit();
            self.resending.shrink_to_fit();
        }
    }

    /// Takes the pending changes (`None`: withdraw) and records them as
    /// sent.
    pub fn take_pending(&mut self) -> Vec<(IpPrefix, Option<Advert>)> {
        self.resending.clear();
        let changes: Vec<_> = self.pending.drain().collect();
        for (prefix, advert) in &changes {
            match advert {
                Some(a) => {
                    self.sent.insert(*prefix, a.clone());
                }
                None => {
                    self.sent.remove(prefix);
                }
            }
        }
        shrink_if_sparse(&mut self.sent);
        self.release_pending();
        changes
    }

    /// The peer asked for `family` again (ROUTE-REFRESH, RFC 2918 §4):
    /// everything it was sent of that family becomes pending again, and
    /// stays pending even if the Loc-RIB offers the same state. Prefixes with a change already pending keep
    /// that change. Returns how many were queued.
    pub fn resend(&mut self, family: Family) -> usize {
        let again: Vec<IpPrefix> = self
            .sent
            .keys()
            .filter(|p| p.family() == family && !self.pending.contains_key(p))
            .copied()
            .collect();
        for prefix in &again {
            if let Some(advert) = self.sent.get(prefix) {
                self.pending.insert(*prefix, Some(advert.clone()));
                self.resending.insert(*prefix);
            }
        }
        again.len()
    }

    /// What `prefix` was last sent as.
    pub fn sent(&self, prefix: &IpPrefix) -> Option<&Advert> {
        self.sent.get(prefix)
    }

    /// Number of prefixes advertised.
    pub fn len(&self) -> usize {
        self.sent.len()
    }

    /// Whether nothing is advertised.
    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }

    /// Forgets everything (the session went down: the peer dropped it).
    pub fn clear(&mut self) {
        // A new value, not `clear()`: the tables' memory goes too.
        *self = Self::default();
    }
}
