//! The `/mcp` handlers: HTTP in, the pure wire rules of this module's siblings,
//! the user's child through the pool, JSON or SSE out.
//!
//! The router ([`crate::http`]) screens Origin and Host and checks the bearer
//! token before these handlers run. Then, on every POST: body → era → the era's
//! own rules → admission to the user's child (started if needed; caps) → only
//! then the choice between a JSON answer and a stream. Every failure is an
//! [`McpError`], turned into the client's answer in one place
//! ([`McpError::into_response`] before a response has started,
//! [`McpError::message`] inside a stream).

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::cancellations::{InFlightGuard, StreamCaps, TooManyStreams};
use super::catalog::{is_legacy_forwarded, negotiate_legacy_version};
use super::decorate::{
    broker_server_info, child_server_info, decorate_result, discover_result, forwarded_status,
    legacy_initialize_result,
};
use super::era::{
    LegacyProblem, LegacyReason, Route, classify, legacy_error, legacy_header_version,
};
use super::error::{McpError, json_response};
use super::headers::{RequestHeaders, SESSION_ID};
use super::modern::{ModernAction, strip_modern_meta, validate_modern};
use super::sse::{self, Accepts};
use super::state::McpState;
use super::streams::{Binding, Stream, relay_changes};
use super::subscriptions::{ListKind, ack_subscription, subscription_closed, tag_for_subscription};
use super::wire::{
    Incoming, RpcRequest, WireError, codes, error_response, parse_body, result_response,
};
use crate::children::Lease;
use crate::clock::seconds;
use crate::credentials::Credential;
use crate::crypto::{SecretHash, hash_secret, mint_secret};
use crate::oauth::Principal;

/// Prefix of the broker's session ids.
const SESSION_PREFIX: &str = "fjms_";

/// How long a client at the per-user session cap should wait before retrying.
const SESSION_CAP_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(60);
/// How long a client at a stream cap should wait before retrying.
const STREAM_CAP_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// A failure and the id of the request it answers.
#[derive(Debug)]
struct Refused {
    id: Option<Value>,
    error: McpError,
}

/// The outcome of one `/mcp` request before it becomes a response.
type Answer = Result<Response, Refused>;

/// Attaches the request id to a failure, so the edge can answer it.
trait ForRequest<T> {
    fn for_request(self, id: &Option<Value>) -> Result<T, Refused>;
}

impl<T, E: Into<McpError>> ForRequest<T> for Result<T, E> {
    fn for_request(self, id: &Option<Value>) -> Result<T, Refused> {
        self.map_err(|e| Refused {
            id: id.clone(),
            error: e.into(),
        })
    }
}

/// The one edge: a refusal becomes its HTTP answer here.
fn answer(state: &McpState, outcome: Answer) -> Response {
    outcome.unwrap_or_else(|refused| {
        refused
            .error
            .into_response(refused.id, &state.config.public_url)
    })
}

fn accepted() -> Response {
    StatusCode::ACCEPTED.into_response()
}

/// `POST /mcp`.
pub(crate) async fn post_mcp(
    State(state): State<McpState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let outcome = post(&state, &principal, &headers, &body).await;
    answer(&state, outcome)
}

async fn post(state: &McpState, principal: &Principal, headers: &HeaderMap, body: &[u8]) -> Answer {
    let view = RequestHeaders::from_map(headers);
    let incoming = parse_body(body).for_request(&None)?;
    let route = classify(&incoming, &view).for_request(&None)?;
    record(route, &incoming);
    let accepts = Accepts::of(headers);
    match (route, incoming) {
        (Route::Modern, Incoming::Request(request)) => {
            modern(state, principal, &view, request, accepts).await
        }
        (Route::Modern, _) => Ok(accepted()),
        (Route::Legacy(reason), incoming) => {
            legacy(state, principal, &view, reason, incoming, accepts).await
        }
    }
}

/// Admits a session start (`initialize`, `server/discover`) after checking the
/// user's Forgejo token: a user who revoked the broker in Forgejo is sent to
/// sign in now, not served by a live child holding a token that no longer works.
async fn start_session(
    state: &McpState,
    principal: &Principal,
    id: &Option<Value>,
) -> Result<Lease, Refused> {
    let checked = check_session_start(state, principal, id).await?;
    state
        .pool
        .admit(&principal.user_id, checked)
        .await
        .for_request(id)
}

/// A session start's check of the user's Forgejo token; the credential it
/// returns serves a child started for this request.
async fn check_session_start(
    state: &McpState,
    principal: &Principal,
    id: &Option<Value>,
) -> Result<Option<Credential>, Refused> {
    state
        .credentials
        .check_session_start(&principal.user_id)
        .await
        .for_request(id)
}

