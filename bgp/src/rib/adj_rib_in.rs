//! Adj-RIB-In: the routes one peer advertised, as received (RFC 4271
//! §3.2, §9), and graceful-restart helper staleness (RFC 4724 §4.2).
//!
//! Owns reading a decoded [`Update`] into routes (`Received`: Withdrawn
//! Routes and NLRI for IPv4, MP_REACH_NLRI / MP_UNREACH_NLRI for either
//! family (RFC 4760), ADD-PATH Path Identifiers (RFC 7911)), and where
//! each route as received is kept beside what import policy made of it.
//!
//! Kept once where it can be: most routes pass import unchanged, and for
//! them the Loc-RIB's path *is* the route as received (the same shared
//! [`RouteData`]), so a route costs one table insert, not two (BIRD's
//! table holds a route once too). Only the routes that import changed or
//! rejected are held here as received, so a policy change is still
//! re-applied without a route refresh (soft reconfiguration). The peer's
//! operations — session down, graceful restart, refresh, re-import —
//! walk the Loc-RIB for its paths, as BIRD's do. [`Rib`](super::Rib)
//! drives all of it; this type alone holds only the exceptions.
//!
//! Graceful restart as helper: when a restarting peer's session goes
//! down ([`Rib::peer_down`](super::Rib::peer_down) with a
//! [`Retention`]), its routes of the families kept are marked stale, for
//! the periods the retention gives per family (the per-family clock is
//! [`super::retention`]'s); a route announced again is no longer stale;
//! its End-of-RIB flushes what is still stale in a family; and
//! [`Rib::expire`](super::Rib::expire) turns a family long-lived (RFC
//! 9494) or flushes it once the caller's clock passes its deadline. This
//! module never reads a clock.

use std::sync::Arc;
use std::time::Instant;

use crate::wire::{
    Families, Family, Ipv4Prefix, Ipv6Prefix, MpReach, MpUnreach, NextHop, Nlri, PathAttributes,
    Update,
};

use super::RibError;
use super::decision::IgpCost;
use super::hash::{Map, Set, Shrink, shrink_if_sparse};
use super::intern::{AttrSet, Interner};
use super::loc_rib::{BestPathChange, LocRib};
use super::path::{Path, RouteData, Source};
use super::prefix::IpPrefix;
use super::retention::{Retention, StaleClock, slot};

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
    /// (and of its family).
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

    /// The shared record of both.
    pub fn data(&self) -> &Arc<RouteData> {
        &self.data
    }
}

/// One UPDATE read into routes: its attributes interned once, shared by
/// every route it announces. Reading fails before anything is applied,
/// so a bad UPDATE changes nothing.
#[derive(Debug)]
pub(super) struct Received<'u> {
    update: &'u Update,
    /// For the IPv4 NLRI field.
    nlri: Option<Arc<RouteData>>,
    /// For MP_REACH_NLRI.
    mp: Option<Arc<RouteData>>,
}

fn v4(n: &Nlri<Ipv4Prefix>) -> RouteKey {
    RouteKey {
        prefix: IpPrefix::V4(n.prefix),
        path_id: n.path_id.unwrap_or(0),
    }
}

fn v6(n: &Nlri<Ipv6Prefix>) -> RouteKey {
    RouteKey {
        prefix: IpPrefix::V6(n.prefix),
        path_id: n.path_id.unwrap_or(0),
    }
}

