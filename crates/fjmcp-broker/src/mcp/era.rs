//! Which protocol era a POST speaks, and the 2025-era version rules.
//!
//! One `/mcp` endpoint serves 2025-era clients (an `initialize` handshake,
//! then a session named by `Mcp-Session-Id`) and 2026-07-28 clients (no
//! handshake; every request carries its version and capabilities in
//! `params._meta`). [`classify`] decides which path a body takes, body first,
//! as `basic/versioning.mdx` §Backward Compatibility describes for dual-era
//! servers ("A request carrying modern per-request `_meta` is served
//! statelessly …; an `initialize` request selects legacy semantics"), with the
//! refinements of the TypeScript SDK's inbound classifier, which the
//! conformance suite is written against. In order:
//!
//! 1. A posted **response** is legacy (2025 sessions answer server requests).
//! 2. A **batch** is legacy if no element carries a modern claim; an array
//!    with a claiming element is -32600 (modern requests are single POSTs).
//! 3. **`initialize`** is legacy unless it carries a *valid modern* envelope
//!    (a `protocolVersion` string of the 2026-07-28 era and a
//!    `clientCapabilities` object); only then is it modern, and the modern
//!    path answers it 404 / -32601 like any method it does not define. A
//!    malformed or pre-2026 claim leaves it a handshake. Its
//!    `MCP-Protocol-Version` header is ignored — 2025 revisions define the
//!    header only for requests after `initialize`, and Claude Code has been
//!    seen to send a sticky header from an earlier negotiation (#92835).
//!    (The TypeScript SDK answers an `initialize` with a modern header -32020;
//!    serving the handshake is the more robust choice for a broker whose
//!    legacy clients must keep working.)
//! 4. Any other message whose `params._meta` has the
//!    `io.modelcontextprotocol/protocolVersion` key (whatever its value) is a
//!    **modern claim**: modern, even with a session header. A malformed
//!    envelope behind a claim is a validation error on the modern path
//!    ([`crate::mcp::modern::validate_modern`]), never a silent fall back.
//! 5. No claim but an **`Mcp-Session-Id`** header: legacy. This comes before
//!    rule 6 so that a session client with a stale modern header is still
//!    served.
//! 6. No claim, no session, and an `MCP-Protocol-Version` header naming the
//!    modern era: a **request** is refused 400 / -32602 (the modern envelope is
//!    missing; conformance `sep-2575-request-meta-invalid-missing-meta` and
//!    `…-missing-protocol-version`); a **notification** is modern (notifications
//!    carry no claim of their own; the caller answers 202 and drops it, since
//!    2026-07-28 defines no client notifications over HTTP).
//! 7. Everything else is legacy; a non-`initialize` request without a session
//!    is then the legacy path's 400 "missing session".
//!
//! Decisions on versions:
//!
//! - **Legacy versions served: 2025-11-25, 2025-06-18, 2025-03-26.** Not
//!   2024-11-05: that revision's HTTP transport is HTTP+SSE, which this broker
//!   does not implement, and a client that speaks Streamable HTTP implements
//!   2025-03-26 or later. An `initialize` asking for it (or anything else
//!   unknown) is answered with 2025-11-25, the counter-offer the 2025
//!   lifecycle prescribes ("another protocol version it supports … SHOULD be
//!   the latest"); it is not an error.
//! - **"Modern era" means a `YYYY-MM-DD` revision `>= "2026-07-28"`**
//!   (revision identifiers are ISO dates, so string order is date order), so
//!   a future revision header is recognised as modern without a table. The
//!   TypeScript SDK compares any string lexically, which makes `garbage` or
//!   `v999.0.0` "modern"; requiring the date shape keeps such a header on a
//!   claim-less request on the legacy path, whose header rule answers it 400.
//!   (A body *claim* is modern whatever its value — rule 4 — so a claim of
//!   `v999.0.0` still gets -32022 naming what is supported.)
//! - **The legacy header rule** ([`legacy_header_version`]): absent means
//!   2025-03-26 (2025-06-18 transport: "SHOULD assume"); a supported legacy
//!   version or 2026-07-28 is accepted; anything else is 400. 2026-07-28 is
//!   accepted on legacy traffic because it is a version this server supports
//!   (the 2025 rule only refuses "invalid or unsupported" values) and because
//!   a client with a stale header (#92835) must keep working; the session's
//!   negotiated version, not the header, governs how a legacy request is
//!   served.

