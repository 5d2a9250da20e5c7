//! The speaker: the only tokio code in `bgp`.
//!
//! ```text
//!  SpeakerHandle ──Command──▶ speaker task: owns the peer registry
//!     ▲  (add/remove/status/update)   │        ▲
//!     │                               │        └── accepted (stream, addr) ◀── accept task per listener
//!     │                               │              configured peer? yes: hand it over
//!     │                               ▼                               no: drop it, no OPEN sent
//!     │                       peer task (one per peer, owns its Session)
//!     │                         ▲ ConnEvent (frames)     │ bytes
//!     │                    reader task per conn      writer task per conn
//!     └──── SessionEvent (broadcast) ◀── every peer task
//! ```
//!
//! [`router`] is the task above this one that owns the RIB and drives it
//! with these sessions' events.
//!
//! Each peer task is independent: a malformed message, a hold-timer expiry
//! or a reset ends that peer's session only. TCP MD5 keys are installed on
//! every listening socket for the peer's address when the peer is added,
//! so the kernel drops unsigned or wrongly signed SYNs from it.

mod config;
mod conn;
mod peer;
pub mod router;
pub mod socket;
mod status;

pub use config::{BGP_PORT, PeerConfig, SpeakerConfig};
pub use status::{Counters, PeerStatus, SessionEvent, describe};

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::session::StopReason;
use crate::wire::{Family, Notification, RouteRefresh, RouteRefreshSubtype, Update};
use peer::PeerCommand;

/// What can go wrong asking the speaker for something.
#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    #[error("peer {0} is already configured")]
    PeerExists(IpAddr),
    #[error("peer {0} is not configured")]
    UnknownPeer(IpAddr),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: io::Error },
    #[error("cannot set the TCP MD5 key for {peer}: {source}")]
    Md5 { peer: IpAddr, source: io::Error },
    #[error("the speaker has shut down")]
    Gone,
}

enum Command {
    Add(Box<PeerConfig>, oneshot::Sender<Result<(), SpeakerError>>),
    Remove(
        IpAddr,
        StopReason,
        Option<String>,
        oneshot::Sender<Result<(), SpeakerError>>,
    ),
    Status(Option<IpAddr>, oneshot::Sender<Vec<PeerStatus>>),
    /// A request for one peer's task; `make` builds it around the reply.
    ToPeer(
        IpAddr,
        Box<dyn FnOnce(oneshot::Sender<bool>) -> PeerCommand + Send>,
        oneshot::Sender<Result<bool, SpeakerError>>,
    ),
    Shutdown(Option<String>, oneshot::Sender<()>),
}

/// The handle the node (or a test) holds. Cloning it is cheap.
#[derive(Debug, Clone)]
pub struct SpeakerHandle {
    commands: mpsc::UnboundedSender<Command>,
    events: broadcast::Sender<SessionEvent>,
    local: Vec<SocketAddr>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

/// Bind the listeners and start the speaker task on the current runtime.
pub async fn start(config: SpeakerConfig) -> Result<SpeakerHandle, SpeakerError> {
    let mut listeners = Vec::new();
    for addr in &config.listen {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SpeakerError::Listen {
                addr: *addr,
                source,
            })?;
        listeners.push(Arc::new(listener));
    }
    let local = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect();
    let (commands, rx) = mpsc::unbounded_channel();
    let (events, _) = broadcast::channel(config.event_buffer.max(16));
    let (accepted_tx, accepted_rx) = mpsc::unbounded_channel();
    let accept_tasks = listeners
        .iter()
        .map(|l| tokio::spawn(accept_loop(l.clone(), accepted_tx.clone())))
        .collect();
    let task = SpeakerTask {
        listeners,
        peers: HashMap::new(),
        events: events.clone(),
        accept_tasks,
    };
    tokio::spawn(task.run(rx, accepted_rx));
    Ok(SpeakerHandle {
        commands,
        events,
        local,
    })
}

