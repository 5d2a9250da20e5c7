//! How long a peer's stale routes are kept, per family: through its
//! graceful restart (RFC 4724 §4.2), then, if it asked for it, as
//! long-lived stale routes (RFC 9494 §4.2), or until the End of Route
//! Refresh its BoRR promised (RFC 7313 §4).
//!
//! Owns [`Retention`] (what a helper keeps when a session ends, computed
//! by [`crate::session::graceful::helper_keeps`]) and the per-family
//! clock an [`AdjRibIn`](super::AdjRibIn) keeps of it. No clock is read
//! here: every instant is an argument.

use std::time::{Duration, Instant};

use crate::wire::{Families, Family};

/// What a graceful-restart helper keeps of a peer whose session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// When the session ended: the periods below count from here.
    pub at: Instant,
    /// The families kept; the peer's other routes go.
    pub families: Vec<Kept>,
}

/// One family a helper keeps, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kept {
    /// The family.
    pub family: Family,
    /// The graceful-restart period (the peer's Restart Time, RFC 4724
    /// §4.2): stale routes still compete as usual. Zero when the family
    /// is kept only long-lived.
    pub graceful: Duration,
    /// The long-lived period that follows it (RFC 9494 §4.2: the peer's
    /// Long-lived Stale Time, at most what the helper allows): the routes
    /// carry LLGR_STALE, lose to any other path, and reach only peers
    /// that announced LLGR. Zero: none, the routes go when the
    /// graceful-restart period ends.
    pub long_lived: Duration,
}

impl Retention {
    /// Plain graceful restart: `families` kept for `restart` from `at`,
    /// nothing long-lived.
    pub fn graceful(families: Families, at: Instant, restart: Duration) -> Self {
        let families = Family::ALL
            .into_iter()
            .filter(|f| families.contains(*f))
            .map(|family| Kept {
                family,
                graceful: restart,
                long_lived: Duration::ZERO,
            })
            .collect();
        Self { at, families }
    }

    /// Every family kept, for either period.
    pub fn kept(&self) -> Families {
        let mut set = Families::NONE;
        for k in &self.families {
            set.insert(k.family);
        }
        set
    }
}

/// The index of a family in per-family arrays.
pub(super) const fn slot(family: Family) -> usize {
    match family {
        Family::Ipv4Unicast => 0,
        Family::Ipv6Unicast => 1,
    }
}

/// Per family, when the stale routes go and what follows: the state an
/// Adj-RIB-In keeps of a [`Retention`] or a BoRR.
#[derive(Debug, Clone, Default)]
pub(super) struct StaleClock {
    /// When the family's stale routes go (or turn long-lived).
    deadline: [Option<Instant>; 2],
    /// The long-lived period to enter at the deadline instead of going.
    then: [Duration; 2],
    /// Families whose stale routes are long-lived stale now.
    long_lived: Families,
}

impl StaleClock {
    /// Nothing kept.
    pub(super) fn clear(&mut self) {
        *self = Self::default();
    }

    /// The session ended: the families of `r` keep their stale routes;
    /// any other family's clock stops. A family whose routes were still
    /// long-lived stale from an earlier restart (the peer came back and
    /// went down again before its End-of-RIB) gets no new periods: it
    /// turns long-lived again at once, for what was left of its time at
    /// most, so a peer that flaps cannot keep its stale routes for ever.
    pub(super) fn retain(&mut self, r: &Retention) {
        let before = std::mem::take(self);
        for k in &r.families {
            let i = slot(k.family);
            match before.deadline[i] {
                Some(left) if before.long_lived.contains(k.family) => {
                    self.deadline[i] = Some(r.at);
                    self.then[i] = left.saturating_duration_since(r.at).min(k.long_lived);
                }
                _ => {
                    self.deadline[i] = Some(r.at + k.graceful);
                    self.then[i] = k.long_lived;
                }
            }
        }
    }

