//! OPEN validation and what both OPENs agreed (RFC 4271 §6.2, RFC 5492).

use std::time::Duration;

use crate::wire::capability::GracefulRestart;
use crate::wire::notification::ErrorCode;
use crate::wire::{Capability, Context, Families, Family, Notification, Open};

use super::config::SessionConfig;

/// What the session runs with once both OPENs are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The codec context both sides agreed on.
    pub context: Context,
    /// Hold Time: the smaller of both; zero means no hold timer and no
    /// KEEPALIVEs (§4.2).
    pub hold_time: Duration,
    /// KEEPALIVE interval: a third of the Hold Time (§10).
    pub keepalive: Duration,
    /// Address families both sides announced (IPv4 unicast when a side
    /// announces no Multiprotocol capability at all, RFC 4760 §8).
    pub families: Families,
    /// The peer's AS and BGP Identifier.
    pub peer_as: u32,
    pub peer_id: std::net::Ipv4Addr,
    /// Both sides support ROUTE-REFRESH.
    pub route_refresh: bool,
    /// The peer's graceful restart capability, if any (RFC 4724).
    pub peer_graceful_restart: Option<GracefulRestart>,
    /// The peer's OPEN as received.
    pub peer_open: Open,
}

/// Our OPEN for `cfg`.
pub fn local_open(cfg: &SessionConfig) -> Open {
    let hold = u16::try_from(cfg.hold_time.as_secs()).unwrap_or(u16::MAX);
    Open::new(cfg.local_as, hold, cfg.local_id, cfg.capabilities.clone())
}

fn families(open: &Open) -> Families {
    let mut set = Families::NONE;
    let mut any_mp = false;
    for c in &open.capabilities {
        if let Capability::Multiprotocol { afi, safi } = c {
            any_mp = true;
            if let Some(f) = Family::from_afi_safi(*afi, *safi) {
                set.insert(f);
            }
        }
    }
    if !any_mp {
        set.insert(Family::Ipv4Unicast);
    }
    set
}

/// Check the peer's OPEN against `cfg` (the checks the decoder cannot do
/// alone) and negotiate. An error is the NOTIFICATION to send.
pub fn negotiate(
    cfg: &SessionConfig,
    ours: &Open,
    peer: &Open,
) -> Result<Negotiated, Notification> {
    let peer_as = peer.asn();
    if peer_as != cfg.remote_as {
        // 2/2 Bad Peer AS (§6.2). Data: none.
        return Err(Notification::new(ErrorCode::OpenMessage, 2, []));
    }
    if cfg.is_ibgp() && peer.bgp_identifier == cfg.local_id {
        // 2/3 Bad BGP Identifier: same as ours inside one AS (RFC 6286 §2.2).
        return Err(Notification::new(ErrorCode::OpenMessage, 3, []));
    }
    for code in &cfg.required_capabilities {
        if !peer.capabilities.iter().any(|c| c.code() == *code) {
            // 2/7 Unsupported Capability; the data lists what is missing
            // as (code, length 0) tuples (RFC 5492 §5).
            return Err(Notification::new(ErrorCode::OpenMessage, 7, [*code, 0]));
        }
    }
    let hold = ours.hold_time.min(peer.hold_time);
    let hold_time = Duration::from_secs(u64::from(hold));
    let ours_f = families(ours);
    let peer_f = families(peer);
    let mut both = Families::NONE;
    for f in Family::ALL {
        if ours_f.contains(f) && peer_f.contains(f) {
            both.insert(f);
        }
    }
    let has = |open: &Open, pred: fn(&Capability) -> bool| open.capabilities.iter().any(pred);
    let rr = |c: &Capability| {
        matches!(
            c,
            Capability::RouteRefresh | Capability::EnhancedRouteRefresh
        )
    };
    Ok(Negotiated {
        context: Context::negotiate(ours, peer),
        hold_time,
        keepalive: hold_time / 3,
        families: both,
        peer_as,
        peer_id: peer.bgp_identifier,
        route_refresh: has(ours, rr) && has(peer, rr),
        peer_graceful_restart: peer.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr.clone()),
            _ => None,
        }),
        peer_open: peer.clone(),
    })
}

/// The Multiprotocol capability for a family.
pub fn multiprotocol(family: Family) -> Capability {
    Capability::Multiprotocol {
        afi: family.afi(),
        safi: family.safi(),
    }
}
