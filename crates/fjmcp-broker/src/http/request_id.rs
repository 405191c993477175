//! Request ids (`x-request-id`) and the per-request tracing span.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use http::Request;
use tower_http::request_id::{MakeRequestId, RequestId};

/// Makes a request id when the client sent none: a random prefix chosen once
/// per process and a counter, unique across instances and restarts without a
/// call into the operating system's random source per request (ids are for
/// finding log lines, not secrets).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sequential;

/// This process's prefix.
static PREFIX: LazyLock<String> = LazyLock::new(|| crate::crypto::random_id()[..12].to_string());
static NEXT: AtomicU64 = AtomicU64::new(1);

impl MakeRequestId for Sequential {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{n:x}", *PREFIX);
        http::HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// The span every request's log lines carry: method, path and request id.
/// The query string is left out on purpose: OAuth puts codes and state there.
pub(crate) fn span<B>(request: &Request<B>) -> tracing::Span {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %id,
    )
}
