//! The `/mcp` endpoint: HTTP in, the pure wire rules of this module's siblings,
//! the user's child through the pool, JSON or SSE out.
//!
//! Order of checks on every request (each layer is below the previous one):
//! Origin and Host ([`super::screen`]) → bearer token
//! ([`crate::oauth::bearer::require_bearer`], 401 before any protocol logic) →
//! body → era → the era's own rules.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::decorate::{
    broker_server_info, child_server_info, decorate_result, discover_result, forwarded_status,
    legacy_initialize_result,
};
use super::era::{
    LegacyProblem, LegacyReason, Route, classify, is_legacy_forwarded, legacy_error,
    legacy_header_version,
};
use super::headers::{RequestHeaders, SESSION_ID};
use super::modern::{ModernAction, strip_modern_meta, validate_modern};
use super::sse::{self, Accepts};
use super::subscriptions::{ListKind, ack_subscription, subscription_closed, tag_for_subscription};
use super::wire::{Incoming, RpcRequest, WireError, error_response, parse_body, result_response};
use crate::children::PoolError;
use crate::crypto::{SecretHash, hash_secret, mint_secret};
use crate::http::AppState;
use crate::oauth::Principal;
use crate::oauth::bearer::require_bearer;

/// Prefix of the broker's session ids.
const SESSION_PREFIX: &str = "fjms_";
/// JSON-RPC internal error: how backend failures reach the client.
const INTERNAL_ERROR: i64 = -32603;

/// What can end work on `/mcp` from outside the request itself: a client's
/// `notifications/cancelled` (a separate POST) for an in-flight 2025-era
/// request, a `DELETE` for the session's open streams, and broker shutdown for
/// every stream (long-lived streams would otherwise hold shutdown for its whole
/// grace period).
#[derive(Clone, Default)]
pub struct Cancellations {
    /// In-flight requests by (session hash, request id).
    requests: Arc<Mutex<HashMap<(String, String), CancellationToken>>>,
    /// Open standalone streams by session hash.
    streams: Arc<Mutex<HashMap<String, Vec<CancellationToken>>>>,
    /// Cancelled when the broker shuts down; every stream's token is its child.
    shutdown: CancellationToken,
}

impl Cancellations {
    /// Ends every open stream (broker shutdown).
    pub fn shut_down(&self) {
        self.shutdown.cancel();
    }

    /// A token that ends a stream at shutdown (and, for a session's stream, at DELETE).
    fn stream_token(&self, session: Option<&SecretHash>) -> CancellationToken {
        let token = self.shutdown.child_token();
        if let Some(session) = session {
            let mut streams = self.streams.lock().unwrap();
            let list = streams.entry(session.as_str().to_string()).or_default();
            list.retain(|t| !t.is_cancelled());
            list.push(token.clone());
        }
        token
    }

    fn end_streams(&self, session: &SecretHash) {
        if let Some(tokens) = self.streams.lock().unwrap().remove(session.as_str()) {
            tokens.iter().for_each(CancellationToken::cancel);
        }
    }

    fn register(&self, session: &SecretHash, id: &Value) -> (CancellationToken, InFlightGuard) {
        let key = (session.as_str().to_string(), id.to_string());
        let token = CancellationToken::new();
        self.requests
            .lock()
            .unwrap()
            .insert(key.clone(), token.clone());
        (
            token,
            InFlightGuard {
                map: self.clone(),
                key,
            },
        )
    }

    fn cancel(&self, session: &SecretHash, id: &Value) {
        let key = (session.as_str().to_string(), id.to_string());
        if let Some(token) = self.requests.lock().unwrap().remove(&key) {
            token.cancel();
        }
    }
}

/// Removes a request from [`Cancellations`] when it finishes.
struct InFlightGuard {
    map: Cancellations,
    key: (String, String),
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.map.requests.lock().unwrap().remove(&self.key);
    }
}

/// The `/mcp` routes with their screening and bearer layers.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/mcp", post(post_mcp).get(get_mcp).delete(delete_mcp))
        // Inner: the bearer check, after screening.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_bearer,
        ))
        // Outer: Origin and Host first, so a hostile page learns nothing more.
        .route_layer(middleware::from_fn_with_state(state, screen))
}

