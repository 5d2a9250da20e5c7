//! The Routing Information Base as a whole (RFC 4271 §3.2, §9): one
//! Adj-RIB-In and Adj-RIB-Out per peer around the Loc-RIB, and the API
//! the speaker drives.
//!
//! Owns the flow of §9: each route of an UPDATE passes the import checks
//! and policy (§9.1) into the Loc-RIB, where the decision process runs
//! per destination (§9.1.2); the peer's Adj-RIB-In keeps it as received
//! (a route import left unchanged is its Loc-RIB path, kept once);
//! each change of a best path is offered, through export rules and policy,
//! to every established peer's Adj-RIB-Out (§9.1.3); [`Rib::flush`] packs
//! what a peer still lacks into UPDATEs (§9.2). Graceful restart as
//! helper (RFC 4724 §4.2) keeps a restarting peer's routes, stale, until
//! its End-of-RIB or the deadline the caller passes. Locally originated
//! routes enter the Loc-RIB directly. A ROUTE-REFRESH (RFC 2918) queues
//! a peer's whole Adj-RIB-Out again ([`Rib::resend`]); with enhanced
//! route refresh (RFC 7313) the answer is framed by BoRR/EoRR
//! ([`Outbound::refreshed`]), and a peer's own BoRR/EoRR mark and purge
//! its routes ([`Rib::refresh_marker`]). Max-prefix limits are checked on
//! demand ([`Rib::check_max_prefix`]).
//!
//! Single owner: one task holds the `Rib` and calls it; nothing is shared
//! or locked. Time is only ever an argument.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use crate::wire::{
    Community, Context, Families, Family, NextHop, PathAttributes, RouteRefreshSubtype, Update,
};

use super::RibError;
use super::adj_rib_in::{AdjRibIn, Imported, Received, Route, RouteKey, Target};
use super::adj_rib_out::{AdjRibOut, Advert};
use super::decision::{IgpCost, ZeroCost};
use super::export::{LocalConfig, PeerConfig};
use super::export::{export, ibgp_split_horizon, import, withheld_long_lived};
use super::generate::{Outbound, build};
use super::intern::{AttrSet, Interner};
use super::loc_rib::{BestPathChange, LocRib};
use super::max_prefix::MaxPrefixExceeded;
use super::path::{Path, PeerKind, RouteData, Source};
use super::prefix::IpPrefix;
use super::retention::Retention;

/// One configured peer's state.
#[derive(Debug)]
struct Peer {
    cfg: PeerConfig,
    source: Arc<Source>,
    /// Established (its Adj-RIB-Out is live).
    up: bool,
    /// Families negotiated on the current session.
    families: Families,
    /// Families the peer may be sent routes that carry LLGR_STALE in on
    /// the current session (RFC 9494 §4.3; every family of a peer that
    /// announced long-lived graceful restart, see
    /// [`crate::session::graceful::long_lived`]).
    long_lived: Families,
    /// Families whose End-of-RIB is still to be sent after the initial
    /// table.
    eor_due: Families,
    /// Families of a ROUTE-REFRESH request being answered: with enhanced
    /// route refresh, the next flush is framed by BoRR and EoRR.
    refresh_due: Families,
    adj_in: AdjRibIn,
    adj_out: AdjRibOut,
    /// Families over their max-prefix limit, already reported.
    over_limit: Families,
}

/// The RIB.
pub struct Rib {
    local: LocalConfig,
    local_source: Arc<Source>,
    interner: Interner,
    loc_rib: LocRib,
    peers: HashMap<IpAddr, Peer>,
    igp: Box<dyn IgpCost + Send>,
}

impl std::fmt::Debug for Rib {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rib")
            .field("local", &self.local)
            .field("interned", &self.interner.len())
            .field("loc_rib", &self.loc_rib.len())
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

fn source_for(local: &LocalConfig, cfg: &PeerConfig, router_id: Ipv4Addr) -> Source {
    Source {
        kind: if cfg.is_external(local) {
            PeerKind::External
        } else {
            PeerKind::Internal
        },
        address: cfg.address,
        router_id,
        asn: cfg.asn,
        rr_client: cfg.rr_client,
    }
}

impl Rib {
    /// The configured peer at `address`.
    fn peer_mut(&mut self, address: &IpAddr) -> Result<&mut Peer, RibError> {
        self.peers
            .get_mut(address)
            .ok_or(RibError::UnknownPeer(*address))
    }

