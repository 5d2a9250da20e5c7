//! The router task: the one owner of the [`Rib`]; see the diagram in
//! [`super`].
//!
//! It reads the clock only to stamp session events and to sleep until
//! the next deadline (the coalescing flush or a graceful-restart
//! expiry); every decision is the RIB's or a pure function's.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};

use super::{PeerRoutes, RoutedPeer, RouterCommand, RouterConfig, RouterError, RouterEvent};
use crate::rib::{BestPathChange, MaxPrefixAction, Rib};
use crate::session::{Negotiated, graceful};
use crate::speaker::{PeerConfig as SessionPeer, SessionEvent, SpeakerHandle};
use crate::wire::{Families, Family, Message, RouteRefreshSubtype};

/// The task's state.
pub(super) struct RouterTask {
    speaker: SpeakerHandle,
    config: RouterConfig,
    rib: Rib,
    /// Managed peers: their session configuration (to reset them).
    peers: HashMap<IpAddr, SessionPeer>,
    /// What each Established managed peer's session negotiated, and which
    /// of its sessions it is (counting Up events since it was added, as
    /// the speaker's [`crate::speaker::Counters::established`] does).
    sessions: HashMap<IpAddr, (Negotiated, u64)>,
    /// Up events seen per managed peer.
    ups: HashMap<IpAddr, u64>,
    /// Peers whose routes we keep, stale, through their restart, and
    /// since when.
    helping: HashMap<IpAddr, Instant>,
    /// When the Adj-RIBs-Out are flushed next.
    flush_at: Option<Instant>,
    events: broadcast::Sender<RouterEvent>,
}

impl RouterTask {
    pub(super) fn new(
        speaker: SpeakerHandle,
        config: RouterConfig,
        events: broadcast::Sender<RouterEvent>,
    ) -> Self {
        Self {
            speaker,
            rib: Rib::new(config.local.clone()),
            config,
            peers: HashMap::new(),
            sessions: HashMap::new(),
            ups: HashMap::new(),
            helping: HashMap::new(),
            flush_at: None,
            events,
        }
    }

