//! Removes expired pending authorizations, codes and tokens, sleeping until the
//! next one expires (bounded, so rows added meanwhile are not left for long).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::store::Store;

/// The longest the sweeper sleeps, even when nothing expires sooner.
const MAX_SLEEP: Duration = Duration::from_secs(300);
/// How long to wait after a failed sweep (the store may be restarting).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// Runs until `shutdown` is cancelled.
pub(crate) async fn run(
    store: Store,
    clock: std::sync::Arc<dyn Clock>,
    shutdown: CancellationToken,
) {
    loop {
        let pause = match sweep_once(&store, clock.as_ref()).await {
            Ok(pause) => pause,
            Err(e) => {
                tracing::warn!(error = %e, "expiry sweep failed");
                RETRY_AFTER_FAILURE
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// One sweep; returns how long to sleep before the next.
pub async fn sweep_once(
    store: &Store,
    clock: &dyn Clock,
) -> Result<Duration, crate::store::StoreError> {
    let swept = store.sweep_expired().await?;
    tracing::debug!(?swept, "swept expired authorization state");
    let pause = match store.next_expiry().await? {
        Some(at) => {
            // One second past the deadline, so the row is really expired then.
            let wait = (at - clock.now() + 1).max(1);
            Duration::from_secs(u64::try_from(wait).unwrap_or(1)).min(MAX_SLEEP)
        }
        None => MAX_SLEEP,
    };
    Ok(pause)
}
