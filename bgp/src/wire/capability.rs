//! Capabilities advertised in OPEN (RFC 5492) and the AFI/SAFI numbers.
//!
//! Owns the parse and emit of every capability tabby understands:
//! multiprotocol (RFC 4760 §8), route refresh (RFC 2918), enhanced route
//! refresh (RFC 7313), 4-octet AS (RFC 6793), graceful restart (RFC 4724),
//! long-lived graceful restart (RFC 9494), ADD-PATH (RFC 7911), extended
//! next hop (RFC 8950), extended message (RFC 8654) and FQDN
//! (draft-walton-bgp-hostname-capability). Any other capability is kept as
//! raw octets. What the capabilities mean for a session is decided in
//! [`super::context`].
//!
//! ```text
//! +------------------------------+
//! | Capability Code (1 octet)    |
//! +------------------------------+
//! | Capability Length (1 octet)  |
//! +------------------------------+
//! | Capability Value (variable)  |
//! +------------------------------+
//! ```

use nom::Parser;
use nom::multi::length_data;
use nom::number::complete::{be_u8, be_u16, be_u24};

use super::error::{EncodeError, OpenError, PResult, Short};

/// Address Family Identifier (IANA "Address Family Numbers").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Afi(pub u16);

impl Afi {
    /// 1: IPv4.
    pub const IPV4: Afi = Afi(1);
    /// 2: IPv6.
    pub const IPV6: Afi = Afi(2);
}

/// Subsequent Address Family Identifier (RFC 4760 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Safi(pub u8);

impl Safi {
    /// 1: unicast forwarding.
    pub const UNICAST: Safi = Safi(1);
    /// 2: multicast forwarding.
    pub const MULTICAST: Safi = Safi(2);
}

/// ADD-PATH Send/Receive field (RFC 7911 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddPathMode {
    /// 1: able to receive multiple paths.
    Receive,
    /// 2: able to send multiple paths.
    Send,
    /// 3: both.
    Both,
}

impl AddPathMode {
    /// Whether this mode includes receiving.
    pub const fn receives(self) -> bool {
        matches!(self, Self::Receive | Self::Both)
    }
    /// Whether this mode includes sending.
    pub const fn sends(self) -> bool {
        matches!(self, Self::Send | Self::Both)
    }
    const fn code(self) -> u8 {
        match self {
            Self::Receive => 1,
            Self::Send => 2,
            Self::Both => 3,
        }
    }
}

/// One <AFI, SAFI, Send/Receive> tuple of the ADD-PATH capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddPathFamily {
    /// Address Family Identifier.
    pub afi: Afi,
    /// Subsequent Address Family Identifier.
    pub safi: Safi,
    /// Send/Receive.
    pub mode: AddPathMode,
}

/// One address family of the graceful restart capability (RFC 4724 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GracefulRestartFamily {
    /// Address Family Identifier.
    pub afi: Afi,
    /// Subsequent Address Family Identifier.
    pub safi: Safi,
    /// The F bit: forwarding state was preserved.
    pub forwarding_state: bool,
}

/// The graceful restart capability (RFC 4724 §3, N bit from RFC 8538).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GracefulRestart {
    /// The R bit: the speaker has restarted.
    pub restart_state: bool,
    /// The N bit: graceful restart also covers NOTIFICATION (RFC 8538 §2).
    pub notification: bool,
    /// Restart Time in seconds (12 bits).
    pub restart_time: u16,
    /// The families whose state is preserved.
    pub families: Vec<GracefulRestartFamily>,
}

/// One address family of the long-lived graceful restart capability
/// (RFC 9494 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LongLivedGracefulRestartFamily {
    /// Address Family Identifier.
    pub afi: Afi,
    /// Subsequent Address Family Identifier.
    pub safi: Safi,
    /// The F bit: forwarding state was preserved.
    pub forwarding_state: bool,
    /// Long-lived Stale Time in seconds (24 bits).
    pub stale_time: u32,
}