impl SpeakerHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, SpeakerError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .map_err(|_| SpeakerError::Gone)?;
        rx.await.map_err(|_| SpeakerError::Gone)
    }

    /// The addresses actually listened on (useful with port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local
    }

    /// Configure a peer and start its session.
    pub async fn add_peer(&self, peer: PeerConfig) -> Result<(), SpeakerError> {
        self.ask(|tx| Command::Add(Box::new(peer), tx)).await?
    }

    /// Replace a peer's configuration: its session ends with Cease 6/6
    /// (Other Configuration Change) and starts again with `peer`.
    pub async fn update_peer(&self, peer: PeerConfig) -> Result<(), SpeakerError> {
        let why = StopReason::OtherConfigurationChange;
        self.ask(|tx| Command::Remove(peer.address, why, None, tx))
            .await??;
        self.add_peer(peer).await
    }

    /// Stop a peer's session with Cease 6/3 (Peer De-configured) and
    /// forget it.
    pub async fn remove_peer(&self, addr: IpAddr) -> Result<(), SpeakerError> {
        let why = StopReason::PeerDeconfigured;
        self.ask(|tx| Command::Remove(addr, why, None, tx)).await?
    }

    /// Every peer's status, in address order.
    pub async fn peers(&self) -> Result<Vec<PeerStatus>, SpeakerError> {
        self.ask(|tx| Command::Status(None, tx)).await
    }

    /// One peer's status.
    pub async fn peer(&self, addr: IpAddr) -> Result<Option<PeerStatus>, SpeakerError> {
        Ok(self
            .ask(|tx| Command::Status(Some(addr), tx))
            .await?
            .into_iter()
            .next())
    }

    /// Ask `addr`'s peer task for something that answers yes or no.
    async fn ask_peer(
        &self,
        addr: IpAddr,
        make: impl FnOnce(oneshot::Sender<bool>) -> PeerCommand + Send + 'static,
    ) -> Result<bool, SpeakerError> {
        self.ask(|tx| Command::ToPeer(addr, Box::new(make), tx))
            .await?
    }

    /// Send an UPDATE to an Established peer; `Ok(false)` if it is not.
    pub async fn send_update(&self, addr: IpAddr, update: Update) -> Result<bool, SpeakerError> {
        self.send_updates(addr, vec![update]).await
    }

    /// Send UPDATEs, in order, to an Established peer; `Ok(false)` if it
    /// is not.
    pub async fn send_updates(
        &self,
        addr: IpAddr,
        updates: Vec<Update>,
    ) -> Result<bool, SpeakerError> {
        self.ask_peer(addr, |tx| PeerCommand::SendUpdates(updates, tx))
            .await
    }

    /// Send `messages` UPDATEs already encoded, back to back, in `bytes`
    /// with the negotiated context of the peer's `session`-th Established
    /// session (its [`Counters::established`] then), e.g. the output of
    /// [`crate::rib::Rib::flush`]. `Ok(false)` if that session is not the
    /// one Established now: bytes for an earlier session are never sent
    /// on a later one.
    pub async fn send_encoded(
        &self,
        addr: IpAddr,
        session: u64,
        bytes: Vec<u8>,
        messages: u64,
    ) -> Result<bool, SpeakerError> {
        self.ask_peer(addr, move |reply| PeerCommand::SendEncoded {
            bytes,
            messages,
            session,
            reply,
        })
        .await
    }

    /// Ask an Established peer to send its routes of `family` again
    /// (ROUTE-REFRESH, RFC 2918 §3); `Ok(false)` if it is not Established
    /// or either side lacks the route refresh capability.
    pub async fn send_route_refresh(
        &self,
        addr: IpAddr,
        family: Family,
    ) -> Result<bool, SpeakerError> {
        self.send_route_refresh_subtype(addr, family, RouteRefreshSubtype::Request)
            .await
    }

    /// Send the BoRR or EoRR (`subtype`) of each of `families`, in order:
    /// the frame of an enhanced route refresh answer (RFC 7313 §4).
    /// Stops at the first error.
    pub async fn send_refresh_markers(
        &self,
        addr: IpAddr,
        families: &[Family],
        subtype: RouteRefreshSubtype,
    ) -> Result<(), SpeakerError> {
        for family in families {
            self.send_route_refresh_subtype(addr, *family, subtype)
                .await?;
        }
        Ok(())
    }

    /// Send a ROUTE-REFRESH of `subtype`: a request (needs route refresh
    /// negotiated), or the BoRR / EoRR that frame an answer (need enhanced
    /// route refresh, RFC 7313). `Ok(false)` if the peer is not
    /// Established or did not negotiate it.
    pub async fn send_route_refresh_subtype(
        &self,
        addr: IpAddr,
        family: Family,
        subtype: RouteRefreshSubtype,
    ) -> Result<bool, SpeakerError> {
        let refresh = RouteRefresh {
            afi: family.afi(),
            subtype,
            safi: family.safi(),
        };
        self.ask_peer(addr, move |tx| PeerCommand::SendRouteRefresh(refresh, tx))
            .await
    }

    /// End a peer's session on our own (AutomaticStop, RFC 4271 Event 8)
    /// with `notification`, e.g. Cease 6/1 for a peer over its max-prefix
    /// limit; it starts again after `restart_after`, or stays down until
    /// the peer is configured again. The peer stays configured.
    pub async fn automatic_stop(
        &self,
        addr: IpAddr,
        notification: Notification,
        restart_after: Option<Duration>,
    ) -> Result<(), SpeakerError> {
        self.ask_peer(addr, move |tx| {
            // Nothing to wait for: answer at once.
            let _ = tx.send(true);
            PeerCommand::AutomaticStop {
                notification,
                restart_after,
            }
        })
        .await
        .map(drop)
    }

    /// Session events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<SessionEvent> {
        self.events.subscribe()
    }

    /// Stop every session (Cease 6/2, Administrative Shutdown, with the
    /// RFC 9003 `communication`) and the listeners.
    pub async fn shutdown(&self, communication: Option<String>) {
        let _ = self.ask(|tx| Command::Shutdown(communication, tx)).await;
    }
}

