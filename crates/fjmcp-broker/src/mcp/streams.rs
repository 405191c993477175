//! Long-lived event streams: a `subscriptions/listen` stream (2026-07-28) and a
//! session's standalone `GET /mcp` stream (2025 era). Both relay the user's
//! list changes, send keep-alives, and end when the client hangs up, the
//! broker shuts down, the session is deleted, or what they are bound to ends.

use std::sync::Arc;

use axum::response::Response;
use serde_json::Value;
use tokio::sync::broadcast;

use super::cancellations::OpenStream;
use super::sse;
use super::state::McpState;
use crate::crypto::SecretHash;

/// A long-lived stream's frame around the relayed changes.
#[derive(Debug)]
pub(crate) struct Stream {
    /// What the stream must stay bound to.
    pub(crate) binding: Binding,
    /// Its slot under the stream caps and the token that ends it from outside
    /// (shutdown, DELETE of its session); released when the stream ends.
    pub(crate) open: OpenStream,
    /// Sent before any change (a listen acknowledgement).
    pub(crate) first: Option<Value>,
    /// Sent when the broker, not the client, ends the stream.
    pub(crate) last: Option<Value>,
}

/// What a long-lived stream must stay bound to: checked at every keep-alive,
/// so a revoked grant or an ended session (on any instance) closes the stream.
#[derive(Debug)]
pub(crate) enum Binding {
    Grant(Arc<str>),
    Session {
        hash: SecretHash,
        grant_id: Arc<str>,
    },
}

impl Binding {
    async fn holds(&self, state: &McpState) -> bool {
        let live = match self {
            Binding::Grant(grant_id) => state
                .store
                .grant(grant_id)
                .await
                .map(|g| g.is_some_and(|g| g.is_live())),
            Binding::Session { hash, grant_id } => {
                state.store.session_is_live(hash, grant_id).await
            }
        };
        // A store that cannot answer does not end the stream: the next tick asks again.
        live.unwrap_or(true)
    }
}

/// An SSE stream of the user's list changes (shaped, or dropped, by `shape`),
/// framed by `stream`, with keep-alive comments, until the client hangs up,
/// `stream.stop` is cancelled, or `stream.binding` no longer holds.
pub(crate) fn relay_changes(
    state: &McpState,
    stream: Stream,
    mut changes: broadcast::Receiver<Value>,
    shape: impl Fn(Value) -> Option<Value> + Send + 'static,
) -> Response {
    let state = state.clone();
    let tasks = state.tasks.clone();
    sse::respond(&tasks, move |out| async move {
        // `open` lives exactly as long as this producer: however the stream
        // ends (even aborted when the client hangs up), its slot is given back.
        let Stream {
            binding,
            open,
            first,
            last,
        } = stream;
        let stop = open.stop.clone();
        if let Some(first) = first
            && out.send(sse::event(&first)).await.is_err()
        {
            return;
        }
        let mut keep_alive = tokio::time::interval(sse::KEEP_ALIVE);
        keep_alive.tick().await;
        loop {
            let message = tokio::select! {
                change = changes.recv() => match change {
                    Ok(notification) => match shape(notification) {
                        Some(message) => sse::event(&message),
                        None => continue,
                    },
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = keep_alive.tick() => {
                    if !binding.holds(&state).await {
                        break;
                    }
                    sse::comment()
                }
                () = stop.cancelled() => break,
            };
            if out.send(message).await.is_err() {
                // The client hung up: nobody to say goodbye to.
                return;
            }
        }
        if let Some(last) = last {
            let _ = out.send(sse::event(&last)).await;
        }
    })
}
