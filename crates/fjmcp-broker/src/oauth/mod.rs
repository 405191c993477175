//! The OAuth 2.1 authorization server that MCP clients talk to, with user login
//! delegated to Forgejo.
//!
//! Flow: `/oauth/authorize` verifies the client and stores a pending
//! authorization → Forgejo → `/oauth/callback` exchanges Forgejo's code and
//! stores the user's Forgejo tokens → consent (once per user and client) →
//! the broker's code → `/oauth/token` → access token for `/mcp`, checked by
//! [`bearer::require_bearer`].
//!
//! Invariant: this module decides OAuth rules and error shapes; it reaches the
//! database only through `store` and Forgejo only through `forgejo`.

mod authorize;
pub mod bearer;
mod callback;
pub mod client_metadata;
mod clients;
mod consent;
mod errors;
pub mod metadata;
mod pages;
mod params;
pub mod redirect_uri;
mod register;
pub mod registration;
mod resource;
mod response;
mod revoke;
pub mod sweeper;
mod token;

use axum::Router;
use axum::routing::{get, post};

use crate::http::AppState;

pub use bearer::Principal;

/// The authorization server's routes (not `/mcp`, which the MCP front mounts
/// behind [`bearer::require_bearer`]).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/.well-known/oauth-protected-resource",
            get(metadata::protected_resource_handler),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(metadata::protected_resource_handler),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(metadata::authorization_server_handler),
        )
        .route(
            "/.well-known/oauth-authorization-server/mcp",
            get(metadata::authorization_server_handler),
        )
        .route("/oauth/register", post(register::register))
        .route("/oauth/authorize", get(authorize::authorize))
        .route("/oauth/callback", get(callback::callback))
        .route("/oauth/consent", post(consent::decide))
        .route("/oauth/token", post(token::token))
        .route("/oauth/revoke", post(revoke::revoke))
}
