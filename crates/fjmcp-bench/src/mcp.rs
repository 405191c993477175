//! The MCP messages the bench sends, in both eras, and opening a 2025-era session.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::StatusCode;

use crate::load::{self, Call, Connection};

/// The 2025-era protocol version the bench's sessions use.
pub(crate) const LEGACY: &str = "2025-11-25";
/// The stateless protocol version.
pub(crate) const MODERN: &str = "2026-07-28";

pub(crate) const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

const ACCEPT: &str = "application/json, text/event-stream";

/// The `initialize` a client (or the bench, driving the child directly) sends.
pub(crate) fn child_initialize() -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"protocolVersion":"{LEGACY}","capabilities":{{}},"clientInfo":{{"name":"fjmcp-bench","version":"{}"}}}}}}"#,
        env!("CARGO_PKG_VERSION")
    )
}

/// A 2025-era `tools/call` of `echo` with `marker` as its text.
pub(crate) fn echo_call_2025(id: u64, marker: &str) -> String {
    let (prefix, suffix) = echo_parts_2025(marker);
    format!("{prefix}{id}{suffix}")
}

fn echo_parts_2025(marker: &str) -> (String, String) {
    (
        r#"{"jsonrpc":"2.0","id":"#.to_string(),
        format!(
            r#","method":"tools/call","params":{{"name":"echo","arguments":{{"text":"{marker}"}}}}}}"#
        ),
    )
}

fn echo_parts_2026(marker: &str) -> (String, String) {
    (
        r#"{"jsonrpc":"2.0","id":"#.to_string(),
        format!(
            r#","method":"tools/call","params":{{"name":"echo","arguments":{{"text":"{marker}"}},"_meta":{{"io.modelcontextprotocol/protocolVersion":"{MODERN}","io.modelcontextprotocol/clientCapabilities":{{}}}}}}}}"#
        ),
    )
}

/// Where requests go: the `Host` header value (`127.0.0.1:PORT`).
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) host: String,
}

impl Target {
    pub(crate) fn new(addr: std::net::SocketAddr) -> Target {
        Target {
            addr,
            host: addr.to_string(),
        }
    }
}

fn bearer(token: Option<&str>) -> Option<String> {
    token.map(|t| format!("Bearer {t}"))
}

/// A 2025-era `tools/call` in an open session (`token` is absent for supergateway,
/// which has no authorization).
pub(crate) fn session_call(
    target: &Target,
    token: Option<&str>,
    session: &str,
    marker: &str,
) -> Result<Call> {
    let (prefix, suffix) = echo_parts_2025(marker);
    Ok(Call {
        path: "/mcp",
        headers: session_headers(target, token, Some(session))?,
        prefix,
        suffix,
        marker: marker.to_string(),
        expect_result: true,
    })
}

/// A stateless 2026-07-28 `tools/call`.
pub(crate) fn stateless_call(target: &Target, token: &str, marker: &str) -> Result<Call> {
    let auth = format!("Bearer {token}");
    let (prefix, suffix) = echo_parts_2026(marker);
    Ok(Call {
        path: "/mcp",
        headers: load::headers(&[
            ("host", target.host.as_str()),
            ("content-type", "application/json"),
            ("accept", ACCEPT),
            ("authorization", &auth),
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ])?,
        prefix,
        suffix,
        marker: marker.to_string(),
        expect_result: true,
    })
}

/// The HTTP floor's request: the same body as a 2025-era call, echoed back as is.
pub(crate) fn floor_call(target: &Target, marker: &str) -> Result<Call> {
    let (prefix, suffix) = echo_parts_2025(marker);
    Ok(Call {
        path: "/mcp",
        headers: load::headers(&[
            ("host", target.host.as_str()),
            ("content-type", "application/json"),
            ("accept", ACCEPT),
        ])?,
        prefix,
        suffix,
        marker: marker.to_string(),
        expect_result: false,
    })
}

fn session_headers(
    target: &Target,
    token: Option<&str>,
    session: Option<&str>,
) -> Result<http::HeaderMap> {
    let auth = bearer(token);
    let mut pairs = vec![
        ("host", target.host.as_str()),
        ("content-type", "application/json"),
        ("accept", ACCEPT),
    ];
    if let Some(auth) = &auth {
        pairs.push(("authorization", auth));
    }
    if let Some(session) = session {
        pairs.push(("mcp-session-id", session));
        pairs.push(("mcp-protocol-version", LEGACY));
    }
    load::headers(&pairs)
}

/// Opens a 2025-era session with `initialize` and returns its `Mcp-Session-Id`.
pub(crate) async fn initialize(
    connection: &mut Connection,
    target: &Target,
    token: Option<&str>,
) -> Result<String> {
    let reply = connection
        .post(
            "/mcp",
            &session_headers(target, token, None)?,
            Bytes::from(child_initialize()),
        )
        .await?;
    if reply.status != StatusCode::OK || !load::contains(&reply.body, b"\"result\"") {
        bail!("initialize failed: {}", reply.snippet());
    }
    Ok(reply
        .headers
        .get("mcp-session-id")
        .context("initialize answered without Mcp-Session-Id")?
        .to_str()?
        .to_string())
}

/// `notifications/initialized` in `session`, as a client sends after `initialize`.
pub(crate) async fn initialized(
    connection: &mut Connection,
    target: &Target,
    token: Option<&str>,
    session: &str,
) -> Result<()> {
    let reply = connection
        .post(
            "/mcp",
            &session_headers(target, token, Some(session))?,
            Bytes::from(INITIALIZED),
        )
        .await?;
    if reply.status != StatusCode::ACCEPTED {
        bail!("notifications/initialized refused: {}", reply.snippet());
    }
    Ok(())
}

/// Sends one 2026-07-28 `tools/call` and checks the answer (a user's first request,
/// or waking their child).
pub(crate) async fn one_stateless_call(
    connection: &mut Connection,
    target: &Target,
    token: &str,
    marker: &str,
) -> Result<()> {
    let call = stateless_call(target, token, marker)?;
    let (prefix, suffix) = (&call.prefix, &call.suffix);
    let reply = connection
        .post(
            call.path,
            &call.headers,
            Bytes::from(format!("{prefix}1{suffix}")),
        )
        .await?;
    if reply.status == StatusCode::OK
        && load::contains(&reply.body, marker.as_bytes())
        && load::contains(&reply.body, b"\"result\"")
    {
        Ok(())
    } else {
        bail!("tools/call failed: {}", reply.snippet())
    }
}
