//! The 2026-07-28 request ladder: what a modern request must carry before the
//! broker answers it or forwards it, and how it is rewritten for the 2025-era
//! child.
//!
//! # Precedence
//!
//! [`validate_modern`] checks, in this order, and answers with the first
//! failure:
//!
//! 1. `_meta["io.modelcontextprotocol/protocolVersion"]` is present and a
//!    string — 400 / -32602 (nothing below can be compared without it).
//! 2. `MCP-Protocol-Version` is present, readable and equal to that claim —
//!    400 / -32020 `HeaderMismatch`.
//! 3. The claimed version is one this broker implements — 400 / -32022 with
//!    `data: {supported: ["2026-07-28"], requested}`.
//! 4. `Mcp-Method` is present, readable and equal to `method` — 400 / -32020.
//! 5. For `tools/call`, `prompts/get` (`params.name`) and `resources/read`
//!    (`params.uri`): `Mcp-Name` is present when the body has the value,
//!    decodes (Base64 sentinel) and equals it — 400 / -32020.
//! 6. The rest of the envelope: `clientCapabilities` is an object,
//!    `clientInfo` (optional) is an object, `logLevel` (optional) is one of
//!    the eight syslog levels — 400 / -32602.
//! 7. The method exists in 2026-07-28 and this broker serves it — otherwise
//!    404 / -32601 (also for the removed `initialize`, `ping`,
//!    `logging/setLevel`, `resources/subscribe`, `resources/unsubscribe`).
//!
//! Evidence: the specification fixes the codes and statuses but not the
//! order. The conformance suite (`server-stateless`, `http-header-validation`)
//! always breaks exactly one rung per probe and sends every other header and
//! field conformantly (its `buildStandardHeaders`/`withRequestMeta` exist for
//! that, issue #312), so any order passes it; the probe it is easiest to get
//! wrong is `sep-2575-http-server-header-mismatch-400` — header
//! `2026-07-28`, body claim `v999.0.0` — which must be -32020, not -32022, so
//! rung 2 must precede rung 3. Beyond that the order follows the brief and
//! one principle: a rule is applied only once the version whose rule it is is
//! known, so the protocol-version header and version come first, then the
//! other 2026-07-28 header rules, then the 2026-07-28 envelope fields. The
//! TypeScript SDK answers differently only when two rungs fail at once (it
//! validates the whole envelope before the headers, and a *missing*
//! `MCP-Protocol-Version` or `Mcp-Method` after the version check); no
//! conformance check depends on that.
//!
//! # Methods
//!
//! Forwarded to the child: the client requests of the 2026-07-28 schema that
//! a 2025-era server also implements — `tools/list`, `tools/call`,
//! `resources/list`, `resources/templates/list`, `resources/read`,
//! `prompts/list`, `prompts/get`, `completion/complete`. Answered by the
//! broker: `server/discover`, `subscriptions/listen`. Not served (404):
//! everything else, including `tasks/*`: 2026-07-28 moved tasks to the
//! `io.modelcontextprotocol/tasks` extension with different methods
//! (`tasks/get` polling, `tasks/update`, no `tasks/list`) that a 2025-era
//! child does not implement, so forwarding them would be a lie; the broker
//! does not advertise the extension either.
//!
//! `Mcp-Param-{Name}` headers are not validated: that needs the tool's
//! `inputSchema` (its `x-mcp-header` annotations), which this pure ladder does
//! not have, and neither forgejo-mcp nor the fixture child declares any
//! (the suite's `http-custom-header-server-validation` is pending). A broker
//! that relays a child declaring them must add that rung (a MUST for servers
//! that process the body); [`headers::decode_mcp_value`] already implements
//! the value encoding.
//!
//! # What the child sees
//!
//! [`strip_modern_meta`] removes `protocolVersion`, `clientInfo` and
//! `logLevel` from `params._meta` and keeps `clientCapabilities` and every
//! other key (`progressToken`, trace context, vendor keys):
//!
//! - `protocolVersion` must go: it is the modern claim, and a dual-era child
//!   would serve a request carrying it statelessly instead of within the
//!   2025 session the broker opened.
//! - `clientInfo` is the client's self-description for display; the child
//!   already has the broker's from `initialize`.
//! - `logLevel` goes because the broker, not the child, decides what reaches
//!   the client: a 2026-07-28 server "MUST NOT deliver" `notifications/message`
//!   on any stream but the one of the request that asked, and a log line from
//!   a child shared by concurrent requests cannot be attributed to one of
//!   them, so the broker relays no child logs to modern clients (and does not
//!   advertise `logging`). Forwarding the level would only make the child
//!   produce logs that are dropped. The level is still validated.
//! - `clientCapabilities` stays: it is what the client declared *for this
//!   request*, and "a server MUST NOT rely on capabilities the client has not
//!   declared". The child was initialized with empty capabilities; a child
//!   that reads the per-request key (the fixture child, any dual-era child)
//!   can then refuse with -32021 exactly when the client lacks a capability
//!   (conformance `sep-2575-server-rejects-undeclared-capability`), and a
//!   2025-era child ignores an unknown `_meta` key, as `_meta` is open.

