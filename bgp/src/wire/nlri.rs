//! Network Layer Reachability Information: IPv4 and IPv6 prefixes, with and
//! without ADD-PATH Path Identifiers (RFC 4271 §4.3, RFC 4760 §5,
//! RFC 7911 §3).
//!
//! Owns the prefix types, which can only hold a valid prefix (length within
//! the family's bits, host bits zero), and the NLRI encoding shared by the
//! Withdrawn Routes and NLRI fields and by MP_REACH_NLRI / MP_UNREACH_NLRI.
//!
//! ```text
//! +--------------------------------+
//! | Path Identifier (4 octets)     |   only when ADD-PATH is negotiated
//! +--------------------------------+
//! | Length (1 octet)               |
//! +--------------------------------+
//! | Prefix (variable)              |
//! +--------------------------------+
//! ```

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::context::Family;
use super::error::UpdateError;

/// An address prefix of one family. Implemented by [`Ipv4Prefix`] and
/// [`Ipv6Prefix`]; the NLRI codec is generic over it.
pub trait Prefix: Copy + Eq + fmt::Debug {
    /// The family whose NLRI hold this prefix.
    const FAMILY: Family;
    /// Address length in bits.
    const MAX_LEN: u8;
    /// The prefix of `len` bits (at most [`Prefix::MAX_LEN`]) whose leading
    /// octets are `octets` (exactly `len.div_ceil(8)` of them).
    fn from_octets(octets: &[u8], len: u8) -> Self;
    /// The prefix length in bits.
    fn prefix_len(&self) -> u8;
    /// Appends the `len.div_ceil(8)` significant octets.
    fn emit_octets(&self, out: &mut Vec<u8>);
}

macro_rules! prefix_type {
    ($name:ident, $addr:ty, $bits:ty, $max:expr, $family:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name {
            addr: $addr,
            len: u8,
        }

        impl $name {
            /// The prefix `addr/len` with its host bits cleared, or `None`
            /// if `len` is longer than the address.
            pub fn new(addr: $addr, len: u8) -> Option<Self> {
                if len > $max {
                    return None;
                }
                let mask = <$bits>::MAX.checked_shl(u32::from($max - len)).unwrap_or(0);
                Some(Self {
                    addr: <$addr>::from_bits(addr.to_bits() & mask),
                    len,
                })
            }

            /// The network address.
            pub const fn addr(&self) -> $addr {
                self.addr
            }

            /// Whether `self` covers `other`.
            pub fn contains(&self, other: &Self) -> bool {
                other.len >= self.len
                    && Self::new(other.addr, self.len).is_some_and(|p| p.addr == self.addr)
            }
        }

        impl Prefix for $name {
            const FAMILY: Family = $family;
            const MAX_LEN: u8 = $max;

            fn from_octets(octets: &[u8], len: u8) -> Self {
                // Fold the significant octets into the high end of the
                // address; at most MAX_LEN / 8 of them are ever passed.
                let n = octets.len().min(($max / 8) as usize);
                let bits = octets
                    .iter()
                    .take(n)
                    .fold(0 as $bits, |a, b| a << 8 | <$bits>::from(*b));
                let bits = bits
                    .checked_shl(8 * (($max / 8) as usize - n) as u32)
                    .unwrap_or(0);
                let mask = <$bits>::MAX
                    .checked_shl(u32::from($max - len.min($max)))
                    .unwrap_or(0);
                Self {
                    addr: <$addr>::from_bits(bits & mask),
                    len: len.min($max),
                }
            }

            fn prefix_len(&self) -> u8 {
                self.len
            }

            fn emit_octets(&self, out: &mut Vec<u8>) {
                let n = usize::from(self.len.div_ceil(8));
                out.extend(self.addr.octets().iter().take(n));
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}/{}", self.addr, self.len)
            }
        }
    };
}

prefix_type!(
    Ipv4Prefix,
    Ipv4Addr,
    u32,
    32,
    Family::Ipv4Unicast,
    "An IPv4 prefix."
);
prefix_type!(
    Ipv6Prefix,
    Ipv6Addr,
    u128,
    128,
    Family::Ipv6Unicast,
    "An IPv6 prefix."
);

/// One NLRI entry: a prefix and, with ADD-PATH, its Path Identifier.
///
/// On decode `path_id` is `Some` exactly when ADD-PATH receive is negotiated
/// for the family. On encode it is written (0 if `None`) exactly when
/// ADD-PATH send is negotiated, and ignored otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nlri<P> {
    /// Path Identifier (RFC 7911 §3).
    pub path_id: Option<u32>,
    /// The prefix.
    pub prefix: P,
}

impl<P: Prefix> Nlri<P> {
    /// An entry without a Path Identifier.
    pub const fn new(prefix: P) -> Self {
        Self {
            path_id: None,
            prefix,
        }
    }

    /// Octets this entry takes on the wire.
    pub fn encoded_len(&self, add_path: bool) -> usize {
        usize::from(self.prefix.prefix_len().div_ceil(8)) + 1 + if add_path { 4 } else { 0 }
    }
}

/// Parses a whole NLRI-encoded field into `out`. A length above the
/// family's bits or a prefix that runs past the field is 3/10.
pub(crate) fn parse_nlri<P: Prefix>(
    input: &[u8],
    add_path: bool,
    out: &mut Vec<Nlri<P>>,
) -> Result<(), UpdateError> {
    // Cheap bound on the entry count: avoids regrowth on packed fields.
    out.reserve(input.len() / if add_path { 8 } else { 4 });
    if add_path {
        parse_entries::<P, true>(input, out)
    } else {
        parse_entries::<P, false>(input, out)
    }
}

/// The NLRI loop, monomorphized on whether a Path Identifier leads.
fn parse_entries<P: Prefix, const ADD_PATH: bool>(
    mut input: &[u8],
    out: &mut Vec<Nlri<P>>,
) -> Result<(), UpdateError> {
    while !input.is_empty() {
        let path_id = if ADD_PATH {
            let (id, rest) = input
                .split_first_chunk::<4>()
                .ok_or(UpdateError::InvalidNetworkField)?;
            input = rest;
            Some(u32::from_be_bytes(*id))
        } else {
            None
        };
        let (&len, rest) = input
            .split_first()
            .ok_or(UpdateError::InvalidNetworkField)?;
        if len > P::MAX_LEN {
            return Err(UpdateError::InvalidNetworkField);
        }
        let (octets, rest) = rest
            .split_at_checked(usize::from(len.div_ceil(8)))
            .ok_or(UpdateError::InvalidNetworkField)?;
        out.push(Nlri {
            path_id,
            prefix: P::from_octets(octets, len),
        });
        input = rest;
    }
    Ok(())
}

/// Appends `nlri` in NLRI encoding.
pub(crate) fn emit_nlri<P: Prefix>(nlri: &[Nlri<P>], add_path: bool, out: &mut Vec<u8>) {
    for n in nlri {
        if add_path {
            out.extend_from_slice(&n.path_id.unwrap_or(0).to_be_bytes());
        }
        out.push(n.prefix.prefix_len());
        n.prefix.emit_octets(out);
    }
}
