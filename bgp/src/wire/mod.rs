//! BGP-4 message codec: bytes to typed messages and back (RFC 4271 §4).
//!
//! Sans-IO: nothing here reads a socket, spawns a task or looks at a clock.
//! The transport calls [`frame`] on its read buffer until it returns the
//! length of one whole message, then [`decode`] on exactly that slice with
//! the session's [`Context`]. Every failure is a [`DecodeError`] that knows
//! its NOTIFICATION, or an RFC 7606 [`AttributeError`] returned beside an
//! UPDATE that stays accepted ([`Received::errors`]). [`encode`] is the
//! mirror image; it fails only when a message cannot fit
//! ([`EncodeError`]). [`pack`] builds the fewest UPDATEs for many prefixes.
//!
//! Nothing in this module may panic on peer input: the lints below forbid
//! indexing, `unwrap`, `expect` and `panic!`, and the fuzzer is the judge.
//!
//! | module | owns |
//! |---|---|
//! | [`header`] | Marker, Length, Type; framing |
//! | [`open`], [`capability`] | OPEN, optional parameters, capabilities |
//! | [`update`], [`attribute`], [`nlri`] | UPDATE, path attributes, prefixes |
//! | [`notification`] | NOTIFICATION, shutdown communication |
//! | [`route_refresh`] | ROUTE-REFRESH, BoRR/EoRR |
//! | [`context`] | what both OPENs negotiated |
//! | [`error`] | errors and their consequences |
//! | [`pack`] | UPDATE packing and splitting |
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

pub mod attribute;
pub mod capability;
pub mod context;
pub mod error;
pub mod header;
pub mod nlri;
pub mod notification;
pub mod open;
pub mod pack;
pub mod route_refresh;
pub mod update;

pub use attribute::as_path::{AsPath, Segment, SegmentType};
pub use attribute::community::{Community, ExtendedCommunity, LargeCommunity};
pub use attribute::mp::{MpReach, MpUnreach, NextHop};
pub use attribute::{Aggregator, Origin, PathAttributes, RawAttribute};
pub use capability::{Afi, Capability, Safi};
pub use context::{AddPath, Context, Families, Family};
pub use error::{Action, AttributeError, DecodeError, EncodeError, OpenError, UpdateError};
pub use header::{MessageType, frame};
pub use nlri::{Ipv4Prefix, Ipv6Prefix, Nlri, Prefix};
pub use notification::{ErrorCode, Notification};
pub use open::Open;
pub use route_refresh::{RouteRefresh, RouteRefreshSubtype};
pub use update::Update;

/// A BGP message.
// An UPDATE is much larger than the other variants; messages are moved once
// from the decoder to the FSM, so boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    /// OPEN (RFC 4271 §4.2).
    Open(Open),
    /// UPDATE (RFC 4271 §4.3).
    Update(Update),
    /// NOTIFICATION (RFC 4271 §4.5).
    Notification(Notification),
    /// KEEPALIVE (RFC 4271 §4.4).
    Keepalive,
    /// ROUTE-REFRESH (RFC 2918, RFC 7313).
    RouteRefresh(RouteRefresh),
}

impl Message {
    /// The message's Type.
    pub const fn message_type(&self) -> MessageType {
        match self {
            Self::Open(_) => MessageType::Open,
            Self::Update(_) => MessageType::Update,
            Self::Notification(_) => MessageType::Notification,
            Self::Keepalive => MessageType::Keepalive,
            Self::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }
}

/// A message accepted from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The message. For an UPDATE under treat-as-withdraw, the rewritten
    /// UPDATE described in [`update`].
    pub message: Message,
    /// RFC 7606 errors that did not reset the session (UPDATE only).
    pub errors: Vec<AttributeError>,
}

impl Received {
    /// Whether the UPDATE was turned into withdrawals (RFC 7606 §2).
    pub fn treated_as_withdraw(&self) -> bool {
        self.errors
            .iter()
            .any(|e| e.action == Action::TreatAsWithdraw)
    }
}

/// Decodes exactly one message: `msg` is the slice [`frame`] measured.
///
/// A Length that does not match `msg.len()` is 1/2.
pub fn decode(msg: &[u8], ctx: &Context) -> Result<Received, DecodeError> {
    let (header, body) = header::parse_header(msg, ctx)?;
    let mut errors = Vec::new();
    let message = match header.message_type {
        MessageType::Open => Message::Open(Open::parse(body)?),
        MessageType::Update => Message::Update(Update::parse(body, ctx, &mut errors)?),
        MessageType::Notification => Message::Notification(Notification::parse(body)?),
        MessageType::Keepalive => Message::Keepalive,
        MessageType::RouteRefresh => Message::RouteRefresh(RouteRefresh::parse(msg, body, ctx)?),
    };
    Ok(Received { message, errors })
}

/// Appends one encoded message to `out`. On error nothing is appended.
pub fn encode(message: &Message, ctx: &Context, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = header::start_message(out, message.message_type());
    let body = match message {
        Message::Open(open) => open.emit(out),
        Message::Update(update) => update.emit(ctx, out),
        Message::Notification(n) => {
            n.emit(out);
            Ok(())
        }
        Message::Keepalive => Ok(()),
        Message::RouteRefresh(r) => {
            r.emit(out);
            Ok(())
        }
    };
    if let Err(e) = body {
        out.truncate(start);
        return Err(e);
    }
    let max = match message {
        Message::Open(_) | Message::Keepalive => header::MAX_MESSAGE_LEN,
        _ => ctx.max_message_len(),
    };
    header::finish_message(out, start, max)
}

/// Decodes a Path Attributes field on its own (for fuzzing and tests):
/// the surviving attributes and the RFC 7606 errors, or the session-reset
/// error. `ipv4_nlri` says whether the UPDATE's NLRI field is non-empty.
pub fn decode_path_attributes(
    block: &[u8],
    ctx: &Context,
    ipv4_nlri: bool,
) -> Result<(PathAttributes, Vec<AttributeError>), UpdateError> {
    let mut attributes = PathAttributes::default();
    let mut errors = Vec::new();
    attribute::decode::decode_attributes(block, ctx, ipv4_nlri, &mut attributes, &mut errors)?;
    Ok((attributes, errors))
}