    pub(super) async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<RouterCommand>,
        mut sessions: broadcast::Receiver<SessionEvent>,
    ) {
        loop {
            let wake = [self.flush_at, self.rib.next_deadline()]
                .into_iter()
                .flatten()
                .min();
            let sleep = async {
                match wake {
                    Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(RouterCommand::Shutdown(done)) => {
                        self.flush().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(cmd) => self.command(cmd).await,
                    None => return,
                },
                ev = sessions.recv() => match ev {
                    Ok(ev) => self.session_event(ev).await,
                    Err(RecvError::Lagged(missed)) => self.resynchronise(missed).await,
                    Err(RecvError::Closed) => return,
                },
                () = sleep => {
                    let now = Instant::now();
                    let changes = self.rib.expire(now);
                    self.publish(changes);
                    if self.flush_at.is_some_and(|t| t <= now) {
                        self.flush().await;
                    }
                }
            }
        }
    }

    /// Best-path changes out to subscribers, and a flush armed.
    fn publish(&mut self, changes: Vec<BestPathChange>) {
        if changes.is_empty() {
            return;
        }
        self.schedule_flush();
        let _ = self.events.send(RouterEvent::BestPaths(Arc::new(changes)));
    }

    fn schedule_flush(&mut self) {
        if self.flush_at.is_none() {
            self.flush_at = Some(Instant::now() + self.config.coalesce);
        }
    }

    /// Sends every Established peer what its Adj-RIB-Out still lacks.
    async fn flush(&mut self) {
        self.flush_at = None;
        let mut peers: Vec<IpAddr> = self.sessions.keys().copied().collect();
        peers.sort();
        for peer in peers {
            let Some((ctx, session)) = self.sessions.get(&peer).map(|(n, s)| (n.context, *s))
            else {
                continue;
            };
            // An UPDATE that cannot be encoded stays pending; there is
            // nothing better to do with it than to try again next time.
            let Ok(out) = self.rib.flush(&peer, &ctx) else {
                continue;
            };
            if out.is_empty() {
                continue;
            }
            // Not sent means that session is gone: its Down event follows
            // and the next session gets the whole table. An answer to an
            // enhanced route refresh goes between BoRR and EoRR (RFC 7313
            // §4); one peer's commands keep their order.
            let _ = self
                .speaker
                .send_refresh_markers(
                    peer,
                    &out.refreshed,
                    RouteRefreshSubtype::BeginningOfRouteRefresh,
                )
                .await;
            let messages = u64::try_from(out.messages).unwrap_or(u64::MAX);
            if messages > 0 {
                let _ = self
                    .speaker
                    .send_encoded(peer, session, out.bytes, messages)
                    .await;
            }
            let _ = self
                .speaker
                .send_refresh_markers(peer, &out.refreshed, RouteRefreshSubtype::EndOfRouteRefresh)
                .await;
        }
    }

    async fn command(&mut self, cmd: RouterCommand) {
        match cmd {
            RouterCommand::AddPeer(peer, reply) => {
                let _ = reply.send(self.add_peer(*peer).await);
            }
            RouterCommand::SetPolicy(rib, reply) => {
                let result = if self.peers.contains_key(&rib.address) {
                    let changes = self.rib.set_peer(*rib);
                    self.publish(changes);
                    self.schedule_flush();
                    Ok(())
                } else {
                    Err(RouterError::UnknownPeer(rib.address))
                };
                let _ = reply.send(result);
            }
            RouterCommand::RemovePeer(addr, reply) => {
                let result = match self.peers.remove(&addr) {
                    None => Err(RouterError::UnknownPeer(addr)),
                    Some(_) => {
                        let stopped = self.speaker.remove_peer(addr).await;
                        self.sessions.remove(&addr);
                        self.ups.remove(&addr);
                        self.helping.remove(&addr);
                        let changes = self.rib.remove_peer(&addr);
                        self.publish(changes);
                        stopped.map_err(RouterError::from)
                    }
                };
                let _ = reply.send(result);
            }
            RouterCommand::Originate(prefix, attrs, next_hop, reply) => {
                let changes = self.rib.originate(prefix, *attrs, next_hop);
                self.publish(changes);
                let _ = reply.send(());
            }
            RouterCommand::Withdraw(prefix, reply) => {
                let changes = self.rib.withdraw(prefix);
                self.publish(changes);
                let _ = reply.send(());
            }
            // A batch handed over whole goes out at once: waiting for the
            // coalescing delay would only make it late.
            RouterCommand::OriginateMany(prefixes, attrs, next_hop, reply) => {
                let changes = self.rib.originate_many(&prefixes, *attrs, next_hop);
                self.publish(changes);
                self.flush().await;
                let _ = reply.send(());
            }
            RouterCommand::WithdrawMany(prefixes, reply) => {
                let changes = self.rib.withdraw_many(&prefixes);
                self.publish(changes);
                self.flush().await;
                let _ = reply.send(());
            }
            RouterCommand::LocRib(reply) => {
                let all: BTreeMap<_, _> = self
                    .rib
                    .loc_rib()
                    .iter_best()
                    .map(|(p, best)| (p, best.to_vec()))
                    .collect();
                let _ = reply.send(all.into_iter().collect());
            }
            RouterCommand::Best(prefix, reply) => {
                let _ = reply.send(self.rib.loc_rib().best(&prefix).to_vec());
            }
            RouterCommand::PeerRoutes(addr, reply) => {
                let routes = self.peers.contains_key(&addr).then(|| {
                    let (received, stale) = self
                        .rib
                        .adj_rib_in(&addr)
                        .map_or((0, 0), |a| (a.len(), a.stale_count()));
                    let (advertised, pending) = self
                        .rib
                        .adj_rib_out(&addr)
                        .map_or((0, 0), |a| (a.len(), a.pending_len()));
                    PeerRoutes {
                        received,
                        stale,
                        advertised,
                        pending,
                    }
                });
                let _ = reply.send(routes);
            }
            RouterCommand::Refresh(addr, family, reply) => {
                let result = if self.peers.contains_key(&addr) {
                    self.speaker
                        .send_route_refresh(addr, family)
                        .await
                        .map_err(RouterError::from)
                } else {
                    Err(RouterError::UnknownPeer(addr))
                };
                let _ = reply.send(result);
            }
            RouterCommand::Shutdown(_) => {}
        }
    }

    async fn add_peer(&mut self, peer: RoutedPeer) -> Result<(), RouterError> {
        let addr = peer.session.address;
        if peer.rib.address != addr {
            return Err(RouterError::AddressMismatch {
                session: addr,
                rib: peer.rib.address,
            });
        }
        if self.peers.contains_key(&addr) {
            return Err(super::SpeakerError::PeerExists(addr).into());
        }
        self.rib.set_peer(peer.rib);
        if let Err(e) = self.speaker.add_peer(peer.session.clone()).await {
            self.rib.remove_peer(&addr);
            return Err(e.into());
        }
        self.peers.insert(addr, peer.session);
        self.ups.insert(addr, 0);
        Ok(())
    }

    async fn session_event(&mut self, ev: SessionEvent) {
        match ev {
            SessionEvent::Up { peer, negotiated } if self.peers.contains_key(&peer) => {
                // Which families were kept long-lived is asked before the
                // session is up again.
                let long_lived_now = self
                    .rib
                    .adj_rib_in(&peer)
                    .map_or(Families::NONE, |a| a.long_lived());
                if self
                    .rib
                    .peer_up(
                        peer,
                        negotiated.peer_id,
                        negotiated.families,
                        graceful::long_lived(&negotiated),
                    )
                    .is_err()
                {
                    return;
                }
                if self.helping.remove(&peer).is_some() {
                    let until = Instant::now() + self.config.stale_path_time;
                    let preserved = graceful::preserved(&negotiated, long_lived_now);
                    if let Ok(changes) = self.rib.peer_restarted(&peer, preserved, until) {
                        self.publish(changes);
                    }
                }
                let ups = self.ups.entry(peer).or_default();
                *ups += 1;
                let session = *ups;
                self.sessions.insert(peer, (*negotiated, session));
                self.schedule_flush();
            }
            SessionEvent::Down { peer, reason } => {
                // Only the end of an Established session touches the RIB:
                // a failed attempt while we keep a restarting peer's
                // routes must not flush them.
                let Some((negotiated, _)) = self.sessions.remove(&peer) else {
                    return;
                };
                let keep = graceful::helper_keeps(
                    &negotiated,
                    &reason,
                    Instant::now(),
                    self.config.long_lived_max,
                );
                match &keep {
                    Some(r) => {
                        self.helping.insert(peer, r.at);
                    }
                    None => {
                        self.helping.remove(&peer);
                    }
                }
                if let Ok(changes) = self.rib.peer_down(&peer, keep.as_ref()) {
                    self.publish(changes);
                }
            }
            SessionEvent::Received { peer, message } if self.sessions.contains_key(&peer) => {
                match *message {
                    Message::Update(update) => {
                        if let Ok(changes) = self.rib.receive(&peer, &update) {
                            self.publish(changes);
                        }
                        if update.end_of_rib_family().is_some()
                            && self
                                .rib
                                .adj_rib_in(&peer)
                                .is_some_and(|a| a.stale_count() == 0)
                        {
                            self.helping.remove(&peer);
                        }
                        self.check_max_prefix(peer).await;
                    }
                    Message::RouteRefresh(rr) if rr.subtype == RouteRefreshSubtype::Request => {
                        let queued = Family::from_afi_safi(rr.afi, rr.safi)
                            .and_then(|f| self.rib.resend(&peer, f).ok());
                        if queued.is_some() {
                            self.schedule_flush();
                        }
                    }
                    Message::RouteRefresh(rr) => {
                        // BoRR / EoRR of the peer's answer to our request.
                        let until = Instant::now() + self.config.stale_path_time;
                        let changes = Family::from_afi_safi(rr.afi, rr.safi).and_then(|f| {
                            self.rib.refresh_marker(&peer, f, rr.subtype, until).ok()
                        });
                        if let Some(changes) = changes {
                            self.publish(changes);
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    async fn check_max_prefix(&mut self, peer: IpAddr) {
        let Some(exceeded) = self.rib.check_max_prefix(&peer) else {
            return;
        };
        let _ = self.events.send(RouterEvent::MaxPrefix { peer, exceeded });
        if let MaxPrefixAction::Cease { restart_after } = exceeded.action {
            let _ = self
                .speaker
                .automatic_stop(peer, exceeded.notification(), restart_after)
                .await;
        }
    }

    /// Session events were lost: the Adj-RIBs-In cannot be trusted. Every
    /// managed session starts again (Cease 6/6) and sends its table anew.
    async fn resynchronise(&mut self, missed: u64) {
        let _ = self.events.send(RouterEvent::Resynchronising(missed));
        let mut peers: Vec<(IpAddr, SessionPeer)> =
            self.peers.iter().map(|(a, c)| (*a, c.clone())).collect();
        peers.sort_by_key(|(a, _)| *a);
        for (addr, cfg) in peers {
            self.sessions.remove(&addr);
            self.helping.remove(&addr);
            if let Ok(changes) = self.rib.peer_down(&addr, None) {
                self.publish(changes);
            }
            // A new peer task counts its sessions from zero again.
            self.ups.insert(addr, 0);
            let _ = self.speaker.update_peer(cfg).await;
        }
    }
}