use http::StatusCode;
use serde_json::{Value, json};

use super::catalog::{
    DEFAULT_LEGACY_HEADER_VERSION, LEGACY_VERSIONS, MODERN_VERSION, SUPPORTED_MODERN_VERSIONS,
    is_modern_era_version,
};
use super::headers::{self, RequestHeaders};
use super::wire::{Incoming, WireError, codes, meta, params_meta};

/// The two eras.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Era {
    /// `initialize` + `Mcp-Session-Id` (2025-03-26 … 2025-11-25).
    Legacy,
    /// Stateless, per-request `_meta` (2026-07-28).
    Modern,
}

/// Why a POST was routed to the legacy path; the legacy path needs it to
/// decide, e.g., whether a missing session is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LegacyReason {
    /// An `initialize` request: start a session.
    Initialize,
    /// Carries `Mcp-Session-Id` and no modern claim.
    Session,
    /// Neither a claim nor a session header (nor `initialize`): for a request,
    /// the legacy path's 400 "missing session".
    NoClaim,
    /// A JSON-RPC response posted by a client.
    Response,
    /// A batch without modern elements (allowed by 2025-03-26 only).
    Batch,
}

/// Where a POST goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// The 2025-era session path.
    Legacy(LegacyReason),
    /// The 2026-07-28 stateless path (a request still has to pass
    /// [`crate::mcp::modern::validate_modern`]; a notification is answered
    /// 202 and dropped).
    Modern,
}

/// Classifies a parsed POST body (see the module notes for the rules).
/// `Err` is a refusal to send as is: -32600 for a batch with a modern element,
/// -32602 for a request whose header names the modern era but whose body has
/// no envelope claim; both HTTP 400.
pub(crate) fn classify(
    incoming: &Incoming,
    headers: &RequestHeaders<'_>,
) -> Result<Route, WireError> {
    match incoming {
        Incoming::Response(_) => Ok(Route::Legacy(LegacyReason::Response)),
        Incoming::Batch(items) => {
            if items.iter().any(|item| has_claim(message_of(item))) {
                return Err(WireError::invalid_request(
                    None,
                    "a batch may not contain requests for protocol revision 2026-07-28 or later",
                ));
            }
            Ok(Route::Legacy(LegacyReason::Batch))
        }
        Incoming::Request(request) => {
            if request.method == "initialize" {
                return Ok(if has_valid_modern_claim(&request.message) {
                    Route::Modern
                } else {
                    Route::Legacy(LegacyReason::Initialize)
                });
            }
            if has_claim(&request.message) {
                return Ok(Route::Modern);
            }
            if headers.session_id.is_some() {
                return Ok(Route::Legacy(LegacyReason::Session));
            }
            if let Some(version) = modern_header(headers) {
                let missing = if request.meta().is_none() {
                    json!(["_meta"])
                } else {
                    json!([meta::PROTOCOL_VERSION])
                };
                return Err(WireError::new(
                    StatusCode::BAD_REQUEST,
                    codes::INVALID_PARAMS,
                    format!(
                        "Invalid params: the MCP-Protocol-Version header names {version}, but \
                         params._meta lacks the required {}",
                        meta::PROTOCOL_VERSION
                    ),
                )
                .with_id(Some(request.id.clone()))
                .with_data(json!({ "missing": missing })));
            }
            Ok(Route::Legacy(LegacyReason::NoClaim))
        }
        Incoming::Notification(notification) => {
            if has_claim(&notification.message) {
                return Ok(Route::Modern);
            }
            if headers.session_id.is_some() {
                return Ok(Route::Legacy(LegacyReason::Session));
            }
            if modern_header(headers).is_some() {
                return Ok(Route::Modern);
            }
            Ok(Route::Legacy(LegacyReason::NoClaim))
        }
    }
}

