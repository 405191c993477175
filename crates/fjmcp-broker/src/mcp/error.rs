//! Everything that can go wrong on `/mcp`, and the one mapping from it to what
//! the client gets.
//!
//! Failures fall in two groups, and the group decides the shape of the answer:
//!
//! - **Before a response has started** (protocol refusals, an unknown session,
//!   admission to the user's child): an HTTP status the client's transport acts
//!   on — 400/404 with a JSON-RPC error body, 401 with the bearer challenge (the
//!   client signs in again), 503 with `Retry-After`. Admission happens before
//!   the broker chooses between JSON and a stream, so these are the same
//!   whatever the client accepts.
//! - **Once the request is on its way to the child**: a JSON-RPC error for the
//!   request, inside the 200 response (JSON) or as the last event of the
//!   stream. Only the child's own failures (it exited, it timed out) and a
//!   cancellation land here.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::Value;

use super::wire::{WireError, codes, error_response};
use crate::children::{CallError, PoolError};
use crate::config::PublicUrl;
use crate::credentials::CredentialError;
use crate::oauth::bearer;

/// A failure on `/mcp`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum McpError {
    /// A refusal by the protocol rules of either era: its own status and body.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The user's Forgejo authorization is gone: 401, so the client signs in again.
    #[error("the user's Forgejo authorization ended")]
    SignInAgain,
    /// Worth retrying later (caps, an unreachable store or Forgejo): 503.
    #[error("temporarily unavailable: {message}")]
    Unavailable {
        /// Client-facing, never internal detail.
        message: String,
        retry_after: Duration,
    },
    /// The user's child cannot be started right now (it keeps failing): a
    /// JSON-RPC -32603 for the request.
    #[error("backend failed to start: {0}")]
    BackendFailedToStart(String),
    /// The request reached the child and got no answer.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The client cancelled the request (`notifications/cancelled`).
    #[error("request cancelled by the client")]
    Cancelled,
}

impl McpError {
    /// The store failed: not the client's fault, worth a retry. The cause goes
    /// to the log only.
    pub(crate) fn store(cause: &dyn std::fmt::Display) -> McpError {
        tracing::error!(error = %cause, "/mcp: store failed");
        McpError::Unavailable {
            message: "the broker's store is unavailable".into(),
            retry_after: STORE_RETRY_AFTER,
        }
    }

    /// The JSON-RPC error answering request `id` (a stream's last event, or the
    /// body of an HTTP error).
    pub(crate) fn message(&self, id: Option<Value>) -> Value {
        match self {
            McpError::Wire(wire) => wire.clone().with_id(wire.id.clone().or(id)).body(),
            McpError::Call(CallError::Invalid(why)) => error_response(
                id,
                codes::INVALID_REQUEST,
                &format!("Invalid Request: {why}"),
                None,
            ),
            other => error_response(id, codes::INTERNAL_ERROR, &other.to_string(), None),
        }
    }

    /// The whole HTTP answer to request `id`, for failures before a response
    /// has started.
    pub(crate) fn into_response(self, id: Option<Value>, public_url: &PublicUrl) -> Response {
        let status = match &self {
            McpError::Wire(wire) => wire.status,
            McpError::SignInAgain => {
                return bearer::invalid_token(
                    public_url,
                    "the Forgejo authorization ended; sign in again",
                );
            }
            McpError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            McpError::Call(CallError::Invalid(_)) => StatusCode::BAD_REQUEST,
            McpError::BackendFailedToStart(_) | McpError::Call(_) | McpError::Cancelled => {
                StatusCode::OK
            }
        };
        let mut response = json_response(status, &self.message(id));
        if let McpError::Unavailable { retry_after, .. } = self {
            let seconds = retry_after.as_secs().max(1);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// How long a client should wait after the store failed.
const STORE_RETRY_AFTER: Duration = Duration::from_secs(5);

impl From<PoolError> for McpError {
    fn from(error: PoolError) -> McpError {
        match error {
            PoolError::CredentialDead => McpError::SignInAgain,
            PoolError::BackendFailedToStart(why) => McpError::BackendFailedToStart(why),
            PoolError::AtCapacity { retry_after } | PoolError::Busy { retry_after } => {
                McpError::Unavailable {
                    message: error.to_string(),
                    retry_after,
                }
            }
            PoolError::Unavailable {
                reason,
                retry_after,
            } => McpError::Unavailable {
                message: reason,
                retry_after,
            },
        }
    }
}

impl From<CredentialError> for McpError {
    fn from(error: CredentialError) -> McpError {
        McpError::from(PoolError::from(error))
    }
}

/// A JSON body with `Cache-Control: no-store` (every `/mcp` answer is per user).
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn public() -> PublicUrl {
        PublicUrl::parse("https://mcp.example.com").unwrap()
    }

    #[test]
    fn admission_failures_are_http_statuses() {
        let dead =
            McpError::from(PoolError::CredentialDead).into_response(Some(json!(1)), &public());
        assert_eq!(dead.status(), StatusCode::UNAUTHORIZED);
        let challenge = dead.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(
            challenge.contains(
                "resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
            ),
            "{challenge}"
        );
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

        let full = McpError::from(PoolError::AtCapacity {
            retry_after: Duration::from_secs(30),
        })
        .into_response(Some(json!(1)), &public());
        assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(full.headers()[header::RETRY_AFTER], "30");

        let store = McpError::store(&"disk full").into_response(None, &public());
        assert_eq!(store.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(store.headers()[header::RETRY_AFTER], "5");
    }

    #[test]
    fn failures_after_admission_are_json_rpc_errors_for_the_request() {
        let exited = McpError::from(CallError::Exited);
        assert_eq!(
            exited.message(Some(json!("a"))),
            json!({"jsonrpc": "2.0", "id": "a", "error": {"code": -32603, "message": "backend exited"}})
        );
        assert_eq!(
            McpError::from(CallError::Timeout)
                .into_response(Some(json!(2)), &public())
                .status(),
            StatusCode::OK
        );
        let invalid = McpError::from(CallError::Invalid("x")).message(Some(json!(3)));
        assert_eq!(invalid["error"]["code"], json!(codes::INVALID_REQUEST));
    }
}
