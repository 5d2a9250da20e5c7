//! A destination prefix of either unicast family (RFC 4271 §9, RFC 4760).
//!
//! Owns [`IpPrefix`], the key of every RIB table; it wraps the codec's
//! checked prefix types, so it can only hold a valid prefix.

use std::fmt;
use std::net::IpAddr;

use crate::wire::{Family, Ipv4Prefix, Ipv6Prefix, Prefix};

/// An IPv4 or IPv6 unicast prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpPrefix {
    /// IPv4 unicast.
    V4(Ipv4Prefix),
    /// IPv6 unicast.
    V6(Ipv6Prefix),
}

impl IpPrefix {
    /// The prefix `addr/len` with host bits cleared, or `None` if `len` is
    /// longer than the address.
    pub fn new(addr: IpAddr, len: u8) -> Option<Self> {
        match addr {
            IpAddr::V4(a) => Ipv4Prefix::new(a, len).map(Self::V4),
            IpAddr::V6(a) => Ipv6Prefix::new(a, len).map(Self::V6),
        }
    }

    /// The address family.
    pub const fn family(&self) -> Family {
        match self {
            Self::V4(_) => Family::Ipv4Unicast,
            Self::V6(_) => Family::Ipv6Unicast,
        }
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        match self {
            Self::V4(p) => p.prefix_len(),
            Self::V6(p) => p.prefix_len(),
        }
    }

    /// Whether this is a default route (length 0).
    pub fn is_default(&self) -> bool {
        self.prefix_len() == 0
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        match self {
            Self::V4(p) => IpAddr::V4(p.addr()),
            Self::V6(p) => IpAddr::V6(p.addr()),
        }
    }

    /// Whether `self` covers `other` (same family, shorter or equal length,
    /// same leading bits).
    pub fn contains(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::V4(a), Self::V4(b)) => a.contains(b),
            (Self::V6(a), Self::V6(b)) => a.contains(b),
            _ => false,
        }
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::V4(p) => p.fmt(f),
            Self::V6(p) => p.fmt(f),
        }
    }
}

impl std::str::FromStr for IpPrefix {
    type Err = PrefixParseError;

    /// Parses `addr/len`; host bits must be zero.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = s
            .split_once('/')
            .ok_or_else(|| PrefixParseError(s.to_string()))?;
        let addr: IpAddr = addr.parse().map_err(|_| PrefixParseError(s.to_string()))?;
        let len: u8 = len.parse().map_err(|_| PrefixParseError(s.to_string()))?;
        let prefix = Self::new(addr, len).ok_or_else(|| PrefixParseError(s.to_string()))?;
        if prefix.addr() != addr {
            return Err(PrefixParseError(s.to_string()));
        }
        Ok(prefix)
    }
}

/// A string that is not `addr/len` with zero host bits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a prefix: {0:?}")]
pub struct PrefixParseError(pub String);
