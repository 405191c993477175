//! The router's state: one sub-state per group of handlers, so each handler
//! sees only what it needs (axum's `FromRef` hands it out). Built by
//! [`crate::server`]; nothing below `http` names this type.

use std::sync::Arc;

use axum::extract::FromRef;

use super::RateLimits;
use crate::account::AccountState;
use crate::config::Config;
use crate::mcp::McpState;
use crate::oauth::{BearerState, OAuthState};
use crate::shared::Shared;
use crate::store::Store;

/// Everything the routes reach.
pub type AppState = Shared<Routes>;

/// The contents of an [`AppState`], one field per group of handlers.
#[derive(Debug)]
pub struct Routes {
    /// The authorization server's handlers.
    pub(crate) oauth: OAuthState,
    /// The bearer check in front of `/mcp`.
    pub(crate) bearer: BearerState,
    /// The `/mcp` handlers.
    pub(crate) mcp: McpState,
    /// The "Connected apps" page (and the routing of Forgejo's callback).
    pub(crate) account: AccountState,
    /// Readiness asks the store.
    pub(crate) store: Store,
    /// Screening and limits.
    pub(crate) config: Arc<Config>,
    /// Request rates of the anonymous OAuth endpoints.
    pub(crate) limits: RateLimits,
}

/// Hands each handler its part of the state (what `#[derive(FromRef)]` would
/// write for a struct of those fields).
macro_rules! parts {
    ($($field:ident: $part:ty),* $(,)?) => {$(
        impl FromRef<AppState> for $part {
            fn from_ref(state: &AppState) -> $part {
                state.$field.clone()
            }
        }
    )*};
}

parts!(
    oauth: OAuthState,
    bearer: BearerState,
    mcp: McpState,
    account: AccountState,
    store: Store,
    config: Arc<Config>,
    limits: RateLimits,
);
