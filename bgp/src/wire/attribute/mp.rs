//! MP_REACH_NLRI and MP_UNREACH_NLRI (RFC 4760 §3, §4), with IPv6 next
//! hops for IPv4 NLRI (RFC 8950).
//!
//! Owns the two multiprotocol attributes for IPv4 and IPv6 unicast; other
//! AFI/SAFI pairs are kept as raw octets (the session did not negotiate
//! them, RFC 4760 §6). Any error here resets the session (RFC 7606 §5.3):
//! a bad next hop or a truncated value is 3/9, a bad prefix is 3/10.
//!
//! ```text
//! MP_REACH_NLRI                          MP_UNREACH_NLRI
//! +---------------------------------+    +---------------------------------+
//! | AFI (2) | SAFI (1)              |    | AFI (2) | SAFI (1)              |
//! | Length of Next Hop (1)          |    | Withdrawn Routes (variable)     |
//! | Next Hop (variable)             |    +---------------------------------+
//! | Reserved (1)                    |
//! | NLRI (variable)                 |
//! +---------------------------------+
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::wire::capability::{Afi, Safi};
use crate::wire::context::{Context, Family};
use crate::wire::error::UpdateError;
use crate::wire::nlri::{Ipv4Prefix, Ipv6Prefix, Nlri, emit_nlri, parse_nlri};

/// The Network Address of Next Hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// An IPv4 next hop (4 octets).
    V4(Ipv4Addr),
    /// An IPv6 next hop: global, and optionally link-local (16 or 32
    /// octets, RFC 2545 §3).
    V6 {
        /// Global address.
        global: Ipv6Addr,
        /// Link-local address.
        link_local: Option<Ipv6Addr>,
    },
}

impl NextHop {
    fn parse(octets: &[u8]) -> Option<Self> {
        let v6 = |o: &[u8]| <[u8; 16]>::try_from(o).ok().map(Ipv6Addr::from);
        match octets.len() {
            4 => <[u8; 4]>::try_from(octets).ok().map(|a| Self::V4(a.into())),
            16 => Some(Self::V6 {
                global: v6(octets)?,
                link_local: None,
            }),
            32 => {
                let (g, l) = octets.split_at(16);
                Some(Self::V6 {
                    global: v6(g)?,
                    link_local: Some(v6(l)?),
                })
            }
            _ => None,
        }
    }

    fn emit(&self, out: &mut Vec<u8>) {
        match self {
            Self::V4(a) => {
                out.push(4);
                out.extend_from_slice(&a.octets());
            }
            Self::V6 { global, link_local } => {
                out.push(if link_local.is_some() { 32 } else { 16 });
                out.extend_from_slice(&global.octets());
                if let Some(l) = link_local {
                    out.extend_from_slice(&l.octets());
                }
            }
        }
    }
}

/// MP_REACH_NLRI (type 14).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MpReach {
    /// AFI 1 / SAFI 1. The next hop is IPv4, or IPv6 under RFC 8950.
    Ipv4Unicast {
        /// Next hop.
        next_hop: NextHop,
        /// NLRI.
        nlri: Vec<Nlri<Ipv4Prefix>>,
    },
    /// AFI 2 / SAFI 1. The next hop is IPv6.
    Ipv6Unicast {
        /// Next hop.
        next_hop: NextHop,
        /// NLRI.
        nlri: Vec<Nlri<Ipv6Prefix>>,
    },
    /// Another AFI/SAFI: the value after AFI and SAFI, unparsed.
    Other {
        /// Address Family Identifier.
        afi: Afi,
        /// Subsequent Address Family Identifier.
        safi: Safi,
        /// Everything after SAFI.
        value: Vec<u8>,
    },
}

/// MP_UNREACH_NLRI (type 15).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MpUnreach {
    /// AFI 1 / SAFI 1 withdrawn routes.
    Ipv4Unicast(Vec<Nlri<Ipv4Prefix>>),
    /// AFI 2 / SAFI 1 withdrawn routes.
    Ipv6Unicast(Vec<Nlri<Ipv6Prefix>>),
    /// Another AFI/SAFI, unparsed.
    Other {
        /// Address Family Identifier.
        afi: Afi,
        /// Subsequent Address Family Identifier.
        safi: Safi,
        /// Everything after SAFI.
        value: Vec<u8>,
    },
}

impl MpReach {
    /// The family, if the codec parses it.
    pub fn family(&self) -> Option<Family> {
        match self {
            Self::Ipv4Unicast { .. } => Some(Family::Ipv4Unicast),
            Self::Ipv6Unicast { .. } => Some(Family::Ipv6Unicast),
            Self::Other { .. } => None,
        }
    }

    /// Whether the attribute carries any parsed NLRI.
    pub fn has_nlri(&self) -> bool {
        match self {
            Self::Ipv4Unicast { nlri, .. } => !nlri.is_empty(),
            Self::Ipv6Unicast { nlri, .. } => !nlri.is_empty(),
            Self::Other { .. } => false,
        }
    }

