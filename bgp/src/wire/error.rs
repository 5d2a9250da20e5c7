//! Decode and encode errors, each knowing its consequence.
//!
//! Owns the mapping from every way a peer's bytes can be wrong to what the
//! session must do about it: a NOTIFICATION with the code, subcode and data
//! RFC 4271 §6 prescribes ([`DecodeError::notification`]), or one of the
//! RFC 7606 §2 approaches ([`Action`]) with the rest of the UPDATE accepted.
//! No error here is a string; none carries more than the NOTIFICATION data.

use thiserror::Error;

use super::notification::{ErrorCode, Notification};

/// nom's error type inside `wire`: "the input ended too early or held a bad
/// value". Callers turn it into the [`DecodeError`] their context calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Short;

impl<I> nom::error::ParseError<I> for Short {
    fn from_error_kind(_: I, _: nom::error::ErrorKind) -> Self {
        Short
    }
    fn append(_: I, _: nom::error::ErrorKind, _: Self) -> Self {
        Short
    }
}

/// The result type of the nom parsers in `wire`.
pub(crate) type PResult<'a, T> = nom::IResult<&'a [u8], T, Short>;

/// A message that cannot be accepted: the session ends with
/// [`DecodeError::notification`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// 1/1: the Marker is not all ones (RFC 4271 §6.1).
    #[error("connection not synchronized: marker is not all ones")]
    ConnectionNotSynchronized,
    /// 1/2: the Length is out of range for the message (RFC 4271 §6.1);
    /// the data is the erroneous Length.
    #[error("bad message length {0}")]
    BadMessageLength(u16),
    /// 1/3: the Type is not one we know (RFC 4271 §6.1); the data is the
    /// Type octet.
    #[error("bad message type {0}")]
    BadMessageType(u8),
    /// 2/x: an OPEN error (RFC 4271 §6.2).
    #[error("OPEN message error: {0}")]
    Open(#[from] OpenError),
    /// 3/x: an UPDATE error that resets the session (RFC 4271 §6.3,
    /// RFC 7606 §2 "session reset").
    #[error("UPDATE message error: {0}")]
    Update(#[from] UpdateError),
    /// 7/1: a ROUTE-REFRESH of the wrong length once enhanced route refresh
    /// is negotiated (RFC 7313 §5); the data is the whole message.
    #[error("ROUTE-REFRESH of invalid length {}", .0.len())]
    RouteRefreshLength(Vec<u8>),
}

impl DecodeError {
    /// The NOTIFICATION this error must be answered with.
    pub fn notification(&self) -> Notification {
        match self {
            Self::ConnectionNotSynchronized => Notification::new(ErrorCode::MessageHeader, 1, []),
            Self::BadMessageLength(len) => {
                Notification::new(ErrorCode::MessageHeader, 2, len.to_be_bytes())
            }
            Self::BadMessageType(t) => Notification::new(ErrorCode::MessageHeader, 3, [*t]),
            Self::Open(e) => Notification::new(ErrorCode::OpenMessage, e.subcode(), e.data()),
            Self::Update(e) => Notification::new(ErrorCode::UpdateMessage, e.subcode(), e.data()),
            Self::RouteRefreshLength(msg) => {
                Notification::new(ErrorCode::RouteRefreshMessage, 1, msg.clone())
            }
        }
    }
}

/// OPEN message errors (RFC 4271 §6.2, RFC 5492, RFC 7607).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OpenError {
    /// 2/0: optional parameters or a capability that cannot be parsed
    /// (no subcode fits; BIRD and FRR send 2/0).
    #[error("malformed optional parameters")]
    MalformedOptionalParameters,
    /// 2/1: Version is not 4; the data is the version we support, 4.
    #[error("unsupported version number {0}")]
    UnsupportedVersionNumber(u8),
    /// 2/2: My Autonomous System is 0 (RFC 7607).
    #[error("bad peer AS {0}")]
    BadPeerAs(u32),
    /// 2/3: the BGP Identifier is 0.0.0.0 (RFC 6286 §2.2).
    #[error("bad BGP identifier")]
    BadBgpIdentifier,
    /// 2/4: an optional parameter other than Capabilities (RFC 5492 §4).
    #[error("unsupported optional parameter type {0}")]
    UnsupportedOptionalParameter(u8),
    /// 2/6: Hold Time of one or two seconds (RFC 4271 §6.2).
    #[error("unacceptable hold time {0}")]
    UnacceptableHoldTime(u16),
}

impl OpenError {
    /// The Error Subcode under code 2.
    pub const fn subcode(&self) -> u8 {
        match self {
            Self::MalformedOptionalParameters => 0,
            Self::UnsupportedVersionNumber(_) => 1,
            Self::BadPeerAs(_) => 2,
            Self::BadBgpIdentifier => 3,
            Self::UnsupportedOptionalParameter(_) => 4,
            Self::UnacceptableHoldTime(_) => 6,
        }
    }

    /// The NOTIFICATION Data.
    pub fn data(&self) -> Vec<u8> {
        match self {
            Self::UnsupportedVersionNumber(_) => vec![0, 4],
            _ => Vec::new(),
        }
    }
}

