//! IdleHold back-off (RFC 4271 §8.1.1, DampPeerOscillations).
//!
//! After each error the session waits in Idle for the IdleHoldTime before
//! it starts again; the wait doubles per consecutive error up to a
//! maximum, and resets once a session has stayed Established long enough.

use std::time::Duration;

/// The current IdleHoldTime and how it grows.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    errors: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max,
            errors: 0,
        }
    }

    /// The wait before the next start, counting one more error.
    pub fn next_wait(&mut self) -> Duration {
        let factor = 1u32.checked_shl(self.errors.min(16)).unwrap_or(u32::MAX);
        self.errors = self.errors.saturating_add(1);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Forget past errors (the session was stable).
    pub fn reset(&mut self) {
        self.errors = 0;
    }

    /// Consecutive errors counted so far.
    pub fn errors(&self) -> u32 {
        self.errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_maximum_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        let waits: Vec<u64> = (0..6).map(|_| b.next_wait().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
        b.reset();
        assert_eq!(b.next_wait(), Duration::from_secs(1));
    }
}
