//! Adj-RIB-In: the routes one peer advertised, as received (RFC 4271
//! §3.2, §9), and graceful-restart helper staleness (RFC 4724 §4.2).
//!
//! Owns applying a decoded [`Update`] — Withdrawn Routes and NLRI for
//! IPv4, MP_REACH_NLRI / MP_UNREACH_NLRI for either family (RFC 4760),
//! ADD-PATH Path Identifiers (RFC 7911) — and answering which routes
//! changed. It keeps routes before import policy, so a policy change can
//! be re-applied without a route refresh.
//!
//! Graceful restart as helper: when a restarting peer's session goes
//! down, [`AdjRibIn::mark_stale`] keeps its routes of the families it
//! preserved, marked stale, until a deadline the caller gives; a route
//! announced again is no longer stale; [`AdjRibIn::end_of_rib`] flushes
//! what is still stale in a family; [`AdjRibIn::expire`] flushes all of it
//! once the caller's clock passes the deadline. This module never reads
//! a clock.

use std::sync::Arc;
use std::time::Instant;

use crate::wire::{Families, Family, MpReach, MpUnreach, NextHop, Nlri, PathAttributes, Update};

use super::RibError;
use super::hash::{Map, Set, Shrink, shrink_if_sparse};
use super::intern::{AttrSet, Interner};
use super::path::RouteData;
use super::prefix::IpPrefix;

/// A route's identity within one peer's Adj-RIB-In.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteKey {
    /// The destination.
    pub prefix: IpPrefix,
    /// ADD-PATH Path Identifier; 0 without ADD-PATH.
    pub path_id: u32,
}

/// A route as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Attributes and next hop, one record for every route of its UPDATE
    /// (and of its family): a table slot of the key and a pointer.
    data: Arc<RouteData>,
}

impl Route {
    /// Interned attributes (no NEXT_HOP, no MP attributes).
    pub fn attrs(&self) -> &AttrSet {
        &self.data.attrs
    }

    /// The next hop.
    pub fn next_hop(&self) -> NextHop {
        self.data.next_hop
    }

    /// The shared record of both, for a path that keeps them unchanged.
    pub fn data(&self) -> &Arc<RouteData> {
        &self.data
    }
}

/// One peer's Adj-RIB-In.
#[derive(Debug, Default)]
pub struct AdjRibIn {
    routes: Map<RouteKey, Route>,
    shrink: Shrink,
    /// Routes kept through the peer's restart or a refresh, not yet
    /// announced again: rare, so a set beside the table, not a flag that
    /// would widen every slot (32 octets with the key, not 40).
    stale: Set<RouteKey>,
    stale_deadline: Option<Instant>,
    /// Routes per family (IPv4, IPv6 unicast), kept in step with `routes`
    /// so a max-prefix check costs nothing.
    counts: [usize; 2],
}

const fn slot(family: Family) -> usize {
    match family {
        Family::Ipv4Unicast => 0,
        Family::Ipv6Unicast => 1,
    }
}

impl AdjRibIn {
    /// An empty Adj-RIB-In.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one UPDATE; returns the routes that were added, replaced
    /// or removed (a route announced again unchanged is only un-staled).
    /// An End-of-RIB marker changes nothing here; see
    /// [`AdjRibIn::end_of_rib`].
    pub fn apply(
        &mut self,
        update: &Update,
        interner: &mut Interner,
    ) -> Result<Vec<RouteKey>, RibError> {
        let a = &update.attributes;
        let mut changed = Vec::new();
        let v4 = |n: &Nlri<_>| RouteKey {
            prefix: IpPrefix::V4(n.prefix),
            path_id: n.path_id.unwrap_or(0),
        };
        let v6 = |n: &Nlri<_>| RouteKey {
            prefix: IpPrefix::V6(n.prefix),
            path_id: n.path_id.unwrap_or(0),
        };
        for key in update.withdrawn.iter().map(v4) {
            self.withdraw(key, &mut changed);
        }
        match &a.mp_unreach {
            Some(MpUnreach::Ipv4Unicast(nlri)) => {
                for key in nlri.iter().map(v4) {
                    self.withdraw(key, &mut changed);
                }
            }
            Some(MpUnreach::Ipv6Unicast(nlri)) => {
                for key in nlri.iter().map(v6) {
                    self.withdraw(key, &mut changed);
                }
            }
            Some(MpUnreach::Other { .. }) | None => {}
        }
        let has_mp = matches!(
            a.mp_reach,
            Some(MpReach::Ipv4Unicast { .. } | MpReach::Ipv6Unicast { .. })
        );
        if update.nlri.is_empty() && !has_mp {
            return Ok(changed);
        }
        let attrs = interner.intern(PathAttributes {
            next_hop: None,
            mp_reach: None,
            mp_unreach: None,
            ..a.clone()
        });
        let shared = |next_hop| RouteData::shared(AttrSet::clone(&attrs), next_hop);
        if !update.nlri.is_empty() {
            let next_hop = NextHop::V4(a.next_hop.ok_or(RibError::MissingNextHop)?);
            let shared = shared(next_hop);
            for key in update.nlri.iter().map(v4) {
                self.announce(key, &shared, &mut changed);
            }
        }
        match &a.mp_reach {
            Some(MpReach::Ipv4Unicast { next_hop, nlri }) => {
                let shared = shared(*next_hop);
                for key in nlri.iter().map(v4) {
                    self.announce(key, &shared, &mut changed);
                }
            }
            Some(MpReach::Ipv6Unicast { next_hop, nlri }) => {
                let shared = shared(*next_hop);
                for key in nlri.iter().map(v6) {
                    self.announce(key, &shared, &mut changed);
                }
            }
            Some(MpReach::Other { .. }) | None => {}
        }
        Ok(changed)
    }