/// Counts the message by era and method class (fixed label values).
fn record(route: Route, incoming: &Incoming) {
    let era = match route {
        Route::Modern => "2026-07-28",
        Route::Legacy(_) => "2025",
    };
    let class = match incoming {
        Incoming::Request(request) => method_class(&request.method),
        Incoming::Notification(_) => "notification",
        Incoming::Response(_) => "response",
        Incoming::Batch(_) => "batch",
    };
    crate::metrics::metrics().mcp_request(era, class);
}

fn method_class(method: &str) -> &'static str {
    match method.split('/').next().unwrap_or("") {
        "initialize" => "initialize",
        "tools" => "tools",
        "resources" => "resources",
        "prompts" => "prompts",
        "completion" => "completion",
        "server" => "discover",
        "subscriptions" => "listen",
        "ping" => "ping",
        "logging" => "logging",
        "tasks" => "tasks",
        _ => "other",
    }
}

/// The serverInfo to name in results: the child's, or the broker's own.
fn server_info_of(lease: &Lease) -> Value {
    child_server_info(lease.initialize_result())
        .cloned()
        .unwrap_or_else(broker_server_info)
}

async fn modern(
    state: &McpState,
    principal: &Principal,
    view: &RequestHeaders<'_>,
    request: RpcRequest,
    accepts: Accepts,
) -> Answer {
    let id = Some(request.id.clone());
    let valid = validate_modern(&request, view).for_request(&id)?;
    let lease = if valid.action == ModernAction::Discover {
        // A stateless client's session start.
        start_session(state, principal, &id).await?
    } else {
        state
            .pool
            .admit(&principal.user_id, None)
            .await
            .for_request(&id)?
    };
    let server_info = server_info_of(&lease);
    match valid.action {
        ModernAction::Discover => Ok(json_response(
            StatusCode::OK,
            &result_response(
                valid.id,
                discover_result(lease.initialize_result(), &server_info),
            ),
        )),
        ModernAction::Listen => {
            let init = lease.initialize_result().clone();
            // A listen stream is not a request in flight on the child.
            drop(lease);
            listen(state, principal, &request, &init, server_info).for_request(&id)
        }
        ModernAction::Forward => {
            let method = valid.method.clone();
            let message = strip_modern_meta(request.message);
            forward(state, lease, message, accepts, None, move |response| {
                let decorated = decorate_result(&method, response, &server_info);
                (forwarded_status(&decorated), decorated)
            })
            .await
        }
    }
}

fn has_progress_token(message: &Value) -> bool {
    message
        .pointer("/params/_meta/progressToken")
        .is_some_and(|t| t.is_string() || t.is_number())
}

/// A 2025-era request the client may cancel with `notifications/cancelled`,
/// registered for as long as it runs.
type Cancellable = (CancellationToken, InFlightGuard);

/// Sends `message` on the admitted child and answers with JSON, or with SSE
/// carrying its progress notifications first. `finish` shapes the child's
/// response for the client's era. Closing the stream (or the connection)
/// drops the call, which cancels it at the child.
async fn forward(
    state: &McpState,
    lease: Lease,
    message: Value,
    accepts: Accepts,
    cancellable: Option<Cancellable>,
    finish: impl Fn(Value) -> (StatusCode, Value) + Send + 'static,
) -> Answer {
    let id = message.get("id").cloned();
    if !accepts.stream(has_progress_token(&message)) {
        let call = lease.call(message, None);
        let outcome = match &cancellable {
            Some((cancel, _)) => tokio::select! {
                outcome = call => outcome.map_err(McpError::from),
                () = cancel.cancelled() => Err(McpError::Cancelled),
            },
            None => call.await.map_err(McpError::from),
        };
        let response = outcome.for_request(&id)?;
        let (status, body) = finish(response);
        return Ok(json_response(status, &body));
    }
    Ok(sse::respond(&state.tasks, move |out| async move {
        let (cancel, _registered) = cancellable.unzip();
        let cancel = cancel.unwrap_or_default();
        let (events_tx, mut events_rx) = mpsc::channel::<Value>(64);
        let call = lease.call(message, Some(events_tx));
        tokio::pin!(call);
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
            Err(e) => McpError::from(e).message(id),
        };
        let _ = out.send(sse::event(&body)).await;
    }))
}