    /// An empty RIB for this speaker, every next hop at IGP cost 0.
    pub fn new(local: LocalConfig) -> Self {
        Self::with_igp(local, Box::new(ZeroCost))
    }

    /// An empty RIB with an IGP-cost hook (RFC 4271 §9.1.2.2 e).
    pub fn with_igp(local: LocalConfig, igp: Box<dyn IgpCost + Send>) -> Self {
        Self {
            local_source: Arc::new(Source::local(local.router_id, local.asn)),
            loc_rib: LocRib::new(local.decision),
            local,
            interner: Interner::new(),
            peers: HashMap::new(),
            igp,
        }
    }

    /// This speaker's configuration.
    pub fn local(&self) -> &LocalConfig {
        &self.local
    }

    /// The Loc-RIB.
    pub fn loc_rib(&self) -> &LocRib {
        &self.loc_rib
    }

    /// A peer's Adj-RIB-In: its counts, staleness and the routes import
    /// changed or rejected.
    pub fn adj_rib_in(&self, peer: &IpAddr) -> Option<&AdjRibIn> {
        self.peers.get(peer).map(|p| &p.adj_in)
    }

    /// Every route the peer sent, as received (before import policy), in
    /// no particular order: a walk of the Loc-RIB.
    pub fn received(&self, peer: &IpAddr) -> Vec<(RouteKey, Route)> {
        self.peers
            .get(peer)
            .map(|p| p.adj_in.routes(&self.loc_rib, &p.source))
            .unwrap_or_default()
    }

    /// A peer's Adj-RIB-In with the Loc-RIB its accepted routes live in.
    fn inbound(&mut self, address: &IpAddr) -> Result<(&mut AdjRibIn, Target<'_>), RibError> {
        let peer = self
            .peers
            .get_mut(address)
            .ok_or(RibError::UnknownPeer(*address))?;
        let to = Target {
            loc_rib: &mut self.loc_rib,
            source: &peer.source,
            igp: &*self.igp,
        };
        Ok((&mut peer.adj_in, to))
    }

    /// A peer's Adj-RIB-Out.
    pub fn adj_rib_out(&self, peer: &IpAddr) -> Option<&AdjRibOut> {
        self.peers.get(peer).map(|p| &p.adj_out)
    }

    /// Distinct attribute sets held.
    pub fn attribute_sets(&self) -> usize {
        self.interner.len()
    }

    /// Drops attribute sets no route uses; returns how many.
    pub fn purge(&mut self) -> usize {
        self.interner.purge()
    }

    /// Adds a peer, or replaces its configuration; a replaced policy is
    /// applied at once to what the peer sent and what it is sent (soft
    /// reconfiguration, no session reset). Returns the best-path changes.
    pub fn set_peer(&mut self, cfg: PeerConfig) -> Vec<BestPathChange> {
        let address = cfg.address;
        let Some(peer) = self.peers.get_mut(&address) else {
            let source = Arc::new(source_for(&self.local, &cfg, Ipv4Addr::UNSPECIFIED));
            self.peers.insert(
                address,
                Peer {
                    cfg,
                    source,
                    up: false,
                    families: Families::NONE,
                    long_lived: Families::NONE,
                    eor_due: Families::NONE,
                    refresh_due: Families::NONE,
                    adj_in: AdjRibIn::default(),
                    adj_out: AdjRibOut::new(),
                    over_limit: Families::NONE,
                },
            );
            return Vec::new();
        };
        peer.source = Arc::new(source_for(&self.local, &cfg, peer.source.router_id));
        peer.cfg = cfg;
        let changes = self.reimport(address);
        self.propagate(&changes);
        self.export_all(address);
        changes
    }

    /// Removes a peer and its routes.
    pub fn remove_peer(&mut self, address: &IpAddr) -> Vec<BestPathChange> {
        let Some(mut peer) = self.peers.remove(address) else {
            return Vec::new();
        };
        let mut to = Target {
            loc_rib: &mut self.loc_rib,
            source: &peer.source,
            igp: &*self.igp,
        };
        let changes = peer.adj_in.clear(&mut to);
        self.propagate(&changes);
        changes
    }

