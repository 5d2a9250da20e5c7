//! UPDATE packing: the fewest messages for many prefixes (RFC 4271 §9.2).
//!
//! Owns splitting a set of prefixes that share one attribute set into
//! UPDATEs that each fit the negotiated maximum size. Announcements share
//! one encoding of the attributes; withdrawals carry no attributes. It does
//! not decide which prefixes share attributes; the Adj-RIB-Out does.

use super::attribute::PathAttributes;
use super::attribute::mp::{MpReach, MpUnreach, NextHop};
use super::context::{Context, Family};
use super::error::EncodeError;
use super::nlri::{Ipv4Prefix, Ipv6Prefix, Nlri, Prefix};
use super::update::Update;
use super::{Message, encode};

/// Header (19), Withdrawn Routes Length (2), Total Path Attribute Length (2).
const UPDATE_OVERHEAD: usize = 23;
/// Extended-length attribute header (4) plus AFI/SAFI (3).
const MP_UNREACH_OVERHEAD: usize = 7;
/// MP_UNREACH overhead plus next hop length (1), next hop (up to 32) and
/// Reserved (1).
const MP_REACH_OVERHEAD: usize = MP_UNREACH_OVERHEAD + 34;

/// Splits `nlri` into runs whose encoding fits `budget` octets each.
fn chunks<P: Prefix>(nlri: &[Nlri<P>], add_path: bool, budget: usize) -> Vec<&[Nlri<P>]> {
    let mut out = Vec::new();
    let mut rest = nlri;
    while !rest.is_empty() {
        let mut used = 0;
        let n = rest
            .iter()
            .take_while(|p| {
                used += p.encoded_len(add_path);
                used <= budget
            })
            .count()
            .max(1);
        let (head, tail) = rest.split_at(n.min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}

fn budget(ctx: &Context, used: usize) -> Result<usize, EncodeError> {
    let max = ctx.max_message_len();
    max.checked_sub(used)
        .filter(|b| *b >= 5 + 4)
        .ok_or(EncodeError::MessageTooLong { length: used, max })
}

/// Appends UPDATEs announcing IPv4 unicast `nlri` in the NLRI field with
/// `attributes` (which must carry NEXT_HOP and no MP attributes); returns
/// how many messages were written.
pub fn announce_ipv4(
    attributes: &PathAttributes,
    nlri: &[Nlri<Ipv4Prefix>],
    ctx: &Context,
    out: &mut Vec<u8>,
) -> Result<usize, EncodeError> {
    let mut attr_bytes = Vec::new();
    attributes.emit(ctx, &mut attr_bytes)?;
    let room = budget(ctx, UPDATE_OVERHEAD + attr_bytes.len())?;
    let add_path = ctx.add_path_send(Family::Ipv4Unicast);
    let mut count = 0;
    for chunk in chunks(nlri, add_path, room) {
        let update = Update {
            withdrawn: Vec::new(),
            attributes: attributes.clone(),
            nlri: chunk.to_vec(),
        };
        encode(&Message::Update(update), ctx, out)?;
        count += 1;
    }
    Ok(count)
}

/// Appends UPDATEs announcing IPv6 unicast `nlri` in MP_REACH_NLRI with
/// `next_hop` and `attributes` (whose own MP attributes are replaced);
/// returns how many messages were written.
pub fn announce_ipv6(
    attributes: &PathAttributes,
    next_hop: NextHop,
    nlri: &[Nlri<Ipv6Prefix>],
    ctx: &Context,
    out: &mut Vec<u8>,
) -> Result<usize, EncodeError> {
    let mut base = attributes.clone();
    base.mp_reach = None;
    base.mp_unreach = None;
    let mut attr_bytes = Vec::new();
    base.emit(ctx, &mut attr_bytes)?;
    let room = budget(ctx, UPDATE_OVERHEAD + MP_REACH_OVERHEAD + attr_bytes.len())?;
    let add_path = ctx.add_path_send(Family::Ipv6Unicast);
    let mut count = 0;
    for chunk in chunks(nlri, add_path, room) {
        let mut attributes = base.clone();
        attributes.mp_reach = Some(MpReach::Ipv6Unicast {
            next_hop,
            nlri: chunk.to_vec(),
        });
        let update = Update {
            attributes,
            ..Update::default()
        };
        encode(&Message::Update(update), ctx, out)?;
        count += 1;
    }
    Ok(count)
}

/// Appends UPDATEs withdrawing IPv4 unicast `nlri` in the Withdrawn Routes
/// field; returns how many messages were written.
pub fn withdraw_ipv4(
    nlri: &[Nlri<Ipv4Prefix>],
    ctx: &Context,
    out: &mut Vec<u8>,
) -> Result<usize, EncodeError> {
    let room = budget(ctx, UPDATE_OVERHEAD)?;
    let add_path = ctx.add_path_send(Family::Ipv4Unicast);
    let mut count = 0;
    for chunk in chunks(nlri, add_path, room) {
        let update = Update {
            withdrawn: chunk.to_vec(),
            ..Update::default()
        };
        encode(&Message::Update(update), ctx, out)?;
        count += 1;
    }
    Ok(count)
}

/// Appends UPDATEs withdrawing IPv6 unicast `nlri` in MP_UNREACH_NLRI;
/// returns how many messages were written.
pub fn withdraw_ipv6(
    nlri: &[Nlri<Ipv6Prefix>],
    ctx: &Context,
    out: &mut Vec<u8>,
) -> Result<usize, EncodeError> {
    let room = budget(ctx, UPDATE_OVERHEAD + MP_UNREACH_OVERHEAD)?;
    let add_path = ctx.add_path_send(Family::Ipv6Unicast);
    let mut count = 0;
    for chunk in chunks(nlri, add_path, room) {
        let mut update = Update::default();
        update.attributes.mp_unreach = Some(MpUnreach::Ipv6Unicast(chunk.to_vec()));
        encode(&Message::Update(update), ctx, out)?;
        count += 1;
    }
    Ok(count)
}