/// One <NLRI AFI, NLRI SAFI, Nexthop AFI> tuple (RFC 8950 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtendedNextHopFamily {
    /// NLRI Address Family Identifier.
    pub nlri_afi: Afi,
    /// NLRI Subsequent Address Family Identifier (2 octets here).
    pub nlri_safi: u16,
    /// Nexthop Address Family Identifier.
    pub next_hop_afi: Afi,
}

/// A capability (RFC 5492 §4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Capability {
    /// 1: Multiprotocol Extensions (RFC 4760 §8).
    Multiprotocol {
        /// Address Family Identifier.
        afi: Afi,
        /// Subsequent Address Family Identifier.
        safi: Safi,
    },
    /// 2: Route Refresh (RFC 2918 §2).
    RouteRefresh,
    /// 5: Extended Next Hop Encoding (RFC 8950 §3).
    ExtendedNextHop(Vec<ExtendedNextHopFamily>),
    /// 6: BGP Extended Message (RFC 8654 §3).
    ExtendedMessage,
    /// 64: Graceful Restart (RFC 4724 §3).
    GracefulRestart(GracefulRestart),
    /// 65: Support for 4-octet AS number (RFC 6793 §3).
    FourOctetAs(u32),
    /// 69: ADD-PATH (RFC 7911 §4).
    AddPath(Vec<AddPathFamily>),
    /// 70: Enhanced Route Refresh (RFC 7313 §3.1).
    EnhancedRouteRefresh,
    /// 71: Long-Lived Graceful Restart (RFC 9494 §3).
    LongLivedGracefulRestart(Vec<LongLivedGracefulRestartFamily>),
    /// 73: FQDN (draft-walton-bgp-hostname-capability): names as octets.
    Fqdn {
        /// Hostname.
        hostname: Vec<u8>,
        /// Domain name.
        domain: Vec<u8>,
    },
    /// Any other capability, kept as received.
    Unknown {
        /// Capability Code.
        code: u8,
        /// Capability Value.
        value: Vec<u8>,
    },
}

/// Capability codes (IANA "Capability Codes").
pub mod code {
    /// Multiprotocol Extensions.
    pub const MULTIPROTOCOL: u8 = 1;
    /// Route Refresh.
    pub const ROUTE_REFRESH: u8 = 2;
    /// Extended Next Hop Encoding.
    pub const EXTENDED_NEXT_HOP: u8 = 5;
    /// BGP Extended Message.
    pub const EXTENDED_MESSAGE: u8 = 6;
    /// Graceful Restart.
    pub const GRACEFUL_RESTART: u8 = 64;
    /// 4-octet AS number.
    pub const FOUR_OCTET_AS: u8 = 65;
    /// ADD-PATH.
    pub const ADD_PATH: u8 = 69;
    /// Enhanced Route Refresh.
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
    /// Long-Lived Graceful Restart.
    pub const LONG_LIVED_GRACEFUL_RESTART: u8 = 71;
    /// FQDN.
    pub const FQDN: u8 = 73;
    /// Every code with a typed variant.
    pub const KNOWN: [u8; 10] = [1, 2, 5, 6, 64, 65, 69, 70, 71, 73];
}

impl Capability {
    /// The Capability Code.
    pub const fn code(&self) -> u8 {
        match self {
            Self::Multiprotocol { .. } => code::MULTIPROTOCOL,
            Self::RouteRefresh => code::ROUTE_REFRESH,
            Self::ExtendedNextHop(_) => code::EXTENDED_NEXT_HOP,
            Self::ExtendedMessage => code::EXTENDED_MESSAGE,
            Self::GracefulRestart(_) => code::GRACEFUL_RESTART,
            Self::FourOctetAs(_) => code::FOUR_OCTET_AS,
            Self::AddPath(_) => code::ADD_PATH,
            Self::EnhancedRouteRefresh => code::ENHANCED_ROUTE_REFRESH,
            Self::LongLivedGracefulRestart(_) => code::LONG_LIVED_GRACEFUL_RESTART,
            Self::Fqdn { .. } => code::FQDN,
            Self::Unknown { code, .. } => *code,
        }
    }