    /// The peer's session is Established with BGP Identifier `router_id`
    /// and the negotiated `families`, and may be sent long-lived stale
    /// routes in `long_lived` (RFC 9494; [`Families::NONE`] when it did
    /// not announce LLGR): the whole Loc-RIB is offered to its
    /// Adj-RIB-Out, to be followed by End-of-RIB per family.
    pub fn peer_up(
        &mut self,
        address: IpAddr,
        router_id: Ipv4Addr,
        families: Families,
        long_lived: Families,
    ) -> Result<(), RibError> {
        let local = &self.local;
        // Field by field: `local` stays borrowed beside the peer.
        let peer = self
            .peers
            .get_mut(&address)
            .ok_or(RibError::UnknownPeer(address))?;
        peer.source = Arc::new(source_for(local, &peer.cfg, router_id));
        peer.up = true;
        peer.families = families;
        peer.long_lived = long_lived;
        peer.adj_in.session_up();
        peer.eor_due = families;
        peer.refresh_due = Families::NONE;
        peer.adj_out.clear();
        peer.over_limit = Families::NONE;
        self.export_all(address);
        Ok(())
    }

    /// The peer came back after a restart we helped with (RFC 4724 §4.2):
    /// its stale routes of families it no longer preserves (absent from
    /// `preserved`, the families of its new OPEN's graceful restart
    /// capability with the F bit set) go at once; the others wait for its
    /// End-of-RIB, or `stale_until` at the latest.
    pub fn peer_restarted(
        &mut self,
        address: &IpAddr,
        preserved: Families,
        stale_until: Instant,
    ) -> Result<Vec<BestPathChange>, RibError> {
        let (adj_in, mut to) = self.inbound(address)?;
        let mut changes = Vec::new();
        for family in Family::ALL.into_iter().filter(|f| !preserved.contains(*f)) {
            changes.extend(adj_in.end_of_rib(family, &mut to));
        }
        adj_in.restarted(stale_until);
        self.propagate(&changes);
        Ok(changes)
    }

    /// The peer sent ROUTE-REFRESH for `family` (RFC 2918 §4): everything
    /// its Adj-RIB-Out holds of that family goes out again at the next
    /// [`Rib::flush`]. Returns how many routes were queued.
    pub fn resend(&mut self, address: &IpAddr, family: Family) -> Result<usize, RibError> {
        let peer = self.peer_mut(address)?;
        if !peer.up || !peer.families.contains(family) {
            return Ok(0);
        }
        peer.refresh_due.insert(family);
        Ok(peer.adj_out.resend(family))
    }

    /// The peer sent a BoRR or EoRR for `family` (RFC 7313 §4): at BoRR
    /// its routes of that family become stale (kept and used until
    /// `stale_until` at the latest, or until announced again); at EoRR
    /// those still stale are purged. Returns the best-path changes; a
    /// request or unknown subtype changes nothing (§5: ignored).
    pub fn refresh_marker(
        &mut self,
        address: &IpAddr,
        family: Family,
        subtype: RouteRefreshSubtype,
        stale_until: Instant,
    ) -> Result<Vec<BestPathChange>, RibError> {
        let peer = self.peer_mut(address)?;
        if !peer.up || !peer.families.contains(family) {
            return Ok(Vec::new());
        }
        let (adj_in, mut to) = self.inbound(address)?;
        let changes = match subtype {
            RouteRefreshSubtype::BeginningOfRouteRefresh => {
                adj_in.begin_refresh(family, stale_until, to.loc_rib, to.source);
                return Ok(Vec::new());
            }
            RouteRefreshSubtype::EndOfRouteRefresh => adj_in.end_of_rib(family, &mut to),
            RouteRefreshSubtype::Request | RouteRefreshSubtype::Other(_) => {
                return Ok(Vec::new());
            }
        };
        self.propagate(&changes);
        Ok(changes)
    }

    /// Checks the peer's Adj-RIB-In against its max-prefix limit: the
    /// first family found over it that was not over it at the last check
    /// (each crossing is reported once; a family that fell back under the
    /// limit may be reported again).
    pub fn check_max_prefix(&mut self, address: &IpAddr) -> Option<MaxPrefixExceeded> {
        let peer = self.peers.get_mut(address)?;
        let cfg = peer.cfg.max_prefixes?;
        let mut report = None;
        for family in Family::ALL {
            let count = peer.adj_in.count(family);
            match MaxPrefixExceeded::check(&cfg, family, count) {
                Some(over) if !peer.over_limit.contains(family) => {
                    peer.over_limit.insert(family);
                    report = report.or(Some(over));
                }
                Some(_) => {}
                None => peer.over_limit.remove(family),
            }
        }
        report
    }

