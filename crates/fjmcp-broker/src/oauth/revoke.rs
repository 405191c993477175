//! `POST /oauth/revoke` (RFC 7009): revoking an access or a refresh token ends
//! the whole grant: its tokens, codes and sessions.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::OAuthState;
use super::clients;
use super::errors::OAuthError;
use super::params::Params;
use crate::crypto::hash_secret;
use crate::store::AuditEvent;

pub(crate) async fn revoke(
    State(state): State<OAuthState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match revoke_token(&state, &headers, &body).await {
        Ok(()) => {
            let mut response = StatusCode::OK.into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => error.into_response(),
    }
}

async fn revoke_token(
    state: &OAuthState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), OAuthError> {
    let params = Params::parse(body).map_err(OAuthError::invalid_request)?;
    let client = clients::authenticate(state, headers, &params).await?;
    let token = params
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    // The hint only speeds a search up (RFC 7009 §2.1); both kinds are looked for.
    let Some((grant_id, owner)) = state.store.grant_of_token(&hash_secret(token)).await? else {
        // Unknown tokens are not an error: the outcome the client wants holds.
        return Ok(());
    };
    if owner != client.client.client_id {
        // Another client's token: do nothing, and do not reveal that it exists.
        tracing::warn!(client_id = %client.client.client_id, "revocation of another client's token ignored");
        return Ok(());
    }
    if state.store.revoke_grant(&grant_id).await? {
        let grant = state.store.grant(&grant_id).await?;
        state
            .store
            .append_audit(&AuditEvent {
                kind: "grant.revoked".into(),
                user_id: grant.map(|g| g.grant.user_id),
                client_id: Some(owner),
                detail: serde_json::json!({ "grant_id": grant_id, "by": "client" }),
            })
            .await?;
    }
    Ok(())
}
