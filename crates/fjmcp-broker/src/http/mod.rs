//! The HTTP edge: the server loop (connection cap, header-read timeout), the
//! route table, the middleware stack, request screening, rate limits on the
//! anonymous OAuth endpoints and the health endpoints.
//!
//! Every path the broker serves is listed in [`router`]; the handlers live in
//! `oauth`, `mcp` and `account`, each with its own state (see [`AppState`]), and each
//! turns its own errors into responses. This module gives a JSON body to the
//! errors the framework makes itself (unknown path, wrong method, body too
//! large, timeout).

mod errors;
mod health;
mod metrics;
mod rate_limit;
mod request_id;
mod screen;
mod serve;
mod state;

pub(crate) use metrics::metrics_router;
pub(crate) use rate_limit::RateLimits;
pub use serve::serve;
pub use state::{AppState, Routes};

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use http::{HeaderName, StatusCode, header};
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::{account, mcp, oauth};
use rate_limit::Endpoint;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Builds the broker's router: every route the broker serves, and the
/// middleware around them.
pub fn router(state: AppState) -> Router {
    let limits = state.config.http.clone();
    // Anonymous endpoints that write rows or make the broker fetch: rate limited.
    let limited = |endpoint: Endpoint| {
        middleware::from_fn_with_state((state.limits.clone(), endpoint), rate_limit::limit)
    };
    let mcp = Router::new()
        .route(
            "/mcp",
            post(mcp::post_mcp)
                .get(mcp::get_mcp)
                .delete(mcp::delete_mcp),
        )
        // Inner: the bearer check, after screening.
        .route_layer(middleware::from_fn_with_state(
            state.bearer.clone(),
            oauth::bearer::require_bearer,
        ))
        // Outer: Origin and Host first, so a hostile page learns nothing more.
        .route_layer(middleware::from_fn_with_state(
            state.config.clone(),
            screen::screen_mcp,
        ));
    Router::new()
        .merge(mcp)
        .route("/healthz", get(health::liveness))
        .route("/readyz", get(health::readiness))
        .route(
            "/.well-known/oauth-protected-resource",
            get(oauth::protected_resource_handler),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(oauth::protected_resource_handler),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth::authorization_server_handler),
        )
        .route(
            "/.well-known/oauth-authorization-server/mcp",
            get(oauth::authorization_server_handler),
        )
        .route(
            "/oauth/register",
            post(oauth::register).route_layer(limited(Endpoint::Register)),
        )
        .route(
            "/oauth/authorize",
            get(oauth::authorize).route_layer(limited(Endpoint::Authorize)),
        )
        // Forgejo's one redirect URI: account sign-ins and authorizations alike
        // come back here; `account` routes each by its state.
        .route("/oauth/callback", get(account::callback))
        .route("/oauth/consent", post(oauth::consent))
        .route(
            "/oauth/token",
            post(oauth::token).route_layer(limited(Endpoint::Token)),
        )
        .route("/oauth/revoke", post(oauth::revoke))
        .route("/account", get(account::page))
        .route("/account/revoke", post(account::revoke))
        .route("/account/revoke-all", post(account::revoke_all))
        .route("/account/sign-out", post(account::sign_out))
        .fallback(errors::not_found)
        .with_state(state.clone())
        .layer(
            // Outermost first; the order is deliberate.
            ServiceBuilder::new()
                // First, so no later layer (tracing in particular) can ever print credentials.
                .layer(SetSensitiveRequestHeadersLayer::new([
                    header::AUTHORIZATION,
                    header::COOKIE,
                    header::PROXY_AUTHORIZATION,
                ]))
                // Before tracing, so the span carries the id; a client-sent id is kept.
                .layer(SetRequestIdLayer::new(REQUEST_ID, request_id::Sequential))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(request_id::span)
                        // One line per response at info: what operators read first.
                        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                // Inside tracing and outside the error bodies: every response is
                // counted with the status the client got.
                .layer(axum::middleware::from_fn(metrics::record))
                // Outside the timeout and body limit, so the bare errors they produce get
                // a JSON body (and inside tracing, so those responses are logged too).
                .layer(axum::middleware::map_response(errors::json_error_bodies))
                // DNS rebinding: a foreign Host is refused on every route (also unknown
                // paths) before any handler or limit runs; /mcp has its own screen.
                .layer(middleware::from_fn_with_state(
                    state.config.clone(),
                    screen::screen_host,
                ))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    limits.request_timeout,
                ))
                .layer(RequestBodyLimitLayer::new(limits.max_body_bytes)),
        )
}
