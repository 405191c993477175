//! Removes expired pending authorizations, codes and tokens, sleeping until the
//! next one expires (bounded, so rows added meanwhile are not left for long);
//! and on every round what anonymous callers leave behind past its retention:
//! registered clients that never obtained a grant, and old audit events.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, seconds};
use crate::config::Config;
use crate::store::Store;

/// How long rows nobody needs are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// A client without any grant is deleted this long after it was registered.
    pub unused_client_lifetime: Duration,
    /// Audit events are deleted this long after they happened.
    pub audit_retention: Duration,
}

impl Retention {
    pub(crate) fn from_config(config: &Config) -> Retention {
        Retention {
            unused_client_lifetime: config.oauth.unused_client_lifetime,
            audit_retention: config.oauth.audit_retention,
        }
    }
}

/// Deletes clients that never obtained a grant and audit events, each past
/// its retention. Returns how many of each were deleted.
pub async fn sweep_retention(
    store: &Store,
    clock: &dyn Clock,
    retention: Retention,
) -> Result<(u64, u64), crate::store::StoreError> {
    let now = clock.now();
    let clients = store
        .sweep_unused_clients(now - seconds(retention.unused_client_lifetime))
        .await?;
    let audit = store
        .sweep_audit(now - seconds(retention.audit_retention))
        .await?;
    if clients > 0 || audit > 0 {
        tracing::info!(
            clients,
            audit_events = audit,
            "deleted unused clients and old audit events"
        );
    }
    Ok((clients, audit))
}

/// The longest the sweeper sleeps, even when nothing expires sooner.
const MAX_SLEEP: Duration = Duration::from_secs(300);
/// How long to wait after a failed sweep (the store may be restarting).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);
/// How often the retention sweep runs (its rows are hours or days old; no
/// hurry, and the expiry sweep may wake every second).
const RETENTION_INTERVAL: Duration = Duration::from_secs(300);

/// Runs until `shutdown` is cancelled.
pub(crate) async fn run(
    store: Store,
    clock: std::sync::Arc<dyn Clock>,
    retention: Retention,
    shutdown: CancellationToken,
) {
    let mut retention_due = tokio::time::Instant::now();
    loop {
        if tokio::time::Instant::now() >= retention_due {
            retention_due = tokio::time::Instant::now() + RETENTION_INTERVAL;
            if let Err(e) = sweep_retention(&store, clock.as_ref(), retention).await {
                tracing::warn!(error = %e, "retention sweep failed");
            }
        }
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