/// `subscriptions/listen`: acknowledge what the broker relays, then relay the
/// user's list changes, tagged, with keep-alives, until the client hangs up.
fn listen(
    state: &McpState,
    principal: &Principal,
    request: &RpcRequest,
    init: &Value,
    server_info: Value,
) -> Result<Response, McpError> {
    let open = open_stream(state, principal, None)?;
    let capabilities = init.get("capabilities").cloned().unwrap_or(Value::Null);
    let (filter, ack) = ack_subscription(request, &capabilities);
    let subscription_id = request.id.clone();
    let stream = Stream {
        binding: Binding::Grant(principal.grant_id.clone()),
        open,
        first: Some(ack),
        // The spec's graceful end of a subscription, when the broker ends it.
        last: Some(subscription_closed(&subscription_id, &server_info)),
    };
    let changes = state.pool.subscribe(&principal.user_id);
    Ok(relay_changes(state, stream, changes, move |notification| {
        let method = notification
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("");
        filter
            .accepts(method)
            .then(|| tag_for_subscription(notification, &subscription_id))
    }))
}

/// A slot for a long-lived stream of the caller, or 503 with `Retry-After`
/// when their grant or user has as many open as allowed.
fn open_stream(
    state: &McpState,
    principal: &Principal,
    session: Option<&SecretHash>,
) -> Result<super::cancellations::OpenStream, McpError> {
    let caps = StreamCaps {
        per_grant: state.config.mcp.max_streams_per_grant,
        per_user: state.config.mcp.max_streams_per_user,
    };
    state
        .cancellations
        .open_stream(&principal.grant_id, &principal.user_id, session, caps)
        .map_err(|full| {
            let whose = match full {
                TooManyStreams::Grant => "this authorization",
                TooManyStreams::User => "this user",
            };
            tracing::warn!(user_id = %principal.user_id, whose, "stream cap reached");
            McpError::Unavailable {
                message: format!("{whose} has too many open streams; close one or retry later"),
                retry_after: STREAM_CAP_RETRY_AFTER,
            }
        })
}

fn session_id(view: &RequestHeaders<'_>) -> Option<String> {
    view.session_id
        .and_then(|raw| std::str::from_utf8(raw).ok())
        .map(str::to_string)
}

/// The caller's live session named by the request (400 without one, 404 for
/// one that is unknown, ended or another grant's).
async fn session_of(
    state: &McpState,
    principal: &Principal,
    view: &RequestHeaders<'_>,
) -> Result<SecretHash, McpError> {
    let Some(session) = session_id(view) else {
        return Err(legacy_error(LegacyProblem::MissingSession, None).into());
    };
    let hash = hash_secret(&session);
    match state.sessions.touch(&hash).await {
        // A session of another grant is not this caller's: as if it did not exist.
        Ok(Some(grant_id)) if grant_id == principal.grant_id => Ok(hash),
        Ok(_) => Err(legacy_error(LegacyProblem::UnknownSession, None).into()),
        Err(e) => Err(McpError::store(&e)),
    }
}