    /// Parses the value; `attribute` is the whole attribute for 3/9 data.
    pub(crate) fn parse(
        value: &[u8],
        attribute: &[u8],
        ctx: &Context,
    ) -> Result<Self, UpdateError> {
        let bad = || UpdateError::OptionalAttribute {
            attribute: attribute.to_vec(),
        };
        let (&[a0, a1, safi], rest) = value.split_first_chunk::<3>().ok_or_else(bad)?;
        let (afi, safi) = (Afi(u16::from_be_bytes([a0, a1])), Safi(safi));
        let Some(family) = Family::from_afi_safi(afi, safi) else {
            return Ok(Self::Other {
                afi,
                safi,
                value: rest.to_vec(),
            });
        };
        let (&nh_len, rest) = rest.split_first().ok_or_else(bad)?;
        let (nh, rest) = rest.split_at_checked(usize::from(nh_len)).ok_or_else(bad)?;
        let next_hop = NextHop::parse(nh).ok_or_else(bad)?;
        // One Reserved octet (formerly the SNPA count), ignored on receipt.
        let (_reserved, nlri) = rest.split_first().ok_or_else(bad)?;
        let add_path = ctx.add_path_receive(family);
        match (family, next_hop) {
            (Family::Ipv4Unicast, _) => {
                let mut out = Vec::new();
                parse_nlri(nlri, add_path, &mut out)?;
                Ok(Self::Ipv4Unicast {
                    next_hop,
                    nlri: out,
                })
            }
            (Family::Ipv6Unicast, NextHop::V6 { .. }) => {
                let mut out = Vec::new();
                parse_nlri(nlri, add_path, &mut out)?;
                Ok(Self::Ipv6Unicast {
                    next_hop,
                    nlri: out,
                })
            }
            (Family::Ipv6Unicast, NextHop::V4(_)) => Err(bad()),
        }
    }

    pub(crate) fn emit(&self, ctx: &Context, out: &mut Vec<u8>) {
        match self {
            Self::Ipv4Unicast { next_hop, nlri } => {
                put_afi_safi(Family::Ipv4Unicast, out);
                next_hop.emit(out);
                out.push(0);
                emit_nlri(nlri, ctx.add_path_send(Family::Ipv4Unicast), out);
            }
            Self::Ipv6Unicast { next_hop, nlri } => {
                put_afi_safi(Family::Ipv6Unicast, out);
                next_hop.emit(out);
                out.push(0);
                emit_nlri(nlri, ctx.add_path_send(Family::Ipv6Unicast), out);
            }
            Self::Other { afi, safi, value } => {
                out.extend_from_slice(&afi.0.to_be_bytes());
                out.push(safi.0);
                out.extend_from_slice(value);
            }
        }
    }
}

impl MpUnreach {
    /// The family, if the codec parses it.
    pub fn family(&self) -> Option<Family> {
        match self {
            Self::Ipv4Unicast(_) => Some(Family::Ipv4Unicast),
            Self::Ipv6Unicast(_) => Some(Family::Ipv6Unicast),
            Self::Other { .. } => None,
        }
    }

    /// Parses the value; `attribute` is the whole attribute for 3/9 data.
    pub(crate) fn parse(
        value: &[u8],
        attribute: &[u8],
        ctx: &Context,
    ) -> Result<Self, UpdateError> {
        let (&[a0, a1, safi], rest) =
            value
                .split_first_chunk::<3>()
                .ok_or_else(|| UpdateError::OptionalAttribute {
                    attribute: attribute.to_vec(),
                })?;
        let (afi, safi) = (Afi(u16::from_be_bytes([a0, a1])), Safi(safi));
        match Family::from_afi_safi(afi, safi) {
            Some(f @ Family::Ipv4Unicast) => {
                let mut out = Vec::new();
                parse_nlri(rest, ctx.add_path_receive(f), &mut out)?;
                Ok(Self::Ipv4Unicast(out))
            }
            Some(f @ Family::Ipv6Unicast) => {
                let mut out = Vec::new();
                parse_nlri(rest, ctx.add_path_receive(f), &mut out)?;
                Ok(Self::Ipv6Unicast(out))
            }
            None => Ok(Self::Other {
                afi,
                safi,
                value: rest.to_vec(),
            }),
        }
    }

    pub(crate) fn emit(&self, ctx: &Context, out: &mut Vec<u8>) {
        match self {
            Self::Ipv4Unicast(nlri) => {
                put_afi_safi(Family::Ipv4Unicast, out);
                emit_nlri(nlri, ctx.add_path_send(Family::Ipv4Unicast), out);
            }
            Self::Ipv6Unicast(nlri) => {
                put_afi_safi(Family::Ipv6Unicast, out);
                emit_nlri(nlri, ctx.add_path_send(Family::Ipv6Unicast), out);
            }
            Self::Other { afi, safi, value } => {
                out.extend_from_slice(&afi.0.to_be_bytes());
                out.push(safi.0);
                out.extend_from_slice(value);
            }
        }
    }
}

fn put_afi_safi(family: Family, out: &mut Vec<u8>) {
    out.extend_from_slice(&family.afi().0.to_be_bytes());
    out.push(family.safi().0);
}