    /// Parses the value of one Capabilities optional parameter: a sequence
    /// of capabilities, appended to `out`.
    pub(crate) fn parse_all(mut input: &[u8], out: &mut Vec<Capability>) -> Result<(), OpenError> {
        while !input.is_empty() {
            let res: PResult<'_, (u8, &[u8])> = (be_u8, length_data(be_u8)).parse(input);
            let (rest, (code, value)) = res.map_err(|_| OpenError::MalformedOptionalParameters)?;
            out.push(Self::parse_value(code, value)?);
            input = rest;
        }
        Ok(())
    }

    fn parse_value(code: u8, value: &[u8]) -> Result<Capability, OpenError> {
        let bad = OpenError::MalformedOptionalParameters;
        let cap = match (code, value) {
            (code::MULTIPROTOCOL, [a0, a1, _reserved, safi]) => Self::Multiprotocol {
                afi: Afi(u16::from_be_bytes([*a0, *a1])),
                safi: Safi(*safi),
            },
            (code::ROUTE_REFRESH, []) => Self::RouteRefresh,
            (code::EXTENDED_MESSAGE, []) => Self::ExtendedMessage,
            (code::ENHANCED_ROUTE_REFRESH, []) => Self::EnhancedRouteRefresh,
            (code::FOUR_OCTET_AS, [a, b, c, d]) => {
                Self::FourOctetAs(u32::from_be_bytes([*a, *b, *c, *d]))
            }
            (code::EXTENDED_NEXT_HOP, v) => Self::ExtendedNextHop(tuples(v, |i| {
                let (i, (nlri_afi, nlri_safi, nh)) = (be_u16, be_u16, be_u16).parse(i)?;
                let t = ExtendedNextHopFamily {
                    nlri_afi: Afi(nlri_afi),
                    nlri_safi,
                    next_hop_afi: Afi(nh),
                };
                Ok((i, t))
            })?),
            (code::GRACEFUL_RESTART, v) => {
                let res: PResult<'_, u16> = be_u16(v);
                let (rest, flags_time) = res.map_err(|_| bad.clone())?;
                Self::GracefulRestart(GracefulRestart {
                    restart_state: flags_time & 0x8000 != 0,
                    notification: flags_time & 0x4000 != 0,
                    restart_time: flags_time & 0x0fff,
                    families: tuples(rest, |i| {
                        let (i, (afi, safi, flags)) = (be_u16, be_u8, be_u8).parse(i)?;
                        let t = GracefulRestartFamily {
                            afi: Afi(afi),
                            safi: Safi(safi),
                            forwarding_state: flags & 0x80 != 0,
                        };
                        Ok((i, t))
                    })?,
                })
            }
            (code::ADD_PATH, v) => Self::AddPath(tuples(v, |i| {
                let (i, (afi, safi, mode)) = (be_u16, be_u8, be_u8).parse(i)?;
                let mode = match mode {
                    1 => AddPathMode::Receive,
                    2 => AddPathMode::Send,
                    3 => AddPathMode::Both,
                    _ => return Err(nom::Err::Error(Short)),
                };
                Ok((
                    i,
                    AddPathFamily {
                        afi: Afi(afi),
                        safi: Safi(safi),
                        mode,
                    },
                ))
            })?),
            (code::LONG_LIVED_GRACEFUL_RESTART, v) => {
                Self::LongLivedGracefulRestart(tuples(v, |i| {
                    let (i, (afi, safi, flags, stale_time)) =
                        (be_u16, be_u8, be_u8, be_u24).parse(i)?;
                    let t = LongLivedGracefulRestartFamily {
                        afi: Afi(afi),
                        safi: Safi(safi),
                        forwarding_state: flags & 0x80 != 0,
                        stale_time,
                    };
                    Ok((i, t))
                })?)
            }
            (code::FQDN, v) => {
                let res: PResult<'_, (&[u8], &[u8])> =
                    (length_data(be_u8), length_data(be_u8)).parse(v);
                match res {
                    Ok(([], (hostname, domain))) => Self::Fqdn {
                        hostname: hostname.to_vec(),
                        domain: domain.to_vec(),
                    },
                    _ => return Err(bad),
                }
            }
            (c, _) if code::KNOWN.contains(&c) => return Err(bad),
            (code, value) => Self::Unknown {
                code,
                value: value.to_vec(),
            },
        };
        Ok(cap)
    }

