//! The one retry policy for work that failed and must not be retried in a tight
//! loop: a child that keeps dying right after start, a Forgejo that cannot be
//! reached to check or refresh a token.

use std::time::Duration;

/// Exponential backoff: `forgiven` failures in a row are retried at once, the
/// next waits `first`, each further one twice as long, never more than `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BackoffPolicy {
    /// Failures in a row that are retried without waiting.
    pub(crate) forgiven: u32,
    /// The wait after the first failure that is not forgiven.
    pub(crate) first: Duration,
    /// The longest wait.
    pub(crate) max: Duration,
}

impl BackoffPolicy {
    /// How long to wait after `failures` failures in a row.
    pub(crate) fn delay(&self, failures: u32) -> Duration {
        let Some(beyond) = failures.checked_sub(self.forgiven + 1) else {
            return Duration::ZERO;
        };
        // 2^16 × any sane `first` is far past any sane `max`.
        let factor = 1u32 << beyond.min(16);
        self.first.saturating_mul(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgiven_failures_wait_nothing_then_the_wait_doubles_up_to_the_cap() {
        let policy = BackoffPolicy {
            forgiven: 1,
            first: Duration::from_secs(2),
            max: Duration::from_secs(60),
        };
        let waits: Vec<u64> = (0..9).map(|n| policy.delay(n).as_secs()).collect();
        assert_eq!(waits, [0, 0, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(policy.delay(u32::MAX), Duration::from_secs(60));
    }
}
