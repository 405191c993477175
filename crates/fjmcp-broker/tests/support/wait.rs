//! Waiting for an event instead of sleeping a fixed time (CONTRIBUTING forbids
//! fixed sleeps for ordering).

use std::time::Duration;

/// How often a condition is asked again.
const POLL: Duration = Duration::from_millis(10);

/// How long the broker's own reactions (a log line, a rotation) may take
/// before a test gives up on them.
pub const REACTION: Duration = Duration::from_secs(10);

/// Asks `probe` until it answers true: how long that took, or `None` once
/// `limit` has passed. It is asked at least once.
pub async fn time_until(limit: Duration, mut probe: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let started = tokio::time::Instant::now();
    loop {
        if probe().await {
            return Some(started.elapsed());
        }
        if started.elapsed() >= limit {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// True once `check` holds, false if it still does not after `limit`. (Not
/// written over [`time_until`]: an async closure around `check` would keep the
/// future from being `Send`, and tests wait inside spawned tasks.)
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let started = tokio::time::Instant::now();
    loop {
        if check() {
            return true;
        }
        if started.elapsed() >= limit {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}
