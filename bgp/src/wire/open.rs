//! The OPEN message (RFC 4271 §4.2) with extended optional parameters
//! length (RFC 9072).
//!
//! Owns the fixed OPEN fields, their checks (RFC 4271 §6.2) and the optional
//! parameters. The only optional parameter in use is Capabilities (type 2,
//! RFC 5492 §4); any other type is answered with 2/4. Capabilities are
//! flattened into one list on decode and emitted in a single Capabilities
//! parameter, as BIRD and FRR do; a peer that sends one parameter per
//! capability (GoBGP) decodes to the same value.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+
//! |    Version    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     My Autonomous System      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           Hold Time           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         BGP Identifier                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Opt Parm Len  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |             Optional Parameters (variable)                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use std::net::Ipv4Addr;

use nom::Parser;
use nom::multi::length_data;
use nom::number::complete::{be_u8, be_u16, be_u32};

use super::capability::Capability;
use super::error::{EncodeError, OpenError, PResult};

/// The BGP version this codec speaks.
pub const BGP_VERSION: u8 = 4;
/// AS_TRANS, the 2-octet stand-in for a 4-octet AS number (RFC 6793 §9).
pub const AS_TRANS: u16 = 23456;
/// Optional parameter type Capabilities (RFC 5492 §4).
const PARAM_CAPABILITIES: u8 = 2;
/// Non-Ext OP Type marking the RFC 9072 extended form.
const PARAM_EXTENDED: u8 = 255;

/// An OPEN message. The Version is always 4 and is not stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Open {
    /// My Autonomous System: the 2-octet AS, or [`AS_TRANS`].
    pub my_as: u16,
    /// Hold Time in seconds: 0 or at least 3.
    pub hold_time: u16,
    /// BGP Identifier.
    pub bgp_identifier: Ipv4Addr,
    /// Every capability of every Capabilities parameter, in order.
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// An OPEN for `asn`: My Autonomous System is `asn`, or [`AS_TRANS`]
    /// when it needs four octets (RFC 6793 §3). Add
    /// [`Capability::FourOctetAs`] to `capabilities` to announce it.
    pub fn new(
        asn: u32,
        hold_time: u16,
        bgp_identifier: Ipv4Addr,
        capabilities: Vec<Capability>,
    ) -> Self {
        Self {
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
            hold_time,
            bgp_identifier,
            capabilities,
        }
    }

    /// The sender's AS: the 4-octet AS capability's value if present,
    /// otherwise My Autonomous System (RFC 6793 §4.1).
    pub fn asn(&self) -> u32 {
        self.capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(asn) => Some(*asn),
                _ => None,
            })
            .unwrap_or(u32::from(self.my_as))
    }

    pub(crate) fn parse(body: &[u8]) -> Result<Self, OpenError> {
        let res: PResult<'_, (u8, u16, u16, u32, u8)> =
            (be_u8, be_u16, be_u16, be_u32, be_u8).parse(body);
        let (rest, (version, my_as, hold_time, id, opt_len)) =
            res.map_err(|_| OpenError::MalformedOptionalParameters)?;
        if version != BGP_VERSION {
            return Err(OpenError::UnsupportedVersionNumber(version));
        }
        let open = Open {
            my_as,
            hold_time,
            bgp_identifier: Ipv4Addr::from_bits(id),
            capabilities: parse_parameters(opt_len, rest)?,
        };
        // RFC 7607: AS 0 is never valid, in either field.
        let asn = open.asn();
        if asn == 0 {
            return Err(OpenError::BadPeerAs(asn));
        }
        if hold_time == 1 || hold_time == 2 {
            return Err(OpenError::UnacceptableHoldTime(hold_time));
        }
        if id == 0 {
            return Err(OpenError::BadBgpIdentifier);
        }
        Ok(open)
    }

    pub(crate) fn emit(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(BGP_VERSION);
        out.extend_from_slice(&self.my_as.to_be_bytes());
        out.extend_from_slice(&self.hold_time.to_be_bytes());
        out.extend_from_slice(&self.bgp_identifier.octets());
        let mut caps = Vec::new();
        for c in &self.capabilities {
            c.emit(&mut caps)?;
        }
        if caps.is_empty() {
            out.push(0);
        } else if let Ok(len @ 0..=253) = u8::try_from(caps.len()) {
            out.extend_from_slice(&[len + 2, PARAM_CAPABILITIES, len]);
            out.extend_from_slice(&caps);
        } else {
            // RFC 9072 §2: Opt Parm Len 255, Non-Ext OP Type 255, then a
            // 2-octet length; each parameter has a 2-octet length too.
            let too_long = |length| EncodeError::FieldTooLong {
                field: "optional parameters",
                length,
            };
            let param_len = u16::try_from(caps.len()).map_err(|_| too_long(caps.len()))?;
            let total = u16::try_from(caps.len() + 3).map_err(|_| too_long(caps.len() + 3))?;
            out.extend_from_slice(&[255, PARAM_EXTENDED]);
            out.extend_from_slice(&total.to_be_bytes());
            out.push(PARAM_CAPABILITIES);
            out.extend_from_slice(&param_len.to_be_bytes());
            out.extend_from_slice(&caps);
        }
        Ok(())
    }
}

/// Parses the optional parameters, in the RFC 4271 or the RFC 9072 form.
fn parse_parameters(opt_len: u8, rest: &[u8]) -> Result<Vec<Capability>, OpenError> {
    let bad = OpenError::MalformedOptionalParameters;
    let extended = opt_len == 255 && rest.first() == Some(&PARAM_EXTENDED);
    let mut params = if extended {
        let res: PResult<'_, &[u8]> = (be_u8, length_data(be_u16)).map(|(_, d)| d).parse(rest);
        match res {
            Ok(([], params)) => params,
            _ => return Err(bad),
        }
    } else if rest.len() == usize::from(opt_len) {
        rest
    } else {
        return Err(bad);
    };
    let mut caps = Vec::new();
    while !params.is_empty() {
        let res: PResult<'_, (u8, &[u8])> = if extended {
            (be_u8, length_data(be_u16)).parse(params)
        } else {
            (be_u8, length_data(be_u8)).parse(params)
        };
        let (next, (kind, value)) = res.map_err(|_| bad.clone())?;
        if kind != PARAM_CAPABILITIES {
            return Err(OpenError::UnsupportedOptionalParameter(kind));
        }
        Capability::parse_all(value, &mut caps)?;
        params = next;
    }
    Ok(caps)
}