    /// Appends this capability (code, length, value) to `out`.
    pub(crate) fn emit(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.extend_from_slice(&[self.code(), 0]);
        match self {
            Self::Multiprotocol { afi, safi } => {
                out.extend_from_slice(&afi.0.to_be_bytes());
                out.extend_from_slice(&[0, safi.0]);
            }
            Self::RouteRefresh | Self::ExtendedMessage | Self::EnhancedRouteRefresh => {}
            Self::FourOctetAs(asn) => out.extend_from_slice(&asn.to_be_bytes()),
            Self::ExtendedNextHop(v) => {
                for t in v {
                    out.extend_from_slice(&t.nlri_afi.0.to_be_bytes());
                    out.extend_from_slice(&t.nlri_safi.to_be_bytes());
                    out.extend_from_slice(&t.next_hop_afi.0.to_be_bytes());
                }
            }
            Self::GracefulRestart(gr) => {
                let mut word = gr.restart_time & 0x0fff;
                if gr.restart_state {
                    word |= 0x8000;
                }
                if gr.notification {
                    word |= 0x4000;
                }
                out.extend_from_slice(&word.to_be_bytes());
                for f in &gr.families {
                    out.extend_from_slice(&f.afi.0.to_be_bytes());
                    out.push(f.safi.0);
                    out.push(if f.forwarding_state { 0x80 } else { 0 });
                }
            }
            Self::AddPath(v) => {
                for t in v {
                    out.extend_from_slice(&t.afi.0.to_be_bytes());
                    out.extend_from_slice(&[t.safi.0, t.mode.code()]);
                }
            }
            Self::LongLivedGracefulRestart(v) => {
                for t in v {
                    out.extend_from_slice(&t.afi.0.to_be_bytes());
                    out.push(t.safi.0);
                    out.push(if t.forwarding_state { 0x80 } else { 0 });
                    let [_, a, b, c] = (t.stale_time & 0x00ff_ffff).to_be_bytes();
                    out.extend_from_slice(&[a, b, c]);
                }
            }
            Self::Fqdn { hostname, domain } => {
                for name in [hostname, domain] {
                    let len = u8::try_from(name.len()).map_err(|_| EncodeError::FieldTooLong {
                        field: "FQDN name",
                        length: name.len(),
                    })?;
                    out.push(len);
                    out.extend_from_slice(name);
                }
            }
            Self::Unknown { value, .. } => out.extend_from_slice(value),
        }
        let len = out.len() - start - 2;
        match (u8::try_from(len), out.get_mut(start + 1)) {
            (Ok(l), Some(slot)) => {
                *slot = l;
                Ok(())
            }
            _ => {
                out.truncate(start);
                Err(EncodeError::FieldTooLong {
                    field: "capability value",
                    length: len,
                })
            }
        }
    }
}

/// Parses a value that is a whole number of fixed-size tuples.
fn tuples<'a, T>(
    mut input: &'a [u8],
    mut one: impl FnMut(&'a [u8]) -> PResult<'a, T>,
) -> Result<Vec<T>, OpenError> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let (rest, t) = one(input).map_err(|_| OpenError::MalformedOptionalParameters)?;
        out.push(t);
        input = rest;
    }
    Ok(out)
}