    /// The peer's session went down. With `graceful` (what a helper
    /// keeps, RFC 4724 §4.2 and RFC 9494 §4.2) its routes of the families
    /// kept stay, stale, for their periods (a family kept only long-lived
    /// turns long-lived at once); otherwise all of them go.
    pub fn peer_down(
        &mut self,
        address: &IpAddr,
        graceful: Option<&Retention>,
    ) -> Result<Vec<BestPathChange>, RibError> {
        let peer = self.peer_mut(address)?;
        peer.up = false;
        peer.adj_out.clear();
        peer.over_limit = Families::NONE;
        let (adj_in, mut to) = self.inbound(address)?;
        let mut changes = match graceful {
            Some(r) => adj_in.mark_stale(r, &mut to),
            None => adj_in.clear(&mut to),
        };
        if let Some(r) = graceful {
            changes.extend(self.turn_long_lived(address, r.at));
        }
        self.propagate(&changes);
        Ok(changes)
    }

    /// Marks the stale routes of the peer's families whose
    /// graceful-restart period is over at `now` and that it asked to be
    /// kept longer (RFC 9494 §4.2): each gets the LLGR_STALE community,
    /// as if the peer had sent it so, which makes it lose to any other
    /// path (§4.3, [`super::decision`]) and keeps it from peers without
    /// LLGR ([`super::export::withheld_long_lived`]); a route that carries
    /// NO_LLGR goes instead. Returns the best-path changes, not yet
    /// propagated.
    fn turn_long_lived(&mut self, address: &IpAddr, now: Instant) -> Vec<BestPathChange> {
        let Some(peer) = self.peers.get_mut(address) else {
            return Vec::new();
        };
        let turned = peer.adj_in.turn_long_lived(now);
        let mut changes = Vec::new();
        for family in Family::ALL.into_iter().filter(|f| turned.contains(*f)) {
            let stale = peer
                .adj_in
                .stale_routes(&self.loc_rib, &peer.source, family);
            let mut to = Target {
                loc_rib: &mut self.loc_rib,
                source: &peer.source,
                igp: &*self.igp,
            };
            // One marked record per record the routes shared.
            let mut marked: HashMap<*const RouteData, Arc<RouteData>> = HashMap::new();
            for (key, data) in stale {
                let communities = &data.attrs.communities;
                if communities.contains(&Community::NO_LLGR) {
                    changes.extend(peer.adj_in.withdraw(key, &mut to));
                    continue;
                }
                if communities.contains(&Community::LLGR_STALE) {
                    continue;
                }
                let interner = &mut self.interner;
                let data = marked.entry(Arc::as_ptr(&data)).or_insert_with(|| {
                    let mut attrs = PathAttributes::clone(&data.attrs);
                    attrs.communities.push(Community::LLGR_STALE);
                    RouteData::shared(interner.intern(attrs), data.next_hop)
                });
                let imported = import_route(&self.local, &peer.cfg, &mut self.interner, &key, data);
                changes.extend(peer.adj_in.reimport(key, data, imported, &mut to));
            }
        }
        changes
    }

    /// Applies an UPDATE from the peer (an End-of-RIB flushes that
    /// family's stale routes); returns the best-path changes.
    pub fn receive(
        &mut self,
        address: &IpAddr,
        update: &Update,
    ) -> Result<Vec<BestPathChange>, RibError> {
        let changes = if let Some(family) = update.end_of_rib_family() {
            let (adj_in, mut to) = self.inbound(address)?;
            adj_in.end_of_rib(family, &mut to)
        } else {
            // Field by field: the interner and the configuration are
            // borrowed beside the peer and the Loc-RIB.
            let peer = self
                .peers
                .get_mut(address)
                .ok_or(RibError::UnknownPeer(*address))?;
            let received = Received::new(update, &mut self.interner)?;
            let mut to = Target {
                loc_rib: &mut self.loc_rib,
                source: &peer.source,
                igp: &*self.igp,
            };
            // A first table changes a destination per route: one
            // allocation, not a dozen doublings per UPDATE.
            let mut changes = Vec::with_capacity(received.len());
            for key in received.withdrawn() {
                changes.extend(peer.adj_in.withdraw(key, &mut to));
            }
            for (key, data) in received.announced() {
                let imported = import_route(&self.local, &peer.cfg, &mut self.interner, &key, data);
                changes.extend(peer.adj_in.announce(key, data, imported, &mut to));
            }
            changes
        };
        self.propagate(&changes);
        Ok(changes)
    }