use http::StatusCode;
use serde_json::{Map, Value, json};

use super::catalog::{
    DISCOVER, FORWARDED_METHODS, LISTEN, REMOVED_METHODS, SUPPORTED_MODERN_VERSIONS,
    is_supported_modern_version,
};
use super::headers::{self, RequestHeaders};
use super::wire::{RpcRequest, WireError, codes, meta};

/// `_meta` keys removed before a modern request goes to the child (see the
/// module notes).
const STRIPPED_META_KEYS: [&str; 3] = [meta::PROTOCOL_VERSION, meta::CLIENT_INFO, meta::LOG_LEVEL];

/// The syslog severities a request may ask logs for (RFC 5424 names, as the
/// schema's string union spells them).
const LOG_LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// What the broker does with a valid modern request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ModernAction {
    /// Answer `server/discover` locally.
    Discover,
    /// Open a `subscriptions/listen` stream locally.
    Listen,
    /// Forward to the child (after [`strip_modern_meta`]).
    Forward,
}

/// A 2026-07-28 request that passed [`validate_modern`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ModernRequest {
    /// The request id, echoed on the response.
    pub id: Value,
    /// The method.
    pub method: String,
    /// Where it goes.
    pub action: ModernAction,
}

/// The body field `Mcp-Name` mirrors for `method`, if any.
fn mcp_name_source(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

/// Runs the 2026-07-28 ladder on a request the classifier routed to the
/// modern path (see the module notes for the order). Every error carries the
/// request id.
pub(crate) fn validate_modern(
    request: &RpcRequest,
    headers: &RequestHeaders<'_>,
) -> Result<ModernRequest, WireError> {
    let id = Some(request.id.clone());
    let invalid_params = |message: String| {
        WireError::new(StatusCode::BAD_REQUEST, codes::INVALID_PARAMS, message).with_id(id.clone())
    };
    let mismatch = |message: String| {
        WireError::new(StatusCode::BAD_REQUEST, codes::HEADER_MISMATCH, message).with_id(id.clone())
    };
    let empty = Map::new();
    let meta = request.meta().unwrap_or(&empty);

    // 1. The claim itself.
    let claimed = match meta.get(meta::PROTOCOL_VERSION) {
        Some(Value::String(v)) => v.as_str(),
        Some(_) => {
            return Err(invalid_params(format!(
                "Invalid params: _meta[\"{}\"] must be a string",
                meta::PROTOCOL_VERSION
            )));
        }
        None => {
            return Err(invalid_params(format!(
                "Invalid params: _meta[\"{}\"] is required",
                meta::PROTOCOL_VERSION
            )));
        }
    };

    // 2. MCP-Protocol-Version header against the claim.
    let Some(raw) = headers.protocol_version else {
        return Err(mismatch(
            "Header mismatch: the MCP-Protocol-Version header is required".into(),
        ));
    };
    let header_version = headers::plain_value(raw).map_err(|e| {
        mismatch(format!(
            "Header mismatch: the MCP-Protocol-Version header {e}"
        ))
    })?;
    if header_version != claimed {
        return Err(mismatch(format!(
            "Header mismatch: MCP-Protocol-Version header value '{}' does not match body value \
             '{}'",
            quote(header_version),
            quote(claimed)
        )));
    }

    // 3. A version this broker implements.
    if !is_supported_modern_version(claimed) {
        return Err(WireError::new(
            StatusCode::BAD_REQUEST,
            codes::UNSUPPORTED_PROTOCOL_VERSION,
            "Unsupported protocol version",
        )
        .with_id(id.clone())
        .with_data(json!({
            "supported": SUPPORTED_MODERN_VERSIONS,
            "requested": claimed,
        })));
    }

    // 4. Mcp-Method against method.
    let method = request.method.as_str();
    let Some(raw) = headers.method else {
        return Err(mismatch(
            "Header mismatch: the Mcp-Method header is required".into(),
        ));
    };
    let header_method = headers::plain_value(raw)
        .map_err(|e| mismatch(format!("Header mismatch: the Mcp-Method header {e}")))?;
    if header_method != method {
        return Err(mismatch(format!(
            "Header mismatch: Mcp-Method header value '{}' does not match body value '{}'",
            quote(header_method),
            quote(method)
        )));
    }

    // 5. Mcp-Name against params.name / params.uri.
    if let Some(field) = mcp_name_source(method) {
        let body_value = request
            .params()
            .and_then(|p| p.get(field))
            .and_then(Value::as_str);
        match (headers.name, body_value) {
            (None, None) => {}
            (None, Some(_)) => {
                return Err(mismatch(format!(
                    "Header mismatch: the Mcp-Name header is required for {method}"
                )));
            }
            (Some(raw), body_value) => {
                let header_name = headers::decode_mcp_value(raw)
                    .map_err(|e| mismatch(format!("Header mismatch: the Mcp-Name header {e}")))?;
                if Some(header_name.as_str()) != body_value {
                    return Err(mismatch(format!(
                        "Header mismatch: Mcp-Name header value '{}' does not match body value \
                         '{}'",
                        quote(&header_name),
                        quote(body_value.unwrap_or(""))
                    )));
                }
            }
        }
    }

    // 6. The rest of the envelope.
    if !meta
        .get(meta::CLIENT_CAPABILITIES)
        .is_some_and(Value::is_object)
    {
        return Err(invalid_params(format!(
            "Invalid params: _meta[\"{}\"] is required and must be an object",
            meta::CLIENT_CAPABILITIES
        )));
    }
    if meta.get(meta::CLIENT_INFO).is_some_and(|v| !v.is_object()) {
        return Err(invalid_params(format!(
            "Invalid params: _meta[\"{}\"] must be an object",
            meta::CLIENT_INFO
        )));
    }
    // A level is validated (unknown ones are -32602) but not used: the broker
    // relays no child logs to modern clients (see the module notes).
    if let Some(level) = meta.get(meta::LOG_LEVEL)
        && !level.as_str().is_some_and(|l| LOG_LEVELS.contains(&l))
    {
        return Err(invalid_params(format!(
            "Invalid params: _meta[\"{}\"] must be one of {}",
            meta::LOG_LEVEL,
            LOG_LEVELS.join(", ")
        )));
    }

    // 7. The method.
    let action = match method {
        DISCOVER => ModernAction::Discover,
        LISTEN => ModernAction::Listen,
        m if FORWARDED_METHODS.contains(&m) => ModernAction::Forward,
        _ => return Err(method_not_found(&request.id, method)),
    };
    Ok(ModernRequest {
        id: request.id.clone(),
        method: method.to_owned(),
        action,
    })
}

/// A client-supplied value as quoted in an error message: control and
/// non-ASCII characters escaped, at most [`QUOTE_MAX_CHARS`] characters.
fn quote(value: &str) -> String {
    let mut quoted: String = value.chars().take(QUOTE_MAX_CHARS).collect::<String>();
    quoted = quoted.escape_debug().to_string();
    if value.chars().nth(QUOTE_MAX_CHARS).is_some() {
        quoted.push('…');
    }
    quoted
}

/// How much of a client-supplied value an error message repeats.
const QUOTE_MAX_CHARS: usize = 100;

/// 404 / -32601 for a method 2026-07-28 (or this broker) does not serve.
fn method_not_found(id: &Value, method: &str) -> WireError {
    let message = if REMOVED_METHODS.contains(&method) {
        format!(
            "Method not found: {method} does not exist in protocol version 2026-07-28 (this \
             server also serves 2025-11-25, 2025-06-18 and 2025-03-26 through initialize \
             without per-request _meta)"
        )
    } else {
        format!("Method not found: {}", quote(method))
    };
    WireError::new(StatusCode::NOT_FOUND, codes::METHOD_NOT_FOUND, message)
        .with_id(Some(id.clone()))
}

/// The request as the 2025-era child should see it: the era keys in
/// [`STRIPPED_META_KEYS`] removed from `params._meta`, `_meta` removed if it
/// is (then) empty, everything else (the id included) as it was. A message
/// without an object `params._meta` is returned unchanged.
pub(crate) fn strip_modern_meta(mut request: Value) -> Value {
    let Some(params) = request.get_mut("params").and_then(Value::as_object_mut) else {
        return request;
    };
    let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut) else {
        return request;
    };
    for key in STRIPPED_META_KEYS {
        meta.remove(key);
    }
    if meta.is_empty() {
        params.remove("_meta");
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::wire::{Incoming, parse_body};
    use proptest::prelude::*;

    const V: &str = "2026-07-28";

    fn meta_valid() -> Value {
        json!({
            meta::PROTOCOL_VERSION: V,
            meta::CLIENT_INFO: {"name": "c", "version": "1"},
            meta::CLIENT_CAPABILITIES: {},
        })
    }

    fn request(id: Value, method: &str, mut params: Value) -> RpcRequest {
        if params.get("_meta").is_none() {
            params["_meta"] = meta_valid();
        }
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        match parse_body(body.to_string().as_bytes()).unwrap() {
            Incoming::Request(r) => r,
            other => panic!("{other:?}"),
        }
    }

    /// Conformant headers for a request, like the suite's `buildStandardHeaders`.
    struct H {
        pv: Option<Vec<u8>>,
        method: Option<Vec<u8>>,
        name: Option<Vec<u8>>,
    }

    impl H {
        fn conformant(r: &RpcRequest) -> Self {
            let name = mcp_name_source(&r.method)
                .and_then(|f| r.params().and_then(|p| p.get(f)).and_then(Value::as_str))
                .map(|n| n.as_bytes().to_vec());
            Self {
                pv: Some(V.as_bytes().to_vec()),
                method: Some(r.method.as_bytes().to_vec()),
                name,
            }
        }
        fn pv(mut self, v: Option<&[u8]>) -> Self {
            self.pv = v.map(<[u8]>::to_vec);
            self
        }
        fn method(mut self, v: Option<&[u8]>) -> Self {
            self.method = v.map(<[u8]>::to_vec);
            self
        }
        fn name(mut self, v: Option<&[u8]>) -> Self {
            self.name = v.map(<[u8]>::to_vec);
            self
        }
        fn get(&self) -> RequestHeaders<'_> {
            RequestHeaders {
                protocol_version: self.pv.as_deref(),
                method: self.method.as_deref(),
                name: self.name.as_deref(),
                session_id: None,
            }
        }
    }

    fn check(r: &RpcRequest, h: &H) -> Result<ModernRequest, WireError> {
        validate_modern(r, &h.get())
    }

    fn assert_refused(
        result: Result<ModernRequest, WireError>,
        status: u16,
        code: i64,
        what: &str,
    ) -> WireError {
        let err = result.expect_err(what);
        assert_eq!(err.status.as_u16(), status, "{what}: {err}");
        assert_eq!(err.code, code, "{what}: {err}");
        err
    }

    #[test]
    fn conformant_requests_pass_with_their_action() {
        let cases = [
            ("server/discover", json!({}), ModernAction::Discover),
            (
                "subscriptions/listen",
                json!({"notifications": {"toolsListChanged": true}}),
                ModernAction::Listen,
            ),
            ("tools/list", json!({"cursor": "c"}), ModernAction::Forward),
            (
                "tools/call",
                json!({"name": "get_weather", "arguments": {}}),
                ModernAction::Forward,
            ),
            ("prompts/get", json!({"name": "p"}), ModernAction::Forward),
            ("prompts/list", json!({}), ModernAction::Forward),
            (
                "resources/read",
                json!({"uri": "file:///a b/ü.txt"}),
                ModernAction::Forward,
            ),
            ("resources/list", json!({}), ModernAction::Forward),
            ("resources/templates/list", json!({}), ModernAction::Forward),
            (
                "completion/complete",
                json!({"ref": {"type": "ref/prompt", "name": "p"}, "argument": {"name": "a", "value": "v"}}),
                ModernAction::Forward,
            ),
        ];
        for (method, params, action) in cases {
            let mut r = request(json!(1), method, params);
            let mut h = H::conformant(&r);
            if method == "resources/read" {
                // Not header-safe: the client must send it Base64-encoded.
                h = h.name(Some(b"=?base64?ZmlsZTovLy9hIGIvw7wudHh0?="));
            }
            let ok = check(&r, &h).unwrap_or_else(|e| panic!("{method}: {e}"));
            assert_eq!(ok.action, action, "{method}");
            assert_eq!(ok.method, method);
            assert_eq!(ok.id, json!(1));
            // clientInfo is optional (spec PR #3002).
            r.message["params"]["_meta"]
                .as_object_mut()
                .unwrap()
                .remove(meta::CLIENT_INFO);
            let r = request(json!(1), method, r.message["params"].clone());
            assert!(check(&r, &h).is_ok(), "{method} without clientInfo");
        }
    }

    /// PROTOCOL.md §1.3, one row at a time (the rows this module owns).
    #[test]
    fn error_table_rows() {
        // Header missing / header ≠ body / bad characters → 400, -32020.
        let list = request(json!(7), "tools/list", json!({}));
        let call = request(
            json!("c"),
            "tools/call",
            json!({"name": "test_simple_text", "arguments": {}}),
        );
        let rows: Vec<(&str, &RpcRequest, H)> = vec![
            (
                "MCP-Protocol-Version missing",
                &list,
                H::conformant(&list).pv(None),
            ),
            (
                "MCP-Protocol-Version differs",
                &list,
                H::conformant(&list).pv(Some(b"2025-11-25")),
            ),
            (
                "MCP-Protocol-Version bad chars",
                &list,
                H::conformant(&list).pv(Some("2026-07-28\u{e9}".as_bytes())),
            ),
            (
                "Mcp-Method missing",
                &list,
                H::conformant(&list).method(None),
            ),
            (
                "Mcp-Method differs",
                &list,
                H::conformant(&list).method(Some(b"prompts/list")),
            ),
            (
                "Mcp-Method value case differs",
                &list,
                H::conformant(&list).method(Some(b"TOOLS/LIST")),
            ),
            (
                "Mcp-Method bad chars",
                &list,
                H::conformant(&list).method(Some(b"tools/list\x01")),
            ),
            ("Mcp-Name missing", &call, H::conformant(&call).name(None)),
            (
                "Mcp-Name differs",
                &call,
                H::conformant(&call).name(Some(b"wrong_tool_name")),
            ),
            (
                "Mcp-Name invalid base64",
                &call,
                H::conformant(&call).name(Some(b"=?base64?dGVzdA?=")),
            ),
            (
                "Mcp-Name non-ASCII plain",
                &call,
                H::conformant(&call).name(Some("test_simple_t\u{e9}xt".as_bytes())),
            ),
        ];
        for (what, r, h) in rows {
            let err = assert_refused(check(r, &h), 400, codes::HEADER_MISMATCH, what);
            assert_eq!(err.id, Some(r.id.clone()), "{what}");
        }

        // Required _meta field missing or malformed → 400, -32602.
        let mut rows: Vec<(&str, Value)> = vec![
            (
                "protocolVersion missing",
                json!({meta::CLIENT_CAPABILITIES: {}}),
            ),
            (
                "protocolVersion not a string",
                json!({meta::PROTOCOL_VERSION: 20260728, meta::CLIENT_CAPABILITIES: {}}),
            ),
            (
                "clientCapabilities missing",
                json!({meta::PROTOCOL_VERSION: V}),
            ),
            (
                "clientCapabilities not an object",
                json!({meta::PROTOCOL_VERSION: V, meta::CLIENT_CAPABILITIES: []}),
            ),
            (
                "clientInfo not an object",
                json!({meta::PROTOCOL_VERSION: V, meta::CLIENT_CAPABILITIES: {}, meta::CLIENT_INFO: "c"}),
            ),
            (
                "logLevel unknown",
                json!({meta::PROTOCOL_VERSION: V, meta::CLIENT_CAPABILITIES: {}, meta::LOG_LEVEL: "verbose"}),
            ),
            (
                "logLevel wrong case",
                json!({meta::PROTOCOL_VERSION: V, meta::CLIENT_CAPABILITIES: {}, meta::LOG_LEVEL: "DEBUG"}),
            ),
            (
                "logLevel not a string",
                json!({meta::PROTOCOL_VERSION: V, meta::CLIENT_CAPABILITIES: {}, meta::LOG_LEVEL: 3}),
            ),
        ];
        rows.push(("_meta not an object", json!("nope")));
        for (what, meta_value) in rows {
            let r = request(json!(104), "server/discover", json!({"_meta": meta_value}));
            let err = assert_refused(
                check(&r, &H::conformant(&r)),
                400,
                codes::INVALID_PARAMS,
                what,
            );
            assert_eq!(err.id, Some(json!(104)));
        }

        // Version unknown or unsupported → 400, -32022 with supported + requested.
        for version in ["v999.0.0", "2025-11-25", "2027-01-01", ""] {
            let r = request(
                json!(301),
                "server/discover",
                json!({"_meta": {meta::PROTOCOL_VERSION: version, meta::CLIENT_CAPABILITIES: {}}}),
            );
            let h = H::conformant(&r).pv(Some(version.as_bytes()));
            let err = assert_refused(
                check(&r, &h),
                400,
                codes::UNSUPPORTED_PROTOCOL_VERSION,
                version,
            );
            assert_eq!(
                err.data,
                Some(json!({"supported": ["2026-07-28"], "requested": version}))
            );
            assert_eq!(
                err.body(),
                json!({"jsonrpc": "2.0", "id": 301, "error": {
                    "code": -32022, "message": "Unsupported protocol version",
                    "data": {"supported": ["2026-07-28"], "requested": version}}})
            );
        }

        // Method not implemented → 404, -32601 (removed methods and unknown ones).
        for method in [
            "initialize",
            "ping",
            "logging/setLevel",
            "resources/subscribe",
            "resources/unsubscribe",
            "unknown/method",
            "tasks/get",
            "tasks/update",
            "tasks/list",
            "roots/list",
            "notifications/roots/list_changed",
            "sampling/createMessage",
            "Tools/list",
        ] {
            let r = request(json!(500), method, json!({}));
            let err = assert_refused(
                check(&r, &H::conformant(&r)),
                404,
                codes::METHOD_NOT_FOUND,
                method,
            );
            assert_eq!(err.id, Some(json!(500)));
        }
    }

    #[test]
    fn precedence_when_several_rungs_fail() {
        let bad_version_meta =
            json!({"_meta": {meta::PROTOCOL_VERSION: "v999.0.0", meta::CLIENT_CAPABILITIES: {}}});
        // (what, method, params, headers transform, expected status, code)
        type Tweak = fn(H) -> H;
        let cases: Vec<(&str, &str, Value, Tweak, u16, i64)> = vec![
            // The conformance probe sep-2575-http-server-header-mismatch-400:
            // header names the supported version, body claims another.
            (
                "header 2026-07-28, claim v999",
                "server/discover",
                bad_version_meta.clone(),
                |h| h.pv(Some(b"2026-07-28")),
                400,
                codes::HEADER_MISMATCH,
            ),
            // Both name v999: the version rung answers (sep-2575-server-unsupported-version-error).
            (
                "header = claim = v999",
                "server/discover",
                bad_version_meta.clone(),
                |h| h.pv(Some(b"v999.0.0")),
                400,
                codes::UNSUPPORTED_PROTOCOL_VERSION,
            ),
            (
                "missing version header beats bad version",
                "server/discover",
                bad_version_meta.clone(),
                |h| h.pv(None),
                400,
                codes::HEADER_MISMATCH,
            ),
            (
                "bad version beats missing Mcp-Method",
                "server/discover",
                bad_version_meta,
                |h| h.pv(Some(b"v999.0.0")).method(None),
                400,
                codes::UNSUPPORTED_PROTOCOL_VERSION,
            ),
            (
                "non-string claim beats missing headers",
                "tools/list",
                json!({"_meta": {meta::PROTOCOL_VERSION: null}}),
                |h| h.pv(None).method(None),
                400,
                codes::INVALID_PARAMS,
            ),
            (
                "Mcp-Method beats Mcp-Name",
                "tools/call",
                json!({"name": "t"}),
                |h| h.method(Some(b"tools/list")).name(None),
                400,
                codes::HEADER_MISMATCH,
            ),
            (
                "header mismatch beats missing clientCapabilities",
                "tools/list",
                json!({"_meta": {meta::PROTOCOL_VERSION: V}}),
                |h| h.method(Some(b"x")),
                400,
                codes::HEADER_MISMATCH,
            ),
            (
                "missing clientCapabilities beats unknown method",
                "ping",
                json!({"_meta": {meta::PROTOCOL_VERSION: V}}),
                |h| h,
                400,
                codes::INVALID_PARAMS,
            ),
            (
                "bad logLevel beats unknown method",
                "ping",
                json!({"_meta": {meta::PROTOCOL_VERSION: V, meta::CLIENT_CAPABILITIES: {}, meta::LOG_LEVEL: "x"}}),
                |h| h,
                400,
                codes::INVALID_PARAMS,
            ),
            (
                "header mismatch beats unknown method",
                "unknown/method",
                json!({}),
                |h| h.method(Some(b"tools/list")),
                400,
                codes::HEADER_MISMATCH,
            ),
        ];
        for (what, method, params, tweak, status, code) in cases {
            let r = request(json!(9), method, params);
            let h = tweak(H::conformant(&r));
            assert_refused(check(&r, &h), status, code, what);
        }
    }

    #[test]
    fn mcp_name_rules() {
        let call = |name: &str| request(json!(1), "tools/call", json!({"name": name}));
        let read = |uri: &str| request(json!(1), "resources/read", json!({"uri": uri}));
        // (what, request, Mcp-Name header, accepted?)
        let cases: Vec<(&str, RpcRequest, Option<&[u8]>, bool)> = vec![
            ("plain", call("get_weather"), Some(b"get_weather"), true),
            (
                "optional whitespace trimmed",
                call("get_weather"),
                Some(b"  get_weather\t"),
                true,
            ),
            (
                "base64 of ASCII",
                call("Hello"),
                Some(b"=?base64?SGVsbG8=?="),
                true,
            ),
            (
                "base64 of non-ASCII",
                call("Hello, 世界"),
                Some(b"=?base64?SGVsbG8sIOS4lueVjA==?="),
                true,
            ),
            (
                "base64 of leading spaces",
                call(" padded "),
                Some(b"=?base64?IHBhZGRlZCA=?="),
                true,
            ),
            (
                "plain value cannot carry leading spaces",
                call(" padded "),
                Some(b" padded "),
                false,
            ),
            (
                "literal sentinel lookalike",
                call("=?base64?x"),
                Some(b"=?base64?x"),
                true,
            ),
            (
                "sentinel markers are case-sensitive",
                call("Hello"),
                Some(b"=?BASE64?SGVsbG8=?="),
                false,
            ),
            (
                "base64 without padding",
                call("Hello"),
                Some(b"=?base64?SGVsbG8?="),
                false,
            ),
            (
                "base64 with bad chars",
                call("Hello"),
                Some(b"=?base64?SGVs!!!bG8=?="),
                false,
            ),
            (
                "base64 of invalid UTF-8",
                call("x"),
                Some(b"=?base64?/w==?="),
                false,
            ),
            (
                "values are case-sensitive",
                call("Tool"),
                Some(b"tool"),
                false,
            ),
            (
                "uri",
                read("test://static-text"),
                Some(b"test://static-text"),
                true,
            ),
            (
                "uri differs",
                read("test://static-text"),
                Some(b"test://other"),
                false,
            ),
            (
                "header without body value",
                request(json!(1), "tools/call", json!({})),
                Some(b"t"),
                false,
            ),
            (
                "neither header nor body value",
                request(json!(1), "tools/call", json!({})),
                None,
                true,
            ),
            (
                "non-string body value",
                request(json!(1), "tools/call", json!({"name": 5})),
                Some(b"5"),
                false,
            ),
        ];
        for (what, r, name, accepted) in cases {
            let h = H::conformant(&r).name(name);
            let result = check(&r, &h);
            if accepted {
                assert!(result.is_ok(), "{what}: {result:?}");
            } else {
                assert_refused(result, 400, codes::HEADER_MISMATCH, what);
            }
        }
        // Mcp-Name is neither required nor checked for other methods.
        let list = request(json!(1), "tools/list", json!({}));
        assert!(check(&list, &H::conformant(&list).name(Some(b"whatever"))).is_ok());
    }

    #[test]
    fn error_messages_quote_client_values_briefly() {
        let long = "x".repeat(5000);
        let r = request(json!(1), "tools/call", json!({"name": long}));
        let h = H::conformant(&r).name(Some(b"=?base64?AQID?="));
        let err = check(&r, &h).unwrap_err();
        assert_eq!(err.code, codes::HEADER_MISMATCH);
        assert!(err.message.len() < 400, "{}", err.message);
        assert!(
            err.message.contains("\\u{1}\\u{2}\\u{3}"),
            "{}",
            err.message
        );
        assert!(err.message.ends_with("…'"), "{}", err.message);
        let err = method_not_found(&json!(1), &"m".repeat(1000));
        assert!(err.message.len() < 200, "{}", err.message);
    }

    #[test]
    fn every_log_level_is_accepted() {
        for level in LOG_LEVELS {
            let r = request(
                json!(1),
                "tools/list",
                json!({"_meta": {
                meta::PROTOCOL_VERSION: V, meta::CLIENT_CAPABILITIES: {}, meta::LOG_LEVEL: level}}),
            );
            assert!(check(&r, &H::conformant(&r)).is_ok(), "{level}");
        }
    }

    #[test]
    fn strip_removes_era_keys_and_keeps_the_rest() {
        let request = json!({
            "jsonrpc": "2.0", "id": "abc", "method": "tools/call",
            "params": {
                "name": "t", "arguments": {"_meta": {meta::PROTOCOL_VERSION: "inside arguments stays"}},
                "inputResponses": {"k": {}}, "requestState": "s",
                "_meta": {
                    meta::PROTOCOL_VERSION: V, meta::CLIENT_INFO: {"name": "c", "version": "1"},
                    meta::CLIENT_CAPABILITIES: {"sampling": {}}, meta::LOG_LEVEL: "debug",
                    "progressToken": 5, "traceparent": "00-1-2-01", "com.example/x": [1]
                }
            },
            "x-extra": true
        });
        let stripped = strip_modern_meta(request.clone());
        let mut expected = request;
        expected["params"]["_meta"] = json!({
            meta::CLIENT_CAPABILITIES: {"sampling": {}},
            "progressToken": 5, "traceparent": "00-1-2-01", "com.example/x": [1]
        });
        assert_eq!(stripped, expected);

        // _meta that held only era keys disappears; params stay.
        let only_era = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list",
            "params": {"_meta": {meta::PROTOCOL_VERSION: V, meta::CLIENT_INFO: {}}}});
        assert_eq!(
            strip_modern_meta(only_era),
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}})
        );
        // An empty _meta is not passed on either.
        assert_eq!(
            strip_modern_meta(
                json!({"jsonrpc": "2.0", "id": 1, "method": "m", "params": {"_meta": {}}})
            ),
            json!({"jsonrpc": "2.0", "id": 1, "method": "m", "params": {}})
        );
        // Nothing to strip: unchanged.
        for unchanged in [
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": 3}}),
        ] {
            assert_eq!(strip_modern_meta(unchanged.clone()), unchanged);
        }
    }

    /// Arbitrary JSON, a few levels deep.
    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-z]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(arb_key(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Keys, with the reserved ones over-represented.
    fn arb_key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(meta::PROTOCOL_VERSION.to_owned()),
            Just(meta::CLIENT_INFO.to_owned()),
            Just(meta::CLIENT_CAPABILITIES.to_owned()),
            Just(meta::LOG_LEVEL.to_owned()),
            Just("_meta".to_owned()),
            Just("params".to_owned()),
            "[a-z]{1,5}",
        ]
    }

    proptest! {
        #[test]
        fn strip_touches_nothing_outside_params_meta(
            id in prop_oneof![any::<i64>().prop_map(Value::from), "[a-z0-9]{0,5}".prop_map(Value::from)],
            params in prop::collection::btree_map(arb_key(), arb_json(), 0..5),
            meta in prop::option::of(prop::collection::btree_map(arb_key(), arb_json(), 0..6)),
            extra in arb_json(),
        ) {
            let mut params: Map<String, Value> = params.into_iter().collect();
            if let Some(meta) = meta {
                params.insert("_meta".into(), Value::Object(meta.into_iter().collect()));
            }
            let request = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": params, "extra": extra});
            let stripped = strip_modern_meta(request.clone());

            // Outside params._meta: identical.
            let without_meta = |v: &Value| {
                let mut v = v.clone();
                v["params"].as_object_mut().unwrap().remove("_meta");
                v
            };
            prop_assert_eq!(without_meta(&stripped), without_meta(&request));
            // Inside: exactly the era keys removed, and no empty _meta left behind.
            match request["params"].get("_meta") {
                Some(Value::Object(before)) => {
                    let mut expected = before.clone();
                    for key in STRIPPED_META_KEYS { expected.remove(key); }
                    if expected.is_empty() {
                        prop_assert!(stripped["params"].get("_meta").is_none());
                    } else {
                        prop_assert_eq!(&stripped["params"]["_meta"], &Value::Object(expected));
                    }
                }
                other => prop_assert_eq!(stripped["params"].get("_meta"), other),
            }
        }
    }
}
