//! Graceful restart as helper, the session side (RFC 4724 §4.2): from
//! what a session negotiated and why it ended, which of the peer's routes
//! a helper keeps and for how long; and, once the peer is back, which
//! families it still preserves.
//!
//! Pure functions of their arguments; the RIB keeps the routes
//! ([`crate::rib::Rib::peer_down`], [`crate::rib::Rib::peer_restarted`])
//! and the caller owns the clock.

use std::time::{Duration, Instant};

use crate::wire::{Families, Family};

use super::negotiate::Negotiated;
use super::state::DownReason;

/// The families to keep, stale, and until when, after a session that
/// negotiated `negotiated` ended for `reason` at `now`; `None`: drop the
/// peer's routes.
///
/// Kept only if the peer announced graceful restart and the transport
/// ended without a NOTIFICATION (RFC 4724 §4.2: "detects termination of
/// the TCP session"), for every family listed in its capability, until
/// its Restart Time has passed. NOTIFICATIONs (RFC 8538) end the routes.
pub fn helper_keeps(
    negotiated: &Negotiated,
    reason: &DownReason,
    now: Instant,
) -> Option<(Families, Instant)> {
    if !matches!(reason, DownReason::ConnectionLost) {
        return None;
    }
    let gr = negotiated.peer_graceful_restart.as_ref()?;
    let mut keep = Families::NONE;
    for f in &gr.families {
        if let Some(family) = Family::from_afi_safi(f.afi, f.safi) {
            keep.insert(family);
        }
    }
    let restart = Duration::from_secs(u64::from(gr.restart_time));
    Some((keep, now + restart))
}

/// The families a peer coming back from its restart still preserves: those
/// of its new graceful restart capability with the Forwarding State bit
/// set (RFC 4724 §4.2). The helper drops stale routes of the others at
/// once.
pub fn preserved(negotiated: &Negotiated) -> Families {
    let mut set = Families::NONE;
    if let Some(gr) = &negotiated.peer_graceful_restart {
        for f in gr.families.iter().filter(|f| f.forwarding_state) {
            if let Some(family) = Family::from_afi_safi(f.afi, f.safi) {
                set.insert(family);
            }
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::session::SessionConfig;
    use crate::session::negotiate::{local_open, negotiate};
    use crate::wire::capability::{GracefulRestart, GracefulRestartFamily};
    use crate::wire::notification::ErrorCode;
    use crate::wire::{Afi, Capability, Notification, Open, Safi};

    fn negotiated(gr: Option<(u16, bool)>) -> Negotiated {
        let cfg = SessionConfig::new(64512, 64512, Ipv4Addr::new(10, 0, 0, 1));
        let mut caps = vec![Capability::FourOctetAs(64512)];
        if let Some((restart_time, forwarding_state)) = gr {
            caps.push(Capability::GracefulRestart(GracefulRestart {
                restart_state: false,
                notification: false,
                restart_time,
                families: vec![GracefulRestartFamily {
                    afi: Afi::IPV4,
                    safi: Safi::UNICAST,
                    forwarding_state,
                }],
            }));
        }
        let peer = Open::new(64512, 90, Ipv4Addr::new(10, 0, 0, 2), caps);
        negotiate(&cfg, &local_open(&cfg), &peer).unwrap()
    }

    #[test]
    fn a_lost_connection_keeps_the_listed_families_for_the_restart_time() {
        let now = Instant::now();
        let (keep, until) = helper_keeps(
            &negotiated(Some((120, false))),
            &DownReason::ConnectionLost,
            now,
        )
        .unwrap();
        assert!(keep.contains(Family::Ipv4Unicast));
        assert!(!keep.contains(Family::Ipv6Unicast));
        assert_eq!(until, now + Duration::from_secs(120));
    }

    #[test]
    fn a_notification_or_no_capability_drops_the_routes() {
        let now = Instant::now();
        let n = Notification::new(ErrorCode::Cease, 2, []);
        let gr = negotiated(Some((120, true)));
        assert_eq!(
            helper_keeps(&gr, &DownReason::NotificationReceived(n.clone()), now),
            None
        );
        assert_eq!(
            helper_keeps(&gr, &DownReason::NotificationSent(n), now),
            None
        );
        let plain = negotiated(None);
        assert_eq!(helper_keeps(&plain, &DownReason::ConnectionLost, now), None);
    }

    #[test]
    fn only_families_with_the_forwarding_bit_are_preserved() {
        assert!(preserved(&negotiated(Some((120, true)))).contains(Family::Ipv4Unicast));
        assert_eq!(preserved(&negotiated(Some((120, false)))), Families::NONE);
        assert_eq!(preserved(&negotiated(None)), Families::NONE);
    }
}
