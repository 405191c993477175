//! Error responses that no handler wrote (unknown path, wrong method, body too
//! large, timeout) get a JSON body, so clients always have something to parse.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use serde_json::json;

/// 404 for any path the broker does not serve.
pub(crate) async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// A JSON error body: `{"error": code, "error_description": text}`, the same
/// shape OAuth uses, so one parser fits every broker error.
fn json_error(status: StatusCode, code: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": code, "error_description": description })),
    )
        .into_response()
}

/// Replaces the plain-text or empty body of an error response made by a
/// framework layer with a JSON one. Responses whose handler set a content type
/// other than text/plain (JSON, HTML pages, event streams) pass untouched.
pub(crate) async fn json_error_bodies<B>(response: Response<B>) -> Response
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let response = response.map(Body::new);
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let plain = match response.headers().get(header::CONTENT_TYPE) {
        None => true,
        Some(value) => value.as_bytes().starts_with(b"text/plain"),
    };
    if !plain {
        return response;
    }
    let (code, description) = match status {
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "method not allowed here"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "request body is too large"),
        StatusCode::REQUEST_TIMEOUT => ("request_timeout", "request took too long"),
        StatusCode::NOT_FOUND => ("not_found", "no such endpoint"),
        s if s.is_server_error() => ("server_error", "internal error"),
        _ => ("invalid_request", "the request could not be processed"),
    };
    let (mut parts, body) = json_error(status, code, description).into_parts();
    // Keep headers the framework set for a reason (Allow on 405, for instance).
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            parts.headers.entry(name).or_insert(value.clone());
        }
    }
    Response::from_parts(parts, body)
}