async fn legacy(
    state: &McpState,
    principal: &Principal,
    view: &RequestHeaders<'_>,
    reason: LegacyReason,
    incoming: Incoming,
    accepts: Accepts,
) -> Answer {
    match (reason, incoming) {
        (LegacyReason::Initialize, Incoming::Request(request)) => {
            initialize(state, principal, request, accepts).await
        }
        (LegacyReason::Batch, _) => Err(WireError::invalid_request(
            None,
            "batches are not supported; send one message per request",
        ))
        .for_request(&None),
        (LegacyReason::NoClaim, Incoming::Request(request)) => {
            Err(legacy_error(LegacyProblem::MissingSession, None)).for_request(&Some(request.id))
        }
        (_, Incoming::Request(request)) => {
            let id = Some(request.id.clone());
            let session = session_of(state, principal, view).await.for_request(&id)?;
            legacy_header_version(view.protocol_version, None).for_request(&id)?;
            match request.method.as_str() {
                // Answered by the broker: the child's liveness is the pool's business,
                // and its log level is not the client's to set.
                "ping" | "logging/setLevel" => Ok(json_response(
                    StatusCode::OK,
                    &result_response(request.id, json!({})),
                )),
                method if !is_legacy_forwarded(method) => Ok(json_response(
                    StatusCode::OK,
                    &error_response(
                        id,
                        codes::METHOD_NOT_FOUND,
                        &format!("Method not found: {method}"),
                        None,
                    ),
                )),
                _ => {
                    let lease = state
                        .pool
                        .admit(&principal.user_id, None)
                        .await
                        .for_request(&id)?;
                    let cancellable = state.cancellations.register(&session, &request.id);
                    forward(
                        state,
                        lease,
                        request.message,
                        accepts,
                        Some(cancellable),
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
            Ok(accepted())
        }
        // Answers to server requests: the broker sends none, so there is nothing to route.
        (_, _) => Ok(accepted()),
    }
}

async fn initialize(
    state: &McpState,
    principal: &Principal,
    request: RpcRequest,
    accepts: Accepts,
) -> Answer {
    let id = Some(request.id.clone());
    let checked = check_session_start(state, principal, &id).await?;
    let requested = request
        .message
        .pointer("/params/protocolVersion")
        .and_then(Value::as_str);
    let negotiated = negotiate_legacy_version(requested);
    let session = mint_secret(SESSION_PREFIX);
    let hash = hash_secret(&session);
    let idle = seconds(state.config.mcp.session_idle_timeout);
    // Counting and creating are one step in the store: concurrent initializes
    // cannot overshoot the cap.
    let cap = i64::try_from(state.config.mcp.max_sessions_per_user).unwrap_or(i64::MAX);
    let epoch = state.sessions.epoch();
    // The session's row does not depend on the child: a new user's first
    // answer waits for the slower of the two (the child's start), not both.
    let (admitted, created) = tokio::join!(
        state.pool.admit(&principal.user_id, checked),
        state.store.create_session_capped(
            &hash,
            &principal.grant_id,
            &principal.user_id,
            negotiated,
            idle,
            cap,
        ),
    );
    let lease = match admitted {
        Ok(lease) => lease,
        Err(refusal) => {
            if let Ok(true) = created {
                // Never handed out; it must not count towards the user's cap.
                if let Err(e) = state.store.delete_session(&hash, &principal.grant_id).await {
                    tracing::warn!(error = %e, "could not remove the session of a refused initialize");
                }
            }
            return Err(refusal).for_request(&id);
        }
    };
    let result = legacy_initialize_result(lease.initialize_result(), negotiated);
    drop(lease);
    let created = created.map_err(|e| McpError::store(&e)).for_request(&id)?;
    if !created {
        return Err(McpError::Unavailable {
            message: "this user has too many open sessions; end one (DELETE) or retry later".into(),
            retry_after: SESSION_CAP_RETRY_AFTER,
        })
        .for_request(&id);
    }
    state
        .sessions
        .created(&hash, principal.grant_id.clone(), epoch);
    let body = result_response(request.id, result);
    let mut response = if accepts.stream(false) {
        sse::respond(&state.tasks, move |out| async move {
            let _ = out.send(sse::event(&body)).await;
        })
    } else {
        json_response(StatusCode::OK, &body)
    };
    if let Ok(value) = HeaderValue::from_str(&session) {
        response.headers_mut().insert(SESSION_ID, value);
    }
    Ok(response)
}

/// `GET /mcp`: a 2025-era session's standalone stream.
pub(crate) async fn get_mcp(
    State(state): State<McpState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
) -> Response {
    let outcome = get(&state, &principal, &headers).await;
    answer(&state, outcome)
}

async fn get(state: &McpState, principal: &Principal, headers: &HeaderMap) -> Answer {
    let view = RequestHeaders::from_map(headers);
    if view.session_id.is_none() {
        return Ok(method_not_allowed());
    }
    let hash = session_of(state, principal, &view)
        .await
        .for_request(&None)?;
    let open = open_stream(state, principal, Some(&hash)).for_request(&None)?;
    let stream = Stream {
        open,
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
    Ok(relay_changes(state, stream, changes, |notification| {
        let method = notification.get("method").and_then(Value::as_str)?;
        ListKind::of_notification(method).map(|_| notification)
    }))
}

/// `DELETE /mcp`: ends a 2025-era session.
pub(crate) async fn delete_mcp(
    State(state): State<McpState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
) -> Response {
    let outcome = delete(&state, &principal, &headers).await;
    answer(&state, outcome)
}

async fn delete(state: &McpState, principal: &Principal, headers: &HeaderMap) -> Answer {
    let view = RequestHeaders::from_map(headers);
    let Some(session) = session_id(&view) else {
        return Ok(method_not_allowed());
    };
    let hash = hash_secret(&session);
    let deleted = state
        .store
        .delete_session(&hash, &principal.grant_id)
        .await
        .map_err(|e| McpError::store(&e))
        .for_request(&None)?;
    state.sessions.forget(&hash);
    if !deleted {
        return Err(legacy_error(LegacyProblem::UnknownSession, None)).for_request(&None);
    }
    state.cancellations.end_streams(&hash);
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn method_not_allowed() -> Response {
    let mut response = json_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &error_response(
            None,
            codes::INVALID_REQUEST,
            "Method Not Allowed: open a session with initialize first, or POST 2026-07-28 requests",
            None,
        ),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}
