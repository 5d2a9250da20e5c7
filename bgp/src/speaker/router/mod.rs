//! The router: the task that owns the [`Rib`](crate::rib::Rib) and
//! drives it with the speaker's sessions — the glue between [`crate::session`] events and
//! [`crate::rib`].
//!
//! ```text
//!  RouterHandle ──RouterCommand──▶ router task: owns the Rib, the negotiated
//!     ▲   (peers, originate,            │   context of every Established peer,
//!     │    withdraw, queries, refresh)  │   the coalescing flush deadline
//!     │                                 │        ▲
//!     │          SpeakerHandle ◀────────┘        │ SessionEvent (broadcast)
//!     │   add/remove peer, send_updates,         │ Up / Down / Received
//!     │   ROUTE-REFRESH, AutomaticStop ──▶ speaker task ──▶ peer tasks
//!     └── RouterEvent (broadcast): best-path changes, max-prefix reports
//! ```
//!
//! What the task does with each session event:
//!
//! * **Up**: the peer's Adj-RIB-Out is filled from the Loc-RIB
//!   ([`Rib::peer_up`](crate::rib::Rib::peer_up)); if we were keeping
//!   its routes through a restart, families it no longer preserves are
//!   flushed and the rest wait for its End-of-RIB or the stale-path time
//!   ([`Rib::peer_restarted`](crate::rib::Rib::peer_restarted)).
//! * **Down**: its routes go, unless it announced graceful restart and the
//!   connection was lost: then they stay, stale, for its Restart Time
//!   ([`crate::session::graceful::helper_keeps`], RFC 4724 §4.2), and if
//!   it announced long-lived graceful restart, then for its Long-lived
//!   Stale Time (at most [`RouterConfig::long_lived_max`]) as long-lived
//!   stale routes: marked LLGR_STALE, least preferred, sent only to
//!   peers that announced LLGR (RFC 9494 §4); the deadlines are driven
//!   through [`Rib::expire`](crate::rib::Rib::expire).
//! * **UPDATE**: into its Adj-RIB-In and the decision process
//!   ([`Rib::receive`](crate::rib::Rib::receive)); then the max-prefix
//!   check (RFC 4486 §4), which either reports or closes the session with
//!   Cease 6/1.
//! * **ROUTE-REFRESH**: its whole Adj-RIB-Out of that family is queued
//!   again ([`Rib::resend`](crate::rib::Rib::resend), RFC 2918 §4).
//!
//! Whatever changes, the Adj-RIBs-Out are flushed to the peers after a
//! short coalescing delay ([`RouterConfig::coalesce`]): the first change
//! arms it, later ones ride along, so a burst becomes few UPDATEs and the
//! first route is late by at most that delay. A batch handed over whole
//! ([`RouterHandle::originate_many`], [`RouterHandle::withdraw_many`]) is
//! flushed at once: it has nothing to coalesce with.
//!
//! The router only manages peers added through it. If it falls behind
//! the speaker's event stream, UPDATEs are lost and cannot be recovered:
//! it then resets its peers' sessions (Cease 6/6) so they send everything
//! again.

mod task;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};

use super::{PeerConfig as SessionPeer, SpeakerError, SpeakerHandle};
use crate::rib::{
    BestPathChange, IpPrefix, LocalConfig, MaxPrefixExceeded, Path, PeerConfig as RibPeer, RibError,
};
use crate::wire::{Family, NextHop, PathAttributes};

/// The router as a whole.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// This speaker, for the RIB.
    pub local: LocalConfig,
    /// How long after the first change the Adj-RIBs-Out are flushed.
    pub coalesce: Duration,
    /// How long a restarted peer's stale routes wait for its End-of-RIB
    /// once its session is back (FRR's `stale-path-time`, 360 s); also the
    /// bound on waiting for an EoRR after a peer's BoRR (RFC 7313 §4).
    pub stale_path_time: Duration,
    /// The longest a peer's routes are kept long-lived stale after its
    /// restart time (RFC 9494 §4.2: its Long-lived Stale Time, at most
    /// this; BIRD's `long lived stale time` default, one hour). Zero:
    /// never.
    pub long_lived_max: Duration,
    /// How many router events a slow subscriber may fall behind by.
    pub event_buffer: usize,
}

