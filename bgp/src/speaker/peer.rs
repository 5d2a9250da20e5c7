//! The task that owns one peer's [`Session`] and its connections.
//!
//! It turns what happens on the wire and on the clock into session
//! [`Input`]s and carries out the resulting [`Action`]s: it starts and
//! cancels connection attempts, encodes and queues messages, closes
//! connections, keeps the peer's status and counters, and publishes
//! [`SessionEvent`]s. Nothing it does can affect another peer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::config::PeerConfig;
use super::conn::{Conn, ConnEvent, apply_ttl, connect};
use super::status::{Counters, PeerStatus, SessionEvent, describe};
use crate::session::{Action, ConnId, Direction, Input, Session, State, StopReason};
use crate::wire::{Context, Message, Notification, RouteRefresh, Update, decode, encode};

/// What the speaker tells a peer task.
#[derive(Debug)]
pub(crate) enum PeerCommand {
    /// A connection from the peer's address was accepted.
    Inbound(TcpStream),
    /// Report the peer's status.
    Status(oneshot::Sender<PeerStatus>),
    /// Send UPDATEs, in order, if Established; answers whether they were
    /// sent.
    SendUpdates(Vec<Update>, oneshot::Sender<bool>),
    /// Send UPDATEs already encoded with the negotiated context of the
    /// `session`-th Established session (the value of
    /// [`Counters::established`] while it lasts), back to back, if that
    /// session is still the one Established; answers whether they were
    /// sent.
    SendEncoded {
        bytes: Vec<u8>,
        messages: u64,
        session: u64,
        reply: oneshot::Sender<bool>,
    },
    /// Send a ROUTE-REFRESH if Established and both sides announced the
    /// capability (RFC 2918 §4); answers whether it was sent.
    SendRouteRefresh(RouteRefresh, oneshot::Sender<bool>),
    /// AutomaticStop (Event 8): end the session with `notification`,
    /// restart after `restart_after` (or stay down).
    AutomaticStop {
        notification: Notification,
        restart_after: Option<Duration>,
    },
    /// Stop the session (Cease for `why`) and end the task.
    Remove {
        why: StopReason,
        communication: Option<String>,
        done: oneshot::Sender<()>,
    },
}

/// The peer task's state.
struct PeerTask {
    cfg: PeerConfig,
    session: Session,
    conns: HashMap<ConnId, Conn>,
    next_conn: u64,
    attempt: u64,
    connecting: Option<JoinHandle<()>>,
    conn_tx: mpsc::UnboundedSender<ConnEvent>,
    events: broadcast::Sender<SessionEvent>,
    counters: Counters,
    since: Instant,
    last_error: Option<String>,
}

/// Spawn the task for `cfg`; it starts its session at once.
pub(crate) fn spawn(
    cfg: PeerConfig,
    events: broadcast::Sender<SessionEvent>,
) -> (mpsc::UnboundedSender<PeerCommand>, JoinHandle<()>) {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (conn_tx, conn_rx) = mpsc::unbounded_channel();
    let task = PeerTask {
        session: Session::new(cfg.session.clone()),
        cfg,
        conns: HashMap::new(),
        next_conn: 0,
        attempt: 0,
        connecting: None,
        conn_tx,
        events,
        counters: Counters::default(),
        since: Instant::now(),
        last_error: None,
    };
    let handle = tokio::spawn(task.run(cmd_rx, conn_rx));
    (cmd_tx, handle)
}

