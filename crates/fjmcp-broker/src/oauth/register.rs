//! `POST /oauth/register`: dynamic client registration (RFC 7591).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use super::OAuthState;
use super::errors::OAuthError;
use super::registration::{TokenEndpointAuthMethod, registration_response, validate_registration};
use crate::crypto::{hash_secret, mint_secret, random_id};
use crate::store::{AuditEvent, ClientKind, NewClient};

/// Prefix of registered client ids, telling them apart from metadata-document URLs.
const CLIENT_ID_PREFIX: &str = "fjc_";

pub(crate) async fn register(State(state): State<OAuthState>, body: Bytes) -> Response {
    match register_client(&state, &body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn register_client(state: &OAuthState, body: &[u8]) -> Result<Response, OAuthError> {
    let document: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        OAuthError::registration(
            "invalid_client_metadata",
            format!("the body must be a JSON object: {e}"),
        )
    })?;
    let metadata = validate_registration(&document)
        .map_err(|e| OAuthError::registration(e.error_code(), e.to_string()))?;
    let client_id = format!("{CLIENT_ID_PREFIX}{}", random_id());
    let secret = match metadata.token_endpoint_auth_method {
        TokenEndpointAuthMethod::None => None,
        _ => Some(mint_secret("fjcs_")),
    };
    let issued_at = state.clock.now();
    state
        .store
        .put_client(&NewClient {
            client_id: client_id.clone(),
            kind: ClientKind::Registered,
            client_name: metadata.client_name.clone(),
            redirect_uris: metadata.redirect_uris.clone(),
            application_type: metadata.application_type.as_str().to_string(),
            token_endpoint_auth_method: metadata.token_endpoint_auth_method.as_str().to_string(),
            client_secret_hash: secret.as_deref().map(hash_secret),
            metadata: serde_json::Value::Object(metadata.document.clone()).to_string(),
            metadata_expires_at: None,
        })
        .await?;
    state
        .store
        .append_audit(&AuditEvent {
            kind: "client.registered".into(),
            user_id: None,
            client_id: Some(client_id.clone()),
            detail: serde_json::json!({
                "client_name": metadata.client_name,
                "redirect_uris": metadata.redirect_uris,
            }),
        })
        .await?;
    let body = registration_response(&metadata, &client_id, issued_at, secret.as_deref());
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