/// UPDATE message errors (RFC 4271 §6.3). `attribute` is the erroneous
/// attribute as received (flags, type code, length, value), which the
/// NOTIFICATION Data carries.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UpdateError {
    /// 3/1: withdrawn or attribute lengths that overrun the message, or a
    /// repeated MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 7606 §3 g).
    #[error("malformed attribute list")]
    MalformedAttributeList,
    /// 3/2: a well-known attribute we do not recognize.
    #[error("unrecognized well-known attribute")]
    UnrecognizedWellKnownAttribute {
        /// The attribute as received.
        attribute: Vec<u8>,
    },
    /// 3/3: a well-known mandatory attribute is missing; data is its type.
    #[error("missing well-known attribute {type_code}")]
    MissingWellKnownAttribute {
        /// The missing attribute's type code.
        type_code: u8,
    },
    /// 3/4: Optional/Transitive flags that conflict with the type code.
    #[error("attribute flags error")]
    AttributeFlags {
        /// The attribute as received.
        attribute: Vec<u8>,
    },
    /// 3/5: an attribute length that is wrong for its type.
    #[error("attribute length error")]
    AttributeLength {
        /// The attribute as received.
        attribute: Vec<u8>,
    },
    /// 3/6: ORIGIN is not IGP, EGP or INCOMPLETE.
    #[error("invalid ORIGIN attribute")]
    InvalidOrigin {
        /// The attribute as received.
        attribute: Vec<u8>,
    },
    /// 3/8: a NEXT_HOP that is not a usable host address.
    #[error("invalid NEXT_HOP attribute")]
    InvalidNextHop {
        /// The attribute as received.
        attribute: Vec<u8>,
    },
    /// 3/9: an optional attribute with a bad value (for example
    /// MP_REACH_NLRI with a bad next hop length, RFC 4760 §7).
    #[error("optional attribute error")]
    OptionalAttribute {
        /// The attribute as received.
        attribute: Vec<u8>,
    },
    /// 3/10: an NLRI or withdrawn prefix that cannot be parsed (length
    /// above 32/128, or running past its field).
    #[error("invalid network field")]
    InvalidNetworkField,
    /// 3/11: an AS_PATH that cannot be parsed.
    #[error("malformed AS_PATH")]
    MalformedAsPath,
}

impl UpdateError {
    /// The Error Subcode under code 3.
    pub const fn subcode(&self) -> u8 {
        match self {
            Self::MalformedAttributeList => 1,
            Self::UnrecognizedWellKnownAttribute { .. } => 2,
            Self::MissingWellKnownAttribute { .. } => 3,
            Self::AttributeFlags { .. } => 4,
            Self::AttributeLength { .. } => 5,
            Self::InvalidOrigin { .. } => 6,
            Self::InvalidNextHop { .. } => 8,
            Self::OptionalAttribute { .. } => 9,
            Self::InvalidNetworkField => 10,
            Self::MalformedAsPath => 11,
        }
    }

    /// The NOTIFICATION Data (RFC 4271 §6.3).
    pub fn data(&self) -> Vec<u8> {
        match self {
            Self::UnrecognizedWellKnownAttribute { attribute }
            | Self::AttributeFlags { attribute }
            | Self::AttributeLength { attribute }
            | Self::InvalidOrigin { attribute }
            | Self::InvalidNextHop { attribute }
            | Self::OptionalAttribute { attribute } => attribute.clone(),
            Self::MissingWellKnownAttribute { type_code } => vec![*type_code],
            Self::MalformedAttributeList | Self::InvalidNetworkField | Self::MalformedAsPath => {
                Vec::new()
            }
        }
    }

    /// The NOTIFICATION this error would cause in the RFC 4271 model.
    pub fn notification(&self) -> Notification {
        Notification::new(ErrorCode::UpdateMessage, self.subcode(), self.data())
    }
}

/// The RFC 7606 §2 error-handling approaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// End the session with the error's NOTIFICATION.
    SessionReset,
    /// Withdraw every route the UPDATE carries, keep the session.
    TreatAsWithdraw,
    /// Drop the one attribute, accept the rest of the UPDATE.
    AttributeDiscard,
}

/// An UPDATE error handled without a session reset (RFC 7606): what went
/// wrong, in RFC 4271 §6.3 terms, and what was done about it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{error} ({action:?})")]
pub struct AttributeError {
    /// The error as RFC 4271 §6.3 names it.
    pub error: UpdateError,
    /// [`Action::TreatAsWithdraw`] or [`Action::AttributeDiscard`].
    pub action: Action,
}

/// A message that cannot be encoded. Encoding never fails for any other
/// reason.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The message would exceed the negotiated maximum (RFC 4271 §4.1,
    /// RFC 8654); nothing was written.
    #[error("message of {length} octets exceeds the maximum of {max}")]
    MessageTooLong {
        /// The length the message would have had.
        length: usize,
        /// The maximum for this message on this session.
        max: usize,
    },
    /// An attribute value longer than the 2-octet extended length allows.
    #[error("attribute {type_code} value of {length} octets is too long")]
    AttributeTooLong {
        /// The attribute's type code.
        type_code: u8,
        /// Its value length.
        length: usize,
    },
    /// A field whose length octet cannot hold the value (capability,
    /// optional parameters, FQDN names, shutdown communication).
    #[error("{field} of {length} octets is too long")]
    FieldTooLong {
        /// Which field.
        field: &'static str,
        /// Its length.
        length: usize,
    },
}
