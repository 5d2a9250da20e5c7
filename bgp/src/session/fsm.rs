//! The session state machine (RFC 4271 §8.2.2) with collision detection
//! (§6.8), DelayOpen and IdleHold back-off (§8.1.1).
//!
//! One [`Session`] per configured peer. It tracks at most two transport
//! connections: the *primary* one, whose progress is the session's
//! [`State`], and, while the primary is in OpenSent or OpenConfirm, a
//! second one from the other direction (a connection collision). Both send
//! an OPEN; as soon as the peer's BGP Identifier is known from an OPEN, the
//! connection initiated by the side with the higher identifier is kept and
//! the other is closed with Cease 6/7 (the outcome §6.8 prescribes, decided
//! at the first OPEN instead of the second, since both OPENs come from the
//! same speaker). A connection arriving in Established is closed at once.
//!
//! Events are named after the RFC's (ManualStart = Event 1, ...). Automatic
//! restarts (Event 3) happen when the IdleHold timer expires after an error;
//! after a ManualStop the session stays Idle until the next ManualStart.

use std::time::{Duration, Instant};

use crate::wire::notification::{CEASE_ADMINISTRATIVE_SHUTDOWN, ErrorCode};
use crate::wire::{DecodeError, Message, Notification, Open};

use super::backoff::Backoff;
use super::config::SessionConfig;
use super::negotiate::{Negotiated, local_open, negotiate};
use super::state::{DownReason, State};

/// The driver's name for one transport connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Who opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// We connected to the peer.
    Outbound,
    /// The peer connected to us.
    Inbound,
}

/// Something that happened, fed to [`Session::handle`].
// Messages move once from the decoder into the FSM; boxing the large UPDATE
// variant would only add an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Input {
    /// ManualStart (Event 1; Event 4 when the session is passive).
    ManualStart,
    /// ManualStop (Event 2): a Cease NOTIFICATION with the subcode for
    /// `why` and an optional shutdown communication (RFC 9003).
    ManualStop {
        why: StopReason,
        communication: Option<String>,
    },
    /// AutomaticStop (Event 8): the local system ends the session on its
    /// own (for example a peer over its max-prefix limit, RFC 4486 §4),
    /// sending `notification` once an OPEN went out. With `restart_after`
    /// the session starts again after that IdleHold; without, it stays
    /// Idle until the next ManualStart.
    AutomaticStop {
        notification: Notification,
        restart_after: Option<Duration>,
    },
    /// Time passed; timers that are due fire.
    Tick,
    /// A transport connection is up (Events 16 and 17).
    Connected { conn: ConnId, direction: Direction },
    /// Our outbound connection attempt failed (Event 18 before a
    /// connection existed).
    ConnectFailed,
    /// A connection closed or failed (Event 18).
    Closed { conn: ConnId },
    /// A whole, decoded message arrived on `conn`.
    Message { conn: ConnId, message: Message },
    /// A message on `conn` could not be decoded (Events 21, 22, 28).
    DecodeError { conn: ConnId, error: DecodeError },
    /// The driver sent an UPDATE on the session's connection, which counts
    /// as a sign of life (§4.4): the KEEPALIVE timer restarts.
    UpdateSent,
}

/// Why the operator stops a session: the Cease subcode (RFC 4486 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// 2: Administrative Shutdown (the agent stops, or the peer is disabled).
    AdministrativeShutdown,
    /// 3: Peer De-configured (the peer was removed).
    PeerDeconfigured,
    /// 4: Administrative Reset (an operator's reset).
    AdministrativeReset,
    /// 6: Other Configuration Change (the peer's settings changed).
    OtherConfigurationChange,
}

impl StopReason {
    /// The Cease subcode.
    pub const fn subcode(self) -> u8 {
        match self {
            StopReason::AdministrativeShutdown => CEASE_ADMINISTRATIVE_SHUTDOWN,
            StopReason::PeerDeconfigured => 3,
            StopReason::AdministrativeReset => 4,
            StopReason::OtherConfigurationChange => 6,
        }
    }
}

/// What the driver must do, in order.
#[allow(clippy::large_enum_variant)] // as for Input
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Open an outbound connection to the peer.
    Connect,
    /// Abandon the outbound connection attempt in progress, if any.
    CancelConnect,
    /// Send `message` on `conn`.
    Send { conn: ConnId, message: Message },
    /// Close `conn` (after sending what was queued before).
    Close { conn: ConnId },
    /// The session moved from one state to another.
    StateChanged { from: State, to: State },
    /// The session is Established with these parameters.
    Up(Box<Negotiated>),
    /// The session went back to Idle, and why.
    Down(DownReason),
    /// An UPDATE or ROUTE-REFRESH received in Established, for the RIB.
    Received(Message),
}