/// The raw message of a batch element.
fn message_of(incoming: &Incoming) -> &Value {
    match incoming {
        Incoming::Request(r) => &r.message,
        Incoming::Notification(n) => &n.message,
        Incoming::Response(r) => &r.message,
        // The parser never nests batches; an inner batch has no claim.
        Incoming::Batch(_) => &Value::Null,
    }
}

/// Whether a message claims the per-request envelope: its `params._meta` has
/// the protocol-version key, whatever the value.
fn has_claim(message: &Value) -> bool {
    params_meta(message).is_some_and(|m| m.contains_key(meta::PROTOCOL_VERSION))
}

/// Whether a message carries a well-formed claim naming the modern era: the
/// only kind of claim that makes an `initialize` modern.
fn has_valid_modern_claim(message: &Value) -> bool {
    let Some(meta) = params_meta(message) else {
        return false;
    };
    let version_ok = meta
        .get(meta::PROTOCOL_VERSION)
        .and_then(Value::as_str)
        .is_some_and(is_modern_era_version);
    let capabilities_ok = meta
        .get(meta::CLIENT_CAPABILITIES)
        .is_some_and(Value::is_object);
    version_ok && capabilities_ok
}

/// The `MCP-Protocol-Version` header's value when it names the modern era.
fn modern_header<'h>(headers: &RequestHeaders<'h>) -> Option<&'h str> {
    headers
        .protocol_version
        .and_then(|raw| headers::plain_value(raw).ok())
        .filter(|v| is_modern_era_version(v))
}

/// The 2025-era `MCP-Protocol-Version` rule for a request after `initialize`:
/// the version the request says it speaks, or 400 (see the module notes).
/// `id` is the request's id, for the error body.
pub(crate) fn legacy_header_version(
    header: Option<&[u8]>,
    id: Option<Value>,
) -> Result<&'static str, WireError> {
    let Some(raw) = header else {
        return Ok(DEFAULT_LEGACY_HEADER_VERSION);
    };
    let value = headers::plain_value(raw).unwrap_or("");
    if let Some(known) = LEGACY_VERSIONS.iter().find(|v| **v == value) {
        return Ok(known);
    }
    if value == MODERN_VERSION {
        return Ok(MODERN_VERSION);
    }
    Err(legacy_error(
        LegacyProblem::UnsupportedVersionHeader {
            requested: String::from_utf8_lossy(raw).into_owned(),
        },
        id,
    ))
}

/// Transport-level refusals of the 2025-era path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LegacyProblem {
    /// A non-`initialize` request without `Mcp-Session-Id` (2025 transport:
    /// "SHOULD respond … with HTTP 400").
    MissingSession,
    /// A session id that is unknown or ended (2025 transport: "MUST respond …
    /// with HTTP 404"; clients re-initialize only on 404).
    UnknownSession,
    /// An `MCP-Protocol-Version` this broker does not serve (2025 transport:
    /// "MUST respond with 400 Bad Request").
    UnsupportedVersionHeader {
        /// The header value as sent (lossily decoded), echoed in `data`.
        requested: String,
    },
}