impl<'u> Received<'u> {
    /// Reads `update`, interning its attribute set (without NEXT_HOP and
    /// MP attributes) if it announces anything. IPv4 NLRI without a
    /// NEXT_HOP is an error (only a hand-built UPDATE has that: the
    /// decoder treats it as withdraw, RFC 7606 §3 d).
    pub(super) fn new(update: &'u Update, interner: &mut Interner) -> Result<Self, RibError> {
        let a = &update.attributes;
        let has_mp = matches!(
            a.mp_reach,
            Some(MpReach::Ipv4Unicast { .. } | MpReach::Ipv6Unicast { .. })
        );
        let mut out = Self {
            update,
            nlri: None,
            mp: None,
        };
        if update.nlri.is_empty() && !has_mp {
            return Ok(out);
        }
        let nlri_next_hop = match update.nlri.is_empty() {
            true => None,
            false => Some(NextHop::V4(a.next_hop.ok_or(RibError::MissingNextHop)?)),
        };
        let attrs = interner.intern(PathAttributes {
            next_hop: None,
            mp_reach: None,
            mp_unreach: None,
            ..a.clone()
        });
        let shared = |next_hop| RouteData::shared(AttrSet::clone(&attrs), next_hop);
        out.nlri = nlri_next_hop.map(shared);
        out.mp = match &a.mp_reach {
            Some(MpReach::Ipv4Unicast { next_hop, .. } | MpReach::Ipv6Unicast { next_hop, .. }) => {
                Some(shared(*next_hop))
            }
            Some(MpReach::Other { .. }) | None => None,
        };
        Ok(out)
    }

    /// How many routes it withdraws and announces.
    pub(super) fn len(&self) -> usize {
        let (u4, u6) = self.mp_unreach();
        let (r4, r6) = self.mp_reach();
        let nlri = self.nlri.as_ref().map_or(0, |_| self.update.nlri.len());
        self.update.withdrawn.len() + u4.len() + u6.len() + nlri + r4.len() + r6.len()
    }

    /// The MP_UNREACH_NLRI prefixes, by family.
    fn mp_unreach(&self) -> (&'u [Nlri<Ipv4Prefix>], &'u [Nlri<Ipv6Prefix>]) {
        match &self.update.attributes.mp_unreach {
            Some(MpUnreach::Ipv4Unicast(n)) => (n, &[]),
            Some(MpUnreach::Ipv6Unicast(n)) => (&[], n),
            Some(MpUnreach::Other { .. }) | None => (&[], &[]),
        }
    }

    /// The MP_REACH_NLRI prefixes, by family.
    fn mp_reach(&self) -> (&'u [Nlri<Ipv4Prefix>], &'u [Nlri<Ipv6Prefix>]) {
        match &self.update.attributes.mp_reach {
            Some(MpReach::Ipv4Unicast { nlri, .. }) => (nlri, &[]),
            Some(MpReach::Ipv6Unicast { nlri, .. }) => (&[], nlri),
            Some(MpReach::Other { .. }) | None => (&[], &[]),
        }
    }

    /// The routes withdrawn (Withdrawn Routes, then MP_UNREACH_NLRI).
    pub(super) fn withdrawn(&self) -> impl Iterator<Item = RouteKey> + '_ {
        let (mp4, mp6) = self.mp_unreach();
        let v4s = self.update.withdrawn.iter().chain(mp4).map(v4);
        v4s.chain(mp6.iter().map(v6))
    }

    /// The routes announced, each with its attributes and next hop (NLRI,
    /// then MP_REACH_NLRI).
    pub(super) fn announced(&self) -> impl Iterator<Item = (RouteKey, &Arc<RouteData>)> + '_ {
        let (mp4, mp6) = self.mp_reach();
        let nlri = self
            .nlri
            .iter()
            .flat_map(|d| self.update.nlri.iter().map(move |n| (v4(n), d)));
        let mp = self.mp.iter().flat_map(move |d| {
            let v4s = mp4.iter().map(move |n| (v4(n), d));
            v4s.chain(mp6.iter().map(move |n| (v6(n), d)))
        });
        nlri.chain(mp)
    }
}

/// What import made of a route as received.
#[derive(Debug)]
pub(super) enum Imported {
    /// Accepted as received: the Loc-RIB path shares its record.
    Unchanged,
    /// Accepted with other attributes or next hop.
    Changed(Arc<RouteData>),
    /// Rejected.
    Rejected,
}