    /// The earliest stale deadline of any peer: when to call
    /// [`Rib::expire`].
    pub fn next_deadline(&self) -> Option<Instant> {
        self.peers
            .values()
            .filter_map(|p| p.adj_in.stale_deadline())
            .min()
    }

    /// At `now`: turns long-lived the stale routes whose
    /// graceful-restart period is over when their peer asked for that
    /// (RFC 9494 §4.2), and flushes the stale routes whose deadline has
    /// passed.
    pub fn expire(&mut self, now: Instant) -> Vec<BestPathChange> {
        let mut changes = Vec::new();
        let addresses: Vec<IpAddr> = self.peers.keys().copied().collect();
        for address in &addresses {
            changes.extend(self.turn_long_lived(address, now));
        }
        for peer in self.peers.values_mut() {
            let mut to = Target {
                loc_rib: &mut self.loc_rib,
                source: &peer.source,
                igp: &*self.igp,
            };
            changes.extend(peer.adj_in.expire(now, &mut to));
        }
        self.propagate(&changes);
        changes
    }

    /// Originates `prefix` with `attrs` (NEXT_HOP and MP attributes are
    /// ignored; `next_hop` is used) or replaces our earlier route for it.
    pub fn originate(
        &mut self,
        prefix: IpPrefix,
        attrs: PathAttributes,
        next_hop: NextHop,
    ) -> Vec<BestPathChange> {
        self.originate_many(&[prefix], attrs, next_hop)
    }

    /// Originates every prefix of `prefixes` with the one attribute set
    /// `attrs` (interned once) and `next_hop`; returns the best-path
    /// changes.
    pub fn originate_many(
        &mut self,
        prefixes: &[IpPrefix],
        attrs: PathAttributes,
        next_hop: NextHop,
    ) -> Vec<BestPathChange> {
        let attrs = self.interner.intern(PathAttributes {
            next_hop: None,
            mp_reach: None,
            mp_unreach: None,
            ..attrs
        });
        let data = RouteData::shared(attrs, next_hop);
        let changes: Vec<_> = prefixes
            .iter()
            .filter_map(|prefix| {
                let path = Path {
                    source: Arc::clone(&self.local_source),
                    data: Arc::clone(&data),
                    path_id: 0,
                };
                self.loc_rib.upsert(*prefix, path, &*self.igp)
            })
            .collect();
        self.propagate(&changes);
        changes
    }

    /// Withdraws our route for `prefix`.
    pub fn withdraw(&mut self, prefix: IpPrefix) -> Vec<BestPathChange> {
        self.withdraw_many(&[prefix])
    }

    /// Withdraws our routes for all of `prefixes`.
    pub fn withdraw_many(&mut self, prefixes: &[IpPrefix]) -> Vec<BestPathChange> {
        let changes: Vec<_> = prefixes
            .iter()
            .filter_map(|p| self.loc_rib.remove(*p, &self.local_source, 0, &*self.igp))
            .collect();
        self.propagate(&changes);
        changes
    }

    /// Re-runs the decision process everywhere (the IGP costs changed).
    pub fn reselect(&mut self) -> Vec<BestPathChange> {
        let changes = self.loc_rib.reselect_all(&*self.igp);
        self.propagate(&changes);
        changes
    }

    /// Replaces the IGP-cost hook and re-runs the decision process.
    pub fn set_igp(&mut self, igp: Box<dyn IgpCost + Send>) -> Vec<BestPathChange> {
        self.igp = igp;
        self.reselect()
    }

    /// Packs what `peer` still must be sent into UPDATEs for its session
    /// `ctx`, then End-of-RIB for each negotiated family once the initial
    /// table is out. The Adj-RIB-Out records it as sent only on success.
    pub fn flush(&mut self, address: &IpAddr, ctx: &Context) -> Result<Outbound, RibError> {
        let peer = self.peer_mut(address)?;
        if !peer.up {
            return Ok(Outbound::default());
        }
        let eor: Vec<Family> = Family::ALL
            .into_iter()
            .filter(|f| peer.eor_due.contains(*f))
            .collect();
        let mut out = build(peer.adj_out.pending(), &eor, ctx)?;
        peer.adj_out.commit();
        peer.eor_due = Families::NONE;
        if ctx.enhanced_route_refresh {
            out.refreshed = Family::ALL
                .into_iter()
                .filter(|f| peer.refresh_due.contains(*f))
                .collect();
        }
        peer.refresh_due = Families::NONE;
        Ok(out)
    }

