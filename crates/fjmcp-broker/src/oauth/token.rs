//! `POST /oauth/token`: authorization-code and refresh-token grants.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, header};
use serde_json::json;

use super::clients;
use super::errors::OAuthError;
use super::params::Params;
use super::resource::{is_mcp_resource, is_this_mcp};
use super::{OAuthState, Principal};
use crate::clock::seconds;
use crate::crypto::{
    constant_time_eq, hash_secret, mint_secret, s256_challenge, verifier_is_well_formed,
};
use crate::store::{
    ClientRecord, CodeProof, CodeRedemption, CodeRefusal, GrantRecord, NewTokenPair, RefreshOutcome,
};

/// Prefixes that tell an operator what a leaked value was.
const ACCESS_TOKEN_PREFIX: &str = "fjat_";
const REFRESH_TOKEN_PREFIX: &str = "fjrt_";

pub(crate) async fn token(
    State(state): State<OAuthState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match exchange(&state, &headers, &body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn exchange(
    state: &OAuthState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OAuthError> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let params = Params::parse(body).map_err(OAuthError::invalid_request)?;
    let client = clients::authenticate(state, headers, &params).await?;
    let grant_type = params.get("grant_type");
    if let Some(grant_type @ ("authorization_code" | "refresh_token")) = grant_type
        && !clients::allows_grant_type(&client, grant_type)
    {
        return Err(OAuthError::unauthorized_client(format!(
            "this client did not register the grant type `{grant_type}`"
        )));
    }
    match grant_type {
        Some("authorization_code") => authorization_code(state, &client, &params).await,
        Some("refresh_token") => refresh_token(state, &client, &params).await,
        Some(other) => Err(OAuthError::unsupported_grant_type(format!(
            "grant_type `{other}` is not supported (authorization_code, refresh_token)"
        ))),
        None => Err(OAuthError::invalid_request("grant_type is required")),
    }
}

async fn authorization_code(
    state: &OAuthState,
    client: &ClientRecord,
    params: &Params,
) -> Result<Response, OAuthError> {
    let code = params
        .get("code")
        .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    let verifier = params
        .get("code_verifier")
        .ok_or_else(|| OAuthError::invalid_request("code_verifier is required (PKCE)"))?;
    if !verifier_is_well_formed(verifier) {
        return Err(OAuthError::invalid_grant("PKCE verification failed"));
    }
    // Client, verifier and redirect URI are checked in the same conditional update that
    // spends the code: whoever holds only the code cannot burn it.
    let challenge = s256_challenge(verifier);
    let proof = CodeProof {
        client_id: &client.client.client_id,
        challenge: &challenge,
        redirect_uri: params.get("redirect_uri"),
    };
    let redeemed = match state
        .store
        .redeem_authorization_code(&hash_secret(code), proof)
        .await?
    {
        CodeRedemption::Redeemed(redeemed) => redeemed,
        CodeRedemption::Reused { grant_id } => {
            // Its own client, with its verifier, a second time: the code and verifier leaked
            // (or the client replays). Revoke what the first use issued.
            state.store.revoke_grant(&grant_id).await?;
            tracing::warn!(grant_id, client_id = %client.client.client_id, "authorization code reused; grant revoked");
            return Err(OAuthError::invalid_grant(
                "the authorization code was already used",
            ));
        }
        CodeRedemption::Refused(why) => {
            return Err(OAuthError::invalid_grant(match why {
                CodeRefusal::WrongClient => "the authorization code was issued to another client",
                CodeRefusal::WrongVerifier => "PKCE verification failed",
                CodeRefusal::WrongRedirectUri => {
                    "redirect_uri differs from the authorization request's"
                }
                CodeRefusal::Expired => "the authorization code has expired",
                CodeRefusal::AlreadyUsed => "the authorization code was already used",
            }));
        }
        CodeRedemption::Unknown => {
            return Err(OAuthError::invalid_grant("unknown authorization code"));
        }
    };
    // The database compared the challenge; this is the same check in constant time.
    if !constant_time_eq(challenge.as_bytes(), redeemed.code_challenge.as_bytes()) {
        return Err(OAuthError::invalid_grant("PKCE verification failed"));
    }
    if let Some(resource) = params.get("resource")
        && !is_mcp_resource(resource, &redeemed.resource)
    {
        return Err(OAuthError::invalid_target(
            "resource differs from the authorization request's",
        ));
    }
    // Read before the grant is, as the bearer check reads it before the store.
    let epoch = state.store.epoch();
    let grant = state
        .store
        .grant(&redeemed.grant_id)
        .await?
        .filter(GrantRecord::is_live)
        .ok_or_else(|| OAuthError::invalid_grant("the grant was revoked"))?;
    let refreshable = clients::allows_grant_type(client, "refresh_token");
    let (pair, access, refresh) = new_pair(state, refreshable);
    state.store.issue_tokens(&grant, &pair).await?;
    remember_issued(state, &grant, &pair, epoch);
    Ok(token_response(state, &grant, &access, refresh.as_deref()))
}

async fn refresh_token(
    state: &OAuthState,
    client: &ClientRecord,
    params: &Params,
) -> Result<Response, OAuthError> {
    let presented = params
        .get("refresh_token")
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
    if let Some(resource) = params.get("resource")
        && !is_this_mcp(&state.config.public_url, resource)
    {
        return Err(OAuthError::invalid_target(
            "this server only issues tokens for its MCP endpoint",
        ));
    }
    let (pair, access, refresh) = new_pair(state, true);
    let grace = seconds(state.config.oauth.refresh_reuse_grace);
    let epoch = state.store.epoch();
    let outcome = state
        .store
        .rotate_refresh_token(
            &hash_secret(presented),
            &client.client.client_id,
            &pair,
            grace,
        )
        .await?;
    match outcome {
        RefreshOutcome::Rotated(grant) => {
            remember_issued(state, &grant, &pair, epoch);
            Ok(token_response(state, &grant, &access, refresh.as_deref()))
        }
        RefreshOutcome::ReuseDetected { grant_id } => {
            tracing::warn!(grant_id, client_id = %client.client.client_id, "refresh token reused; grant revoked");
            Err(OAuthError::invalid_grant(
                "the refresh token was already used",
            ))
        }
        RefreshOutcome::WrongClient => Err(OAuthError::invalid_grant(
            "the refresh token was issued to another client",
        )),
        RefreshOutcome::Expired => Err(OAuthError::invalid_grant("the refresh token has expired")),
        RefreshOutcome::Revoked => Err(OAuthError::invalid_grant("the refresh token was revoked")),
        RefreshOutcome::Unknown => Err(OAuthError::invalid_grant("unknown refresh token")),
    }
}

/// Mints an access token and, for a client that registered the refresh grant,
/// a refresh token; returns their hashes for the store and the plaintexts for
/// the response (the only place they ever exist).
fn new_pair(state: &OAuthState, with_refresh: bool) -> (NewTokenPair, String, Option<String>) {
    let now = state.clock.now();
    let lifetimes = &state.config.oauth;
    let access = mint_secret(ACCESS_TOKEN_PREFIX);
    let refresh = with_refresh.then(|| mint_secret(REFRESH_TOKEN_PREFIX));
    let pair = NewTokenPair {
        access_hash: hash_secret(&access),
        access_expires_at: now + seconds(lifetimes.access_token_lifetime),
        refresh: refresh.as_ref().map(|refresh| {
            (
                hash_secret(refresh),
                now + seconds(lifetimes.refresh_token_lifetime),
            )
        }),
    };
    (pair, access, refresh)
}

/// Puts a token just minted into the bearer check's cache. The store vouches
/// for it as much as a lookup would: its grant was live after `epoch` was
/// read, and any revocation since moves the epoch.
fn remember_issued(state: &OAuthState, grant: &GrantRecord, pair: &NewTokenPair, epoch: u64) {
    // The bearer check would refuse a token of another resource; never cache one.
    if !is_this_mcp(&state.config.public_url, &grant.grant.resource) {
        return;
    }
    let principal = Principal {
        grant_id: grant.id.as_str().into(),
        client_id: grant.grant.client_id.as_str().into(),
        user_id: grant.grant.user_id.as_str().into(),
    };
    state.verified.insert(
        &pair.access_hash,
        principal,
        pair.access_expires_at,
        epoch,
        state.clock.now(),
    );
}

fn token_response(
    state: &OAuthState,
    grant: &GrantRecord,
    access: &str,
    refresh: Option<&str>,
) -> Response {
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": seconds(state.config.oauth.access_token_lifetime),
        "scope": grant.grant.scopes,
    });
    if let Some(refresh) = refresh {
        body["refresh_token"] = refresh.into();
    }
    let mut response = Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