/// The Loc-RIB where one peer's accepted routes live, and what choosing
/// among them needs.
pub(super) struct Target<'a> {
    /// The Loc-RIB.
    pub(super) loc_rib: &'a mut LocRib,
    /// The peer.
    pub(super) source: &'a Arc<Source>,
    /// The IGP-cost hook of the decision process.
    pub(super) igp: &'a dyn IgpCost,
}

/// One peer's Adj-RIB-In: the routes import changed or rejected, as
/// received (the others are the peer's Loc-RIB paths), per-family counts
/// and staleness.
#[derive(Debug, Default)]
pub struct AdjRibIn {
    /// Routes as received whose Loc-RIB path is not the route as
    /// received: import changed them (the Loc-RIB holds the result) or
    /// rejected them (it holds nothing). Usually empty.
    filtered: Map<RouteKey, Route>,
    shrink: Shrink,
    /// Routes kept through the peer's restart or a refresh, not yet
    /// announced again: rare, so a set beside the tables.
    stale: Set<RouteKey>,
    /// When each family's stale routes go, or turn long-lived.
    clock: StaleClock,
    /// Routes per family (IPv4, IPv6 unicast) as received, accepted or
    /// not, so a max-prefix check costs nothing.
    counts: [usize; 2],
}

impl AdjRibIn {
    /// The peer announced `key` with `data`, which import made into
    /// `imported`: the route is kept and no longer stale. Returns the
    /// best-path change, if any (none for a route announced again
    /// unchanged).
    pub(super) fn announce(
        &mut self,
        key: RouteKey,
        data: &Arc<RouteData>,
        imported: Imported,
        to: &mut Target<'_>,
    ) -> Option<BestPathChange> {
        if !self.stale.is_empty() {
            self.stale.remove(&key);
        }
        let (known, change) = self.store(key, data, imported, to);
        if !known && let Some(n) = self.counts.get_mut(slot(key.prefix.family())) {
            *n += 1;
        }
        change
    }

    /// Import policy changed: the route `key` as received, `data`, now
    /// imports as `imported`. Counts and staleness stay.
    pub(super) fn reimport(
        &mut self,
        key: RouteKey,
        data: &Arc<RouteData>,
        imported: Imported,
        to: &mut Target<'_>,
    ) -> Option<BestPathChange> {
        self.store(key, data, imported, to).1
    }

    /// Puts the route where it belongs; says whether the peer had a route
    /// for `key` before.
    fn store(
        &mut self,
        key: RouteKey,
        data: &Arc<RouteData>,
        imported: Imported,
        to: &mut Target<'_>,
    ) -> (bool, Option<BestPathChange>) {
        let held = match imported {
            Imported::Unchanged => self.unfilter(&key),
            Imported::Changed(_) | Imported::Rejected => {
                let route = Route {
                    data: Arc::clone(data),
                };
                self.filtered.insert(key, route).is_some()
            }
        };
        let path = |data| Path {
            source: Arc::clone(to.source),
            data,
            path_id: key.path_id,
        };
        let (had, change) = match imported {
            Imported::Unchanged => to
                .loc_rib
                .replace(key.prefix, path(Arc::clone(data)), to.igp),
            Imported::Changed(d) => to.loc_rib.replace(key.prefix, path(d), to.igp),
            Imported::Rejected => to.loc_rib.take(key.prefix, to.source, key.path_id, to.igp),
        };
        (held || had, change)
    }

    /// Drops `key` from the filtered routes; whether it was there.
    fn unfilter(&mut self, key: &RouteKey) -> bool {
        if self.filtered.is_empty() || self.filtered.remove(key).is_none() {
            return false;
        }
        self.shrink.after_remove(&mut self.filtered);
        true
    }

