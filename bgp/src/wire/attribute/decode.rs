//! Decoding the Path Attributes field with RFC 7606 error handling.
//!
//! Owns the per-attribute checks of RFC 4271 §6.3 and the approach RFC 7606
//! §7 (and RFC 6793 §6, RFC 8092 §6) assigns to each failure. Errors that
//! reset the session are returned as `Err`; the others are collected as
//! [`AttributeError`]s next to the attributes that survived. This module
//! does not rewrite the UPDATE for treat-as-withdraw; [`crate::wire::update`]
//! does, because it owns the NLRI.

use std::net::Ipv4Addr;

use super::as_path::AsPath;
use super::community::{Community, ExtendedCommunity, LargeCommunity};
use super::mp::{MpReach, MpUnreach};
use super::{Aggregator, Origin, PathAttributes, RawAttribute, flags, type_code as t};
use crate::wire::context::Context;
use crate::wire::error::{Action, AttributeError, UpdateError};
use crate::wire::open::AS_TRANS;

/// One failed attribute: the error and what RFC 7606 says to do.
type Failure = (UpdateError, Action);

/// Decodes the Path Attributes field into `attrs` (which starts empty),
/// appending to `errors` the RFC 7606 errors that keep the session.
/// `ipv4_nlri` says whether the UPDATE's NLRI field is non-empty, which
/// makes NEXT_HOP's value matter (RFC 4760 §3: otherwise it is ignored).
/// Filling in place keeps the large attribute set from being moved.
pub(crate) fn decode_attributes(
    mut block: &[u8],
    ctx: &Context,
    ipv4_nlri: bool,
    attrs: &mut PathAttributes,
    errors: &mut Vec<AttributeError>,
) -> Result<(), UpdateError> {
    let mut seen = [false; 256];
    let mut as4_path: Option<AsPath> = None;
    let mut as4_aggregator: Option<Aggregator> = None;
    while !block.is_empty() {
        let Some((one, rest)) = split_attribute(block) else {
            // RFC 7606 §4: an attribute that overruns the field, or fewer
            // octets than an attribute header: treat-as-withdraw, and the
            // NLRI field is still found from the Total Path Attribute Length.
            errors.push(AttributeError {
                error: UpdateError::AttributeLength {
                    attribute: block.to_vec(),
                },
                action: Action::TreatAsWithdraw,
            });
            break;
        };
        block = rest;
        let Slot {
            attribute,
            code,
            flags: fl,
            value,
        } = one;
        let first = seen
            .get_mut(usize::from(code))
            .is_none_or(|s| !std::mem::replace(s, true));
        if !first {
            if code == t::MP_REACH_NLRI || code == t::MP_UNREACH_NLRI {
                return Err(UpdateError::MalformedAttributeList);
            }
            // RFC 7606 §3 g: keep the first, discard the others.
            errors.push(AttributeError {
                error: UpdateError::MalformedAttributeList,
                action: Action::AttributeDiscard,
            });
            continue;
        }
        let one = decode_one(
            code,
            fl,
            value,
            attribute,
            ctx,
            ipv4_nlri,
            attrs,
            &mut as4_path,
            &mut as4_aggregator,
        );
        match one {
            Ok(()) => {}
            Err((error, Action::SessionReset)) => return Err(error),
            Err((error, action)) => errors.push(AttributeError { error, action }),
        }
    }
    if !ctx.four_octet_as {
        merge_as4(attrs, as4_path, as4_aggregator);
    }
    attrs.unknown.sort_by_key(|r| r.type_code);
    Ok(())
}

/// One attribute as framed, before its value is looked at.
struct Slot<'a> {
    /// The whole attribute: flags, type code, length and value.
    attribute: &'a [u8],
    code: u8,
    flags: u8,
    value: &'a [u8],
}

/// Splits off one attribute and returns it with the rest of the field.
fn split_attribute(block: &[u8]) -> Option<(Slot<'_>, &[u8])> {
    let (&[fl, code], rest) = block.split_first_chunk::<2>()?;
    let (len, rest) = if fl & flags::EXTENDED_LENGTH != 0 {
        let (l, rest) = rest.split_first_chunk::<2>()?;
        (usize::from(u16::from_be_bytes(*l)), rest)
    } else {
        let (l, rest) = rest.split_first()?;
        (usize::from(*l), rest)
    };
    let (value, rest) = rest.split_at_checked(len)?;
    let header_len = block.len() - rest.len() - len;
    let attribute = block.get(..header_len + len)?;
    let slot = Slot {
        attribute,
        code,
        flags: fl,
        value,
    };
    Some((slot, rest))
}

