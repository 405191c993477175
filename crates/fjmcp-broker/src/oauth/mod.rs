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
mod metadata;
pub(crate) mod pages;
mod params;
mod principal;
mod redirect_uri;
mod register;
pub mod registration;
mod resource;
mod response;
mod revoke;
pub mod sweeper;
mod token;
mod verified;

use std::sync::Arc;

pub(crate) use authorize::authorize;
pub(crate) use bearer::{BearerShared, BearerState};
pub(crate) use callback::callback;
pub(crate) use consent::decide as consent;
pub(crate) use metadata::{authorization_server_handler, protected_resource_handler};
pub(crate) use principal::Principal;
pub(crate) use redirect_uri::shown_host;
pub(crate) use register::register;
pub(crate) use revoke::revoke;
pub(crate) use token::token;
pub(crate) use verified::VerifiedTokens;

use crate::clock::Clock;
use crate::config::Config;
use crate::credentials::Credentials;
use crate::forgejo::ForgejoClient;
use crate::shared::Shared;
use crate::store::Store;
use client_metadata::MetadataFetcher;

/// What the authorization server's handlers need.
pub(crate) type OAuthState = Shared<OAuthShared>;

/// The contents of an [`OAuthState`].
#[derive(Debug)]
pub(crate) struct OAuthShared {
    pub(crate) config: Arc<Config>,
    pub(crate) store: Store,
    /// "Now" for every expiry the handlers compute.
    pub(crate) clock: Arc<dyn Clock>,
    /// The broker's OAuth client of Forgejo (user sign-in).
    pub(crate) forgejo: ForgejoClient,
    /// Fetches client ID metadata documents with SSRF protection.
    pub(crate) client_metadata: MetadataFetcher,
    /// Where a sign-in's Forgejo credential is saved.
    pub(crate) credentials: Credentials,
    /// The bearer check's cache: a token minted here goes in at once, so a
    /// client's first call after the exchange does not wait on the store.
    pub(crate) verified: Arc<VerifiedTokens>,
}