    /// The peer withdrew `key` (or it was flushed): returns the best-path
    /// change, if any.
    pub(super) fn withdraw(
        &mut self,
        key: RouteKey,
        to: &mut Target<'_>,
    ) -> Option<BestPathChange> {
        let held = self.unfilter(&key);
        let (had, change) = to.loc_rib.take(key.prefix, to.source, key.path_id, to.igp);
        if held || had {
            if let Some(n) = self.counts.get_mut(slot(key.prefix.family())) {
                *n = n.saturating_sub(1);
            }
            if !self.stale.is_empty() {
                self.stale.remove(&key);
            }
        }
        change
    }

    /// Every route of the peer as received: its Loc-RIB paths that import
    /// left unchanged, and the filtered ones.
    pub(super) fn routes(&self, loc_rib: &LocRib, source: &Source) -> Vec<(RouteKey, Route)> {
        self.walk(loc_rib, source)
            .map(|(k, data)| {
                let route = Route {
                    data: Arc::clone(data),
                };
                (k, route)
            })
            .collect()
    }

    /// The keys of every route of the peer of the families in `pick`.
    fn keys(&self, loc_rib: &LocRib, source: &Source, pick: Families) -> Vec<RouteKey> {
        self.walk(loc_rib, source)
            .map(|(k, _)| k)
            .filter(|k| pick.contains(k.prefix.family()))
            .collect()
    }

