//! The NOTIFICATION message (RFC 4271 §4.5) and the shutdown communication
//! (RFC 8203, RFC 9003).
//!
//! Owns the error codes of RFC 4271 §4.5 (and RFC 7313 §5's ROUTE-REFRESH
//! code) and the encoding of a NOTIFICATION. It does not decide when one is
//! sent; [`super::error`] maps decode failures to NOTIFICATIONs.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Error code    | Error subcode |   Data (variable)             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use super::error::DecodeError;

/// Error Codes (RFC 4271 §4.5, RFC 7313 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 1: Message Header Error.
    MessageHeader,
    /// 2: OPEN Message Error.
    OpenMessage,
    /// 3: UPDATE Message Error.
    UpdateMessage,
    /// 4: Hold Timer Expired.
    HoldTimerExpired,
    /// 5: Finite State Machine Error.
    FiniteStateMachine,
    /// 6: Cease.
    Cease,
    /// 7: ROUTE-REFRESH Message Error (RFC 7313 §5).
    RouteRefreshMessage,
}

impl ErrorCode {
    /// The Error Code octet.
    pub const fn code(self) -> u8 {
        match self {
            Self::MessageHeader => 1,
            Self::OpenMessage => 2,
            Self::UpdateMessage => 3,
            Self::HoldTimerExpired => 4,
            Self::FiniteStateMachine => 5,
            Self::Cease => 6,
            Self::RouteRefreshMessage => 7,
        }
    }
}

/// Cease subcode "Administrative Shutdown" (RFC 4486 §4).
pub const CEASE_ADMINISTRATIVE_SHUTDOWN: u8 = 2;
/// Cease subcode "Administrative Reset" (RFC 4486 §4).
pub const CEASE_ADMINISTRATIVE_RESET: u8 = 4;

/// A NOTIFICATION message. Code and subcode are kept as octets so that any
/// NOTIFICATION a peer sends decodes and re-encodes unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Notification {
    /// Error Code.
    pub code: u8,
    /// Error Subcode.
    pub subcode: u8,
    /// Data.
    pub data: Vec<u8>,
}

impl Notification {
    /// A NOTIFICATION with the given code, subcode and data.
    pub fn new(code: ErrorCode, subcode: u8, data: impl Into<Vec<u8>>) -> Self {
        Self {
            code: code.code(),
            subcode,
            data: data.into(),
        }
    }

    /// A Cease with a shutdown communication (RFC 9003 §2): `subcode` is
    /// [`CEASE_ADMINISTRATIVE_SHUTDOWN`] or [`CEASE_ADMINISTRATIVE_RESET`];
    /// `text` is cut at a character boundary to the 255 octets that fit.
    pub fn cease_with_communication(subcode: u8, text: &str) -> Self {
        let mut end = text.len().min(255);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let text = text.get(..end).unwrap_or_default();
        let mut data = Vec::with_capacity(end + 1);
        data.push(u8::try_from(end).unwrap_or(u8::MAX));
        data.extend_from_slice(text.as_bytes());
        Self::new(ErrorCode::Cease, subcode, data)
    }

    /// The shutdown communication of a Cease/Administrative Shutdown or
    /// Reset (RFC 9003 §2), if the data holds a well-formed one.
    pub fn shutdown_communication(&self) -> Option<&str> {
        let admin = [CEASE_ADMINISTRATIVE_SHUTDOWN, CEASE_ADMINISTRATIVE_RESET];
        if self.code != ErrorCode::Cease.code() || !admin.contains(&self.subcode) {
            return None;
        }
        let (len, text) = self.data.split_first()?;
        if usize::from(*len) != text.len() {
            return None;
        }
        std::str::from_utf8(text).ok()
    }

    pub(crate) fn parse(body: &[u8]) -> Result<Self, DecodeError> {
        match body {
            [code, subcode, data @ ..] => Ok(Self {
                code: *code,
                subcode: *subcode,
                data: data.to_vec(),
            }),
            // The header check guarantees 21 octets; keep the 1/2 anyway.
            _ => Err(DecodeError::BadMessageLength(
                u16::try_from(body.len() + 19).unwrap_or(u16::MAX),
            )),
        }
    }

    pub(crate) fn emit(&self, out: &mut Vec<u8>) {
        out.push(self.code);
        out.push(self.subcode);
        out.extend_from_slice(&self.data);
    }
}
