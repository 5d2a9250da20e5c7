//! Path attributes (RFC 4271 §4.3, §5) as one typed set.
//!
//! Owns [`PathAttributes`], the typed view of an UPDATE's Path Attributes
//! field, and its encoder. The decoder, with the RFC 7606 per-attribute
//! error handling, is in `decode.rs`. A set can only hold each attribute
//! once (RFC 7606 §3 g); AS numbers are always 4-octet, folded from
//! AS4_PATH / AS4_AGGREGATOR on 2-octet sessions (RFC 6793 §4.2.3) and
//! split back into them on encode (§4.2.2).
//!
//! Encoding is canonical: MP_UNREACH_NLRI and MP_REACH_NLRI first (RFC 7606
//! §5.1), then every other attribute in ascending type code, with the
//! Extended Length flag set exactly when the value exceeds 255 octets.
//!
//! ```text
//! +---------------------------+----------------------------+---------+
//! | Attr. Flags | Attr. Type  | Attr. Length (1 or 2 oct.) | Value   |
//! +---------------------------+----------------------------+---------+
//! ```

pub mod as_path;
pub mod community;
pub(crate) mod decode;
pub mod mp;

use std::net::Ipv4Addr;

use self::as_path::AsPath;
use self::community::{Community, ExtendedCommunity, LargeCommunity};
use self::mp::{MpReach, MpUnreach};
use super::context::Context;
use super::error::EncodeError;
use super::open::AS_TRANS;

/// Attribute Flags bits (RFC 4271 §4.3).
pub mod flags {
    /// Optional bit.
    pub const OPTIONAL: u8 = 0x80;
    /// Transitive bit.
    pub const TRANSITIVE: u8 = 0x40;
    /// Partial bit.
    pub const PARTIAL: u8 = 0x20;
    /// Extended Length bit.
    pub const EXTENDED_LENGTH: u8 = 0x10;
    /// Well-known attributes: not optional, transitive.
    pub const WELL_KNOWN: u8 = TRANSITIVE;
    /// Optional transitive attributes.
    pub const OPTIONAL_TRANSITIVE: u8 = OPTIONAL | TRANSITIVE;
}

/// Attribute Type Codes (IANA "BGP Path Attributes").
pub mod type_code {
    /// ORIGIN (RFC 4271).
    pub const ORIGIN: u8 = 1;
    /// AS_PATH (RFC 4271).
    pub const AS_PATH: u8 = 2;
    /// NEXT_HOP (RFC 4271).
    pub const NEXT_HOP: u8 = 3;
    /// MULTI_EXIT_DISC (RFC 4271).
    pub const MULTI_EXIT_DISC: u8 = 4;
    /// LOCAL_PREF (RFC 4271).
    pub const LOCAL_PREF: u8 = 5;
    /// ATOMIC_AGGREGATE (RFC 4271).
    pub const ATOMIC_AGGREGATE: u8 = 6;
    /// AGGREGATOR (RFC 4271).
    pub const AGGREGATOR: u8 = 7;
    /// COMMUNITIES (RFC 1997).
    pub const COMMUNITIES: u8 = 8;
    /// ORIGINATOR_ID (RFC 4456).
    pub const ORIGINATOR_ID: u8 = 9;
    /// CLUSTER_LIST (RFC 4456).
    pub const CLUSTER_LIST: u8 = 10;
    /// MP_REACH_NLRI (RFC 4760).
    pub const MP_REACH_NLRI: u8 = 14;
    /// MP_UNREACH_NLRI (RFC 4760).
    pub const MP_UNREACH_NLRI: u8 = 15;
    /// EXTENDED_COMMUNITIES (RFC 4360).
    pub const EXTENDED_COMMUNITIES: u8 = 16;
    /// AS4_PATH (RFC 6793).
    pub const AS4_PATH: u8 = 17;
    /// AS4_AGGREGATOR (RFC 6793).
    pub const AS4_AGGREGATOR: u8 = 18;
    /// LARGE_COMMUNITY (RFC 8092).
    pub const LARGE_COMMUNITY: u8 = 32;
    /// Every code the codec parses.
    pub const KNOWN: [u8; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 32];
}

/// ORIGIN values (RFC 4271 §4.3 a).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    /// 0: IGP.
    Igp,
    /// 1: EGP.
    Egp,
    /// 2: INCOMPLETE.
    Incomplete,
}

impl Origin {
    /// The ORIGIN octet.
    pub const fn code(self) -> u8 {
        match self {
            Self::Igp => 0,
            Self::Egp => 1,
            Self::Incomplete => 2,
        }
    }
}