    /// Each route of the peer as received, once: its Loc-RIB paths that
    /// are not filtered here, then the filtered ones.
    fn walk<'a>(
        &'a self,
        loc_rib: &'a LocRib,
        source: &'a Source,
    ) -> impl Iterator<Item = (RouteKey, &'a Arc<RouteData>)> + 'a {
        let as_received = loc_rib
            .paths_of(source)
            .filter(|(k, _)| self.filtered.is_empty() || !self.filtered.contains_key(k))
            .map(|(k, p)| (k, &p.data));
        as_received.chain(self.filtered.iter().map(|(k, r)| (*k, &r.data)))
    }

    /// Number of routes as received.
    pub fn len(&self) -> usize {
        self.counts.iter().sum()
    }

    /// Whether the peer has no routes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of routes of `family` (stale ones and rejected ones
    /// included).
    pub fn count(&self, family: Family) -> usize {
        self.counts.get(slot(family)).copied().unwrap_or(0)
    }

    /// Number of routes import changed or rejected (held here as
    /// received).
    pub fn filtered_count(&self) -> usize {
        self.filtered.len()
    }

    /// Removes every route (the session went down without graceful
    /// restart); returns the best-path changes.
    pub(super) fn clear(&mut self, to: &mut Target<'_>) -> Vec<BestPathChange> {
        self.clock.clear();
        self.counts = [0; 2];
        self.stale = Set::default();
        self.filtered = Map::default();
        to.loc_rib.remove_of(to.source, |_| true, to.igp)
    }

    /// The peer is restarting (RFC 4724 §4.2, RFC 9494 §4.2): routes of
    /// the families `r` keeps are marked stale and kept for its periods;
    /// the others are removed. Returns the best-path changes.
    pub(super) fn mark_stale(&mut self, r: &Retention, to: &mut Target<'_>) -> Vec<BestPathChange> {
        let keep = r.kept();
        let kept = |k: &RouteKey| keep.contains(k.prefix.family());
        self.stale = self.keys(to.loc_rib, to.source, keep).into_iter().collect();
        self.filtered.retain(|k, _| kept(k));
        shrink_if_sparse(&mut self.filtered);
        for family in Family::ALL.into_iter().filter(|f| !keep.contains(*f)) {
            if let Some(n) = self.counts.get_mut(slot(family)) {
                *n = 0;
            }
        }
        if self.stale.is_empty() {
            // Nothing kept: nothing to wait for either.
            self.clock.clear();
        } else {
            self.clock.retain(r);
        }
        to.loc_rib.remove_of(to.source, |k| !kept(k), to.igp)
    }

    /// A BoRR for `family` arrived (RFC 7313 §4): its routes become stale
    /// until announced again; the EoRR ([`AdjRibIn::end_of_rib`]) purges
    /// the rest, or the deadline does if the EoRR never comes.
    pub(super) fn begin_refresh(
        &mut self,
        family: Family,
        deadline: Instant,
        loc_rib: &LocRib,
        source: &Source,
    ) {
        let keys = self.keys(loc_rib, source, Families::of(&[family]));
        self.stale.extend(keys);
        self.clock.refresh(family, deadline);
    }

    /// The peer is back (RFC 4724 §4.2): what is still stale waits for
    /// its End-of-RIB until `deadline` (the stale-path timer), and no
    /// longer turns long-lived.
    pub(super) fn restarted(&mut self, deadline: Instant) {
        self.clock.restarted(deadline);
    }

    /// The peer's session is up again: none of its stale routes turns
    /// long-lived while it is Established.
    pub(super) fn session_up(&mut self) {
        self.clock.session_up();
    }

    /// When [`Rib::expire`](super::Rib::expire) will next flush stale
    /// routes or turn them long-lived, if any are kept.
    pub fn stale_deadline(&self) -> Option<Instant> {
        self.clock.earliest()
    }

    /// The families whose stale routes are long-lived stale now (RFC
    /// 9494 §4.2).
    pub fn long_lived(&self) -> Families {
        self.clock.long_lived()
    }

    /// The families whose graceful-restart period is over at `now` and
    /// whose stale routes turn long-lived; the caller marks them.
    pub(super) fn turn_long_lived(&mut self, now: Instant) -> Families {
        self.clock.turn_long_lived(now)
    }

    /// The stale routes of `family`, as received.
    pub(super) fn stale_routes(
        &self,
        loc_rib: &LocRib,
        source: &Source,
        family: Family,
    ) -> Vec<(RouteKey, Arc<RouteData>)> {
        if self.stale.is_empty() {
            return Vec::new();
        }
        self.walk(loc_rib, source)
            .filter(|(k, _)| k.prefix.family() == family && self.stale.contains(k))
            .map(|(k, data)| (k, Arc::clone(data)))
            .collect()
    }

    /// Whether the route for `key` is stale (kept, not announced again).
    pub fn is_stale(&self, key: &RouteKey) -> bool {
        self.stale.contains(key)
    }

    /// Number of stale routes.
    pub fn stale_count(&self) -> usize {
        self.stale.len()
    }

    /// End-of-RIB received for `family` (RFC 4724 §4.2): removes the
    /// routes of that family still stale; returns the best-path changes.
    pub(super) fn end_of_rib(
        &mut self,
        family: Family,
        to: &mut Target<'_>,
    ) -> Vec<BestPathChange> {
        let changes = self.flush(|k| k.prefix.family() == family, to);
        self.clock.done(family);
        changes
    }

    /// Removes the stale routes of every family whose deadline is at or
    /// before `now` (its restart time, long-lived stale time or stale
    /// timer expired); returns the best-path changes.
    pub(super) fn expire(&mut self, now: Instant, to: &mut Target<'_>) -> Vec<BestPathChange> {
        let gone = self.clock.expired(now);
        if gone == Families::NONE {
            return Vec::new();
        }
        self.flush(|k| gone.contains(k.prefix.family()), to)
    }

    fn flush(
        &mut self,
        pick: impl Fn(&RouteKey) -> bool,
        to: &mut Target<'_>,
    ) -> Vec<BestPathChange> {
        let removed: Vec<RouteKey> = self.stale.iter().filter(|k| pick(k)).copied().collect();
        let changes = removed
            .into_iter()
            .filter_map(|k| self.withdraw(k, to))
            .collect();
        if self.stale.is_empty() {
            // Give back what a whole table's marks took; nothing is left
            // to wait for in any family.
            self.stale = Set::default();
            self.clock.clear();
        }
        changes
    }
}