struct PeerSlot {
    commands: mpsc::UnboundedSender<PeerCommand>,
    task: JoinHandle<()>,
    has_md5: bool,
}

struct SpeakerTask {
    listeners: Vec<Arc<TcpListener>>,
    peers: HashMap<IpAddr, PeerSlot>,
    events: broadcast::Sender<SessionEvent>,
    accept_tasks: Vec<JoinHandle<()>>,
}

async fn accept_loop(
    listener: Arc<TcpListener>,
    out: mpsc::UnboundedSender<(TcpStream, SocketAddr)>,
) {
    loop {
        match listener.accept().await {
            Ok(pair) => {
                if out.send(pair).is_err() {
                    return;
                }
            }
            // EMFILE and friends: back off a little rather than spin.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d`, so a dual-stack listener finds IPv4 peers.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl SpeakerTask {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut accepted: mpsc::UnboundedReceiver<(TcpStream, SocketAddr)>,
    ) {
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(Command::Shutdown(comm, done)) => {
                        self.shutdown(comm).await;
                        let _ = done.send(());
                        return;
                    }
                    Some(cmd) => self.command(cmd).await,
                    None => {
                        self.shutdown(None).await;
                        return;
                    }
                },
                Some((stream, from)) = accepted.recv() => {
                    match self.peers.get(&canonical(from.ip())) {
                        Some(slot) => { let _ = slot.commands.send(PeerCommand::Inbound(stream)); }
                        // Not a configured peer: close without a word.
                        None => drop(stream),
                    }
                }
            }
        }
    }

    async fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Add(cfg, reply) => {
                let _ = reply.send(self.add(*cfg));
            }
            Command::Remove(addr, why, comm, reply) => {
                let _ = reply.send(self.remove(addr, why, comm).await);
            }
            Command::Status(which, reply) => {
                let mut out = Vec::new();
                let mut addrs: Vec<IpAddr> = match which {
                    Some(a) => vec![a],
                    None => self.peers.keys().copied().collect(),
                };
                addrs.sort();
                for addr in addrs {
                    let Some(slot) = self.peers.get(&addr) else {
                        continue;
                    };
                    let (tx, rx) = oneshot::channel();
                    if slot.commands.send(PeerCommand::Status(tx)).is_ok()
                        && let Ok(status) = rx.await
                    {
                        out.push(status);
                    }
                }
                let _ = reply.send(out);
            }
            Command::ToPeer(addr, make, reply) => {
                let result = match self.peers.get(&addr) {
                    None => Err(SpeakerError::UnknownPeer(addr)),
                    Some(slot) => {
                        let (tx, rx) = oneshot::channel();
                        let _ = slot.commands.send(make(tx));
                        rx.await.map_err(|_| SpeakerError::Gone)
                    }
                };
                let _ = reply.send(result);
            }
            Command::Shutdown(..) => {}
        }
    }

    fn add(&mut self, cfg: PeerConfig) -> Result<(), SpeakerError> {
        let addr = cfg.address;
        if self.peers.contains_key(&addr) {
            return Err(SpeakerError::PeerExists(addr));
        }
        let key = cfg.password.as_ref().map(|p| p.as_bytes().to_vec());
        if let Some(key) = &key {
            for l in &self.listeners {
                let family_matches = l
                    .local_addr()
                    .map(|a| a.is_ipv6() || addr.is_ipv4())
                    .unwrap_or(false);
                if family_matches {
                    socket::set_md5(l.as_ref(), addr, Some(key))
                        .map_err(|source| SpeakerError::Md5 { peer: addr, source })?;
                }
            }
        }
        let (commands, task) = peer::spawn(cfg, self.events.clone());
        self.peers.insert(
            addr,
            PeerSlot {
                commands,
                task,
                has_md5: key.is_some(),
            },
        );
        Ok(())
    }

    async fn remove(
        &mut self,
        addr: IpAddr,
        why: StopReason,
        communication: Option<String>,
    ) -> Result<(), SpeakerError> {
        let slot = self
            .peers
            .remove(&addr)
            .ok_or(SpeakerError::UnknownPeer(addr))?;
        let (done, wait) = oneshot::channel();
        if slot
            .commands
            .send(PeerCommand::Remove {
                why,
                communication,
                done,
            })
            .is_ok()
        {
            let _ = wait.await;
        }
        let _ = slot.task.await;
        if slot.has_md5 {
            for l in &self.listeners {
                let _ = socket::set_md5(l.as_ref(), addr, None);
            }
        }
        Ok(())
    }

    async fn shutdown(&mut self, communication: Option<String>) {
        let addrs: Vec<IpAddr> = self.peers.keys().copied().collect();
        for addr in addrs {
            let why = StopReason::AdministrativeShutdown;
            let _ = self.remove(addr, why, communication.clone()).await;
        }
        for t in &self.accept_tasks {
            t.abort();
        }
    }
}
