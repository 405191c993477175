//! What can end work on `/mcp` from outside the request itself: a client's
//! `notifications/cancelled` (a separate POST) for an in-flight 2025-era
//! request, a `DELETE` for the session's open streams, and broker shutdown for
//! every stream (long-lived streams would otherwise hold shutdown for its whole
//! grace period). It also counts the open long-lived streams per grant and per
//! user, so neither can open streams without bound: each stream holds an
//! [`OpenStream`] whose drop (the stream ended, for whatever reason) gives its
//! slot back and forgets its cancellation token.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::crypto::SecretHash;

/// The registry; cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cancellations {
    /// In-flight requests by (session hash, request id).
    requests: Arc<Mutex<HashMap<(String, String), CancellationToken>>>,
    /// Open standalone streams by session hash, each with its id.
    streams: Arc<Mutex<HashMap<String, Vec<StreamToken>>>>,
    /// How many long-lived streams each grant and each user has open.
    open: Arc<Mutex<OpenCounts>>,
    /// Ids of streams, so one can be forgotten without touching the others.
    next_stream: Arc<AtomicU64>,
    /// Cancelled when the broker shuts down; every stream's token is its child.
    shutdown: CancellationToken,
}

/// An open stream's id and the token that ends it.
type StreamToken = (u64, CancellationToken);

#[derive(Debug, Default)]
struct OpenCounts {
    grants: HashMap<String, usize>,
    users: HashMap<String, usize>,
}

/// The caps [`Cancellations::open_stream`] enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamCaps {
    pub per_grant: usize,
    pub per_user: usize,
}

/// Which cap a new stream would exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TooManyStreams {
    Grant,
    User,
}

/// A long-lived stream's place: its cancellation token, and its slot under the
/// caps, given back (and the token forgotten) when this is dropped.
#[derive(Debug)]
pub(crate) struct OpenStream {
    /// Cancelled at shutdown, and for a session's stream at its DELETE.
    pub(crate) stop: CancellationToken,
    registry: Cancellations,
    id: u64,
    grant_id: String,
    user_id: String,
    session: Option<String>,
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        {
            let mut open = self.registry.open.lock();
            let OpenCounts { grants, users } = &mut *open;
            for (map, key) in [(grants, &self.grant_id), (users, &self.user_id)] {
                if let Some(count) = map.get_mut(key) {
                    *count -= 1;
                    if *count == 0 {
                        map.remove(key);
                    }
                }
            }
        }
        if let Some(session) = &self.session {
            let mut streams = self.registry.streams.lock();
            if let Some(list) = streams.get_mut(session) {
                list.retain(|(id, _)| *id != self.id);
                if list.is_empty() {
                    streams.remove(session);
                }
            }
        }
    }
}

impl Cancellations {
    /// Ends every open stream (broker shutdown).
    pub(crate) fn shut_down(&self) {
        self.shutdown.cancel();
    }

    /// Takes a slot for a long-lived stream of `grant_id` and `user_id` under
    /// `caps`, with a token that ends it at shutdown (and, for a session's
    /// stream, at DELETE). Checking and counting are one step.
    pub(crate) fn open_stream(
        &self,
        grant_id: &str,
        user_id: &str,
        session: Option<&SecretHash>,
        caps: StreamCaps,
    ) -> Result<OpenStream, TooManyStreams> {
        {
            let mut open = self.open.lock();
            if open.grants.get(grant_id).copied().unwrap_or(0) >= caps.per_grant {
                return Err(TooManyStreams::Grant);
            }
            if open.users.get(user_id).copied().unwrap_or(0) >= caps.per_user {
                return Err(TooManyStreams::User);
            }
            *open.grants.entry(grant_id.to_string()).or_default() += 1;
            *open.users.entry(user_id.to_string()).or_default() += 1;
        }
        let stop = self.shutdown.child_token();
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let session = session.map(|s| s.as_str().to_string());
        if let Some(session) = &session {
            self.streams
                .lock()
                .entry(session.clone())
                .or_default()
                .push((id, stop.clone()));
        }
        Ok(OpenStream {
            stop,
            registry: self.clone(),
            id,
            grant_id: grant_id.to_string(),
            user_id: user_id.to_string(),
            session,
        })
    }

    /// Ends the open streams of a session (it was deleted).
    pub(crate) fn end_streams(&self, session: &SecretHash) {
        if let Some(tokens) = self.streams.lock().remove(session.as_str()) {
            tokens.iter().for_each(|(_, token)| token.cancel());
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

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: StreamCaps = StreamCaps {
        per_grant: 2,
        per_user: 3,
    };

    #[test]
    fn streams_are_capped_per_grant_and_per_user_and_ended_ones_free_their_slot() {
        let registry = Cancellations::default();
        let session = crate::crypto::hash_secret("session");
        let a = registry
            .open_stream("g1", "u1", Some(&session), CAPS)
            .unwrap();
        let b = registry.open_stream("g1", "u1", None, CAPS).unwrap();
        assert_eq!(
            registry.open_stream("g1", "u1", None, CAPS).unwrap_err(),
            TooManyStreams::Grant
        );
        let c = registry.open_stream("g2", "u1", None, CAPS).unwrap();
        assert_eq!(
            registry.open_stream("g3", "u1", None, CAPS).unwrap_err(),
            TooManyStreams::User
        );
        // Another user is not affected.
        let other = registry.open_stream("g9", "u2", None, CAPS).unwrap();
        drop(b);
        let b = registry.open_stream("g1", "u1", None, CAPS).unwrap();

        // DELETE of the session ends its stream.
        registry.end_streams(&session);
        assert!(a.stop.is_cancelled());
        assert!(!b.stop.is_cancelled());
        drop((a, b, c, other));
        // Nothing is held for streams that ended: no counts, no tokens.
        assert!(registry.open.lock().grants.is_empty());
        assert!(registry.open.lock().users.is_empty());
        assert!(registry.streams.lock().is_empty());
    }

    #[test]
    fn an_ended_stream_forgets_its_token_without_a_delete() {
        let registry = Cancellations::default();
        let session = crate::crypto::hash_secret("session");
        let first = registry
            .open_stream("g", "u", Some(&session), CAPS)
            .unwrap();
        let second = registry
            .open_stream("g", "u", Some(&session), CAPS)
            .unwrap();
        drop(first);
        assert_eq!(registry.streams.lock()[session.as_str()].len(), 1);
        drop(second);
        assert!(registry.streams.lock().is_empty());
    }
}