/// Hold time while waiting for the peer's OPEN (§8.2.2: "a large value,
/// 4 minutes is suggested").
const OPEN_HOLD: Duration = Duration::from_secs(240);

/// Cease subcode 7, Connection Collision Resolution (RFC 4486 §4).
const CEASE_COLLISION: u8 = 7;

#[derive(Debug, Clone)]
struct Conn {
    id: ConnId,
    direction: Direction,
    /// For the second connection: when to give up waiting for its OPEN.
    open_deadline: Option<Instant>,
}

/// One peer's session.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    open: Open,
    state: State,
    primary: Option<Conn>,
    second: Option<Conn>,
    negotiated: Option<Negotiated>,
    /// ManualStop was the last word: no automatic restart.
    stopped: bool,
    backoff: Backoff,
    established_at: Option<Instant>,
    connect_retry: Option<Instant>,
    hold: Option<Instant>,
    keepalive: Option<Instant>,
    delay_open: Option<Instant>,
    idle_hold: Option<Instant>,
    out: Vec<Action>,
}

impl Session {
    /// A session for `cfg`, Idle until [`Input::ManualStart`].
    pub fn new(cfg: SessionConfig) -> Session {
        let open = local_open(&cfg);
        let backoff = Backoff::new(cfg.idle_hold, cfg.idle_hold_max);
        Session {
            cfg,
            open,
            state: State::Idle,
            primary: None,
            second: None,
            negotiated: None,
            stopped: true,
            backoff,
            established_at: None,
            connect_retry: None,
            hold: None,
            keepalive: None,
            delay_open: None,
            idle_hold: None,
            out: Vec::new(),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// What both OPENs agreed, once known (OpenConfirm and Established).
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// The connection the session runs on, if any.
    pub fn connection(&self) -> Option<ConnId> {
        self.primary.as_ref().map(|c| c.id)
    }

    /// Consecutive errors without a stable session (the back-off count).
    pub fn errors(&self) -> u32 {
        self.backoff.errors()
    }

    /// The earliest time a timer fires; feed [`Input::Tick`] then.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.connect_retry,
            self.hold,
            self.keepalive,
            self.delay_open,
            self.idle_hold,
            self.second.as_ref().and_then(|c| c.open_deadline),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Process one input at time `now`; the actions to carry out, in order.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Action> {
        match input {
            Input::ManualStart => self.manual_start(now),
            Input::ManualStop { why, communication } => self.manual_stop(why, communication),
            Input::AutomaticStop {
                notification,
                restart_after,
            } => self.automatic_stop(now, notification, restart_after),
            Input::Tick => self.tick(now),
            Input::Connected { conn, direction } => self.connected(now, conn, direction),
            Input::ConnectFailed => self.connect_failed(now),
            Input::Closed { conn } => self.closed(now, conn),
            Input::Message { conn, message } => self.message(now, conn, message),
            Input::DecodeError { conn, error } => {
                let n = error.notification();
                if self.is_second(conn) {
                    self.drop_second(Some(n));
                } else if self.is_primary(conn) {
                    self.fail(now, DownReason::NotificationSent(n.clone()), Some(n));
                }
            }
            Input::UpdateSent => {
                if self.state == State::Established {
                    self.keepalive = self.keepalive_deadline(now);
                }
            }
        }
        std::mem::take(&mut self.out)
    }

    // --- events -------------------------------------------------------

    fn manual_start(&mut self, now: Instant) {
        self.stopped = false;
        if self.state == State::Idle {
            self.backoff.reset();
            self.idle_hold = None;
            self.automatic_start(now);
        }
    }

    /// Events 1/3 (active) and 4/5 (passive) from Idle.
    fn automatic_start(&mut self, now: Instant) {
        self.connect_retry = Some(now + self.cfg.connect_retry);
        if self.cfg.passive {
            self.set_state(State::Active);
        } else {
            self.out.push(Action::Connect);
            self.set_state(State::Connect);
        }
    }

    fn manual_stop(&mut self, why: StopReason, communication: Option<String>) {
        // RFC 9003 defines the communication for subcodes 2 and 4 only.
        let with_text = matches!(
            why,
            StopReason::AdministrativeShutdown | StopReason::AdministrativeReset
        );
        let cease = match &communication {
            Some(text) if with_text => Notification::cease_with_communication(why.subcode(), text),
            _ => Notification::new(ErrorCode::Cease, why.subcode(), []),
        };
        self.stopped = true;
        if self.state == State::Idle {
            self.idle_hold = None;
            return;
        }
        // A NOTIFICATION only once an OPEN went out (OpenSent and later).
        let notify = matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        );
        self.go_idle(DownReason::Stopped(cease.clone()), notify.then_some(cease));
        self.backoff.reset();
        self.idle_hold = None;
    }

    fn automatic_stop(
        &mut self,
        now: Instant,
        notification: Notification,
        restart_after: Option<Duration>,
    ) {
        if self.state == State::Idle {
            return;
        }
        let notify = matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        );
        let reason = DownReason::NotificationSent(notification.clone());
        self.go_idle(reason, notify.then_some(notification));
        match restart_after {
            Some(wait) => {
                self.stopped = false;
                self.idle_hold = Some(now + wait);
            }
            None => {
                self.stopped = true;
                self.idle_hold = None;
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if let Some(second) = &self.second
            && due(second.open_deadline)
        {
            let n = Notification::new(ErrorCode::HoldTimerExpired, 0, []);
            self.drop_second(Some(n));
        }
        if due(self.idle_hold) {
            self.idle_hold = None;
            if self.state == State::Idle && !self.stopped {
                self.automatic_start(now);
            }
        }
        if due(self.hold) {
            self.hold = None;
            let n = Notification::new(ErrorCode::HoldTimerExpired, 0, []);
            self.fail(now, DownReason::NotificationSent(n.clone()), Some(n));
            return;
        }
        if due(self.delay_open) {
            self.delay_open = None;
            if let Some(conn) = self.primary.as_ref().map(|c| c.id) {
                self.send_open(now, conn);
                self.set_state(State::OpenSent);
            }
        }
        if due(self.keepalive) {
            if let Some(conn) = self.primary.as_ref().map(|c| c.id) {
                self.out.push(Action::Send {
                    conn,
                    message: Message::Keepalive,
                });
            }
            self.keepalive = self.keepalive_deadline(now);
        }
        if due(self.connect_retry) {
            self.connect_retry = Some(now + self.cfg.connect_retry);
            match self.state {
                // Event 9 in Connect: drop the attempt and try again.
                State::Connect if self.primary.is_none() => {
                    self.out.push(Action::CancelConnect);
                    self.out.push(Action::Connect);
                }
                // Event 9 in Active: try connecting ourselves.
                State::Active if !self.cfg.passive => {
                    self.out.push(Action::Connect);
                    self.set_state(State::Connect);
                }
                _ => {}
            }
        }
    }

    fn connected(&mut self, now: Instant, conn: ConnId, direction: Direction) {
        match self.state {
            State::Idle => self.out.push(Action::Close { conn }),
            State::Connect | State::Active if self.primary.is_none() => {
                if direction == Direction::Inbound && self.state == State::Connect {
                    self.out.push(Action::CancelConnect);
                }
                self.connect_retry = None;
                self.primary = Some(Conn {
                    id: conn,
                    direction,
                    open_deadline: None,
                });
                match self.cfg.delay_open {
                    Some(delay) => self.delay_open = Some(now + delay),
                    None => {
                        self.send_open(now, conn);
                        self.set_state(State::OpenSent);
                    }
                }
            }
            State::OpenSent | State::OpenConfirm
                if self.second.is_none()
                    && self
                        .primary
                        .as_ref()
                        .is_some_and(|p| p.direction != direction) =>
            {
                // A collision in the making (§6.8): answer with our OPEN
                // and decide when the peer's OPEN tells us its identifier.
                self.second = Some(Conn {
                    id: conn,
                    direction,
                    open_deadline: Some(now + OPEN_HOLD),
                });
                self.out.push(Action::Send {
                    conn,
                    message: Message::Open(self.open.clone()),
                });
            }
            // Established (§6.8: the new connection is closed), a second
            // connection from the same direction, or a third one.
            _ => self.out.push(Action::Close { conn }),
        }
    }

    fn connect_failed(&mut self, now: Instant) {
        if self.state == State::Connect && self.primary.is_none() {
            self.connect_retry = Some(now + self.cfg.connect_retry);
            self.set_state(State::Active);
        }
    }

    fn closed(&mut self, now: Instant, conn: ConnId) {
        if self.is_second(conn) {
            self.second = None;
            return;
        }
        if !self.is_primary(conn) {
            return;
        }
        match self.state {
            // §8.2.2: in Connect/Active (DelayOpen running) and OpenSent a
            // lost connection sends the session back to Active, listening.
            State::Connect | State::Active | State::OpenSent => {
                self.primary = None;
                self.delay_open = None;
                self.hold = None;
                self.connect_retry = Some(now + self.cfg.connect_retry);
                self.promote_second(now);
                if self.primary.is_none() {
                    self.set_state(State::Active);
                }
            }
            _ => {
                self.primary = None;
                self.fail(now, DownReason::ConnectionLost, None);
            }
        }
    }

    fn message(&mut self, now: Instant, conn: ConnId, message: Message) {
        if self.is_second(conn) {
            match message {
                Message::Open(open) => self.collision(now, conn, open),
                _ => self.drop_second(None),
            }
            return;
        }
        if !self.is_primary(conn) {
            return;
        }
        if let Message::Notification(n) = message {
            // Events 24/25: the peer ends the session.
            self.fail(now, DownReason::NotificationReceived(n), None);
            return;
        }
        match (self.state, message) {
            (State::OpenSent, Message::Open(open)) => {
                if self.second.is_some() {
                    self.collision(now, conn, open);
                } else {
                    self.open_received(now, open);
                }
            }
            // Event 20: OPEN while DelayOpen runs: answer OPEN + KEEPALIVE.
            (State::Connect | State::Active, Message::Open(open)) if self.delay_open.is_some() => {
                self.delay_open = None;
                self.send_open(now, conn);
                self.open_received(now, open);
            }
            (State::OpenConfirm, Message::Keepalive) => {
                self.hold = self.hold_deadline(now);
                self.established_at = Some(now);
                self.second_lost_collision();
                self.set_state(State::Established);
                if let Some(neg) = &self.negotiated {
                    self.out.push(Action::Up(Box::new(neg.clone())));
                }
            }
            (State::Established, Message::Keepalive) => self.hold = self.hold_deadline(now),
            (State::Established, m @ (Message::Update(_) | Message::RouteRefresh(_))) => {
                self.hold = self.hold_deadline(now);
                self.out.push(Action::Received(m));
            }
            (state, _) => {
                // Events 19/26/27 where they do not belong: FSM Error with
                // the RFC 6608 subcode of the state.
                let subcode = match state {
                    State::OpenSent => 1,
                    State::OpenConfirm => 2,
                    State::Established => 3,
                    _ => 0,
                };
                let n = Notification::new(ErrorCode::FiniteStateMachine, subcode, []);
                self.fail(now, DownReason::NotificationSent(n.clone()), Some(n));
            }
        }
    }

    // --- pieces -------------------------------------------------------

    /// The peer's OPEN on the primary connection, in OpenSent (or with
    /// DelayOpen): validate, then KEEPALIVE and OpenConfirm.
    fn open_received(&mut self, now: Instant, open: Open) {
        match negotiate(&self.cfg, &self.open, &open) {
            Ok(neg) => {
                if let Some(conn) = self.primary.as_ref().map(|c| c.id) {
                    self.out.push(Action::Send {
                        conn,
                        message: Message::Keepalive,
                    });
                }
                self.negotiated = Some(neg);
                self.hold = self.hold_deadline(now);
                self.keepalive = self.keepalive_deadline(now);
                self.set_state(State::OpenConfirm);
            }
            Err(n) => self.fail(now, DownReason::NotificationSent(n.clone()), Some(n)),
        }
    }

    /// §6.8: an OPEN on `conn` while the other direction's connection
    /// exists too. Keep the connection opened by the higher identifier.
    fn collision(&mut self, now: Instant, conn: ConnId, open: Open) {
        let ours = (u32::from(self.cfg.local_id), self.cfg.local_as);
        let theirs = (u32::from(open.bgp_identifier), open.asn());
        let keep = if ours > theirs {
            Direction::Outbound
        } else {
            Direction::Inbound
        };
        let arriving_is_primary = self.is_primary(conn);
        let arriving_dir = if arriving_is_primary {
            self.primary.as_ref().map(|c| c.direction)
        } else {
            self.second.as_ref().map(|c| c.direction)
        };
        let cease = Notification::new(ErrorCode::Cease, CEASE_COLLISION, []);
        if arriving_dir == Some(keep) {
            if arriving_is_primary {
                self.drop_second(Some(cease));
            } else {
                // The second connection wins and has its OPEN already.
                self.second_replaces_primary(cease);
            }
            self.open_received(now, open);
        } else if arriving_is_primary {
            // The primary loses to the second, which waits for its OPEN.
            self.second_replaces_primary(cease);
            self.hold = Some(now + OPEN_HOLD);
        } else {
            self.drop_second(Some(cease));
        }
    }

    /// The primary connection loses a collision: it gets `cease` and is
    /// closed, with what it negotiated; the session continues on the second
    /// connection from OpenSent.
    fn second_replaces_primary(&mut self, cease: Notification) {
        if let Some(old) = self.primary.take() {
            self.out.push(Action::Send {
                conn: old.id,
                message: Message::Notification(cease),
            });
            self.out.push(Action::Close { conn: old.id });
        }
        self.primary = self.second.take().map(|c| Conn {
            open_deadline: None,
            ..c
        });
        self.negotiated = None;
        self.keepalive = None;
        if self.state != State::OpenSent {
            self.set_state(State::OpenSent);
        }
    }

    /// Once Established, any second connection has lost.
    fn second_lost_collision(&mut self) {
        if self.second.is_some() {
            self.drop_second(Some(Notification::new(
                ErrorCode::Cease,
                CEASE_COLLISION,
                [],
            )));
        }
    }

    fn promote_second(&mut self, now: Instant) {
        if let Some(c) = self.second.take() {
            self.primary = Some(Conn {
                open_deadline: None,
                ..c
            });
            self.hold = Some(now + OPEN_HOLD);
            if self.state != State::OpenSent {
                self.set_state(State::OpenSent);
            }
        }
    }

    fn drop_second(&mut self, notification: Option<Notification>) {
        if let Some(c) = self.second.take() {
            if let Some(n) = notification {
                self.out.push(Action::Send {
                    conn: c.id,
                    message: Message::Notification(n),
                });
            }
            self.out.push(Action::Close { conn: c.id });
        }
    }

    fn send_open(&mut self, now: Instant, conn: ConnId) {
        self.out.push(Action::Send {
            conn,
            message: Message::Open(self.open.clone()),
        });
        self.hold = Some(now + OPEN_HOLD);
    }

    /// An error ends the session: NOTIFICATION (if any), close, Idle, and
    /// an automatic restart after the IdleHold back-off.
    fn fail(&mut self, now: Instant, reason: DownReason, notification: Option<Notification>) {
        let stable = self
            .established_at
            .is_some_and(|t| now.saturating_duration_since(t) >= self.cfg.stable_after);
        if stable {
            self.backoff.reset();
        }
        self.go_idle(reason, notification);
        if !self.stopped {
            self.idle_hold = Some(now + self.backoff.next_wait());
        }
    }

    fn go_idle(&mut self, reason: DownReason, notification: Option<Notification>) {
        if let Some(conn) = self.primary.take().map(|c| c.id) {
            if let Some(n) = notification {
                self.out.push(Action::Send {
                    conn,
                    message: Message::Notification(n),
                });
            }
            self.out.push(Action::Close { conn });
        } else if self.state == State::Connect {
            self.out.push(Action::CancelConnect);
        }
        self.drop_second(None);
        self.connect_retry = None;
        self.hold = None;
        self.keepalive = None;
        self.delay_open = None;
        self.negotiated = None;
        self.established_at = None;
        self.set_state(State::Idle);
        self.out.push(Action::Down(reason));
    }

    fn set_state(&mut self, to: State) {
        let from = self.state;
        if from != to {
            self.state = to;
            self.out.push(Action::StateChanged { from, to });
        }
    }

    fn hold_deadline(&self, now: Instant) -> Option<Instant> {
        let hold = self.negotiated.as_ref().map_or(OPEN_HOLD, |n| n.hold_time);
        (!hold.is_zero()).then(|| now + hold)
    }

    fn keepalive_deadline(&self, now: Instant) -> Option<Instant> {
        let ka = self.negotiated.as_ref().map(|n| n.keepalive)?;
        (!ka.is_zero()).then(|| now + ka)
    }

    fn is_primary(&self, conn: ConnId) -> bool {
        self.primary.as_ref().is_some_and(|c| c.id == conn)
    }

    fn is_second(&self, conn: ConnId) -> bool {
        self.second.as_ref().is_some_and(|c| c.id == conn)
    }
}
