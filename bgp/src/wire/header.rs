//! The BGP message header and framing (RFC 4271 §4.1).
//!
//! Owns the 19-octet header: the all-ones Marker, the Length (19..=4096, or
//! up to 65535 once RFC 8654 extended messages are negotiated) and the Type.
//! [`frame`] is the transport's cheap "is one whole message buffered?" check;
//! it never allocates and never parses a body.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! +                                                               +
//! |                           Marker                              |
//! +                                                               +
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Length               |      Type     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use nom::Parser;
use nom::bytes::complete::take;
use nom::number::complete::{be_u8, be_u16};

use super::context::Context;
use super::error::{DecodeError, PResult};

/// Length of the fixed header (RFC 4271 §4.1).
pub const HEADER_LEN: usize = 19;
/// Largest message without RFC 8654 (RFC 4271 §4.1).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Largest message once RFC 8654 extended messages are negotiated.
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;
/// The Marker: sixteen octets of all ones (RFC 4271 §4.1).
pub const MARKER: [u8; 16] = [0xff; 16];

/// The Type octet (RFC 4271 §4.1, RFC 2918 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// 1: OPEN (RFC 4271 §4.2).
    Open,
    /// 2: UPDATE (RFC 4271 §4.3).
    Update,
    /// 3: NOTIFICATION (RFC 4271 §4.5).
    Notification,
    /// 4: KEEPALIVE (RFC 4271 §4.4).
    Keepalive,
    /// 5: ROUTE-REFRESH (RFC 2918 §3).
    RouteRefresh,
}

impl MessageType {
    /// The Type octet.
    pub const fn code(self) -> u8 {
        match self {
            Self::Open => 1,
            Self::Update => 2,
            Self::Notification => 3,
            Self::Keepalive => 4,
            Self::RouteRefresh => 5,
        }
    }

    /// The type for a Type octet, if it is one we know.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Open),
            2 => Some(Self::Update),
            3 => Some(Self::Notification),
            4 => Some(Self::Keepalive),
            5 => Some(Self::RouteRefresh),
            _ => None,
        }
    }

    /// Smallest legal Length for this type (RFC 4271 §4.2–§4.5, RFC 2918 §3).
    const fn min_len(self) -> usize {
        match self {
            Self::Open => 29,
            Self::Update => 23,
            Self::Notification => 21,
            // ROUTE-REFRESH length errors are judged in `route_refresh`
            // (RFC 7313 §5 gives them their own code).
            Self::Keepalive | Self::RouteRefresh => HEADER_LEN,
        }
    }
}

/// A parsed message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The Length field: the whole message, header included.
    pub length: u16,
    /// The Type field.
    pub message_type: MessageType,
}

/// Checks whether `buf` starts with one whole message and returns its length.
///
/// `Ok(None)` means "read more". An error means the stream is unusable and the
/// session must end with the error's NOTIFICATION: a Marker that is not all
/// ones (1/1, RFC 4271 §6.1) or a Length outside `19..=ctx.max_message_len()`
/// (1/2, with the Length as data). Only the first 18 octets are looked at.
pub fn frame(buf: &[u8], ctx: &Context) -> Result<Option<usize>, DecodeError> {
    let Some(head) = buf.get(..18) else {
        return Ok(None);
    };
    let (marker, len) = head.split_at(16);
    if marker != MARKER {
        return Err(DecodeError::ConnectionNotSynchronized);
    }
    let len = match len {
        [hi, lo] => u16::from_be_bytes([*hi, *lo]),
        _ => return Ok(None),
    };
    let n = usize::from(len);
    if !(HEADER_LEN..=ctx.max_message_len()).contains(&n) {
        return Err(DecodeError::BadMessageLength(len));
    }
    Ok((buf.len() >= n).then_some(n))
}

/// Parses the header of exactly one framed message and checks the Length
/// against the whole slice and against the type's limits (RFC 4271 §6.1).
pub(crate) fn parse_header<'a>(
    msg: &'a [u8],
    ctx: &Context,
) -> Result<(Header, &'a [u8]), DecodeError> {
    let res: PResult<'_, (&[u8], u16, u8)> = (take(16usize), be_u16, be_u8).parse(msg);
    let Ok((body, (marker, length, code))) = res else {
        // Fewer than 19 octets: the Length cannot be right.
        return Err(DecodeError::BadMessageLength(
            u16::try_from(msg.len()).unwrap_or(u16::MAX),
        ));
    };
    if marker != MARKER {
        return Err(DecodeError::ConnectionNotSynchronized);
    }
    let n = usize::from(length);
    if n != msg.len() || !(HEADER_LEN..=ctx.max_message_len()).contains(&n) {
        return Err(DecodeError::BadMessageLength(length));
    }
    let message_type = MessageType::from_code(code).ok_or(DecodeError::BadMessageType(code))?;
    let max = match message_type {
        // RFC 8654 §4: OPEN and KEEPALIVE never exceed 4096 octets.
        MessageType::Open => MAX_MESSAGE_LEN,
        MessageType::Keepalive => HEADER_LEN,
        // RFC 7313 §5 reports a bad ROUTE-REFRESH length with its own code.
        MessageType::RouteRefresh => MAX_EXTENDED_MESSAGE_LEN,
        _ => ctx.max_message_len(),
    };
    if n < message_type.min_len() || n > max {
        return Err(DecodeError::BadMessageLength(length));
    }
    Ok((
        Header {
            length,
            message_type,
        },
        body,
    ))
}

/// Appends a header with a zero Length; [`finish_message`] fills it in.
pub(crate) fn start_message(out: &mut Vec<u8>, message_type: MessageType) -> usize {
    let start = out.len();
    out.extend_from_slice(&MARKER);
    out.extend_from_slice(&[0, 0, message_type.code()]);
    start
}

/// Writes the Length of the message that begins at `start`, checking it
/// against `max`. On error the partial message is removed from `out`.
pub(crate) fn finish_message(
    out: &mut Vec<u8>,
    start: usize,
    max: usize,
) -> Result<(), super::error::EncodeError> {
    let len = out.len().saturating_sub(start);
    match (u16::try_from(len), out.get_mut(start + 16..start + 18)) {
        (Ok(l), Some(field)) if len <= max => {
            field.copy_from_slice(&l.to_be_bytes());
            Ok(())
        }
        _ => {
            out.truncate(start);
            Err(super::error::EncodeError::MessageTooLong { length: len, max })
        }
    }
}
