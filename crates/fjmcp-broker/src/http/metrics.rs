//! Recording HTTP requests for the metrics, and the `/metrics` endpoint,
//! served on the metrics listener only (never on the public one).

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};

use crate::metrics::metrics;
use crate::store::Store;

/// Every route the broker serves, as the metrics name it (fixed values only).
const ROUTES: &[&str] = &[
    "/mcp",
    "/healthz",
    "/readyz",
    "/.well-known/oauth-protected-resource",
    "/.well-known/oauth-protected-resource/mcp",
    "/.well-known/oauth-authorization-server",
    "/.well-known/oauth-authorization-server/mcp",
    "/oauth/register",
    "/oauth/authorize",
    "/oauth/callback",
    "/oauth/consent",
    "/oauth/token",
    "/oauth/revoke",
];

fn route_label(request: &Request) -> &'static str {
    let Some(matched) = request.extensions().get::<MatchedPath>() else {
        return "unmatched";
    };
    ROUTES
        .iter()
        .find(|route| **route == matched.as_str())
        .copied()
        .unwrap_or("other")
}

/// Middleware: counts the response by route and status class, and times it.
pub(super) async fn record(request: Request, next: Next) -> Response {
    let route = route_label(&request);
    let started = tokio::time::Instant::now();
    let response = next.run(request).await;
    metrics().http_request(route, response.status().as_u16(), started.elapsed());
    response
}

/// The router of the metrics listener: `GET /metrics`.
pub(crate) fn metrics_router(store: Store) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(store)
}

async fn scrape(State(store): State<Store>) -> Response {
    // Sessions live in the store (every instance's); count them at the scrape.
    match store.count_live_sessions().await {
        Ok(live) => metrics().set_sessions(live),
        Err(e) => tracing::warn!(error = %e, "metrics: cannot count sessions"),
    }
    let mut response = (StatusCode::OK, metrics().encode()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