    /// The peer's session is up again: nothing turns long-lived while it
    /// is Established (a BoRR's stale routes only wait for the EoRR).
    pub(super) fn session_up(&mut self) {
        self.then = [Duration::ZERO; 2];
    }

    /// A BoRR for `family` (RFC 7313 §4): its stale routes go at
    /// `deadline` at the latest.
    pub(super) fn refresh(&mut self, family: Family, deadline: Instant) {
        let d = &mut self.deadline[slot(family)];
        *d = Some(d.map_or(deadline, |d| d.min(deadline)));
    }

    /// The peer is back (RFC 4724 §4.2): every family still waiting now
    /// waits for its End-of-RIB until `deadline` (the stale-path timer),
    /// a long-lived one no longer than its long-lived stale time either
    /// (RFC 9494 §4.2: that timer keeps running); none turns long-lived
    /// any more (routes already long-lived stay marked until announced
    /// again).
    pub(super) fn restarted(&mut self, deadline: Instant) {
        for family in Family::ALL {
            let i = slot(family);
            if let Some(d) = self.deadline[i] {
                self.deadline[i] = Some(if self.long_lived.contains(family) {
                    d.min(deadline)
                } else {
                    deadline
                });
            }
        }
        self.session_up();
    }

    /// The family has nothing stale left.
    pub(super) fn done(&mut self, family: Family) {
        let i = slot(family);
        self.deadline[i] = None;
        self.then[i] = Duration::ZERO;
        self.long_lived.remove(family);
    }

    /// The earliest deadline of any family.
    pub(super) fn earliest(&self) -> Option<Instant> {
        self.deadline.iter().flatten().min().copied()
    }

    /// The families whose graceful-restart period is over at `now` and
    /// that turn long-lived: their clock moves to the end of that period.
    pub(super) fn turn_long_lived(&mut self, now: Instant) -> Families {
        let mut turned = Families::NONE;
        for family in Family::ALL {
            let i = slot(family);
            if self.deadline[i].is_some_and(|d| d <= now) && !self.then[i].is_zero() {
                self.deadline[i] = Some(now + self.then[i]);
                self.then[i] = Duration::ZERO;
                self.long_lived.insert(family);
                turned.insert(family);
            }
        }
        turned
    }

    /// The families whose stale routes go at `now`; their clocks stop.
    pub(super) fn expired(&mut self, now: Instant) -> Families {
        let mut gone = Families::NONE;
        for family in Family::ALL {
            if self.deadline[slot(family)].is_some_and(|d| d <= now) {
                self.done(family);
                gone.insert(family);
            }
        }
        gone
    }

