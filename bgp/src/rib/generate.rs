//! UPDATE generation: Adj-RIB-Out changes packed into the fewest UPDATEs
//! (RFC 4271 §9.2), and End-of-RIB markers (RFC 4724 §2).
//!
//! Owns grouping: announcements that share one interned attribute set and
//! one next hop go together through [`crate::wire::pack`], which fills
//! each UPDATE up to the negotiated maximum size; withdrawals are packed
//! the same way; End-of-RIB follows for each family asked for. The order
//! on the wire is withdrawals, then announcements, then End-of-RIB, each
//! sorted by prefix so that the output does not depend on hash order.

use std::sync::Arc;

use crate::wire::pack::{announce_ipv4, announce_ipv6, withdraw_ipv4, withdraw_ipv6};
use crate::wire::{
    Context, Family, Ipv4Prefix, Ipv6Prefix, Message, NextHop, Nlri, PathAttributes, Update,
    decode, encode, frame,
};

use super::RibError;
use super::adj_rib_out::Advert;
use super::hash::Map;
use super::intern::AttrSet;
use super::prefix::IpPrefix;

/// Encoded UPDATEs for one peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outbound {
    /// The messages, back to back, encoded with the peer's [`Context`]:
    /// what goes on the socket.
    pub bytes: Vec<u8>,
    /// How many messages `bytes` holds.
    pub messages: usize,
    /// Prefixes announced.
    pub announced: usize,
    /// Prefixes withdrawn.
    pub withdrawn: usize,
    /// Families whose ROUTE-REFRESH request this answers, on a session
    /// with enhanced route refresh (RFC 7313 §4): the sender puts a BoRR
    /// for each before `bytes` and an EoRR after — also when `bytes` is
    /// empty, so the peer purges what it no longer gets.
    pub refreshed: Vec<Family>,
}

impl Outbound {
    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.messages == 0 && self.refreshed.is_empty()
    }

    /// The same messages as typed UPDATEs (read back with the peer's view
    /// of `ctx`), for a sender that takes [`Update`] values.
    pub fn updates(&self, ctx: &Context) -> Result<Vec<Update>, RibError> {
        let peer_view = ctx.mirror();
        let mut out = Vec::with_capacity(self.messages);
        let mut rest = self.bytes.as_slice();
        while !rest.is_empty() {
            let n = frame(rest, &peer_view)
                .map_err(|e| RibError::Repack(Some(e)))?
                .ok_or(RibError::Repack(None))?;
            let (msg, tail) = rest.split_at_checked(n).ok_or(RibError::Repack(None))?;
            let received = decode(msg, &peer_view).map_err(|e| RibError::Repack(Some(e)))?;
            match received.message {
                Message::Update(u) if received.errors.is_empty() => out.push(u),
                _ => return Err(RibError::Repack(None)),
            }
            rest = tail;
        }
        Ok(out)
    }
}

#[derive(Default)]
struct Group {
    v4: Vec<Nlri<Ipv4Prefix>>,
    v6: Vec<Nlri<Ipv6Prefix>>,
}

/// Packs `changes` (`None`: withdraw) and then an End-of-RIB for each of
/// `end_of_rib` into UPDATEs for a session with `ctx`.
///
/// The changes are grouped first and each group sorted by prefix, which
/// gives the same messages as sorting the whole input but sorts 4- or
/// 17-octet prefixes rather than whole adverts.
pub fn build<'a>(
    changes: impl IntoIterator<Item = (IpPrefix, Option<&'a Advert>)>,
    end_of_rib: &[Family],
    ctx: &Context,
) -> Result<Outbound, RibError> {
    let mut out = Outbound::default();
    let (mut w4, mut w6) = (Vec::new(), Vec::new());
    let mut order: Vec<(AttrSet, NextHop)> = Vec::new();
    let mut groups: Map<(*const PathAttributes, NextHop), Group> = Map::default();
    for (prefix, advert) in changes {
        match advert {
            None => match prefix {
                IpPrefix::V4(p) => w4.push(Nlri::new(p)),
                IpPrefix::V6(p) => w6.push(Nlri::new(p)),
            },
            Some(a) => {
                let group = groups
                    .entry((Arc::as_ptr(&a.attrs), a.next_hop))
                    .or_insert_with(|| {
                        order.push((AttrSet::clone(&a.attrs), a.next_hop));
                        Group::default()
                    });
                match prefix {
                    IpPrefix::V4(p) => group.v4.push(Nlri::new(p)),
                    IpPrefix::V6(p) => group.v6.push(Nlri::new(p)),
                }
            }
        }
    }
    w4.sort_unstable_by_key(|n| n.prefix);
    w6.sort_unstable_by_key(|n| n.prefix);
    for g in groups.values_mut() {
        g.v4.sort_unstable_by_key(|n| n.prefix);
        g.v6.sort_unstable_by_key(|n| n.prefix);
    }
    // Groups in the order of their lowest prefix (IPv4 before IPv6), as
    // a sorted walk over all the changes would meet them.
    let lowest = |key: &(AttrSet, NextHop)| {
        groups.get(&(Arc::as_ptr(&key.0), key.1)).and_then(|g| {
            g.v4.first()
                .map(|n| IpPrefix::V4(n.prefix))
                .or_else(|| g.v6.first().map(|n| IpPrefix::V6(n.prefix)))
        })
    };
    order.sort_by_cached_key(lowest);
    out.withdrawn = w4.len() + w6.len();
    if !w4.is_empty() {
        out.messages += withdraw_ipv4(&w4, ctx, &mut out.bytes)?;
    }
    if !w6.is_empty() {
        out.messages += withdraw_ipv6(&w6, ctx, &mut out.bytes)?;
    }
    for (attrs, next_hop) in order {
        let Some(group) = groups.remove(&(Arc::as_ptr(&attrs), next_hop)) else {
            continue;
        };
        out.announced += group.v4.len() + group.v6.len();
        if !group.v4.is_empty() {
            let NextHop::V4(nh) = next_hop else {
                return Err(RibError::NextHopFamily(Family::Ipv4Unicast));
            };
            let with_nh = PathAttributes {
                next_hop: Some(nh),
                ..PathAttributes::clone(&attrs)
            };
            out.messages += announce_ipv4(&with_nh, &group.v4, ctx, &mut out.bytes)?;
        }
        if !group.v6.is_empty() {
            if !matches!(next_hop, NextHop::V6 { .. }) {
                return Err(RibError::NextHopFamily(Family::Ipv6Unicast));
            }
            out.messages += announce_ipv6(&attrs, next_hop, &group.v6, ctx, &mut out.bytes)?;
        }
    }
    for family in end_of_rib {
        let eor = Message::Update(Update::end_of_rib(*family));
        encode(&eor, ctx, &mut out.bytes)?;
        out.messages += 1;
    }
    Ok(out)
}