/// AGGREGATOR (RFC 4271 §4.3 g), with a 4-octet AS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Aggregator {
    /// The AS of the speaker that aggregated.
    pub asn: u32,
    /// Its BGP Identifier.
    pub address: Ipv4Addr,
}

/// An optional transitive attribute the codec does not recognize, kept to
/// pass on (RFC 4271 §5). It is stored, and emitted, with the Partial bit
/// set: any UPDATE carrying it on is a pass-on by a speaker that did not
/// recognize it. Unrecognized optional non-transitive attributes are
/// dropped on decode.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawAttribute {
    /// Attribute Type Code (never one of [`type_code::KNOWN`]).
    pub type_code: u8,
    /// Attribute value.
    pub value: Vec<u8>,
}

/// The Path Attributes of one UPDATE.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PathAttributes {
    /// ORIGIN.
    pub origin: Option<Origin>,
    /// AS_PATH, 4-octet (merged with AS4_PATH on a 2-octet session).
    pub as_path: Option<AsPath>,
    /// NEXT_HOP.
    pub next_hop: Option<Ipv4Addr>,
    /// MULTI_EXIT_DISC.
    pub multi_exit_disc: Option<u32>,
    /// LOCAL_PREF.
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE.
    pub atomic_aggregate: bool,
    /// AGGREGATOR, 4-octet (merged with AS4_AGGREGATOR).
    pub aggregator: Option<Aggregator>,
    /// COMMUNITIES; empty means absent.
    pub communities: Vec<Community>,
    /// ORIGINATOR_ID.
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST; empty means absent.
    pub cluster_list: Vec<Ipv4Addr>,
    /// MP_REACH_NLRI.
    pub mp_reach: Option<MpReach>,
    /// MP_UNREACH_NLRI.
    pub mp_unreach: Option<MpUnreach>,
    /// EXTENDED_COMMUNITIES; empty means absent.
    pub extended_communities: Vec<ExtendedCommunity>,
    /// LARGE_COMMUNITY; empty means absent.
    pub large_communities: Vec<LargeCommunity>,
    /// Unrecognized optional transitive attributes, by ascending type code.
    pub unknown: Vec<RawAttribute>,
}

