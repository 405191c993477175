//! Endpoints that take an access token (userinfo, `/api/v1/user`) or describe one
//! (introspection), plus the unauthenticated `/api/v1/version`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::token::basic_auth;
use super::{Params, Shared, access_token_from};
use crate::config::User;

/// The version `/api/v1/version` reports: a current Forgejo major, marked as the double.
const VERSION: &str = "11.0.0+double";

/// `GET`/`POST /login/oauth/userinfo`: OIDC claims of the token's user, or Forgejo's plain
/// 401 with `WWW-Authenticate: Bearer realm=""`.
pub(super) async fn userinfo(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let Some(user) = access_token_from(&headers).and_then(|t| state.user_for_access_token(t))
    else {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"\"")],
            "no valid authorization",
        )
            .into_response();
    };
    Json(json!({
        "sub": user.id.to_string(),
        "name": user.full_name,
        "preferred_username": user.login,
        "email": user.email,
        "picture": avatar_url(&state, &user),
        "groups": [],
    }))
    .into_response()
}

/// `GET /api/v1/user`: the token's user in the shape of Forgejo's API `User`, or 401 with
/// Forgejo's JSON error body.
pub(super) async fn api_user(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let Some(user) = access_token_from(&headers).and_then(|t| state.user_for_access_token(t))
    else {
        let body = json!({
            "message": "token is required",
            "url": format!("{}/api/swagger", state.base_url()),
        });
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    };
    Json(api_user_json(&state, &user)).into_response()
}

/// `GET /api/v1/version` (no authentication, as in Forgejo).
pub(super) async fn api_version() -> Json<Value> {
    Json(json!({ "version": VERSION }))
}

/// `POST /login/oauth/introspect` (RFC 7662). Forgejo demands HTTP Basic credentials of a
/// confidential client and answers anything else with a plain 401.
pub(super) async fn introspect(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = Params::from_urlencoded(&body)
        .owned("token")
        .unwrap_or_default();
    let result = match basic_auth(&headers) {
        Ok(Some((id, secret))) => state.introspect(&id, &secret, &token),
        _ => Err(()),
    };
    match result {
        Err(()) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"\"")],
            "no valid authorization",
        )
            .into_response(),
        Ok(None) => Json(json!({ "active": false })).into_response(),
        Ok(Some(info)) => Json(json!({
            "active": true,
            "scope": info.scope,
            "username": info.username,
            "sub": info.subject,
            "aud": [info.client_id],
            "exp": info.expires_at,
            "iss": format!("{}/", state.base_url()),
        }))
        .into_response(),
    }
}

fn avatar_url(state: &Shared, user: &User) -> String {
    format!("{}/avatars/{}", state.base_url(), user.id)
}

fn api_user_json(state: &Shared, user: &User) -> Value {
    json!({
        "id": user.id,
        "login": user.login,
        "login_name": "",
        "source_id": 0,
        "full_name": user.full_name,
        "email": user.email,
        "avatar_url": avatar_url(state, user),
        "html_url": format!("{}/{}", state.base_url(), user.login),
        "language": "en-US",
        "is_admin": false,
        "last_login": "2025-01-01T00:00:00Z",
        "created": "2025-01-01T00:00:00Z",
        "restricted": false,
        "active": true,
        "prohibit_login": false,
        "location": "",
        "pronouns": "",
        "website": "",
        "description": "",
        "visibility": "public",
        "followers_count": 0,
        "following_count": 0,
        "starred_repos_count": 0,
        "username": user.login,
    })
}
