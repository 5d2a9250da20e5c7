//! Maximum-prefix limits per peer: when a peer's Adj-RIB-In outgrows the
//! configured upper bound (RFC 4271 §8.1.2 "too many prefixes"; RFC 4486
//! §4 Cease subcode 1).
//!
//! Owns the limit as configured ([`MaxPrefix`]), the check of one
//! family's route count against it, and the NOTIFICATION it causes:
//! Cease / Maximum Number of Prefixes Reached with the RFC 4486 §4 data
//!
//! ```text
//! +-------------------------------+
//! | AFI (2 octets)                |
//! +-------------------------------+
//! | SAFI (1 octet)                |
//! +-------------------------------+
//! | Prefix upper bound (4 octets) |
//! +-------------------------------+
//! ```
//!
//! It does not close sessions or log: the caller acts on the
//! [`MaxPrefixExceeded`] it is handed ([`super::Rib::check_max_prefix`]),
//! once per crossing of the limit.

use std::time::Duration;

use crate::wire::notification::ErrorCode;
use crate::wire::{Family, Notification};

/// Cease subcode 1, Maximum Number of Prefixes Reached (RFC 4486 §4).
pub const CEASE_MAX_PREFIXES: u8 = 1;

/// An upper bound on the routes one peer may send, per address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MaxPrefix {
    /// The most routes (prefixes, with ADD-PATH: paths) a family may hold
    /// in the peer's Adj-RIB-In; one more exceeds the limit.
    pub limit: u32,
    /// Only report the crossing; keep the session and the routes.
    pub warn_only: bool,
    /// After closing the session, start it again after this long (an
    /// IdleHold); `None`: stay down until the peer is configured again.
    pub restart_after: Option<Duration>,
}

impl MaxPrefix {
    /// A limit that closes the session and does not restart it.
    pub const fn new(limit: u32) -> Self {
        Self {
            limit,
            warn_only: false,
            restart_after: None,
        }
    }

    /// Whether `count` routes exceed the limit.
    pub fn exceeded_by(&self, count: usize) -> bool {
        u64::try_from(count).unwrap_or(u64::MAX) > u64::from(self.limit)
    }
}

/// What the caller must do about a limit that was just exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaxPrefixAction {
    /// Report it; the session stays up.
    Warn,
    /// Close the session with [`MaxPrefixExceeded::notification`], and
    /// restart it after the delay, if any.
    Cease {
        /// The IdleHold before the session starts again.
        restart_after: Option<Duration>,
    },
}

/// One family of one peer went over its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MaxPrefixExceeded {
    /// The family counted.
    pub family: Family,
    /// Routes of that family in the peer's Adj-RIB-In.
    pub count: usize,
    /// The configured upper bound.
    pub limit: u32,
    /// What to do.
    pub action: MaxPrefixAction,
}

impl MaxPrefixExceeded {
    /// Checks `count` routes of `family` against `cfg`.
    pub fn check(cfg: &MaxPrefix, family: Family, count: usize) -> Option<Self> {
        cfg.exceeded_by(count).then_some(Self {
            family,
            count,
            limit: cfg.limit,
            action: if cfg.warn_only {
                MaxPrefixAction::Warn
            } else {
                MaxPrefixAction::Cease {
                    restart_after: cfg.restart_after,
                }
            },
        })
    }

    /// The NOTIFICATION that closes the session: Cease 6/1 with AFI, SAFI
    /// and the upper bound (RFC 4486 §4).
    pub fn notification(&self) -> Notification {
        let mut data = Vec::with_capacity(7);
        data.extend_from_slice(&self.family.afi().0.to_be_bytes());
        data.push(self.family.safi().0);
        data.extend_from_slice(&self.limit.to_be_bytes());
        Notification::new(ErrorCode::Cease, CEASE_MAX_PREFIXES, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_itself_is_allowed_one_more_is_not() {
        let cfg = MaxPrefix::new(3);
        assert_eq!(MaxPrefixExceeded::check(&cfg, Family::Ipv4Unicast, 3), None);
        let over = MaxPrefixExceeded::check(&cfg, Family::Ipv4Unicast, 4).unwrap();
        assert_eq!(over.count, 4);
        assert_eq!(
            over.action,
            MaxPrefixAction::Cease {
                restart_after: None
            }
        );
    }

    #[test]
    fn warn_only_asks_for_a_warning() {
        let cfg = MaxPrefix {
            warn_only: true,
            ..MaxPrefix::new(0)
        };
        let over = MaxPrefixExceeded::check(&cfg, Family::Ipv6Unicast, 1).unwrap();
        assert_eq!(over.action, MaxPrefixAction::Warn);
    }

    #[test]
    fn notification_is_cease_1_with_afi_safi_and_bound() {
        let cfg = MaxPrefix::new(0x0102_0304);
        let over = MaxPrefixExceeded::check(&cfg, Family::Ipv6Unicast, usize::MAX).unwrap();
        let n = over.notification();
        assert_eq!((n.code, n.subcode), (6, 1));
        assert_eq!(n.data, [0, 2, 1, 1, 2, 3, 4]);
    }
}
