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
use super::resource::{is_mcp_resource, mcp_resource};
use super::response::ClientRedirect;
use crate::crypto::{hash_secret, mint_secret, pkce_pair, verifier_is_well_formed};
use crate::store::{ClientKind, ClientRecord, NewPendingAuthorization};

/// How long a user has to get through Forgejo's login and the consent page.
pub(crate) const PENDING_LIFETIME_SECONDS: i64 = 600;

/// Longest client `state` accepted, in bytes: it is stored and sent back in a
/// URL, and real clients use a few dozen characters.
const MAX_STATE_BYTES: usize = 1024;

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
    if params
        .get("state")
        .is_some_and(|s| s.len() > MAX_STATE_BYTES)
    {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Invalid authorization request",
            &format!("state is longer than {MAX_STATE_BYTES} bytes."),
        );
    }
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
            // `why` is a fixed text; the details (addresses, TLS errors) went to the log.
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
    // From here on the redirect URI is verified. Errors go back to it only if
    // the client is vouched for; otherwise the broker would be an open
    // redirector for anyone who registers a client with their own URI.
    let reply = ClientRedirect {
        redirect_uri,
        state: params.get("state").map(str::to_string),
        issuer: state.config.public_url.as_str().to_string(),
    };
    let vouched = match vouched_for(&state, &client, &reply.redirect_uri).await {
        Ok(vouched) => vouched,
        Err(e) => {
            tracing::error!(error = %e, "authorize: store failed");
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "The broker cannot process sign-ins right now.",
            );
        }
    };
    let reply = Reply {
        redirect: reply,
        vouched,
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
    let resource = mcp_resource(&state.config.public_url);
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

/// Whether errors may be sent to `redirect_uri` of `client`: some user approved
/// the client, or it is a metadata-document client whose document's host is
/// the redirect's (the owner of that host chose the URI).
async fn vouched_for(
    state: &OAuthState,
    client: &ClientRecord,
    redirect_uri: &str,
) -> Result<bool, crate::store::StoreError> {
    if client.client.kind == ClientKind::MetadataDocument {
        let host = |uri: &str| url::Url::parse(uri).ok()?.host_str().map(str::to_string);
        if host(&client.client.client_id).is_some_and(|h| Some(h) == host(redirect_uri)) {
            return Ok(true);
        }
    }
    state
        .store
        .client_has_consent(&client.client.client_id)
        .await
}

/// Where an authorization error goes: the client's redirect URI when the client
/// is vouched for, else an error page in the browser.
struct Reply {
    redirect: ClientRedirect,
    vouched: bool,
}

impl std::ops::Deref for Reply {
    type Target = ClientRedirect;
    fn deref(&self) -> &ClientRedirect {
        &self.redirect
    }
}

impl Reply {
    fn error(&self, error: &str, description: &str) -> Response {
        if self.vouched {
            return self.redirect.error(error, description);
        }
        tracing::info!(
            error,
            "authorization error shown as a page: nobody approved this client yet"
        );
        error_page(
            StatusCode::BAD_REQUEST,
            "Invalid authorization request",
            &format!("{description} ({error})."),
        )
    }
}
