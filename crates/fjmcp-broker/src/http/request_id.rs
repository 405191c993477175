//! Request ids (`x-request-id`) and the per-request tracing span.

use http::Request;
use tower_http::request_id::{MakeRequestId, RequestId};

/// Makes a random request id when the client sent none.
#[derive(Clone, Copy, Default)]
pub(crate) struct Random;

impl MakeRequestId for Random {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let id = crate::crypto::random_id();
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
