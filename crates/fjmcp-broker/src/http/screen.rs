//! The first checks on every request, before authentication: the `Host`
//! header (DNS rebinding) on every route but the health probes, and on `/mcp`
//! also the `Origin` (browsers).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, Uri, header};
use url::Url;

use crate::config::Config;
use crate::mcp::{codes, error_response};

/// Axum middleware for `/mcp`: 403 with an id-less JSON-RPC error when the
/// `Origin` or `Host` is not this broker's (2026-07-28 transport: the body MAY
/// be such an error).
pub(crate) async fn screen_mcp(
    State(config): State<Arc<Config>>,
    request: Request,
    next: Next,
) -> Response {
    match screen(&config, request.headers(), request.uri()) {
        Ok(()) => next.run(request).await,
        Err(refused) => {
            tracing::warn!(?refused, "refused /mcp request: origin or host not allowed");
            let body = error_response(
                None,
                codes::INVALID_REQUEST,
                "Forbidden: origin or host not allowed",
                None,
            );
            (STATUS, axum::Json(body)).into_response()
        }
    }
}

/// Paths the general Host screen leaves alone: `/mcp` is screened by
/// [`screen_mcp`] (with an answer in its own wire format), and health probes
/// of load balancers and orchestrators name the broker by its address.
const NOT_HOST_SCREENED: &[&str] = &["/mcp", "/healthz", "/readyz"];

/// Axum middleware for every route: 403 with a JSON error body when the
/// `Host` is not this broker's, so a DNS-rebinding page cannot drive the
/// OAuth endpoints (or read the discovery documents) from a victim's browser.
pub(crate) async fn screen_host(
    State(config): State<Arc<Config>>,
    request: Request,
    next: Next,
) -> Response {
    if NOT_HOST_SCREENED.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let host = host_of(request.headers(), request.uri());
    if host_allowed(&host, config.public_url.url(), &config.mcp.allowed_hosts) {
        return next.run(request).await;
    }
    tracing::warn!(host, "refused request: host not allowed");
    (
        STATUS,
        axum::Json(serde_json::json!({
            "error": "forbidden",
            "error_description": "host not allowed",
        })),
    )
        .into_response()
}

/// The `Host` a request names (the URI's authority for HTTP/2-style requests).
fn host_of(headers: &HeaderMap, uri: &Uri) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| uri.authority().map(|a| a.to_string()))
        .unwrap_or_default()
}

/// Why a request was screened out: always 403 (spec: an invalid Origin MUST get 403).
#[derive(Debug, PartialEq, Eq)]
enum Screened {
    Origin(String),
    Host(String),
}

/// Checks `Origin` (absent is fine: non-browser clients send none) and `Host`.
fn screen(config: &Config, headers: &HeaderMap, uri: &Uri) -> Result<(), Screened> {
    let public = config.public_url.url();
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("").trim_end_matches('/');
        let own = public.origin().ascii_serialization();
        let allowed = origin == own
            || config.mcp.allowed_origins.iter().any(|o| o == origin)
            || (is_loopback_url(public) && same_loopback_origin(origin, public));
        if !allowed {
            return Err(Screened::Origin(origin.to_string()));
        }
    }
    let host = host_of(headers, uri);
    if !host_allowed(&host, public, &config.mcp.allowed_hosts) {
        return Err(Screened::Host(host));
    }
    Ok(())
}

/// The status every screening failure gets.
const STATUS: StatusCode = StatusCode::FORBIDDEN;

fn is_loopback_url(url: &Url) -> bool {
    url.host()
        .is_some_and(|h| crate::config::is_loopback_host(&h))
}

/// On a loopback deployment `localhost`, `127.0.0.1` and `[::1]` name the same
/// server; the port must still match.
fn same_loopback_origin(origin: &str, public: &Url) -> bool {
    Url::parse(origin).is_ok_and(|o| {
        o.scheme() == public.scheme()
            && is_loopback_url(&o)
            && o.port_or_known_default() == public.port_or_known_default()
    })
}

fn host_allowed(host: &str, public: &Url, extra: &[String]) -> bool {
    // The common case, without parsing: the public URL's own host and port.
    if let Some(own) = public.host_str()
        && let Some(rest) = host.get(..own.len())
        && rest.eq_ignore_ascii_case(own)
    {
        let port = &host[own.len()..];
        let presented = match port.strip_prefix(':') {
            Some(digits) => digits.parse::<u16>().ok(),
            None if port.is_empty() => public.port_or_known_default(),
            None => None,
        };
        if presented.is_some() && presented == public.port_or_known_default() {
            return true;
        }
    }
    let host = host.to_ascii_lowercase();
    if extra.iter().any(|h| h.eq_ignore_ascii_case(&host)) {
        return true;
    }
    let Ok(presented) = Url::parse(&format!("{}://{host}", public.scheme())) else {
        return false;
    };
    if presented.port_or_known_default() != public.port_or_known_default() {
        return false;
    }
    if presented.host() == public.host() {
        return true;
    }
    is_loopback_url(public) && is_loopback_url(&presented)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(url: &str) -> Url {
        Url::parse(url).unwrap()
    }

    #[test]
    fn hosts() {
        let p = public("https://mcp.example.com");
        assert!(host_allowed("mcp.example.com", &p, &[]));
        assert!(host_allowed("MCP.example.com:443", &p, &[]));
        assert!(!host_allowed("evil.example.com", &p, &[]));
        assert!(!host_allowed("mcp.example.com:8443", &p, &[]));
        assert!(!host_allowed("", &p, &[]));
        assert!(host_allowed("internal:8080", &p, &["internal:8080".into()]));
        let local = public("http://127.0.0.1:8080");
        assert!(host_allowed("localhost:8080", &local, &[]));
        assert!(host_allowed("[::1]:8080", &local, &[]));
        assert!(!host_allowed("localhost:9090", &local, &[]));
        assert!(!host_allowed("evil.com:8080", &local, &[]));
    }

    #[test]
    fn loopback_origins() {
        let local = public("http://127.0.0.1:8080");
        assert!(same_loopback_origin("http://localhost:8080", &local));
        assert!(!same_loopback_origin("http://localhost:6274", &local));
        assert!(!same_loopback_origin("http://evil.com:8080", &local));
    }
}
