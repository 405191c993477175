//! `/_double/…`: the test-control API, so end-to-end tests written in any language can do over
//! HTTP what Rust tests do through [`crate::ForgejoDouble`]. It has no authentication; the
//! binary only ever listens on loopback.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Shared;
use crate::config::{App, User};
use crate::faults::{Endpoint, Fault};

/// The control routes, to be nested under `/_double`.
pub(super) fn router() -> Router<Shared> {
    Router::new()
        .route("/faults", post(inject_fault).delete(clear_faults))
        .route("/tokens/{login}", get(tokens))
        .route("/revoke", post(revoke))
        .route("/clock/advance", post(advance_clock))
        .route("/auto-login", post(auto_login))
        .route("/users", post(add_user))
        .route("/apps", post(add_app))
        .route("/stats", get(stats))
}

/// `POST /_double/faults` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    /// An [`Endpoint::name`].
    endpoint: String,
    /// `server_error`, `invalid_grant`, `unauthorized_client`, `delay` or
    /// `server_error_after_processing`.
    fault: String,
    /// How many calls fail; 1 when omitted.
    #[serde(default = "one")]
    times: u32,
    /// Required with `delay`.
    delay_ms: Option<u64>,
}

fn one() -> u32 {
    1
}

async fn inject_fault(State(state): State<Shared>, Json(request): Json<FaultRequest>) -> Response {
    let endpoint: Endpoint = match request.endpoint.parse() {
        Ok(endpoint) => endpoint,
        Err(message) => return bad_request(&message),
    };
    let fault = match (request.fault.as_str(), request.delay_ms) {
        ("server_error", _) => Fault::ServerError,
        ("invalid_grant", _) => Fault::InvalidGrant,
        ("unauthorized_client", _) => Fault::UnauthorizedClient,
        ("server_error_after_processing", _) => Fault::ServerErrorAfterProcessing,
        ("delay", Some(ms)) => Fault::Delay(Duration::from_millis(ms)),
        ("delay", None) => return bad_request("the delay fault needs delay_ms"),
        (other, _) => return bad_request(&format!("unknown fault {other:?}")),
    };
    state.faults().inject(endpoint, fault, request.times);
    Json(json!({ "endpoint": endpoint.name(), "times": request.times })).into_response()
}

async fn clear_faults(State(state): State<Shared>) -> StatusCode {
    state.faults().clear();
    StatusCode::NO_CONTENT
}

/// `GET /_double/tokens/{login}`: the tokens of a user that currently work, oldest first.
async fn tokens(State(state): State<Shared>, Path(login): Path<String>) -> Response {
    if !state.has_user(&login) {
        return not_found(&login);
    }
    Json(json!({
        "access_tokens": state.valid_access_tokens(&login),
        "refresh_tokens": state.valid_refresh_tokens(&login),
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    login: String,
    client_id: String,
}

/// `POST /_double/revoke`: answers whether there was a grant to revoke.
async fn revoke(State(state): State<Shared>, Json(request): Json<RevokeRequest>) -> Response {
    let revoked = state.revoke_grant(&request.login, &request.client_id);
    Json(json!({ "revoked": revoked })).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvanceRequest {
    seconds: u64,
}

/// `POST /_double/clock/advance`: answers the total offset.
async fn advance_clock(
    State(state): State<Shared>,
    Json(request): Json<AdvanceRequest>,
) -> Response {
    let offset = state.clock().advance(Duration::from_secs(request.seconds));
    Json(json!({ "offset_seconds": offset.as_secs() })).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AutoLoginRequest {
    /// A user's login, or null to show the login form again.
    login: Option<String>,
}

async fn auto_login(
    State(state): State<Shared>,
    Json(request): Json<AutoLoginRequest>,
) -> Response {
    if let Some(login) = &request.login
        && !state.has_user(login)
    {
        return not_found(login);
    }
    state.set_auto_login(request.login.as_deref());
    Json(json!({ "auto_login": request.login })).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRequest {
    /// Defaults to one more than the highest id in use.
    id: Option<i64>,
    login: String,
    password: String,
    email: Option<String>,
    full_name: Option<String>,
}

/// `POST /_double/users`: adds (or replaces, by login) a user.
async fn add_user(State(state): State<Shared>, Json(request): Json<UserRequest>) -> Response {
    if request.login.is_empty() {
        return bad_request("login must not be empty");
    }
    let mut user = User::new(
        request.id.unwrap_or_else(|| state.unused_user_id()),
        &request.login,
        &request.password,
    );
    if let Some(email) = request.email {
        user.email = email;
    }
    if let Some(full_name) = request.full_name {
        user.full_name = full_name;
    }
    let id = user.id;
    state.add_user(user);
    (StatusCode::CREATED, Json(json!({ "id": id }))).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppRequest {
    client_id: String,
    /// Present and non-empty: a confidential client; otherwise a public one.
    client_secret: Option<String>,
    redirect_uris: Vec<String>,
}

/// `POST /_double/apps`: registers (or replaces, by client id) an application.
async fn add_app(State(state): State<Shared>, Json(request): Json<AppRequest>) -> Response {
    if request.client_id.is_empty() {
        return bad_request("client_id must not be empty");
    }
    let secret = request.client_secret.unwrap_or_default();
    let app = App {
        client_id: request.client_id,
        confidential: !secret.is_empty(),
        client_secret: secret,
        redirect_uris: request.redirect_uris,
    };
    state.add_app(app);
    StatusCode::CREATED.into_response()
}

/// `GET /_double/stats`: calls per endpoint, token-endpoint counters and the clock offset.
async fn stats(State(state): State<Shared>) -> Json<Value> {
    let calls: Map<String, Value> = Endpoint::ALL
        .into_iter()
        .map(|e| (e.name().to_owned(), json!(state.faults().calls(e))))
        .collect();
    let tokens = state.token_stats();
    Json(json!({
        "calls": calls,
        "tokens": {
            "code_exchanges": tokens.code_exchanges,
            "refreshes": tokens.refreshes,
            "rejected": tokens.rejected,
            "refresh_reuse": tokens.refresh_reuse,
        },
        "clock_offset_seconds": state.clock().offset().as_secs(),
    }))
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

fn not_found(login: &str) -> Response {
    let message = format!("no user {login:?}");
    (StatusCode::NOT_FOUND, Json(json!({ "error": message }))).into_response()
}
