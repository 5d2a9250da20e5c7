//! The ROUTE-REFRESH message (RFC 2918 §3) with the enhanced route refresh
//! subtypes BoRR and EoRR (RFC 7313 §3.2).
//!
//! ```text
//!  0       7      15      23      31
//! +-------+-------+-------+-------+
//! |      AFI      | Subtype| SAFI |
//! +-------+-------+-------+-------+
//! ```

use nom::Parser;
use nom::number::complete::{be_u8, be_u16};

use super::capability::{Afi, Safi};
use super::context::Context;
use super::error::{DecodeError, PResult};

/// The Message Subtype (RFC 7313 §3.2); the octet is Reserved in RFC 2918.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteRefreshSubtype {
    /// 0: a normal route refresh request.
    Request,
    /// 1: Beginning of Route Refresh.
    BeginningOfRouteRefresh,
    /// 2: End of Route Refresh.
    EndOfRouteRefresh,
    /// Any other value; RFC 7313 §5 says the message MUST be ignored.
    Other(u8),
}

impl RouteRefreshSubtype {
    const fn from_code(c: u8) -> Self {
        match c {
            0 => Self::Request,
            1 => Self::BeginningOfRouteRefresh,
            2 => Self::EndOfRouteRefresh,
            other => Self::Other(other),
        }
    }

    /// The Subtype octet.
    pub const fn code(self) -> u8 {
        match self {
            Self::Request => 0,
            Self::BeginningOfRouteRefresh => 1,
            Self::EndOfRouteRefresh => 2,
            Self::Other(c) => c,
        }
    }
}

/// A ROUTE-REFRESH message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteRefresh {
    /// Address Family Identifier.
    pub afi: Afi,
    /// Message Subtype.
    pub subtype: RouteRefreshSubtype,
    /// Subsequent Address Family Identifier.
    pub safi: Safi,
}

impl RouteRefresh {
    /// Parses the body; `msg` is the whole message for the RFC 7313 §5
    /// NOTIFICATION data.
    pub(crate) fn parse(msg: &[u8], body: &[u8], ctx: &Context) -> Result<Self, DecodeError> {
        let res: PResult<'_, (u16, u8, u8)> = (be_u16, be_u8, be_u8).parse(body);
        match res {
            Ok(([], (afi, subtype, safi))) => Ok(Self {
                afi: Afi(afi),
                subtype: RouteRefreshSubtype::from_code(subtype),
                safi: Safi(safi),
            }),
            _ if ctx.enhanced_route_refresh => Err(DecodeError::RouteRefreshLength(msg.to_vec())),
            _ => Err(DecodeError::BadMessageLength(
                u16::try_from(msg.len()).unwrap_or(u16::MAX),
            )),
        }
    }

    pub(crate) fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.afi.0.to_be_bytes());
        out.push(self.subtype.code());
        out.push(self.safi.0);
    }
}
