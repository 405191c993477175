//! Wall-clock time, injected so that expiry, reaping and rotation are testable
//! without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch: the unit every stored time uses.
type UnixSeconds = i64;

/// The longest span [`seconds`] returns: about 35 000 years, so `now + seconds(d)`
/// never overflows whatever duration a setting holds.
const MAX_SECONDS: i64 = 1 << 40;

/// A configured duration as whole seconds, the unit of every stored time and
/// every deadline computed from the clock (sub-second parts are dropped).
pub(crate) fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).map_or(MAX_SECONDS, |s| s.min(MAX_SECONDS))
}

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in whole seconds since the Unix epoch.
    fn now(&self) -> UnixSeconds;
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixSeconds {
        // The one place that reads the system's wall clock.
        #[allow(clippy::disallowed_methods)]
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(seconds)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to, for tests.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock showing `start`.
    pub fn at(start: UnixSeconds) -> Self {
        Self(Arc::new(AtomicI64::new(start)))
    }

    /// Moves the clock forward by `seconds`.
    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixSeconds {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_saturate_instead_of_overflowing() {
        assert_eq!(seconds(Duration::from_millis(1500)), 1);
        assert_eq!(seconds(Duration::MAX), MAX_SECONDS);
        assert!(
            SystemClock
                .now()
                .checked_add(seconds(Duration::MAX))
                .is_some()
        );
    }
}
