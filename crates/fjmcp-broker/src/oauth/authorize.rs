//! `GET /oauth/authorize`: verify the client's request, remember it, and send
//! the browser to Forgejo with the broker's own client id, PKCE and state.

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::StatusCode;

use super::OAuthState;
use super::clients::{self, Lookup};
use super::metadata::MCP_SCOPE;
use super::pages::{error_page, protect};
use super::params::Params;
use super::redirect_uri;
use super::resource::is_mcp_resource;
use super::response::ClientRedirect;
use crate::crypto::{hash_secret, mint_secret, pkce_pair, verifier_is_well_formed};
use crate::store::NewPendingAuthorization;

/// How long a user has to get through Forgejo's login and the consent page.
pub(crate) const PENDING_LIFETIME_SECONDS: i64 = 600;

pub(crate) async fn authorize(
    State(state): State<OAuthState>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = match Params::parse(query.unwrap_or_default().as_bytes()) {
        Ok(params) => params,
        Err(why) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Invalid authorization request",
                &why,
            );
        }
    };
    let Some(client_id) = params.get("client_id") else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Invalid authorization request",
            "client_id is missing.",
        );
    };
    let client = match clients::for_authorization(&state, client_id).await {
        Ok(Lookup::Found(client)) => client,
        Ok(Lookup::Unknown) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Unknown application",
                "This application is not registered with this broker.",
            );
        }
        Ok(Lookup::Unusable(why)) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Application metadata unavailable",
                &format!("The application's metadata document could not be used: {why}"),
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "authorize: store failed");
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "The broker cannot process sign-ins right now.",
            );
        }
    };
    let registered = &client.client.redirect_uris;
    let redirect_uri = match params.get("redirect_uri") {
        Some(presented)
            if registered
                .iter()
                .any(|r| redirect_uri::matches(r, presented)) =>
        {
            presented.to_string()
        }
        Some(_) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Invalid redirect URI",
                "The redirect URI is not registered for this application.",
            );
        }
        None if registered.len() == 1 => registered[0].clone(),
        None => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Invalid authorization request",
                "redirect_uri is required for this application.",
            );
        }
    };
    // From here on the redirect URI is verified: errors go back to the client.
    let reply = ClientRedirect {
        redirect_uri,
        state: params.get("state").map(str::to_string),
        issuer: state.config.public_url.as_str().to_string(),
    };
    match params.get("response_type") {
        Some("code") => {}
        Some(_) => {
            return reply.error(
                "unsupported_response_type",
                "only response_type=code is supported",
            );
        }
        None => return reply.error("invalid_request", "response_type is required"),
    }
    let Some(challenge) = params.get("code_challenge") else {
        return reply.error(
            "invalid_request",
            "PKCE is required: send code_challenge with code_challenge_method=S256",
        );
    };
    if params.get("code_challenge_method") != Some("S256") {
        return reply.error("invalid_request", "code_challenge_method must be S256");
    }
    if !verifier_is_well_formed(challenge) {
        return reply.error("invalid_request", "code_challenge is malformed");
    }
    let resource = state.config.public_url.join("/mcp");
    if let Some(requested) = params.get("resource")
        && !is_mcp_resource(requested, &resource)
    {
        return reply.error(
            "invalid_target",
            "this server only issues tokens for its MCP endpoint",
        );
    }

    let upstream_state = mint_secret("");
    let (upstream_verifier, upstream_challenge) = pkce_pair();
    let callback = state.config.public_url.join("/oauth/callback");
    let forgejo_url = match state
        .forgejo
        .authorize_url(&callback, &upstream_state, &upstream_challenge)
        .await
    {
        Ok(url) => url,
        Err(e) => {
            tracing::error!(error = %e, "authorize: Forgejo's endpoints are unavailable");
            return reply.error(
                "temporarily_unavailable",
                "Forgejo cannot be reached right now",
            );
        }
    };
    let pending = NewPendingAuthorization {
        state_hash: hash_secret(&upstream_state),
        client_id: client.client.client_id.clone(),
        redirect_uri: reply.redirect_uri.clone(),
        client_state: reply.state.clone(),
        code_challenge: challenge.to_string(),
        // One scope exists; unknown requested scopes are ignored (RFC 6749 §3.3).
        scopes: MCP_SCOPE.to_string(),
        resource,
        upstream_verifier,
        expires_at: state.clock.now() + PENDING_LIFETIME_SECONDS,
    };
    if let Err(e) = state.store.create_pending_authorization(&pending).await {
        tracing::error!(error = %e, "authorize: store failed");
        return reply.error(
            "temporarily_unavailable",
            "the broker cannot process sign-ins right now",
        );
    }
    let mut response = Redirect::to(&forgejo_url).into_response();
    protect(response.headers_mut());
    response
}