impl PeerTask {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<PeerCommand>,
        mut conn_events: mpsc::UnboundedReceiver<ConnEvent>,
    ) {
        self.input(Input::ManualStart);
        loop {
            let deadline = self.session.next_deadline();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(PeerCommand::Remove { why, communication, done }) => {
                        self.input(Input::ManualStop { why, communication });
                        self.conns.clear();
                        let _ = done.send(());
                        return;
                    }
                    Some(cmd) => self.command(cmd),
                    None => {
                        let why = StopReason::AdministrativeShutdown;
                        self.input(Input::ManualStop { why, communication: None });
                        return;
                    }
                },
                Some(ev) = conn_events.recv() => self.conn_event(ev),
                () = sleep => self.input(Input::Tick),
            }
        }
    }

    fn command(&mut self, cmd: PeerCommand) {
        match cmd {
            PeerCommand::Inbound(stream) => {
                if let Err(e) = apply_ttl(&stream, &self.cfg) {
                    self.last_error = Some(format!("socket options: {e}"));
                    return;
                }
                let conn = self.add_conn(stream);
                self.input(Input::Connected {
                    conn,
                    direction: Direction::Inbound,
                });
            }
            PeerCommand::Status(reply) => {
                let _ = reply.send(self.status());
            }
            PeerCommand::SendUpdates(updates, reply) => {
                let sent = match self.established_conn() {
                    Some(conn) => {
                        for update in updates {
                            self.send(conn, &Message::Update(update));
                        }
                        self.input(Input::UpdateSent);
                        true
                    }
                    None => false,
                };
                let _ = reply.send(sent);
            }
            PeerCommand::SendEncoded {
                bytes,
                messages,
                session,
                reply,
            } => {
                let conn = self
                    .established_conn()
                    .filter(|_| self.counters.established == session)
                    .and_then(|c| self.conns.get(&c));
                let sent = match conn {
                    Some(c) => {
                        self.counters.messages_out += messages;
                        self.counters.updates_out += messages;
                        let _ = c.writer.send(bytes);
                        true
                    }
                    None => false,
                };
                if sent {
                    self.input(Input::UpdateSent);
                }
                let _ = reply.send(sent);
            }
            PeerCommand::SendRouteRefresh(refresh, reply) => {
                let supported = self.session.negotiated().is_some_and(|n| {
                    if refresh.subtype == crate::wire::RouteRefreshSubtype::Request {
                        n.route_refresh
                    } else {
                        n.context.enhanced_route_refresh
                    }
                });
                let sent = match self.established_conn() {
                    Some(conn) if supported => {
                        self.send(conn, &Message::RouteRefresh(refresh));
                        true
                    }
                    _ => false,
                };
                let _ = reply.send(sent);
            }
            PeerCommand::AutomaticStop {
                notification,
                restart_after,
            } => self.input(Input::AutomaticStop {
                notification,
                restart_after,
            }),
            PeerCommand::Remove { .. } => {}
        }
    }

    fn conn_event(&mut self, ev: ConnEvent) {
        match ev {
            ConnEvent::Connected { attempt, result } => {
                if attempt != self.attempt {
                    return; // a cancelled attempt finishing late
                }
                self.connecting = None;
                match result {
                    Ok(stream) => {
                        let conn = self.add_conn(stream);
                        self.input(Input::Connected {
                            conn,
                            direction: Direction::Outbound,
                        });
                    }
                    Err(e) => {
                        self.last_error = Some(format!("connect: {e}"));
                        self.input(Input::ConnectFailed);
                    }
                }
            }
            ConnEvent::Frame { conn, bytes } => {
                self.counters.messages_in += 1;
                let ctx = self.context_for(conn);
                match decode(&bytes, &ctx) {
                    Ok(received) => {
                        if matches!(received.message, Message::Update(_)) {
                            self.counters.updates_in += 1;
                        }
                        if received.treated_as_withdraw() {
                            self.counters.treat_as_withdraw += 1;
                        }
                        self.input(Input::Message {
                            conn,
                            message: received.message,
                        });
                    }
                    Err(error) => self.input(Input::DecodeError { conn, error }),
                }
            }
            ConnEvent::FrameError { conn, error } => self.input(Input::DecodeError { conn, error }),
            ConnEvent::Closed { conn } => {
                self.conns.remove(&conn);
                self.input(Input::Closed { conn });
            }
        }
    }

    /// The session's connection, while Established.
    fn established_conn(&self) -> Option<ConnId> {
        self.session
            .connection()
            .filter(|_| self.session.state() == State::Established)
    }

    /// The codec context for messages on `conn`: the negotiated one on the
    /// session's connection once both OPENs are known, the default before.
    fn context_for(&self, conn: ConnId) -> Context {
        match self.session.negotiated() {
            Some(n) if self.session.connection() == Some(conn) => n.context,
            _ => Context::default(),
        }
    }

    fn add_conn(&mut self, stream: TcpStream) -> ConnId {
        self.next_conn += 1;
        let id = ConnId(self.next_conn);
        self.conns
            .insert(id, Conn::start(id, stream, self.conn_tx.clone()));
        id
    }

    fn input(&mut self, input: Input) {
        let actions = self.session.handle(Instant::now(), input);
        for action in actions {
            self.act(action);
        }
    }

    fn act(&mut self, action: Action) {
        let peer = self.cfg.address;
        match action {
            Action::Connect => {
                self.attempt += 1;
                let (attempt, cfg, tx) = (self.attempt, self.cfg.clone(), self.conn_tx.clone());
                self.connecting = Some(tokio::spawn(async move {
                    let result = connect(cfg).await;
                    let _ = tx.send(ConnEvent::Connected { attempt, result });
                }));
            }
            Action::CancelConnect => {
                self.attempt += 1;
                if let Some(task) = self.connecting.take() {
                    task.abort();
                }
            }
            Action::Send { conn, message } => self.send(conn, &message),
            Action::Close { conn } => {
                // Dropping the writer's sender flushes and shuts down.
                self.conns.remove(&conn);
            }
            Action::StateChanged { from, to } => {
                self.since = Instant::now();
                let _ = self
                    .events
                    .send(SessionEvent::StateChanged { peer, from, to });
            }
            Action::Up(negotiated) => {
                self.counters.established += 1;
                if let Some(conn) = self.session.connection().and_then(|c| self.conns.get(&c)) {
                    conn.extended.store(
                        negotiated.context.extended_message,
                        std::sync::atomic::Ordering::Relaxed,
                    );
                }
                let _ = self.events.send(SessionEvent::Up { peer, negotiated });
            }
            Action::Down(reason) => {
                self.last_error = Some(describe(&reason));
                let _ = self.events.send(SessionEvent::Down { peer, reason });
            }
            Action::Received(message) => {
                let _ = self.events.send(SessionEvent::Received {
                    peer,
                    message: Box::new(message),
                });
            }
        }
    }

    fn send(&mut self, conn: ConnId, message: &Message) {
        let ctx = self.context_for(conn);
        let mut bytes = Vec::new();
        if let Err(e) = encode(message, &ctx, &mut bytes) {
            self.last_error = Some(format!("cannot encode {:?}: {e}", message.message_type()));
            return;
        }
        if let Some(c) = self.conns.get(&conn) {
            self.counters.messages_out += 1;
            if matches!(message, Message::Update(_)) {
                self.counters.updates_out += 1;
            }
            let _ = c.writer.send(bytes);
        }
    }

    fn status(&self) -> PeerStatus {
        let state = self.session.state();
        PeerStatus {
            address: self.cfg.address,
            remote_as: self.cfg.session.remote_as,
            state,
            since: self.since.elapsed(),
            established: state == State::Established,
            last_error: self.last_error.clone(),
            counters: self.counters,
            negotiated: (state == State::Established)
                .then(|| self.session.negotiated().cloned())
                .flatten(),
        }
    }
}
