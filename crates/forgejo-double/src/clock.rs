//! The double's own notion of "now": system time plus an offset that tests can advance, so
//! token and code expiry can be tested without sleeping.

use std::sync::Mutex;
use std::sync::PoisonError;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in the double's time, as time since the Unix epoch. Plain `Duration` arithmetic with
/// saturation keeps expiry maths panic-free whatever lifetime or offset a test picks.
pub(crate) type Instant = Duration;

/// System time shifted by an adjustable offset.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    /// How far the double's time is ahead of the system's.
    offset: Mutex<Duration>,
}

impl Clock {
    /// The double's current time.
    // The double's one reading of the wall clock; everything else goes through it.
    #[allow(clippy::disallowed_methods)]
    pub(crate) fn now(&self) -> Instant {
        let system = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        system.saturating_add(self.offset())
    }

    /// Moves the double's time forward by `by`; returns the new total offset.
    pub(crate) fn advance(&self, by: Duration) -> Duration {
        let mut offset = self.offset.lock().unwrap_or_else(PoisonError::into_inner);
        *offset = offset.saturating_add(by);
        *offset
    }

    /// The total offset added so far.
    pub(crate) fn offset(&self) -> Duration {
        *self.offset.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_now_forward_and_saturates() {
        let clock = Clock::default();
        let before = clock.now();
        clock.advance(Duration::from_secs(3600));
        assert!(clock.now() >= before + Duration::from_secs(3600));
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), Duration::MAX);
    }
}