impl RouterConfig {
    /// Defaults for `local`: 20 ms coalescing, stale-path time 360 s,
    /// long-lived stale routes kept up to an hour.
    pub fn new(local: LocalConfig) -> Self {
        Self {
            local,
            coalesce: Duration::from_millis(20),
            stale_path_time: Duration::from_secs(360),
            long_lived_max: Duration::from_secs(3600),
            event_buffer: 1024,
        }
    }
}

/// One peer as the router knows it: its session and its RIB view (policy,
/// next hop, route reflection, max-prefix limit). Both name the same
/// address.
#[derive(Debug, Clone)]
pub struct RoutedPeer {
    /// The session, for the speaker.
    pub session: SessionPeer,
    /// The routes, for the RIB.
    pub rib: RibPeer,
}

/// What a router subscriber hears about.
#[derive(Debug, Clone)]
pub enum RouterEvent {
    /// Best paths changed (in the order the RIB reported them). The RIB's
    /// own vector, shared: a slice would copy every change once more.
    BestPaths(Arc<Vec<BestPathChange>>),
    /// A peer went over its max-prefix limit; with
    /// [`crate::rib::MaxPrefixAction::Cease`] its session is being closed.
    MaxPrefix {
        peer: IpAddr,
        exceeded: MaxPrefixExceeded,
    },
    /// The router missed this many session events and reset its peers.
    Resynchronising(u64),
}

/// A peer's routes, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerRoutes {
    /// Routes in its Adj-RIB-In (stale ones included).
    pub received: usize,
    /// Of those, kept stale through its restart.
    pub stale: usize,
    /// Routes in its Adj-RIB-Out (as sent).
    pub advertised: usize,
    /// Changes queued for it, not yet flushed.
    pub pending: usize,
}