impl PathAttributes {
    /// Appends the encoded attributes (the Path Attributes field).
    pub fn emit(&self, ctx: &Context, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        use flags::{OPTIONAL, OPTIONAL_TRANSITIVE, WELL_KNOWN};
        use type_code as t;
        if let Some(mp) = &self.mp_unreach {
            put_attr(out, OPTIONAL, t::MP_UNREACH_NLRI, |o| mp.emit(ctx, o))?;
        }
        if let Some(mp) = &self.mp_reach {
            put_attr(out, OPTIONAL, t::MP_REACH_NLRI, |o| mp.emit(ctx, o))?;
        }
        let mut unknown: Vec<&RawAttribute> = self.unknown.iter().collect();
        unknown.sort_by_key(|r| r.type_code);
        let mut unknown = unknown.into_iter().peekable();
        let mut flush = |out: &mut Vec<u8>, below: u16| -> Result<(), EncodeError> {
            while let Some(r) = unknown.next_if(|r| u16::from(r.type_code) < below) {
                let f = OPTIONAL_TRANSITIVE | flags::PARTIAL;
                put_attr(out, f, r.type_code, |o| o.extend_from_slice(&r.value))?;
            }
            Ok(())
        };
        let four = ctx.four_octet_as;
        if let Some(o) = self.origin {
            flush(out, t::ORIGIN.into())?;
            put_attr(out, WELL_KNOWN, t::ORIGIN, |b| b.push(o.code()))?;
        }
        if let Some(p) = &self.as_path {
            flush(out, t::AS_PATH.into())?;
            put_attr(out, WELL_KNOWN, t::AS_PATH, |b| {
                p.emit(if four { 4 } else { 2 }, false, b)
            })?;
        }
        if let Some(nh) = self.next_hop {
            flush(out, t::NEXT_HOP.into())?;
            put_attr(out, WELL_KNOWN, t::NEXT_HOP, |b| {
                b.extend_from_slice(&nh.octets())
            })?;
        }
        if let Some(med) = self.multi_exit_disc {
            flush(out, t::MULTI_EXIT_DISC.into())?;
            put_attr(out, OPTIONAL, t::MULTI_EXIT_DISC, |b| {
                b.extend_from_slice(&med.to_be_bytes())
            })?;
        }
        if let Some(lp) = self.local_pref {
            flush(out, t::LOCAL_PREF.into())?;
            put_attr(out, WELL_KNOWN, t::LOCAL_PREF, |b| {
                b.extend_from_slice(&lp.to_be_bytes())
            })?;
        }
        if self.atomic_aggregate {
            flush(out, t::ATOMIC_AGGREGATE.into())?;
            put_attr(out, WELL_KNOWN, t::ATOMIC_AGGREGATE, |_| {})?;
        }
        // RFC 6793 §4.2.2: a 2-octet session carries 4-octet AS numbers in
        // AS4_PATH and AS4_AGGREGATOR. When AS4_PATH is sent, AGGREGATOR is
        // always AS_TRANS + AS4_AGGREGATOR, because a receiver ignores
        // AS4_PATH next to an AGGREGATOR that names a real AS (§4.2.3).
        let as4_path = self
            .as_path
            .as_ref()
            .filter(|p| !four && p.needs_four_octets());
        let as4_agg = self
            .aggregator
            .filter(|a| !four && (a.asn > u32::from(u16::MAX) || as4_path.is_some()));
        if let Some(agg) = self.aggregator {
            flush(out, t::AGGREGATOR.into())?;
            put_attr(out, OPTIONAL_TRANSITIVE, t::AGGREGATOR, |b| {
                if four {
                    b.extend_from_slice(&agg.asn.to_be_bytes());
                } else {
                    let two = match as4_agg {
                        Some(_) => AS_TRANS,
                        None => u16::try_from(agg.asn).unwrap_or(AS_TRANS),
                    };
                    b.extend_from_slice(&two.to_be_bytes());
                }
                b.extend_from_slice(&agg.address.octets());
            })?;
        }
        if !self.communities.is_empty() {
            flush(out, t::COMMUNITIES.into())?;
            put_attr(out, OPTIONAL_TRANSITIVE, t::COMMUNITIES, |b| {
                for c in &self.communities {
                    b.extend_from_slice(&c.0.to_be_bytes());
                }
            })?;
        }
        if let Some(id) = self.originator_id {
            flush(out, t::ORIGINATOR_ID.into())?;
            put_attr(out, OPTIONAL, t::ORIGINATOR_ID, |b| {
                b.extend_from_slice(&id.octets())
            })?;
        }
        if !self.cluster_list.is_empty() {
            flush(out, t::CLUSTER_LIST.into())?;
            put_attr(out, OPTIONAL, t::CLUSTER_LIST, |b| {
                for id in &self.cluster_list {
                    b.extend_from_slice(&id.octets());
                }
            })?;
        }
        if !self.extended_communities.is_empty() {
            flush(out, t::EXTENDED_COMMUNITIES.into())?;
            put_attr(out, OPTIONAL_TRANSITIVE, t::EXTENDED_COMMUNITIES, |b| {
                for c in &self.extended_communities {
                    b.extend_from_slice(&c.0);
                }
            })?;
        }
        if let Some(p) = as4_path {
            flush(out, t::AS4_PATH.into())?;
            put_attr(out, OPTIONAL_TRANSITIVE, t::AS4_PATH, |b| {
                p.emit(4, true, b)
            })?;
        }
        if let Some(agg) = as4_agg {
            flush(out, t::AS4_AGGREGATOR.into())?;
            put_attr(out, OPTIONAL_TRANSITIVE, t::AS4_AGGREGATOR, |b| {
                b.extend_from_slice(&agg.asn.to_be_bytes());
                b.extend_from_slice(&agg.address.octets());
            })?;
        }
        if !self.large_communities.is_empty() {
            flush(out, t::LARGE_COMMUNITY.into())?;
            put_attr(out, OPTIONAL_TRANSITIVE, t::LARGE_COMMUNITY, |b| {
                for c in &self.large_communities {
                    b.extend_from_slice(&c.global_admin.to_be_bytes());
                    b.extend_from_slice(&c.local_data_1.to_be_bytes());
                    b.extend_from_slice(&c.local_data_2.to_be_bytes());
                }
            })?;
        }
        flush(out, 256)
    }
}

/// Appends one attribute, choosing the Extended Length flag by the value's
/// length. On error nothing is appended.
fn put_attr(
    out: &mut Vec<u8>,
    flags: u8,
    code: u8,
    value: impl FnOnce(&mut Vec<u8>),
) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[flags | flags::EXTENDED_LENGTH, code, 0, 0]);
    value(out);
    let len = out.len() - start - 4;
    if let Ok(short) = u8::try_from(len) {
        if let Some([f, _, l, _]) = out.get_mut(start..start + 4) {
            *f &= !flags::EXTENDED_LENGTH;
            *l = short;
        }
        out.remove(start + 3);
        Ok(())
    } else if let (Ok(long), Some(field)) = (u16::try_from(len), out.get_mut(start + 2..start + 4))
    {
        field.copy_from_slice(&long.to_be_bytes());
        Ok(())
    } else {
        out.truncate(start);
        Err(EncodeError::AttributeTooLong {
            type_code: code,
            length: len,
        })
    }
}
