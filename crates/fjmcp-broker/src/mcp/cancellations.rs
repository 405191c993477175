//! What can end work on `/mcp` from outside the request itself: a client's
//! `notifications/cancelled` (a separate POST) for an in-flight 2025-era
//! request, a `DELETE` for the session's open streams, and broker shutdown for
//! every stream (long-lived streams would otherwise hold shutdown for its whole
//! grace period).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::crypto::SecretHash;

/// The registry; cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cancellations {
    /// In-flight requests by (session hash, request id).
    requests: Arc<Mutex<HashMap<(String, String), CancellationToken>>>,
    /// Open standalone streams by session hash.
    streams: Arc<Mutex<HashMap<String, Vec<CancellationToken>>>>,
    /// Cancelled when the broker shuts down; every stream's token is its child.
    shutdown: CancellationToken,
}

impl Cancellations {
    /// Ends every open stream (broker shutdown).
    pub(crate) fn shut_down(&self) {
        self.shutdown.cancel();
    }

    /// A token that ends a stream at shutdown (and, for a session's stream, at DELETE).
    pub(crate) fn stream_token(&self, session: Option<&SecretHash>) -> CancellationToken {
        let token = self.shutdown.child_token();
        if let Some(session) = session {
            let mut streams = self.streams.lock();
            let list = streams.entry(session.as_str().to_string()).or_default();
            list.retain(|t| !t.is_cancelled());
            list.push(token.clone());
        }
        token
    }

    /// Ends the open streams of a session (it was deleted).
    pub(crate) fn end_streams(&self, session: &SecretHash) {
        if let Some(tokens) = self.streams.lock().remove(session.as_str()) {
            tokens.iter().for_each(CancellationToken::cancel);
        }
    }

    /// Registers an in-flight request of `session`; the guard unregisters it.
    pub(crate) fn register(
        &self,
        session: &SecretHash,
        id: &Value,
    ) -> (CancellationToken, InFlightGuard) {
        let key = (session.as_str().to_string(), id.to_string());
        let token = CancellationToken::new();
        self.requests.lock().insert(key.clone(), token.clone());
        (
            token,
            InFlightGuard {
                map: self.clone(),
                key,
            },
        )
    }

    /// Cancels the in-flight request `id` of `session`, if there is one.
    pub(crate) fn cancel(&self, session: &SecretHash, id: &Value) {
        let key = (session.as_str().to_string(), id.to_string());
        if let Some(token) = self.requests.lock().remove(&key) {
            token.cancel();
        }
    }
}

/// Removes a request from [`Cancellations`] when it finishes.
#[derive(Debug)]
pub(crate) struct InFlightGuard {
    map: Cancellations,
    key: (String, String),
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.map.requests.lock().remove(&self.key);
    }
}
