//! Liveness and readiness, for load balancers and orchestrators.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;

use crate::store::Store;
use crate::version;

/// How long readiness waits for the store before calling it down.
const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// 200 whenever the process can answer: it says nothing about dependencies.
pub(crate) async fn liveness() -> Response {
    Json(json!({
        "status": "ok",
        "version": version::VERSION,
        "git_revision": version::GIT_REVISION,
    }))
    .into_response()
}

/// 200 when the store answers, 503 naming what failed otherwise.
pub(crate) async fn readiness(State(store): State<Store>) -> Response {
    let backend = store.backend().name();
    let store = match tokio::time::timeout(STORE_CHECK_TIMEOUT, store.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: store check failed");
            Err("store did not answer the check query")
        }
        Err(_) => {
            tracing::warn!("readiness: store check timed out");
            Err("store check timed out")
        }
    };
    match store {
        Ok(()) => Json(json!({
            "status": "ready",
            "checks": { "store": { "ok": true, "backend": backend } },
        }))
        .into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "unavailable",
                "failed": ["store"],
                "checks": { "store": { "ok": false, "backend": backend, "error": why } },
            })),
        )
            .into_response(),
    }
}
