//! Graceful restart as helper, the session side (RFC 4724 §4.2, RFC
//! 9494 §4.2): from what a session negotiated and why it ended, which of
//! the peer's routes a helper keeps and for how long; once the peer is
//! back, which families it still preserves; and which families it can be
//! sent long-lived stale routes for.
//!
//! Pure functions of their arguments; the RIB keeps the routes
//! ([`crate::rib::Rib::peer_down`], [`crate::rib::Rib::peer_restarted`])
//! and the caller owns the clock.

use std::time::{Duration, Instant};

use crate::rib::{Kept, Retention};
use crate::wire::capability::LongLivedGracefulRestartFamily;
use crate::wire::{Capability, Families, Family};

use super::negotiate::Negotiated;
use super::state::DownReason;

/// The peer's long-lived graceful restart families (RFC 9494 §3), if it
/// announced the capability beside graceful restart: one without the
/// other is ignored (§4.1: LLGR rides on graceful restart, BIRD refuses
/// to configure it alone).
fn long_lived_of(negotiated: &Negotiated) -> Option<&[LongLivedGracefulRestartFamily]> {
    negotiated.peer_graceful_restart.as_ref()?;
    negotiated
        .peer_open
        .capabilities
        .iter()
        .find_map(|c| match c {
            Capability::LongLivedGracefulRestart(f) => Some(f.as_slice()),
            _ => None,
        })
}

/// The families the peer may be sent long-lived stale routes for
/// ([`crate::rib::Rib::peer_up`]): every family of the session if it
/// announced the long-lived capability at all (RFC 9494 §4.3 asks
/// whether the capability was received, not for which families; a
/// helper-only speaker, as BIRD's `long lived graceful restart aware`,
/// lists none), none otherwise.
pub fn long_lived(negotiated: &Negotiated) -> Families {
    match long_lived_of(negotiated) {
        Some(_) => negotiated.families,
        None => Families::NONE,
    }
}

/// What to keep, stale, and for how long, after a session that
/// negotiated `negotiated` ended for `reason` at `now`; `None`: drop the
/// peer's routes.
///
/// Kept only if the peer announced graceful restart and the transport
/// ended without a NOTIFICATION (RFC 4724 §4.2: "detects termination of
/// the TCP session"); NOTIFICATIONs (RFC 8538) end the routes. Every
/// family of its graceful restart capability is kept for its Restart
/// Time; every family of its long-lived capability with a non-zero
/// Long-lived Stale Time then for that time, at most `long_lived_max`
/// (RFC 9494 §4.2; zero: no long-lived retention), at once if the family
/// has no graceful-restart period.
pub fn helper_keeps(
    negotiated: &Negotiated,
    reason: &DownReason,
    now: Instant,
    long_lived_max: Duration,
) -> Option<Retention> {
    if !matches!(reason, DownReason::ConnectionLost) {
        return None;
    }
    let gr = negotiated.peer_graceful_restart.as_ref()?;
    let restart = Duration::from_secs(u64::from(gr.restart_time));
    let mut kept: Vec<Kept> = Vec::new();
    for f in &gr.families {
        if let Some(family) = Family::from_afi_safi(f.afi, f.safi)
            && !kept.iter().any(|k| k.family == family)
        {
            kept.push(Kept {
                family,
                graceful: restart,
                long_lived: Duration::ZERO,
            });
        }
    }
    for f in long_lived_of(negotiated).unwrap_or(&[]) {
        let Some(family) = Family::from_afi_safi(f.afi, f.safi) else {
            continue;
        };
        let time = Duration::from_secs(u64::from(f.stale_time)).min(long_lived_max);
        if time.is_zero() {
            continue;
        }
        match kept.iter_mut().find(|k| k.family == family) {
            Some(k) => k.long_lived = time,
            None => kept.push(Kept {
                family,
                graceful: Duration::ZERO,
                long_lived: time,
            }),
        }
    }
    Some(Retention {
        at: now,
        families: kept,
    })
}

