//! What the speaker reports about its peers.

use std::net::IpAddr;
use std::time::Duration;

use crate::session::{DownReason, Negotiated, State};
use crate::wire::Message;

/// Message counters of one peer, since it was added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub messages_in: u64,
    pub messages_out: u64,
    pub updates_in: u64,
    pub updates_out: u64,
    /// UPDATEs whose routes were treated as withdrawn (RFC 7606).
    pub treat_as_withdraw: u64,
    /// Times the session reached Established.
    pub established: u64,
}

/// One peer as `routectl peers` shows it.
#[derive(Debug, Clone)]
pub struct PeerStatus {
    pub address: IpAddr,
    pub remote_as: u32,
    pub state: State,
    /// How long the session has been Established, or how long it has been
    /// down (since the last change).
    pub since: Duration,
    pub established: bool,
    /// The last reason the session went down, in words.
    pub last_error: Option<String>,
    pub counters: Counters,
    /// What the OPENs negotiated, while Established.
    pub negotiated: Option<Negotiated>,
}

/// Something a subscriber hears about.
#[derive(Debug, Clone)]
pub enum SessionEvent {
    /// A peer's session changed state.
    StateChanged {
        peer: IpAddr,
        from: State,
        to: State,
    },
    /// A peer's session is Established.
    Up {
        peer: IpAddr,
        negotiated: Box<Negotiated>,
    },
    /// A peer's session went down.
    Down { peer: IpAddr, reason: DownReason },
    /// An UPDATE or ROUTE-REFRESH from an Established peer.
    Received { peer: IpAddr, message: Box<Message> },
}

/// Describe a [`DownReason`] for operators.
pub fn describe(reason: &DownReason) -> String {
    let n = |n: &crate::wire::Notification| {
        let text = n
            .shutdown_communication()
            .map(|t| format!(" \"{t}\""))
            .unwrap_or_default();
        format!("{}/{}{text}", n.code, n.subcode)
    };
    match reason {
        DownReason::Stopped(c) => format!("stopped (sent Cease {})", n(c)),
        DownReason::NotificationReceived(x) => format!("received NOTIFICATION {}", n(x)),
        DownReason::NotificationSent(x) => format!("sent NOTIFICATION {}", n(x)),
        DownReason::ConnectionLost => "connection lost".to_string(),
    }
}
