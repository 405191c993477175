//! What the `/mcp` handlers share.

use std::sync::Arc;

use tokio_util::task::TaskTracker;

use super::cancellations::Cancellations;
use super::sessions::Sessions;
use crate::children::Pool;
use crate::clock::Clock;
use crate::config::Config;
use crate::credentials::Credentials;
use crate::shared::Shared;
use crate::store::Store;

/// What the `/mcp` handlers need.
pub(crate) type McpState = Shared<McpShared>;

/// The contents of an [`McpState`].
#[derive(Debug)]
pub(crate) struct McpShared {
    pub(crate) config: Arc<Config>,
    /// 2025-era sessions and, for long-lived streams, their grants.
    pub(crate) store: Store,
    /// One stdio child per Forgejo user.
    pub(crate) pool: Pool,
    /// 2025-era session bindings in memory, last uses written behind.
    pub(crate) sessions: Sessions,
    /// Checks the user's Forgejo token at every session start.
    pub(crate) credentials: Credentials,
    /// In-flight 2025-era requests a client may cancel, and open streams.
    pub(crate) cancellations: Cancellations,
    /// Owns every stream's producer task, so shutdown waits for them.
    pub(crate) tasks: TaskTracker,
}

impl McpShared {
    pub(crate) fn new(
        config: Arc<Config>,
        store: Store,
        clock: Arc<dyn Clock>,
        pool: Pool,
        credentials: Credentials,
        tasks: TaskTracker,
    ) -> Self {
        McpShared {
            sessions: Sessions::new(store.clone(), clock, config.mcp.session_idle_timeout),
            config,
            store,
            pool,
            credentials,
            cancellations: Cancellations::default(),
            tasks,
        }
    }

    /// Ends every open stream, so none holds the shutdown drain.
    pub(crate) fn end_streams(&self) {
        self.cancellations.shut_down();
    }
}