/// The families a peer coming back from its restart still preserves: for
/// a family whose routes we kept long-lived (`long_lived`), its new
/// long-lived capability with the Forwarding State bit set (RFC 9494
/// §4.2); for the others its new graceful restart capability with that
/// bit (RFC 4724 §4.2). The helper drops stale routes of the others at
/// once.
pub fn preserved(negotiated: &Negotiated, long_lived: Families) -> Families {
    let mut set = Families::NONE;
    if let Some(gr) = &negotiated.peer_graceful_restart {
        for f in gr.families.iter().filter(|f| f.forwarding_state) {
            if let Some(family) = Family::from_afi_safi(f.afi, f.safi)
                && !long_lived.contains(family)
            {
                set.insert(family);
            }
        }
    }
    for f in long_lived_of(negotiated)
        .unwrap_or(&[])
        .iter()
        .filter(|f| f.forwarding_state)
    {
        if let Some(family) = Family::from_afi_safi(f.afi, f.safi)
            && long_lived.contains(family)
        {
            set.insert(family);
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

    const HOUR: Duration = Duration::from_secs(3600);

    /// A session with a peer that announced graceful restart (restart
    /// time, F bit) for IPv4 and, with `llgr`, long-lived graceful
    /// restart for the families given (stale time, F bit).
    fn negotiated_with(gr: Option<(u16, bool)>, llgr: &[(Afi, u32, bool)]) -> Negotiated {
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
        if !llgr.is_empty() {
            caps.push(Capability::LongLivedGracefulRestart(
                llgr.iter()
                    .map(
                        |&(afi, stale_time, forwarding_state)| LongLivedGracefulRestartFamily {
                            afi,
                            safi: Safi::UNICAST,
                            forwarding_state,
                            stale_time,
                        },
                    )
                    .collect(),
            ));
        }
        let peer = Open::new(64512, 90, Ipv4Addr::new(10, 0, 0, 2), caps);
        negotiate(&cfg, &local_open(&cfg), &peer).unwrap()
    }

    fn negotiated(gr: Option<(u16, bool)>) -> Negotiated {
        negotiated_with(gr, &[])
    }

    fn kept(family: Family, graceful: u64, long_lived: u64) -> Kept {
        Kept {
            family,
            graceful: Duration::from_secs(graceful),
            long_lived: Duration::from_secs(long_lived),
        }
    }

    #[test]
    fn a_lost_connection_keeps_the_listed_families_for_the_restart_time() {
        let now = Instant::now();
        let r = helper_keeps(
            &negotiated(Some((120, false))),
            &DownReason::ConnectionLost,
            now,
            HOUR,
        )
        .unwrap();
        assert_eq!(r.at, now);
        assert_eq!(r.families, vec![kept(Family::Ipv4Unicast, 120, 0)]);
        assert_eq!(
            r,
            Retention::graceful(r.kept(), now, Duration::from_secs(120))
        );
    }

    #[test]
    fn a_notification_or_no_capability_drops_the_routes() {
        let now = Instant::now();
        let n = Notification::new(ErrorCode::Cease, 2, []);
        let gr = negotiated_with(Some((120, true)), &[(Afi::IPV4, 600, true)]);
        assert_eq!(
            helper_keeps(&gr, &DownReason::NotificationReceived(n.clone()), now, HOUR),
            None
        );
        assert_eq!(
            helper_keeps(&gr, &DownReason::NotificationSent(n), now, HOUR),
            None
        );
        let plain = negotiated(None);
        assert_eq!(
            helper_keeps(&plain, &DownReason::ConnectionLost, now, HOUR),
            None
        );
    }

    #[test]
    fn long_lived_follows_the_restart_time_capped_by_the_helper() {
        let now = Instant::now();
        let n = negotiated_with(
            Some((120, true)),
            &[(Afi::IPV4, 7200, true), (Afi::IPV6, 600, false)],
        );
        let r = helper_keeps(&n, &DownReason::ConnectionLost, now, HOUR).unwrap();
        // IPv4: 120 s of graceful restart, then at most our hour; IPv6 is
        // not in the graceful restart capability: long-lived at once.
        assert_eq!(
            r.families,
            vec![
                kept(Family::Ipv4Unicast, 120, 3600),
                kept(Family::Ipv6Unicast, 0, 600)
            ]
        );
        // Sent long-lived stale routes for the session's families (IPv4).
        assert_eq!(long_lived(&n), n.families);
        assert_eq!(
            long_lived(&negotiated_with(Some((120, false)), &[])),
            Families::NONE
        );
        // A helper that allows none keeps graceful restart alone.
        let r = helper_keeps(&n, &DownReason::ConnectionLost, now, Duration::ZERO).unwrap();
        assert_eq!(r.families, vec![kept(Family::Ipv4Unicast, 120, 0)]);
    }

    #[test]
    fn long_lived_without_graceful_restart_or_with_zero_time_is_ignored() {
        let now = Instant::now();
        let alone = negotiated_with(None, &[(Afi::IPV4, 600, true)]);
        assert_eq!(long_lived(&alone), Families::NONE);
        assert_eq!(
            helper_keeps(&alone, &DownReason::ConnectionLost, now, HOUR),
            None
        );
        let zero = negotiated_with(Some((90, true)), &[(Afi::IPV4, 0, true)]);
        let r = helper_keeps(&zero, &DownReason::ConnectionLost, now, HOUR).unwrap();
        assert_eq!(r.families, vec![kept(Family::Ipv4Unicast, 90, 0)]);
    }

    #[test]
    fn only_families_with_the_forwarding_bit_are_preserved() {
        let none = Families::NONE;
        assert!(preserved(&negotiated(Some((120, true))), none).contains(Family::Ipv4Unicast));
        assert_eq!(
            preserved(&negotiated(Some((120, false))), none),
            Families::NONE
        );
        assert_eq!(preserved(&negotiated(None), none), Families::NONE);
    }

    #[test]
    fn a_long_lived_family_is_preserved_by_the_long_lived_forwarding_bit() {
        let v4 = Families::of(&[Family::Ipv4Unicast]);
        let gr_only = negotiated_with(Some((120, true)), &[(Afi::IPV4, 600, false)]);
        assert_eq!(preserved(&gr_only, v4), Families::NONE);
        assert_eq!(preserved(&gr_only, Families::NONE), v4);
        let llgr_only = negotiated_with(Some((120, false)), &[(Afi::IPV4, 600, true)]);
        assert_eq!(preserved(&llgr_only, v4), v4);
    }
}