    fn withdraw(&mut self, key: RouteKey, changed: &mut Vec<RouteKey>) {
        if self.routes.remove(&key).is_some() {
            self.uncount(&key);
            if !self.stale.is_empty() {
                self.stale.remove(&key);
            }
            changed.push(key);
            self.shrink.after_remove(&mut self.routes);
        }
    }

    fn uncount(&mut self, key: &RouteKey) {
        if let Some(n) = self.counts.get_mut(slot(key.prefix.family())) {
            *n = n.saturating_sub(1);
        }
    }

    fn announce(&mut self, key: RouteKey, shared: &Arc<RouteData>, changed: &mut Vec<RouteKey>) {
        let route = Route {
            data: Arc::clone(shared),
        };
        if !self.stale.is_empty() {
            self.stale.remove(&key);
        }
        match self.routes.insert(key, route) {
            Some(old)
                if AttrSet::ptr_eq(&old.data.attrs, &shared.attrs)
                    && old.data.next_hop == shared.next_hop => {}
            Some(_) => changed.push(key),
            None => {
                if let Some(n) = self.counts.get_mut(slot(key.prefix.family())) {
                    *n += 1;
                }
                changed.push(key);
            }
        }
    }

    /// The route for `key`, if any.
    pub fn route(&self, key: &RouteKey) -> Option<&Route> {
        self.routes.get(key)
    }

    /// Every route.
    pub fn iter(&self) -> impl Iterator<Item = (&RouteKey, &Route)> {
        self.routes.iter()
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there are no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Number of routes of `family` (stale ones included).
    pub fn count(&self, family: Family) -> usize {
        self.counts.get(slot(family)).copied().unwrap_or(0)
    }

    /// Removes every route (the session went down without graceful
    /// restart); returns them.
    pub fn clear(&mut self) -> Vec<RouteKey> {
        self.stale_deadline = None;
        self.counts = [0; 2];
        self.stale = Set::default();
        let keys = self.routes.drain().map(|(k, _)| k).collect();
        shrink_if_sparse(&mut self.routes);
        keys
    }

    /// The peer is restarting (RFC 4724 §4.2): routes of the families in
    /// `keep` (those whose forwarding state it preserved) are marked stale
    /// and kept until `deadline`; the others are removed and returned.
    pub fn mark_stale(&mut self, keep: Families, deadline: Instant) -> Vec<RouteKey> {
        let mut removed = Vec::new();
        let stale = &mut self.stale;
        self.routes.retain(|k, _| {
            if keep.contains(k.prefix.family()) {
                stale.insert(*k);
                true
            } else {
                stale.remove(k);
                removed.push(*k);
                false
            }
        });
        for k in &removed {
            self.uncount(k);
        }
        shrink_if_sparse(&mut self.routes);
        self.stale_deadline = Some(deadline);
        removed
    }

    /// A BoRR for `family` arrived (RFC 7313 §4): its routes become stale
    /// until announced again; the EoRR ([`AdjRibIn::end_of_rib`]) purges
    /// the rest, or the deadline does if the EoRR never comes.
    pub fn begin_refresh(&mut self, family: Family, deadline: Instant) {
        self.stale.extend(
            self.routes
                .keys()
                .filter(|k| k.prefix.family() == family)
                .copied(),
        );
        self.stale_deadline = Some(self.stale_deadline.map_or(deadline, |d| d.min(deadline)));
    }

    /// Moves the stale deadline (for example to a stale-path timer once
    /// the session is back, RFC 4724 §4.2).
    pub fn set_stale_deadline(&mut self, deadline: Instant) {
        if self.stale_deadline.is_some() {
            self.stale_deadline = Some(deadline);
        }
    }

    /// When [`AdjRibIn::expire`] will flush stale routes, if any are kept.
    pub fn stale_deadline(&self) -> Option<Instant> {
        self.stale_deadline
    }

    /// Whether the route for `key` is stale (kept, not announced again).
    pub fn is_stale(&self, key: &RouteKey) -> bool {
        self.stale.contains(key)
    }

    /// Number of stale routes.
    pub fn stale_count(&self) -> usize {
        self.stale.len()
    }

    /// End-of-RIB received for `family` (RFC 4724 §4.2): removes and
    /// returns the routes of that family still stale.
    pub fn end_of_rib(&mut self, family: Family) -> Vec<RouteKey> {
        let removed = self.flush(|k| k.prefix.family() == family);
        if self.stale.is_empty() {
            self.stale_deadline = None;
        }
        removed
    }

    /// If `now` is at or past the stale deadline, removes and returns every
    /// stale route (the restart time or stale timer expired).
    pub fn expire(&mut self, now: Instant) -> Vec<RouteKey> {
        match self.stale_deadline {
            Some(d) if now >= d => {
                self.stale_deadline = None;
                self.flush(|_| true)
            }
            _ => Vec::new(),
        }
    }

    fn flush(&mut self, pick: impl Fn(&RouteKey) -> bool) -> Vec<RouteKey> {
        let removed: Vec<RouteKey> = self.stale.iter().filter(|k| pick(k)).copied().collect();
        for k in &removed {
            self.stale.remove(k);
            self.routes.remove(k);
            self.uncount(k);
        }
        if self.stale.is_empty() {
            // Give back what a whole table's marks took.
            self.stale = Set::default();
        }
        shrink_if_sparse(&mut self.routes);
        removed
    }
}