    /// Families whose stale routes are long-lived stale now.
    pub(super) fn long_lived(&self) -> Families {
        self.long_lived
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(3600);

    fn retention(at: Instant) -> Retention {
        Retention {
            at,
            families: vec![
                Kept {
                    family: Family::Ipv4Unicast,
                    graceful: Duration::from_secs(120),
                    long_lived: Duration::from_secs(3600),
                },
                Kept {
                    family: Family::Ipv6Unicast,
                    graceful: Duration::ZERO,
                    long_lived: Duration::ZERO,
                },
            ],
        }
    }

    #[test]
    fn the_graceful_period_turns_long_lived_then_ends() {
        let t0 = Instant::now();
        let mut c = StaleClock::default();
        c.retain(&retention(t0));
        assert_eq!(c.earliest(), Some(t0));
        // IPv6 had no period at all: it goes at once, IPv4 waits.
        assert_eq!(c.turn_long_lived(t0), Families::NONE);
        assert_eq!(c.expired(t0), Families::of(&[Family::Ipv6Unicast]));
        assert_eq!(c.earliest(), Some(t0 + Duration::from_secs(120)));
        let t1 = t0 + Duration::from_secs(120);
        assert_eq!(c.turn_long_lived(t1), Families::of(&[Family::Ipv4Unicast]));
        assert_eq!(c.long_lived(), Families::of(&[Family::Ipv4Unicast]));
        assert_eq!(c.expired(t1), Families::NONE);
        let t2 = t1 + Duration::from_secs(3600);
        assert_eq!(c.earliest(), Some(t2));
        assert_eq!(c.turn_long_lived(t2), Families::NONE);
        assert_eq!(c.expired(t2), Families::of(&[Family::Ipv4Unicast]));
        assert_eq!(c.earliest(), None);
        assert_eq!(c.long_lived(), Families::NONE);
    }

    #[test]
    fn a_peer_back_waits_for_its_end_of_rib_and_no_longer_turns_long_lived() {
        let t0 = Instant::now();
        let mut c = StaleClock::default();
        c.retain(&retention(t0));
        let back = t0 + Duration::from_secs(10);
        c.restarted(back + Duration::from_secs(360));
        let late = back + Duration::from_secs(360);
        assert_eq!(c.turn_long_lived(late), Families::NONE);
        assert_eq!(c.expired(late), Families::of(&Family::ALL));
    }

    #[test]
    fn a_long_lived_family_back_keeps_its_stale_time_running() {
        let t0 = Instant::now();
        let mut c = StaleClock::default();
        c.retain(&retention(t0));
        let t1 = t0 + Duration::from_secs(120);
        c.turn_long_lived(t1);
        // Back with 3590 s of long-lived time left: the stale-path timer
        // is shorter and wins; back with 10 s left: those 10 s win.
        let mut early = c.clone();
        early.restarted(t1 + Duration::from_secs(10) + Duration::from_secs(360));
        assert_eq!(early.earliest(), Some(t1 + Duration::from_secs(370)));
        let late = t1 + Duration::from_secs(3590);
        c.restarted(late + Duration::from_secs(360));
        assert_eq!(c.earliest(), Some(t1 + LONG));
    }

    #[test]
    fn a_peer_that_flaps_before_its_end_of_rib_gets_no_new_periods() {
        let t0 = Instant::now();
        let mut c = StaleClock::default();
        c.retain(&retention(t0));
        let t1 = t0 + Duration::from_secs(120);
        c.turn_long_lived(t1);
        let back = t1 + Duration::from_secs(1000);
        c.restarted(back + Duration::from_secs(360));
        // Down again before its End-of-RIB: long-lived again at once, for
        // what was left (the stale-path bound, 360 s), not 120 s + 1 h.
        let down = back + Duration::from_secs(5);
        c.retain(&retention(down));
        assert_eq!(c.earliest(), Some(down));
        assert_eq!(
            c.turn_long_lived(down),
            Families::of(&[Family::Ipv4Unicast])
        );
        assert_eq!(c.expired(down), Families::of(&[Family::Ipv6Unicast]));
        assert_eq!(c.earliest(), Some(back + Duration::from_secs(360)));
    }

    #[test]
    fn nothing_turns_long_lived_once_the_session_is_up() {
        let t0 = Instant::now();
        let mut c = StaleClock::default();
        c.retain(&retention(t0));
        c.session_up();
        c.refresh(Family::Ipv4Unicast, t0 + Duration::from_secs(360));
        let t1 = t0 + Duration::from_secs(120);
        assert_eq!(c.turn_long_lived(t1), Families::NONE);
        assert_eq!(c.expired(t1), Families::of(&Family::ALL));
    }

    #[test]
    fn a_refresh_keeps_the_earlier_deadline() {
        let t0 = Instant::now();
        let mut c = StaleClock::default();
        c.refresh(Family::Ipv4Unicast, t0 + Duration::from_secs(5));
        c.refresh(Family::Ipv4Unicast, t0 + Duration::from_secs(9));
        assert_eq!(c.earliest(), Some(t0 + Duration::from_secs(5)));
    }
}
