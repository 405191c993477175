//! The revocation epoch: how an instance learns that something it may hold in
//! memory (a verified access token, a session) was revoked or ended, here or
//! on another instance.
//!
//! Every revocation of a grant (which ends its tokens and sessions) and every
//! session deletion moves the epoch in the database, in the same transaction.
//! The store moves its local epoch right after such a commit (the revoking
//! instance sees it at once) and [`Store::follow_epoch`] polls the database's
//! counter (every other instance sees it within the polling period). Caches
//! stamp each entry with the local epoch read *before* they asked the store,
//! and trust an entry only while the epoch has not moved: a revocation that
//! commits during a cache fill can never leave a stale entry behind.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use sqlx::AnyConnection;
use tokio_util::sync::CancellationToken;

use super::{Store, StoreError, column};

/// How often the database's epoch is read: well inside the promise that a
/// revocation on another instance is seen within a second.
pub(crate) const EPOCH_POLL: Duration = Duration::from_millis(400);

/// This instance's view of the epoch.
#[derive(Debug, Default)]
pub(crate) struct Epoch {
    /// Moves whenever this instance learns of a revocation.
    local: AtomicU64,
    /// The database's counter as last read (`-1` before the first read).
    seen: AtomicI64,
}

impl Epoch {
    pub(crate) fn new() -> Self {
        Epoch {
            local: AtomicU64::new(0),
            seen: AtomicI64::new(-1),
        }
    }

    fn advance(&self) {
        self.local.fetch_add(1, Ordering::AcqRel);
    }
}

/// Moves the database's epoch; call inside the revoking transaction.
pub(super) async fn advance_in(conn: &mut AnyConnection) -> Result<(), StoreError> {
    sqlx::query("UPDATE revocation_epoch SET epoch = epoch + 1 WHERE id = 1")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

impl Store {
    /// The local epoch: an entry cached at an older epoch must be checked again.
    pub(crate) fn epoch(&self) -> u64 {
        self.inner.epoch.local.load(Ordering::Acquire)
    }

    /// After a commit that revoked something: this instance's caches stop
    /// trusting what they hold at once.
    pub(super) fn revoked_here(&self) {
        self.inner.epoch.advance();
    }

    /// Reads the database's epoch once; a change moves the local epoch.
    pub(crate) async fn poll_epoch(&self) -> Result<(), StoreError> {
        let row = sqlx::query("SELECT epoch FROM revocation_epoch WHERE id = 1")
            .fetch_one(&self.inner.pool)
            .await?;
        let current: i64 = column(&row, "epoch")?;
        let previous = self.inner.epoch.seen.swap(current, Ordering::AcqRel);
        if previous != current {
            self.inner.epoch.advance();
        }
        Ok(())
    }

    /// Polls the database's epoch until `shutdown`. While the database cannot
    /// be read, the local epoch keeps moving: caches then ask the store (and
    /// fail with it) rather than trust what might have been revoked.
    pub(crate) async fn follow_epoch(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(EPOCH_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {
                    if let Err(e) = self.poll_epoch().await {
                        tracing::warn!(error = %e, "cannot read the revocation epoch; not trusting caches");
                        self.inner.epoch.advance();
                    }
                }
            }
        }
    }
}