    /// Imports every route `address` sent again (its import policy or
    /// its kind changed).
    fn reimport(&mut self, address: IpAddr) -> Vec<BestPathChange> {
        let Some(peer) = self.peers.get_mut(&address) else {
            return Vec::new();
        };
        let routes = peer.adj_in.routes(&self.loc_rib, &peer.source);
        let mut to = Target {
            loc_rib: &mut self.loc_rib,
            source: &peer.source,
            igp: &*self.igp,
        };
        routes
            .into_iter()
            .filter_map(|(key, route)| {
                let data = route.data();
                let imported = import_route(&self.local, &peer.cfg, &mut self.interner, &key, data);
                peer.adj_in.reimport(key, data, imported, &mut to)
            })
            .collect()
    }

    /// The advert `peer` should have for `prefix`, given its best paths.
    fn advert_for(
        local: &LocalConfig,
        interner: &mut Interner,
        peer: &Peer,
        prefix: &IpPrefix,
        best: &[Path],
    ) -> Option<Advert> {
        let path = best.first()?;
        let family = prefix.family();
        if !peer.families.contains(family)
            || withheld_long_lived(path.attrs(), peer.long_lived.contains(family))
        {
            return None;
        }
        let mut attrs = Cow::Borrowed(&**path.attrs());
        let mut next_hop = path.next_hop();
        if !export(
            local,
            prefix,
            &path.source,
            &peer.cfg,
            &mut attrs,
            &mut next_hop,
        ) {
            return None;
        }
        let attrs = match attrs {
            Cow::Borrowed(_) => Arc::clone(path.attrs()),
            Cow::Owned(a) => interner.intern(a),
        };
        Some(Advert { attrs, next_hop })
    }

    /// Offers best-path changes to every established peer.
    fn propagate(&mut self, changes: &[BestPathChange]) {
        if changes.is_empty() {
            return;
        }
        for peer in self.peers.values_mut().filter(|p| p.up) {
            // Known once per peer, not asked of export() for each route.
            let split = ibgp_split_horizon(&self.local, &peer.cfg);
            peer.adj_out.expect(changes.len());
            for c in changes {
                let internal = c
                    .best
                    .first()
                    .is_some_and(|p| p.source.kind == PeerKind::Internal);
                let advert = if split && internal {
                    None
                } else {
                    Self::advert_for(&self.local, &mut self.interner, peer, &c.prefix, &c.best)
                };
                peer.adj_out.offer(c.prefix, advert);
            }
            peer.adj_out.expect(0);
        }
    }

    /// Offers the whole Loc-RIB to one peer (session up, policy change).
    fn export_all(&mut self, address: IpAddr) {
        let Some(peer) = self.peers.get_mut(&address).filter(|p| p.up) else {
            return;
        };
        let known: Vec<IpPrefix> = self.loc_rib.iter_best().map(|(p, _)| p).collect();
        for prefix in known {
            let advert = Self::advert_for(
                &self.local,
                &mut self.interner,
                peer,
                &prefix,
                self.loc_rib.best(&prefix),
            );
            peer.adj_out.offer(prefix, advert);
        }
    }
}

/// What import checks and policy make of the route `key` as received.
fn import_route(
    local: &LocalConfig,
    cfg: &PeerConfig,
    interner: &mut Interner,
    key: &RouteKey,
    data: &Arc<RouteData>,
) -> Imported {
    let mut attrs = Cow::Borrowed(&*data.attrs);
    let mut next_hop = data.next_hop;
    if !import(local, cfg, &key.prefix, &mut attrs, &mut next_hop) {
        return Imported::Rejected;
    }
    match attrs {
        // Unchanged by policy (the common case): the path points at the
        // record the route came with.
        Cow::Borrowed(_) if next_hop == data.next_hop => Imported::Unchanged,
        Cow::Borrowed(_) => {
            Imported::Changed(RouteData::shared(AttrSet::clone(&data.attrs), next_hop))
        }
        Cow::Owned(a) => Imported::Changed(RouteData::shared(interner.intern(a), next_hop)),
    }
}