async fn screen(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match super::screen::screen(&state.config, request.headers(), request.uri()) {
        Ok(()) => next.run(request).await,
        Err(refused) => {
            tracing::warn!(?refused, "refused /mcp request: origin or host not allowed");
            json_response(
                super::screen::STATUS,
                &error_response(None, -32600, "Forbidden: origin or host not allowed", None),
            )
        }
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn wire_error(error: WireError) -> Response {
    json_response(error.status, &error.body())
}

fn accepted() -> Response {
    StatusCode::ACCEPTED.into_response()
}

/// Turns a pool failure into the answer to request `id`.
fn pool_error(id: Option<Value>, error: PoolError, state: &AppState) -> Response {
    match error {
        PoolError::AtCapacity { .. } | PoolError::Busy { .. } | PoolError::Unavailable(_) => {
            let mut response = json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &error_response(id, INTERNAL_ERROR, &error.to_string(), None),
            );
            let retry_after = error.retry_after().unwrap_or_default().as_secs().max(1);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            response
        }
        PoolError::CredentialDead => {
            // The user's grants were revoked with the credential: sign in again.
            let metadata = state
                .config
                .public_url
                .join("/.well-known/oauth-protected-resource/mcp");
            let mut response = json_response(
                StatusCode::UNAUTHORIZED,
                &json!({"error": "invalid_token", "error_description": "the Forgejo authorization ended; sign in again"}),
            );
            if let Ok(value) = HeaderValue::from_str(&format!(
                "Bearer resource_metadata=\"{metadata}\", error=\"invalid_token\""
            )) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
            response
        }
        PoolError::InvalidRequest(why) => json_response(
            StatusCode::BAD_REQUEST,
            &error_response(id, -32600, &format!("Invalid Request: {why}"), None),
        ),
        PoolError::BackendFailedToStart(_) | PoolError::BackendExited | PoolError::Timeout => {
            json_response(
                StatusCode::OK,
                &error_response(id, INTERNAL_ERROR, &error.to_string(), None),
            )
        }
    }
}

fn has_progress_token(message: &Value) -> bool {
    message
        .pointer("/params/_meta/progressToken")
        .is_some_and(|t| t.is_string() || t.is_number())
}

/// Forwards `message` to the user's child and answers with JSON, or with SSE
/// carrying its progress notifications first. `finish` shapes the child's
/// response for the client's era. Closing the stream (or the connection)
/// drops the call, which cancels it at the child.
async fn forward(
    state: &AppState,
    user_id: &str,
    message: Value,
    accepts: Accepts,
    cancel: Option<CancellationToken>,
    finish: impl Fn(Value) -> (StatusCode, Value) + Send + 'static,
) -> Response {
    let id = message.get("id").cloned();
    let streaming = accepts.stream(has_progress_token(&message));
    if !streaming {
        let call = state.pool.call(user_id, message, None);
        let outcome = match cancel {
            Some(cancel) => tokio::select! {
                outcome = call => outcome,
                () = cancel.cancelled() => return cancelled(id),
            },
            None => call.await,
        };
        return match outcome {
            Ok(response) => {
                let (status, body) = finish(response);
                json_response(status, &body)
            }
            Err(e) => pool_error(id, e, state),
        };
    }
    let pool = state.pool.clone();
    let user_id = user_id.to_string();
    sse::respond(move |out| async move {
        let (events_tx, mut events_rx) = mpsc::channel::<Value>(64);
        let call = pool.call(&user_id, message, Some(events_tx));
        tokio::pin!(call);
        let cancel = cancel.unwrap_or_default();
        let last = loop {
            tokio::select! {
                outcome = &mut call => break outcome,
                Some(event) = events_rx.recv() => {
                    if out.send(sse::event(&event)).await.is_err() {
                        return;
                    }
                }
                () = cancel.cancelled() => return,
            }
        };
        // Progress sent just before the answer must still precede it.
        while let Ok(event) = events_rx.try_recv() {
            let _ = out.send(sse::event(&event)).await;
        }
        let body = match last {
            Ok(response) => finish(response).1,
            Err(e) => error_response(id, INTERNAL_ERROR, &e.to_string(), None),
        };
        let _ = out.send(sse::event(&body)).await;
    })
}

fn cancelled(id: Option<Value>) -> Response {
    json_response(
        StatusCode::OK,
        &error_response(id, INTERNAL_ERROR, "Request cancelled by the client", None),
    )
}

async fn post_mcp(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let view = RequestHeaders::from_map(&headers);
    let incoming = match parse_body(&body) {
        Ok(incoming) => incoming,
        Err(e) => return wire_error(e),
    };
    let route = match classify(&incoming, &view) {
        Ok(route) => route,
        Err(e) => return wire_error(e),
    };
    let accepts = Accepts::of(&headers);
    match (route, incoming) {
        (Route::Modern, Incoming::Request(request)) => {
            modern(&state, &principal, &view, request, accepts).await
        }
        (Route::Modern, _) => accepted(),
        (Route::Legacy(reason), incoming) => {
            legacy(&state, &principal, &view, reason, incoming, accepts).await
        }
    }
}

/// The child's InitializeResult and the serverInfo to name in results.
async fn child_identity(
    state: &AppState,
    principal: &Principal,
) -> Result<(Value, Value), PoolError> {
    let init = state.pool.initialize_result(&principal.user_id).await?;
    let server_info = child_server_info(&init)
        .cloned()
        .unwrap_or_else(broker_server_info);
    Ok((init, server_info))
}

async fn modern(
    state: &AppState,
    principal: &Principal,
    view: &RequestHeaders<'_>,
    request: RpcRequest,
    accepts: Accepts,
) -> Response {
    let valid = match validate_modern(&request, view) {
        Ok(valid) => valid,
        Err(e) => return wire_error(e),
    };
    let id = Some(valid.id.clone());
    let (init, server_info) = match child_identity(state, principal).await {
        Ok(identity) => identity,
        Err(e) => return pool_error(id, e, state),
    };
    match valid.action {
        ModernAction::Discover => json_response(
            StatusCode::OK,
            &result_response(valid.id, discover_result(&init, &server_info)),
        ),
        ModernAction::Listen => listen(state, principal, &request, &init),
        ModernAction::Forward => {
            let method = valid.method.clone();
            let message = strip_modern_meta(request.message);
            forward(
                state,
                &principal.user_id,
                message,
                accepts,
                None,
                move |response| {
                    let decorated = decorate_result(&method, response, &server_info);
                    (forwarded_status(&decorated), decorated)
                },
            )
            .await
        }
    }
}

/// `subscriptions/listen`: acknowledge what the broker relays, then relay the
/// user's list changes, tagged, with keep-alives, until the client hangs up.
fn listen(state: &AppState, principal: &Principal, request: &RpcRequest, init: &Value) -> Response {
    let capabilities = init.get("capabilities").cloned().unwrap_or(Value::Null);
    let (filter, ack) = ack_subscription(request, &capabilities);
    let subscription_id = request.id.clone();
    let server_info = child_server_info(init)
        .cloned()
        .unwrap_or_else(broker_server_info);
    let stream = Stream {
        binding: Binding::Grant(principal.grant_id.clone()),
        stop: state.cancellations.stream_token(None),
        first: Some(ack),
        // The spec's graceful end of a subscription, when the broker ends it.
        last: Some(subscription_closed(&subscription_id, &server_info)),
    };
    let changes = state.pool.subscribe(&principal.user_id);
    relay_changes(state, stream, changes, move |notification| {
        let method = notification
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("");
        filter
            .accepts(method)
            .then(|| tag_for_subscription(notification, &subscription_id))
    })
}

/// A long-lived stream's frame around the relayed changes.
struct Stream {
    /// What the stream must stay bound to.
    binding: Binding,
    /// Ends the stream from outside (shutdown, DELETE of its session).
    stop: CancellationToken,
    /// Sent before any change (a listen acknowledgement).
    first: Option<Value>,
    /// Sent when the broker, not the client, ends the stream.
    last: Option<Value>,
}

/// What a long-lived stream must stay bound to: checked at every keep-alive,
/// so a revoked grant or an ended session (on any instance) closes the stream.
enum Binding {
    Grant(String),
    Session { hash: SecretHash, grant_id: String },
}

impl Binding {
    async fn holds(&self, state: &AppState) -> bool {
        let live = match self {
            Binding::Grant(grant_id) => state
                .store
                .grant(grant_id)
                .await
                .map(|g| g.is_some_and(|g| g.is_live())),
            Binding::Session { hash, grant_id } => {
                state.store.session_is_live(hash, grant_id).await
            }
        };
        // A store that cannot answer does not end the stream: the next tick asks again.
        live.unwrap_or(true)
    }
}

/// An SSE stream of the user's list changes (shaped, or dropped, by `shape`),
/// framed by `stream`, with keep-alive comments, until the client hangs up,
/// `stream.stop` is cancelled, or `stream.binding` no longer holds.
fn relay_changes(
    state: &AppState,
    stream: Stream,
    mut changes: broadcast::Receiver<Value>,
    shape: impl Fn(Value) -> Option<Value> + Send + 'static,
) -> Response {
    let state = state.clone();
    sse::respond(move |out| async move {
        let Stream {
            binding,
            stop,
            first,
            last,
        } = stream;
        if let Some(first) = first
            && out.send(sse::event(&first)).await.is_err()
        {
            return;
        }
        let mut keep_alive = tokio::time::interval(sse::KEEP_ALIVE);
        keep_alive.tick().await;
        loop {
            let message = tokio::select! {
                change = changes.recv() => match change {
                    Ok(notification) => match shape(notification) {
                        Some(message) => sse::event(&message),
                        None => continue,
                    },
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = keep_alive.tick() => {
                    if !binding.holds(&state).await {
                        break;
                    }
                    sse::comment()
                }
                () = stop.cancelled() => break,
            };
            if out.send(message).await.is_err() {
                // The client hung up: nobody to say goodbye to.
                return;
            }
        }
        if let Some(last) = last {
            let _ = out.send(sse::event(&last)).await;
        }
    })
}

fn session_id(view: &RequestHeaders<'_>) -> Option<String> {
    view.session_id
        .and_then(|raw| std::str::from_utf8(raw).ok())
        .map(str::to_string)
}

/// The caller's live session named by the request, or the 400/404 answer.
async fn session_of(
    state: &AppState,
    principal: &Principal,
    view: &RequestHeaders<'_>,
    id: Option<Value>,
) -> Result<SecretHash, Response> {
    let Some(session) = session_id(view) else {
        return Err(wire_error(legacy_error(LegacyProblem::MissingSession, id)));
    };
    let hash = hash_secret(&session);
    let idle =
        i64::try_from(state.config.mcp.session_idle_timeout.as_secs()).unwrap_or(i64::MAX / 4);
    match state.store.touch_session(&hash, idle).await {
        // A session of another grant is not this caller's: as if it did not exist.
        Ok(Some(record)) if record.grant_id == principal.grant_id => Ok(hash),
        Ok(_) => Err(wire_error(legacy_error(LegacyProblem::UnknownSession, id))),
        Err(e) => {
            tracing::error!(error = %e, "session lookup failed");
            Err(pool_error(
                id,
                PoolError::Unavailable("store".into()),
                state,
            ))
        }
    }
}

async fn legacy(
    state: &AppState,
    principal: &Principal,
    view: &RequestHeaders<'_>,
    reason: LegacyReason,
    incoming: Incoming,
    accepts: Accepts,
) -> Response {
    match (reason, incoming) {
        (LegacyReason::Initialize, Incoming::Request(request)) => {
            initialize(state, principal, request, accepts).await
        }
        (LegacyReason::Batch, _) => wire_error(WireError::invalid_request(
            None,
            "batches are not supported; send one message per request",
        )),
        (LegacyReason::NoClaim, Incoming::Request(request)) => wire_error(legacy_error(
            LegacyProblem::MissingSession,
            Some(request.id),
        )),
        (_, Incoming::Request(request)) => {
            let id = Some(request.id.clone());
            let session = match session_of(state, principal, view, id.clone()).await {
                Ok(session) => session,
                Err(response) => return response,
            };
            if let Err(e) = legacy_header_version(view.protocol_version, id.clone()) {
                return wire_error(e);
            }
            match request.method.as_str() {
                // Answered by the broker: the child's liveness is the pool's business,
                // and its log level is not the client's to set.
                "ping" | "logging/setLevel" => {
                    json_response(StatusCode::OK, &result_response(request.id, json!({})))
                }
                method if !is_legacy_forwarded(method) => json_response(
                    StatusCode::OK,
                    &error_response(id, -32601, &format!("Method not found: {method}"), None),
                ),
                _ => {
                    let (cancel, _guard) = state.cancellations.register(&session, &request.id);
                    forward(
                        state,
                        &principal.user_id,
                        request.message,
                        accepts,
                        Some(cancel),
                        |response| (StatusCode::OK, response),
                    )
                    .await
                }
            }
        }
        (_, Incoming::Notification(notification)) => {
            if notification.method == "notifications/cancelled"
                && let Some(session) = session_id(view)
                && let Some(request_id) = notification.message.pointer("/params/requestId")
            {
                state
                    .cancellations
                    .cancel(&hash_secret(&session), request_id);
            }
            accepted()
        }
        // Answers to server requests: the broker sends none, so there is nothing to route.
        (_, _) => accepted(),
    }
}

async fn initialize(
    state: &AppState,
    principal: &Principal,
    request: RpcRequest,
    accepts: Accepts,
) -> Response {
    let id = Some(request.id.clone());
    match state.store.live_sessions_of_user(&principal.user_id).await {
        Ok(n) if n >= state.config.mcp.max_sessions_per_user as i64 => {
            return pool_error(
                id,
                PoolError::Busy {
                    retry_after: std::time::Duration::from_secs(60),
                },
                state,
            );
        }
        Ok(_) => {}
        Err(e) => {
            tracing::error!(error = %e, "session count failed");
            return pool_error(id, PoolError::Unavailable("store".into()), state);
        }
    }
    let (init, _) = match child_identity(state, principal).await {
        Ok(identity) => identity,
        Err(e) => return pool_error(id, e, state),
    };
    let requested = request
        .message
        .pointer("/params/protocolVersion")
        .and_then(Value::as_str);
    let result = legacy_initialize_result(&init, requested);
    let negotiated = result
        .get("protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or("2025-11-25")
        .to_string();
    let session = mint_secret(SESSION_PREFIX);
    let idle =
        i64::try_from(state.config.mcp.session_idle_timeout.as_secs()).unwrap_or(i64::MAX / 4);
    if let Err(e) = state
        .store
        .create_session(
            &hash_secret(&session),
            &principal.grant_id,
            &principal.user_id,
            &negotiated,
            idle,
        )
        .await
    {
        tracing::error!(error = %e, "creating a session failed");
        return pool_error(id, PoolError::Unavailable("store".into()), state);
    }
    let body = result_response(request.id, result);
    let mut response = if accepts.stream(false) {
        sse::respond(move |out| async move {
            let _ = out.send(sse::event(&body)).await;
        })
    } else {
        json_response(StatusCode::OK, &body)
    };
    if let Ok(value) = HeaderValue::from_str(&session) {
        response.headers_mut().insert(SESSION_ID, value);
    }
    response
}

async fn get_mcp(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
) -> Response {
    let view = RequestHeaders::from_map(&headers);
    if view.session_id.is_none() {
        return method_not_allowed();
    }
    let hash = match session_of(&state, &principal, &view, None).await {
        Ok(hash) => hash,
        Err(response) => return response,
    };
    let stream = Stream {
        stop: state.cancellations.stream_token(Some(&hash)),
        binding: Binding::Session {
            hash,
            grant_id: principal.grant_id.clone(),
        },
        first: None,
        last: None,
    };
    let changes = state.pool.subscribe(&principal.user_id);
    // Only list changes: a shared child's log lines and resource updates cannot
    // be attributed to one session (and neither capability is advertised).
    relay_changes(&state, stream, changes, |notification| {
        let method = notification.get("method").and_then(Value::as_str)?;
        ListKind::of_notification(method).map(|_| notification)
    })
}

async fn delete_mcp(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
) -> Response {
    let view = RequestHeaders::from_map(&headers);
    let Some(session) = session_id(&view) else {
        return method_not_allowed();
    };
    match state
        .store
        .delete_session(&hash_secret(&session), &principal.grant_id)
        .await
    {
        Ok(true) => {
            state.cancellations.end_streams(&hash_secret(&session));
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => wire_error(legacy_error(LegacyProblem::UnknownSession, None)),
        Err(e) => {
            tracing::error!(error = %e, "deleting a session failed");
            pool_error(None, PoolError::Unavailable("store".into()), &state)
        }
    }
}

fn method_not_allowed() -> Response {
    let mut response = json_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &error_response(
            None,
            -32600,
            "Method Not Allowed: open a session with initialize first, or POST 2026-07-28 requests",
            None,
        ),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}
