//! 2025-era sessions as the hot path sees them: the binding of a session to
//! its grant, kept in memory, and its last use written behind.
//!
//! Sessions are rows in the store (they survive restarts and serve every
//! instance); a request only needs to know that its session is live and whose
//! it is. So each instance keeps the bindings it has seen, trusted while the
//! store's revocation epoch has not moved (a `DELETE` or a revoked grant on any
//! instance moves it: see `store/epoch.rs`), and records each use in memory;
//! the uses are written in batches ([`Sessions::flush`], every half minute and
//! at shutdown). A broker killed outright loses the unwritten last-use times,
//! nothing else.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, seconds};
use crate::crypto::SecretHash;
use crate::store::{Store, StoreError};

/// The most sessions kept in memory; the store holds them all anyway.
const CAPACITY: usize = 50_000;

/// How often last uses are written (at most; shorter for short idle timeouts).
const FLUSH_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct Cached {
    grant_id: Arc<str>,
    /// The revocation epoch read before the store vouched for the session.
    epoch: u64,
    /// The last use this instance saw (Unix seconds).
    last_used: i64,
    /// The last use written to the store.
    written: i64,
}

/// This instance's view of the 2025-era sessions. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Sessions {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    clock: Arc<dyn Clock>,
    /// A session unused this long has ended.
    idle: Duration,
    entries: Mutex<HashMap<String, Cached>>,
}

impl Sessions {
    pub(crate) fn new(store: Store, clock: Arc<dyn Clock>, idle: Duration) -> Self {
        Sessions {
            inner: Arc::new(Inner {
                store,
                clock,
                idle,
                entries: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The grant of the live session `hash`, recording this use; `None` when
    /// it is unknown, ended, idle too long, or its grant was revoked.
    pub(crate) async fn touch(&self, hash: &SecretHash) -> Result<Option<Arc<str>>, StoreError> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let idle = seconds(inner.idle);
        let epoch = inner.store.epoch();
        {
            let mut entries = inner.entries.lock();
            if let Some(entry) = entries.get_mut(hash.as_str())
                && entry.epoch == epoch
                && entry.last_used + idle > now
            {
                entry.last_used = now;
                return Ok(Some(entry.grant_id.clone()));
            }
        }
        let Some(record) = inner.store.touch_session(hash, idle).await? else {
            inner.entries.lock().remove(hash.as_str());
            return Ok(None);
        };
        let grant_id: Arc<str> = record.grant_id.into();
        self.remember(hash, grant_id.clone(), epoch, now);
        Ok(Some(grant_id))
    }

    /// Remembers a session this instance just created (its row is written).
    pub(crate) fn created(&self, hash: &SecretHash, grant_id: Arc<str>, epoch: u64) {
        let now = self.inner.clock.now();
        self.remember(hash, grant_id, epoch, now);
    }

    /// Forgets a session this instance just deleted.
    pub(crate) fn forget(&self, hash: &SecretHash) {
        self.inner.entries.lock().remove(hash.as_str());
    }

    /// The epoch to stamp on an entry about to be made (read it before the
    /// store is asked).
    pub(crate) fn epoch(&self) -> u64 {
        self.inner.store.epoch()
    }

    fn remember(&self, hash: &SecretHash, grant_id: Arc<str>, epoch: u64, now: i64) {
        let idle = seconds(self.inner.idle);
        let mut entries = self.inner.entries.lock();
        if entries.len() >= CAPACITY {
            // Unwritten uses of the dropped entries are lost: the store keeps
            // an earlier last use, which only ends a busy session sooner.
            entries.retain(|_, e| e.epoch == epoch && e.last_used + idle > now);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(
            hash.as_str().to_string(),
            Cached {
                grant_id,
                epoch,
                last_used: now,
                written: now,
            },
        );
    }

    /// Writes the last uses not yet written, in one batch.
    pub(crate) async fn flush(&self) -> Result<(), StoreError> {
        let uses: Vec<(String, i64)> = self
            .inner
            .entries
            .lock()
            .iter()
            .filter(|(_, e)| e.last_used > e.written)
            .map(|(hash, e)| (hash.clone(), e.last_used))
            .collect();
        if uses.is_empty() {
            return Ok(());
        }
        let batch: Vec<(SecretHash, i64)> = uses
            .iter()
            .map(|(hash, at)| (SecretHash::from_stored(hash.clone()), *at))
            .collect();
        self.inner
            .store
            .record_session_use(&batch, seconds(self.inner.idle))
            .await?;
        let mut entries = self.inner.entries.lock();
        for (hash, at) in uses {
            if let Some(entry) = entries.get_mut(&hash) {
                entry.written = entry.written.max(at);
            }
        }
        Ok(())
    }

    /// Writes last uses every half minute (sooner for short idle timeouts)
    /// until `shutdown`; the server flushes once more after the last request.
    pub(crate) async fn write_behind(self, shutdown: CancellationToken) {
        let every = FLUSH_EVERY
            .min(self.inner.idle / 4)
            .max(Duration::from_secs(1));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.flush().await {
                tracing::warn!(error = %e, "could not write sessions' last use; will retry");
            }
        }
    }
}
