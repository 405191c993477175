//! The bearer check in front of `/mcp`: who is calling, for which grant.
//!
//! Runs before any protocol logic, so a client without a valid token always
//! gets 401 with the resource-metadata pointer and starts OAuth, instead of a
//! protocol error it might mistake for an era mismatch. The challenge is built
//! here only: `/mcp` uses [`invalid_token`] when a user's Forgejo authorization
//! ends.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};

use super::errors::OAuthError;
use super::metadata::MCP_SCOPE;
use super::principal::Principal;
use super::resource::is_this_mcp;
use super::verified::VerifiedTokens;
use crate::clock::Clock;
use crate::config::{Config, PublicUrl};
use crate::crypto::hash_secret;
use crate::shared::Shared;
use crate::store::Store;

/// What the bearer check needs.
pub(crate) type BearerState = Shared<BearerShared>;

/// The contents of a [`BearerState`].
#[derive(Debug)]
pub(crate) struct BearerShared {
    pub(crate) config: Arc<Config>,
    pub(crate) store: Store,
    pub(crate) clock: Arc<dyn Clock>,
    /// Tokens verified recently, trusted until the revocation epoch moves.
    pub(crate) verified: Arc<VerifiedTokens>,
}

/// Why a request was refused, as the `WWW-Authenticate` challenge says.
enum Refusal {
    /// No `Authorization: Bearer` header: no `error` attribute (RFC 6750 §3.1).
    NoToken,
    /// A token was sent but is unknown, expired, revoked or for another resource.
    InvalidToken(&'static str),
    /// The store could not be asked: not the client's fault, so not a 401.
    StoreUnavailable,
}

/// Axum middleware: authenticates the bearer token or answers 401.
pub(crate) async fn require_bearer(
    State(state): State<BearerState>,
    request: Request,
    next: Next,
) -> Response {
    let authorization = request.headers().get(header::AUTHORIZATION).cloned();
    match authenticate(&state, authorization.as_ref()).await {
        Ok(principal) => {
            let mut request = request;
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(refusal) => {
            // Read the body before answering so the client's keep-alive connection
            // stays usable (an unread body would force the server to close it).
            let limit = state.config.http.max_body_bytes;
            let _ = axum::body::to_bytes(request.into_body(), limit).await;
            refuse(&state.config.public_url, refusal)
        }
    }
}

async fn authenticate(
    state: &BearerState,
    authorization: Option<&HeaderValue>,
) -> Result<Principal, Refusal> {
    let Some(value) = authorization else {
        return Err(Refusal::NoToken);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(Refusal::InvalidToken(
            "expected Authorization: Bearer <token>",
        ));
    };
    let hash = hash_secret(token);
    let now = state.clock.now();
    // Read before the store is asked, so a revocation committed meanwhile
    // leaves no trusted entry behind.
    let epoch = state.store.epoch();
    if let Some(principal) = state.verified.get(&hash, now, epoch) {
        return Ok(principal);
    }
    let found = state
        .store
        .authenticate_access_token(&hash)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "bearer check: store failed");
            Refusal::StoreUnavailable
        })?;
    let Some(grant) = found else {
        return Err(Refusal::InvalidToken(
            "the access token is unknown, expired or revoked",
        ));
    };
    if !is_this_mcp(&state.config.public_url, &grant.resource) {
        return Err(Refusal::InvalidToken(
            "the access token was issued for another resource",
        ));
    }
    let principal = Principal {
        grant_id: grant.grant_id.into(),
        client_id: grant.client_id.into(),
        user_id: grant.user_id.into(),
    };
    state
        .verified
        .insert(&hash, principal.clone(), grant.expires_at, epoch, now);
    Ok(principal)
}

fn refuse(public_url: &PublicUrl, refusal: Refusal) -> Response {
    match refusal {
        Refusal::StoreUnavailable => {
            OAuthError::temporarily_unavailable("the broker cannot check tokens right now")
                .into_response()
        }
        Refusal::NoToken => challenge(public_url, None, "authorization required"),
        Refusal::InvalidToken(why) => invalid_token(public_url, why),
    }
}

/// 401 `invalid_token` with the challenge that points the client at the
/// resource metadata, so it runs OAuth again. `why` is client-facing.
pub(crate) fn invalid_token(public_url: &PublicUrl, why: &str) -> Response {
    challenge(public_url, Some(why), why)
}

/// The one builder of the `WWW-Authenticate: Bearer …` challenge (RFC 6750 §3,
/// RFC 9728 §5.1): `error="invalid_token"` only when a token was presented.
fn challenge(public_url: &PublicUrl, invalid: Option<&str>, description: &str) -> Response {
    let metadata = public_url.join("/.well-known/oauth-protected-resource/mcp");
    let mut value = format!("Bearer resource_metadata=\"{metadata}\", scope=\"{MCP_SCOPE}\"");
    if let Some(why) = invalid {
        // Descriptions are fixed texts of this broker: no quotes to escape.
        value.push_str(&format!(
            ", error=\"invalid_token\", error_description=\"{why}\""
        ));
    }
    let mut response = OAuthError::invalid_token(description).into_response();
    if let Ok(value) = HeaderValue::from_str(&value) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}