/// The HTTP status and JSON-RPC error for a 2025-era transport refusal.
///
/// The code is -32600 for all of them: clients act on the HTTP status (a 404
/// makes them re-initialize), and 2026-07-28 asks new implementations not to
/// use the legacy `-32000…-32019` codes some SDKs put here.
pub(crate) fn legacy_error(problem: LegacyProblem, id: Option<Value>) -> WireError {
    let (status, message, data) = match problem {
        LegacyProblem::MissingSession => (
            StatusCode::BAD_REQUEST,
            "Bad Request: the Mcp-Session-Id header is required; send initialize first".to_owned(),
            None,
        ),
        LegacyProblem::UnknownSession => (
            StatusCode::NOT_FOUND,
            "Session not found: start a new session with initialize".to_owned(),
            None,
        ),
        LegacyProblem::UnsupportedVersionHeader { requested } => (
            StatusCode::BAD_REQUEST,
            "Bad Request: unsupported MCP-Protocol-Version".to_owned(),
            Some(json!({
                "supported": LEGACY_VERSIONS.iter().chain(SUPPORTED_MODERN_VERSIONS.iter()).collect::<Vec<_>>(),
                "requested": requested,
            })),
        ),
    };
    let error = WireError::new(status, codes::INVALID_REQUEST, message).with_id(id);
    match data {
        Some(data) => error.with_data(data),
        None => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::wire::parse_body;

    const VALID_META: &str = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#;

    fn headers<'a>(pv: Option<&'a str>, session: Option<&'a str>) -> RequestHeaders<'a> {
        RequestHeaders {
            protocol_version: pv.map(str::as_bytes),
            session_id: session.map(str::as_bytes),
            ..RequestHeaders::default()
        }
    }

    #[test]
    fn classification_table() {
        use LegacyReason::*;
        let modern_init = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{{VALID_META}}}}}"#
        );
        let modern_list = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{{VALID_META}}}}}"#
        );
        let legacy_init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}"#;
        let init_with_legacy_claim = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
        let init_with_malformed_claim = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        let claim_non_string = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":7}}}"#;
        let plain_list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        let list_with_other_meta = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"progressToken":1}}}"#;
        let notification = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        let modern_notification = format!(
            r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{{VALID_META}}}}}"#
        );
        let response = r#"{"jsonrpc":"2.0","id":5,"result":{}}"#;
        let legacy_batch =
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","method":"n"}]"#;
        let modern_batch = format!(r#"[{modern_list}]"#);

        let m = Some("2026-07-28");
        let l = Some("2025-11-25");
        let s = Some("session-1");
        // (body, MCP-Protocol-Version, Mcp-Session-Id, expected route or error code)
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            Result<Route, i64>,
        );
        let cases: Vec<Case<'_>> = vec![
            (legacy_init, None, None, Ok(Route::Legacy(Initialize))),
            (legacy_init, m, None, Ok(Route::Legacy(Initialize))),
            (legacy_init, l, s, Ok(Route::Legacy(Initialize))),
            (&modern_init, m, None, Ok(Route::Modern)),
            (&modern_init, None, None, Ok(Route::Modern)),
            (
                init_with_legacy_claim,
                None,
                None,
                Ok(Route::Legacy(Initialize)),
            ),
            (
                init_with_malformed_claim,
                m,
                None,
                Ok(Route::Legacy(Initialize)),
            ),
            (&modern_list, m, None, Ok(Route::Modern)),
            (&modern_list, None, None, Ok(Route::Modern)),
            (&modern_list, l, s, Ok(Route::Modern)),
            (claim_non_string, m, None, Ok(Route::Modern)),
            (plain_list, None, s, Ok(Route::Legacy(Session))),
            (plain_list, m, s, Ok(Route::Legacy(Session))),
            (plain_list, l, s, Ok(Route::Legacy(Session))),
            (plain_list, None, None, Ok(Route::Legacy(NoClaim))),
            (plain_list, l, None, Ok(Route::Legacy(NoClaim))),
            (
                plain_list,
                Some("garbage"),
                None,
                Ok(Route::Legacy(NoClaim)),
            ),
            (plain_list, m, None, Err(codes::INVALID_PARAMS)),
            (
                plain_list,
                Some("v999.0.0"),
                None,
                Ok(Route::Legacy(NoClaim)),
            ),
            (
                plain_list,
                Some("2027-01-01"),
                None,
                Err(codes::INVALID_PARAMS),
            ),
            (list_with_other_meta, m, None, Err(codes::INVALID_PARAMS)),
            (notification, None, None, Ok(Route::Legacy(NoClaim))),
            (notification, None, s, Ok(Route::Legacy(Session))),
            (notification, m, s, Ok(Route::Legacy(Session))),
            (notification, m, None, Ok(Route::Modern)),
            (&modern_notification, None, None, Ok(Route::Modern)),
            (response, None, s, Ok(Route::Legacy(Response))),
            (response, m, None, Ok(Route::Legacy(Response))),
            (legacy_batch, None, s, Ok(Route::Legacy(Batch))),
            (&modern_batch, m, None, Err(codes::INVALID_REQUEST)),
        ];
        for (body, pv, session, expected) in cases {
            let incoming = parse_body(body.as_bytes()).unwrap();
            let got = classify(&incoming, &headers(pv, session));
            match (&got, &expected) {
                (Ok(route), Ok(want)) => assert_eq!(route, want, "{body} pv={pv:?} s={session:?}"),
                (Err(err), Err(code)) => {
                    assert_eq!(err.code, *code, "{body}");
                    assert_eq!(err.status, StatusCode::BAD_REQUEST, "{body}");
                }
                _ => panic!("{body} pv={pv:?} s={session:?}: got {got:?}, want {expected:?}"),
            }
        }
    }

    #[test]
    fn modern_header_without_claim_names_what_is_missing_and_echoes_the_id() {
        let cases = [
            (
                r#"{"jsonrpc":"2.0","id":101,"method":"server/discover","params":{}}"#,
                json!(101),
                json!(["_meta"]),
            ),
            (
                r#"{"jsonrpc":"2.0","id":"x","method":"server/discover"}"#,
                json!("x"),
                json!(["_meta"]),
            ),
            (
                r#"{"jsonrpc":"2.0","id":102,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/clientCapabilities":{}}}}"#,
                json!(102),
                json!([meta::PROTOCOL_VERSION]),
            ),
        ];
        for (body, id, missing) in cases {
            let err = classify(
                &parse_body(body.as_bytes()).unwrap(),
                &headers(Some("2026-07-28"), None),
            )
            .unwrap_err();
            assert_eq!(err.id, Some(id));
            assert_eq!(err.data, Some(json!({ "missing": missing })));
        }
    }

    #[test]
    fn legacy_header_rule() {
        let ok: &[(Option<&[u8]>, &str)] = &[
            (None, "2025-03-26"),
            (Some(b"2025-03-26"), "2025-03-26"),
            (Some(b"2025-06-18"), "2025-06-18"),
            (Some(b" 2025-11-25 "), "2025-11-25"),
            (Some(b"2026-07-28"), "2026-07-28"),
        ];
        for (header, version) in ok {
            assert_eq!(legacy_header_version(*header, None), Ok(*version));
        }
        for header in [&b"2024-11-05"[..], b"", b"garbage", b"2025-11-25\xff"] {
            let err = legacy_header_version(Some(header), Some(json!(4))).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
            assert_eq!(err.id, Some(json!(4)));
            assert!(err.data.unwrap()["supported"].as_array().unwrap().len() == 4);
        }
    }

    #[test]
    fn legacy_errors_use_the_statuses_clients_act_on() {
        let cases = [
            (LegacyProblem::MissingSession, StatusCode::BAD_REQUEST),
            (LegacyProblem::UnknownSession, StatusCode::NOT_FOUND),
            (
                LegacyProblem::UnsupportedVersionHeader {
                    requested: "x".into(),
                },
                StatusCode::BAD_REQUEST,
            ),
        ];
        for (problem, status) in cases {
            let err = legacy_error(problem.clone(), Some(json!("id")));
            assert_eq!(err.status, status, "{problem:?}");
            assert_eq!(err.code, codes::INVALID_REQUEST);
            assert_eq!(err.body()["id"], json!("id"));
        }
    }
}
