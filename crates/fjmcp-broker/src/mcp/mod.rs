//! The MCP front: everything the broker knows about the wire formats of both
//! protocol eras on its single `/mcp` endpoint, and the handlers that serve it.
//!
//! Two layers. The wire modules (`wire`, `catalog`, `era`, `headers`,
//! `modern`, `decorate`, `subscriptions`) are pure: no HTTP framework, no I/O,
//! functions from a body and a few header values to a decision, and from a
//! child's JSON to the JSON a client gets. The handlers (`endpoint`, with
//! `error` for the one mapping of failures to answers, `sse`, `streams` and
//! `cancellations`) do the I/O around them:
//!
//! ```text
//! bytes ─ wire::parse_body ─▶ Incoming ─ era::classify ─▶ Route
//!   Route::Legacy(reason)  → 2025-era session path (era::legacy_header_version,
//!                            era::legacy_error, decorate::legacy_initialize_result)
//!   Route::Modern, request → modern::validate_modern ─▶ ModernRequest
//!       Discover → decorate::discover_result
//!       Listen   → subscriptions::ack_subscription, tag_for_subscription
//!       Forward  → modern::strip_modern_meta → child → decorate::decorate_result
//!                  (status from decorate::forwarded_status)
//!   Route::Modern, notification → 202, dropped
//! any Err(WireError) → McpError::Wire → (err.status, err.body())
//! ```
//!
//! Messages stay raw [`serde_json::Value`]s throughout, so fields this broker
//! does not know pass through untouched. Each submodule's documentation lists
//! the decisions it embodies and why.

// A `WireError` carries two raw JSON values (the request id and error data),
// which `preserve_order` makes large. It is only built on the refusal path,
// once per bad request, so returning it by value is simpler than boxing it
// in every rule.
#![allow(clippy::result_large_err)]

mod cancellations;
mod catalog;
mod decorate;
mod endpoint;
mod era;
mod error;
mod headers;
mod modern;
mod sessions;
mod sse;
mod state;
mod streams;
mod subscriptions;
mod wire;

pub(crate) use endpoint::{delete_mcp, get_mcp, post_mcp};
pub(crate) use state::{McpShared, McpState};
pub(crate) use wire::{codes, error_response};
