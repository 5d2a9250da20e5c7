//! Session states (RFC 4271 §8.2.2) and why a session leaves Established.

use std::fmt;

use crate::wire::Notification;

/// The six states of RFC 4271 §8.2.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        };
        f.write_str(s)
    }
}

/// Why the session went back to Idle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// We stopped it (ManualStop, Event 2), sending this Cease.
    Stopped(Notification),
    /// The peer sent a NOTIFICATION (Event 24/25).
    NotificationReceived(Notification),
    /// We found an error and sent this NOTIFICATION (header, OPEN, UPDATE
    /// errors, FSM errors, hold timer expiry).
    NotificationSent(Notification),
    /// The TCP connection failed or closed (Event 18).
    ConnectionLost,
}