/// The Optional and Transitive bits each known attribute must have.
const fn expected_class(code: u8) -> Option<u8> {
    match code {
        t::ORIGIN | t::AS_PATH | t::NEXT_HOP | t::LOCAL_PREF | t::ATOMIC_AGGREGATE => {
            Some(flags::WELL_KNOWN)
        }
        t::MULTI_EXIT_DISC
        | t::ORIGINATOR_ID
        | t::CLUSTER_LIST
        | t::MP_REACH_NLRI
        | t::MP_UNREACH_NLRI => Some(flags::OPTIONAL),
        t::AGGREGATOR
        | t::COMMUNITIES
        | t::EXTENDED_COMMUNITIES
        | t::AS4_PATH
        | t::AS4_AGGREGATOR
        | t::LARGE_COMMUNITY => Some(flags::OPTIONAL_TRANSITIVE),
        _ => None,
    }
}

fn u32_of(value: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(value).ok().map(u32::from_be_bytes)
}

/// A NEXT_HOP that is not a usable host address (RFC 4271 §6.3).
fn is_bad_next_hop(a: Ipv4Addr) -> bool {
    a.is_unspecified()
        || a.is_broadcast()
        || a.is_multicast()
        || a.is_loopback()
        || a.octets()[0] >= 240
}

/// A value made of whole `N`-octet items, at least one (RFC 7606 §7).
fn items<const N: usize>(value: &[u8]) -> Option<impl Iterator<Item = [u8; N]> + '_> {
    let ok = !value.is_empty() && value.len().is_multiple_of(N);
    ok.then(|| {
        value
            .chunks_exact(N)
            .filter_map(|c| <[u8; N]>::try_from(c).ok())
    })
}