/// What can go wrong asking the router.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error(transparent)]
    Speaker(#[from] SpeakerError),
    #[error(transparent)]
    Rib(#[from] RibError),
    #[error("session config is for {session}, RIB config for {rib}")]
    AddressMismatch { session: IpAddr, rib: IpAddr },
    #[error("peer {0} is not managed by the router")]
    UnknownPeer(IpAddr),
    #[error("the router has stopped")]
    Gone,
}

type Reply<T> = oneshot::Sender<T>;

/// What the handle asks of the task.
#[derive(Debug)]
enum RouterCommand {
    AddPeer(Box<RoutedPeer>, Reply<Result<(), RouterError>>),
    SetPolicy(Box<RibPeer>, Reply<Result<(), RouterError>>),
    RemovePeer(IpAddr, Reply<Result<(), RouterError>>),
    Originate(IpPrefix, Box<PathAttributes>, NextHop, Reply<()>),
    Withdraw(IpPrefix, Reply<()>),
    OriginateMany(Vec<IpPrefix>, Box<PathAttributes>, NextHop, Reply<()>),
    WithdrawMany(Vec<IpPrefix>, Reply<()>),
    LocRib(Reply<Vec<(IpPrefix, Vec<Path>)>>),
    Best(IpPrefix, Reply<Vec<Path>>),
    PeerRoutes(IpAddr, Reply<Option<PeerRoutes>>),
    Refresh(IpAddr, Family, Reply<Result<bool, RouterError>>),
    Shutdown(Reply<()>),
}

/// The handle to the router task. Cloning it is cheap; the task ends when
/// the last handle is dropped or [`RouterHandle::shutdown`] is called.
#[derive(Debug, Clone)]
pub struct RouterHandle {
    commands: mpsc::UnboundedSender<RouterCommand>,
    events: broadcast::Sender<RouterEvent>,
    speaker: SpeakerHandle,
}

/// Start the router task for `speaker` on the current runtime. It
/// subscribes to the speaker's events at once, so peers added through the
/// handle are followed from their first event.
pub fn start(speaker: SpeakerHandle, config: RouterConfig) -> RouterHandle {
    let (commands, rx) = mpsc::unbounded_channel();
    let (events, _) = broadcast::channel(config.event_buffer.max(16));
    let task = task::RouterTask::new(speaker.clone(), config, events.clone());
    tokio::spawn(task.run(rx, speaker.subscribe()));
    RouterHandle {
        commands,
        events,
        speaker,
    }
}

impl RouterHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> RouterCommand,
    ) -> Result<T, RouterError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .map_err(|_| RouterError::Gone)?;
        rx.await.map_err(|_| RouterError::Gone)
    }

    /// The speaker the router drives.
    pub fn speaker(&self) -> &SpeakerHandle {
        &self.speaker
    }

    /// Configure a peer in the RIB and start its session.
    pub async fn add_peer(&self, peer: RoutedPeer) -> Result<(), RouterError> {
        self.ask(|tx| RouterCommand::AddPeer(Box::new(peer), tx))
            .await?
    }

    /// Replace a peer's RIB view (policies, next hop, limit) without
    /// resetting its session: what it sent is imported again and what it
    /// is sent is recomputed (soft reconfiguration). Routes its import
    /// policy refused earlier are still in its Adj-RIB-In; call
    /// [`RouterHandle::refresh`] to have the peer send everything again.
    pub async fn set_policy(&self, rib: RibPeer) -> Result<(), RouterError> {
        self.ask(|tx| RouterCommand::SetPolicy(Box::new(rib), tx))
            .await?
    }

    /// Stop a peer's session (Cease 6/3) and drop its routes.
    pub async fn remove_peer(&self, addr: IpAddr) -> Result<(), RouterError> {
        self.ask(|tx| RouterCommand::RemovePeer(addr, tx)).await?
    }

    /// Originate `prefix` with `attrs` and `next_hop` (replacing our
    /// earlier route for it).
    pub async fn originate(
        &self,
        prefix: IpPrefix,
        attrs: PathAttributes,
        next_hop: NextHop,
    ) -> Result<(), RouterError> {
        self.ask(|tx| RouterCommand::Originate(prefix, Box::new(attrs), next_hop, tx))
            .await
    }

    /// Withdraw our route for `prefix`.
    pub async fn withdraw(&self, prefix: IpPrefix) -> Result<(), RouterError> {
        self.ask(|tx| RouterCommand::Withdraw(prefix, tx)).await
    }

    /// Originate every prefix of `prefixes` with the same `attrs` and
    /// `next_hop`, as one change: one best-path event, and the UPDATEs
    /// packed together and sent at once (the batch is whole: there is
    /// nothing to wait for; an agent announcing its blocks at start-up).
    pub async fn originate_many(
        &self,
        prefixes: Vec<IpPrefix>,
        attrs: PathAttributes,
        next_hop: NextHop,
    ) -> Result<(), RouterError> {
        self.ask(|tx| RouterCommand::OriginateMany(prefixes, Box::new(attrs), next_hop, tx))
            .await
    }

    /// Withdraw our routes for all of `prefixes`, as one change, sent at
    /// once.
    pub async fn withdraw_many(&self, prefixes: Vec<IpPrefix>) -> Result<(), RouterError> {
        self.ask(|tx| RouterCommand::WithdrawMany(prefixes, tx))
            .await
    }

    /// A snapshot of the Loc-RIB: every destination with its selected
    /// paths, best first, in prefix order.
    pub async fn loc_rib(&self) -> Result<Vec<(IpPrefix, Vec<Path>)>, RouterError> {
        self.ask(RouterCommand::LocRib).await
    }

    /// The selected paths for `prefix`, best first; empty if none.
    pub async fn best(&self, prefix: IpPrefix) -> Result<Vec<Path>, RouterError> {
        self.ask(|tx| RouterCommand::Best(prefix, tx)).await
    }

    /// A managed peer's route counts.
    pub async fn peer_routes(&self, addr: IpAddr) -> Result<Option<PeerRoutes>, RouterError> {
        self.ask(|tx| RouterCommand::PeerRoutes(addr, tx)).await
    }

    /// Ask a peer to send its routes of `family` again (ROUTE-REFRESH,
    /// RFC 2918), e.g. after an import policy became less strict;
    /// `Ok(false)` if it is not Established or lacks the capability.
    pub async fn refresh(&self, addr: IpAddr, family: Family) -> Result<bool, RouterError> {
        self.ask(|tx| RouterCommand::Refresh(addr, family, tx))
            .await?
    }

    /// Best-path changes and reports from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<RouterEvent> {
        self.events.subscribe()
    }

    /// Flush what is pending and stop the task. The speaker and its
    /// sessions stay up.
    pub async fn shutdown(&self) {
        let _ = self.ask(RouterCommand::Shutdown).await;
    }
}