#[allow(clippy::too_many_arguments)]
fn decode_one(
    code: u8,
    fl: u8,
    value: &[u8],
    attribute: &[u8],
    ctx: &Context,
    ipv4_nlri: bool,
    attrs: &mut PathAttributes,
    as4_path: &mut Option<AsPath>,
    as4_aggregator: &mut Option<Aggregator>,
) -> Result<(), Failure> {
    use Action::{AttributeDiscard as Discard, SessionReset as Reset, TreatAsWithdraw as Withdraw};
    let attr = || attribute.to_vec();
    let length = |action| (UpdateError::AttributeLength { attribute: attr() }, action);
    let Some(class) = expected_class(code) else {
        // RFC 4271 §6.3 / §5: unrecognized attributes.
        if fl & flags::OPTIONAL == 0 {
            let e = UpdateError::UnrecognizedWellKnownAttribute { attribute: attr() };
            return Err((e, Reset));
        }
        if fl & flags::TRANSITIVE != 0 {
            attrs.unknown.push(RawAttribute {
                type_code: code,
                value: value.to_vec(),
            });
        }
        return Ok(());
    };
    if fl & flags::OPTIONAL_TRANSITIVE != class {
        // RFC 7606 §3 c: treat-as-withdraw, except where the attribute's
        // own rule is stronger (MP_*) or weaker (AS4_*, RFC 6793 §6).
        let action = match code {
            t::MP_REACH_NLRI | t::MP_UNREACH_NLRI => Reset,
            t::AS4_PATH | t::AS4_AGGREGATOR => Discard,
            _ => Withdraw,
        };
        return Err((UpdateError::AttributeFlags { attribute: attr() }, action));
    }
    let four = ctx.four_octet_as;
    match code {
        t::ORIGIN => {
            let &[o] = value else {
                return Err(length(Withdraw));
            };
            attrs.origin = Some(match o {
                0 => Origin::Igp,
                1 => Origin::Egp,
                2 => Origin::Incomplete,
                _ => return Err((UpdateError::InvalidOrigin { attribute: attr() }, Withdraw)),
            });
        }
        t::AS_PATH => {
            let path = AsPath::parse(value, if four { 4 } else { 2 })
                .map_err(|_| (UpdateError::MalformedAsPath, Withdraw))?;
            attrs.as_path = Some(path);
        }
        t::NEXT_HOP => {
            let nh = Ipv4Addr::from_bits(u32_of(value).ok_or_else(|| length(Withdraw))?);
            if ipv4_nlri && is_bad_next_hop(nh) {
                return Err((UpdateError::InvalidNextHop { attribute: attr() }, Withdraw));
            }
            attrs.next_hop = Some(nh);
        }
        t::MULTI_EXIT_DISC => {
            attrs.multi_exit_disc = Some(u32_of(value).ok_or_else(|| length(Withdraw))?);
        }
        t::LOCAL_PREF => {
            attrs.local_pref = Some(u32_of(value).ok_or_else(|| length(Withdraw))?);
        }
        t::ATOMIC_AGGREGATE => {
            if !value.is_empty() {
                return Err(length(Discard));
            }
            attrs.atomic_aggregate = true;
        }
        t::AGGREGATOR => {
            let (asn, addr) = match value {
                [a, b, rest @ ..] if !four => (u32::from(u16::from_be_bytes([*a, *b])), rest),
                [a, b, c, d, rest @ ..] if four => (u32::from_be_bytes([*a, *b, *c, *d]), rest),
                _ => return Err(length(Discard)),
            };
            let address = u32_of(addr).ok_or_else(|| length(Discard))?;
            attrs.aggregator = Some(Aggregator {
                asn,
                address: Ipv4Addr::from_bits(address),
            });
        }
        t::COMMUNITIES => {
            let it = items::<4>(value).ok_or_else(|| length(Withdraw))?;
            attrs.communities = it.map(|c| Community(u32::from_be_bytes(c))).collect();
        }
        t::ORIGINATOR_ID => {
            let id = u32_of(value).ok_or_else(|| length(Withdraw))?;
            attrs.originator_id = Some(Ipv4Addr::from_bits(id));
        }
        t::CLUSTER_LIST => {
            let it = items::<4>(value).ok_or_else(|| length(Withdraw))?;
            attrs.cluster_list = it.map(Ipv4Addr::from).collect();
        }
        t::MP_REACH_NLRI => {
            attrs.mp_reach = Some(MpReach::parse(value, attribute, ctx).map_err(|e| (e, Reset))?);
        }
        t::MP_UNREACH_NLRI => {
            let mp = MpUnreach::parse(value, attribute, ctx).map_err(|e| (e, Reset))?;
            attrs.mp_unreach = Some(mp);
        }
        t::EXTENDED_COMMUNITIES => {
            let it = items::<8>(value).ok_or_else(|| length(Withdraw))?;
            attrs.extended_communities = it.map(ExtendedCommunity).collect();
        }
        // RFC 6793 §6: malformed AS4_PATH / AS4_AGGREGATOR are discarded;
        // between two 4-octet speakers they are ignored altogether.
        t::AS4_PATH if !four => {
            let path = AsPath::parse(value, 4).map_err(|_| {
                (
                    UpdateError::OptionalAttribute { attribute: attr() },
                    Discard,
                )
            })?;
            *as4_path = Some(path);
        }
        t::AS4_AGGREGATOR if !four => {
            let (asn, addr) = value
                .split_first_chunk::<4>()
                .ok_or_else(|| length(Discard))?;
            let address = u32_of(addr).ok_or_else(|| length(Discard))?;
            *as4_aggregator = Some(Aggregator {
                asn: u32::from_be_bytes(*asn),
                address: Ipv4Addr::from_bits(address),
            });
        }
        t::LARGE_COMMUNITY => {
            let it = items::<12>(value).ok_or_else(|| length(Withdraw))?;
            attrs.large_communities = it
                .map(|c| {
                    let [a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3] = c;
                    LargeCommunity {
                        global_admin: u32::from_be_bytes([a0, a1, a2, a3]),
                        local_data_1: u32::from_be_bytes([b0, b1, b2, b3]),
                        local_data_2: u32::from_be_bytes([c0, c1, c2, c3]),
                    }
                })
                .collect();
        }
        _ => {}
    }
    Ok(())
}

/// RFC 6793 §4.2.3 on a 2-octet session: if AGGREGATOR names a real AS
/// (not AS_TRANS), AS4_AGGREGATOR and AS4_PATH are ignored; otherwise they
/// replace AGGREGATOR and are merged into AS_PATH.
fn merge_as4(attrs: &mut PathAttributes, as4_path: Option<AsPath>, as4_agg: Option<Aggregator>) {
    if let Some(agg) = &mut attrs.aggregator {
        if agg.asn != u32::from(AS_TRANS) {
            return;
        }
        if let Some(a4) = as4_agg {
            *agg = a4;
        }
    }
    if let (Some(path), Some(p4)) = (&mut attrs.as_path, as4_path) {
        *path = AsPath::reconstruct(std::mem::take(path), p4);
    }
}
