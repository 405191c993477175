//! What the broker says on the child's behalf: child results dressed for
//! 2026-07-28 clients, the capabilities it advertises in each era, and the
//! answers it gives itself (`server/discover`, a legacy `initialize`).
//!
//! Decisions, one per line of policy:
//!
//! - **`resultType`** is added as `"complete"` when the child (a 2025-era
//!   server) left it out — clients must treat an absent one so anyway — and an
//!   existing value (`"input_required"` from an MRTR-aware child) is kept.
//! - **`_meta["io.modelcontextprotocol/serverInfo"]`** is merged into the
//!   result's `_meta` (a SHOULD on every result); a value the child already put
//!   there wins, and a non-object `_meta` is left alone rather than destroyed.
//! - **Caching hints** go on complete results of `server/discover`,
//!   `tools/list`, `prompts/list`, `resources/list`,
//!   `resources/templates/list` and `resources/read` (caching.mdx: "MUST
//!   include"): a valid child value is kept, a missing or invalid one becomes
//!   `ttlMs: 0` (immediately stale, the only honest value for a child that
//!   does not know about caching) and `cacheScope: "private"` (everything the
//!   child returns is computed with one user's Forgejo token). An
//!   `input_required` result gets none and loses any the child sent ("not
//!   cacheable and carry no caching hints").
//! - **Error codes 2026-07-28 forbids are translated** ([`modern_error_code`]):
//!   -32002 (resource not found) becomes -32602 (SEP-2164); -32042 (URL
//!   elicitation, 2025-11-25) and any other code in the spec-reserved
//!   `-32020…-32099` range that 2026-07-28 does not define become -32603,
//!   since "implementations MUST NOT emit any code from this sub-range that is
//!   not defined by this specification". Message and data are kept. The
//!   defined codes -32020/-32021/-32022 pass through: a child that emits them
//!   (the fixture's `test_missing_capability`) means them.
//! - **HTTP status of a forwarded answer** ([`forwarded_status`]): 200, except
//!   a child -32601 is 404 (the child's registry is the server's: "If the
//!   server does not implement the requested RPC method, it MUST respond with
//!   404") and -32021 is 400 ("On HTTP, the response status MUST be 400").
//! - **Capabilities** ([`advertised_capabilities`]) start from the child's and
//!   drop what the broker cannot deliver through one child shared by all of a
//!   user's requests and sessions:
//!   - `resources.subscribe` in both eras: a `notifications/resources/updated`
//!     from the shared child cannot be routed to the one session or listen
//!     stream that subscribed, so resource subscriptions are not relayed.
//!   - `logging` in both eras: a child log line cannot be attributed to one
//!     of several concurrent requests or sessions of the shared child, so the
//!     broker relays none, answers `logging/setLevel` itself, and must not
//!     claim the capability (logging.mdx: servers that emit log messages MUST
//!     declare it).
//!   - `tasks` (the 2025-11-25 shape) and the `io.modelcontextprotocol/tasks`
//!     extension for 2026-07-28: modern tasks are a different protocol the
//!     child does not speak, and the broker does not forward `tasks/*`
//!     there. 2025 sessions keep `tasks`: its methods are plain requests the
//!     broker forwards unchanged.
//!   - kept everywhere: `tools`, `prompts`, `resources` with their
//!     `listChanged` flags (the broker relays list-changed notifications: to
//!     listen streams and to sessions), `completions` (a plain request),
//!     `experimental`, other extensions and unknown keys.
//! - **`server/discover`** lists only `2026-07-28` in `supportedVersions`
//!   (what both SDKs do: a client must never pick a handshake version for a
//!   stateless request), takes `instructions` from the child, and is cached
//!   like any private, immediately stale result.
//! - **Legacy `initialize`** echoes the client's version when it is a legacy
//!   version the broker serves, else offers 2025-11-25 (see
//!   [`crate::mcp::era`]), and otherwise passes the child's result through,
//!   unknown fields included; a child without `serverInfo` (which the schema
//!   requires) gets the broker's.

use http::StatusCode;
use serde_json::{Map, Value, json};

use super::catalog::{DISCOVER, SUPPORTED_MODERN_VERSIONS};
use super::era::Era;
use super::wire::{codes, meta};

/// Methods whose complete results carry `ttlMs` and `cacheScope`.
const CACHEABLE_METHODS: [&str; 6] = [
    DISCOVER,
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
];

/// `ttlMs` when the child gave none: immediately stale.
const DEFAULT_TTL_MS: u64 = 0;

/// `cacheScope` when the child gave none: results depend on the user's token.
const DEFAULT_CACHE_SCOPE: &str = "private";

/// The extension id under which 2026-07-28 servers advertise tasks.
const TASKS_EXTENSION: &str = "io.modelcontextprotocol/tasks";

/// A child's JSON-RPC response to a forwarded request, made fit for a
/// 2026-07-28 client (see the module notes). `method` is the request's
/// method; `server_info` is the `Implementation` object to name (ignored
/// unless an object). Never changes `id` or `jsonrpc`; a message that is
/// neither a result nor an error object comes back unchanged.
pub(crate) fn decorate_result(method: &str, mut response: Value, server_info: &Value) -> Value {
    let Some(object) = response.as_object_mut() else {
        return response;
    };
    if let Some(result) = object.get_mut("result").and_then(Value::as_object_mut) {
        decorate_complete_fields(method, result, server_info);
    } else if let Some(error) = object.get_mut("error").and_then(Value::as_object_mut)
        && let Some(code) = error.get("code").and_then(Value::as_i64)
    {
        let mapped = modern_error_code(code);
        if mapped != code {
            error.insert("code".into(), Value::from(mapped));
        }
    }
    response
}

/// Adds `resultType`, `serverInfo` and caching hints to one result object.
fn decorate_complete_fields(method: &str, result: &mut Map<String, Value>, server_info: &Value) {
    let result_type = result
        .entry("resultType")
        .or_insert_with(|| Value::from("complete"))
        .clone();
    if server_info.is_object() {
        let meta = result
            .entry("_meta")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(meta) = meta.as_object_mut() {
            meta.entry(meta::SERVER_INFO)
                .or_insert_with(|| server_info.clone());
        }
    }
    match result_type.as_str() {
        Some("complete") if CACHEABLE_METHODS.contains(&method) => {
            let ttl_ok = result.get("ttlMs").is_some_and(|t| t.as_u64().is_some());
            if !ttl_ok {
                result.insert("ttlMs".into(), Value::from(DEFAULT_TTL_MS));
            }
            let scope_ok = matches!(
                result.get("cacheScope").and_then(Value::as_str),
                Some("public" | "private")
            );
            if !scope_ok {
                result.insert("cacheScope".into(), Value::from(DEFAULT_CACHE_SCOPE));
            }
        }
        Some("input_required") => {
            result.remove("ttlMs");
            result.remove("cacheScope");
        }
        _ => {}
    }
}

/// The code a 2026-07-28 client gets for a child's error code (see the module
/// notes).
fn modern_error_code(code: i64) -> i64 {
    match code {
        codes::LEGACY_RESOURCE_NOT_FOUND => codes::INVALID_PARAMS,
        codes::HEADER_MISMATCH
        | codes::MISSING_REQUIRED_CLIENT_CAPABILITY
        | codes::UNSUPPORTED_PROTOCOL_VERSION => code,
        c if codes::SPEC_RESERVED.contains(&c) => codes::INTERNAL_ERROR,
        c => c,
    }
}

/// The HTTP status to answer a 2026-07-28 client with when relaying the
/// (decorated) child response.
pub(crate) fn forwarded_status(response: &Value) -> StatusCode {
    match response
        .get("error")
        .and_then(|e| e.get("code"))
        .and_then(Value::as_i64)
    {
        Some(codes::METHOD_NOT_FOUND) => StatusCode::NOT_FOUND,
        Some(codes::MISSING_REQUIRED_CLIENT_CAPABILITY) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    }
}

/// The capabilities the broker advertises to clients of `era`, derived from
/// the child's `InitializeResult.capabilities` (see the module notes). A
/// non-object input advertises nothing.
fn advertised_capabilities(child_capabilities: &Value, era: Era) -> Value {
    let mut caps = child_capabilities.as_object().cloned().unwrap_or_default();
    if let Some(resources) = caps.get_mut("resources").and_then(Value::as_object_mut) {
        resources.remove("subscribe");
    }
    // Both eras: the broker answers `logging/setLevel` itself and relays no
    // child log messages (a shared child's log line cannot be tied to one client).
    caps.remove("logging");
    if era == Era::Modern {
        caps.remove("tasks");
        let extensions_now_empty = caps
            .get_mut("extensions")
            .and_then(Value::as_object_mut)
            .is_some_and(|extensions| {
                extensions.remove(TASKS_EXTENSION);
                extensions.is_empty()
            });
        if extensions_now_empty {
            caps.remove("extensions");
        }
    }
    Value::Object(caps)
}

/// The child's `serverInfo` from its `InitializeResult`, if it sent an
/// object: what the broker names as server on both eras' results.
pub(crate) fn child_server_info(child_initialize_result: &Value) -> Option<&Value> {
    child_initialize_result
        .get("serverInfo")
        .filter(|v| v.is_object())
}

/// The broker's own `Implementation`, for a child that does not name itself.
pub(crate) fn broker_server_info() -> Value {
    json!({ "name": "fjmcp-broker", "version": crate::version::VERSION })
}

/// The `result` of `server/discover`, built from the child's cached
/// `InitializeResult` (see the module notes).
pub(crate) fn discover_result(child_initialize_result: &Value, server_info: &Value) -> Value {
    let capabilities = advertised_capabilities(
        child_initialize_result
            .get("capabilities")
            .unwrap_or(&Value::Null),
        Era::Modern,
    );
    let mut result = Map::new();
    result.insert("resultType".into(), Value::from("complete"));
    result.insert("supportedVersions".into(), json!(SUPPORTED_MODERN_VERSIONS));
    result.insert("capabilities".into(), capabilities);
    if let Some(instructions) = child_initialize_result
        .get("instructions")
        .filter(|i| i.is_string())
    {
        result.insert("instructions".into(), instructions.clone());
    }
    if server_info.is_object() {
        result.insert(
            "_meta".into(),
            json!({ meta::SERVER_INFO: server_info.clone() }),
        );
    }
    result.insert("ttlMs".into(), Value::from(DEFAULT_TTL_MS));
    result.insert("cacheScope".into(), Value::from(DEFAULT_CACHE_SCOPE));
    Value::Object(result)
}

/// The `result` of a 2025-era `initialize`, from the child's cached
/// `InitializeResult` and the version negotiated for the session (see
/// [`super::catalog::negotiate_legacy_version`]).
pub(crate) fn legacy_initialize_result(child_initialize_result: &Value, negotiated: &str) -> Value {
    let mut result = child_initialize_result
        .as_object()
        .cloned()
        .unwrap_or_default();
    result.insert("protocolVersion".into(), Value::from(negotiated));
    let capabilities = advertised_capabilities(
        child_initialize_result
            .get("capabilities")
            .unwrap_or(&Value::Null),
        Era::Legacy,
    );
    result.insert("capabilities".into(), capabilities);
    if child_server_info(child_initialize_result).is_none() {
        result.insert("serverInfo".into(), broker_server_info());
    }
    Value::Object(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn server_info() -> Value {
        json!({"name": "Forgejo MCP Server", "version": "2.18.0"})
    }

    fn child_init() -> Value {
        json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {
                "logging": {},
                "completions": {},
                "prompts": {"listChanged": true},
                "resources": {"subscribe": true, "listChanged": true},
                "tools": {"listChanged": true},
                "tasks": {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}},
                "experimental": {"x": {}}
            },
            "serverInfo": {"name": "Forgejo MCP Server", "version": "2.18.0"},
            "instructions": "Use the tools.",
            "x-unknown": 1
        })
    }

    #[test]
    fn complete_results_get_result_type_server_info_and_cache_hints() {
        let cases = [
            ("tools/list", json!({"tools": [], "nextCursor": "n"}), true),
            ("prompts/list", json!({"prompts": []}), true),
            ("resources/list", json!({"resources": []}), true),
            (
                "resources/templates/list",
                json!({"resourceTemplates": []}),
                true,
            ),
            ("resources/read", json!({"contents": []}), true),
            ("server/discover", json!({"supportedVersions": []}), true),
            (
                "tools/call",
                json!({"content": [], "isError": false}),
                false,
            ),
            ("prompts/get", json!({"messages": []}), false),
            (
                "completion/complete",
                json!({"completion": {"values": []}}),
                false,
            ),
        ];
        for (method, result, cacheable) in cases {
            let response = json!({"jsonrpc": "2.0", "id": 3, "result": result});
            let decorated = decorate_result(method, response.clone(), &server_info());
            let mut expected = response;
            let r = expected["result"].as_object_mut().unwrap();
            r.insert("resultType".into(), json!("complete"));
            r.insert("_meta".into(), json!({meta::SERVER_INFO: server_info()}));
            if cacheable {
                r.insert("ttlMs".into(), json!(0));
                r.insert("cacheScope".into(), json!("private"));
            }
            assert_eq!(decorated, expected, "{method}");
        }
    }

    #[test]
    fn child_values_are_kept_when_valid_and_replaced_when_not() {
        let decorated = decorate_result(
            "tools/list",
            json!({"jsonrpc": "2.0", "id": "s", "result": {
                "tools": [], "resultType": "complete", "ttlMs": 60000, "cacheScope": "public",
                "_meta": {"com.example/x": 1, meta::SERVER_INFO: {"name": "child", "version": "9"}}}}),
            &server_info(),
        );
        assert_eq!(
            decorated,
            json!({"jsonrpc": "2.0", "id": "s", "result": {
                "tools": [], "resultType": "complete", "ttlMs": 60000, "cacheScope": "public",
                "_meta": {"com.example/x": 1, meta::SERVER_INFO: {"name": "child", "version": "9"}}}})
        );
        for (ttl, scope) in [
            (json!(-5), json!("shared")),
            (json!(1.5), json!(null)),
            (json!("100"), json!(1)),
        ] {
            let decorated = decorate_result(
                "resources/read",
                json!({"jsonrpc": "2.0", "id": 1, "result": {"contents": [], "ttlMs": ttl, "cacheScope": scope}}),
                &server_info(),
            );
            assert_eq!(decorated["result"]["ttlMs"], json!(0));
            assert_eq!(decorated["result"]["cacheScope"], json!("private"));
        }
        // A non-object _meta is not destroyed; nothing is merged into it.
        let decorated = decorate_result(
            "tools/call",
            json!({"jsonrpc": "2.0", "id": 1, "result": {"content": [], "_meta": "odd"}}),
            &server_info(),
        );
        assert_eq!(decorated["result"]["_meta"], json!("odd"));
        // No server info: no _meta added.
        let decorated = decorate_result(
            "tools/call",
            json!({"jsonrpc": "2.0", "id": 1, "result": {"content": []}}),
            &Value::Null,
        );
        assert!(decorated["result"].get("_meta").is_none());
    }

    #[test]
    fn input_required_results_get_no_cache_hints() {
        for method in ["tools/call", "resources/read", "prompts/get"] {
            let response = json!({"jsonrpc": "2.0", "id": 2, "result": {
                "resultType": "input_required",
                "inputRequests": {"user_name": {"method": "elicitation/create", "params": {}}},
                "requestState": "sealed", "ttlMs": 5, "cacheScope": "public"}});
            let decorated = decorate_result(method, response, &server_info());
            let result = decorated["result"].as_object().unwrap();
            assert_eq!(result["resultType"], json!("input_required"), "{method}");
            assert!(!result.contains_key("ttlMs"), "{method}");
            assert!(!result.contains_key("cacheScope"), "{method}");
            assert_eq!(result["requestState"], json!("sealed"));
            assert_eq!(result["_meta"][meta::SERVER_INFO], server_info());
        }
    }

    #[test]
    fn errors_are_translated_only_where_2026_forbids_the_code() {
        // (child code, code the client sees, HTTP status)
        let cases = [
            (-32002, -32602, 200),
            (-32042, -32603, 200),
            (-32050, -32603, 200),
            (-32099, -32603, 200),
            (-32020, -32020, 200),
            (-32021, -32021, 400),
            (-32022, -32022, 200),
            (-32601, -32601, 404),
            (-32602, -32602, 200),
            (-32603, -32603, 200),
            (-32000, -32000, 200),
            (-32019, -32019, 200),
            (-32100, -32100, 200),
            (-1, -1, 200),
            (42, 42, 200),
        ];
        for (child, client, status) in cases {
            let response = json!({"jsonrpc": "2.0", "id": 8, "error": {
                "code": child, "message": "Resource not found", "data": {"uri": "test://x"}}});
            let decorated = decorate_result("resources/read", response, &server_info());
            assert_eq!(
                decorated,
                json!({"jsonrpc": "2.0", "id": 8, "error": {
                    "code": client, "message": "Resource not found", "data": {"uri": "test://x"}}}),
                "{child}"
            );
            assert_eq!(forwarded_status(&decorated).as_u16(), status, "{child}");
        }
        assert_eq!(
            forwarded_status(&json!({"jsonrpc": "2.0", "id": 1, "result": {}})),
            StatusCode::OK
        );
    }

    #[test]
    fn capabilities_per_era() {
        let child = child_init()["capabilities"].clone();
        assert_eq!(
            advertised_capabilities(&child, Era::Modern),
            json!({
                "completions": {},
                "prompts": {"listChanged": true},
                "resources": {"listChanged": true},
                "tools": {"listChanged": true},
                "experimental": {"x": {}}
            })
        );
        assert_eq!(
            advertised_capabilities(&child, Era::Legacy),
            json!({
                "completions": {},
                "prompts": {"listChanged": true},
                "resources": {"listChanged": true},
                "tools": {"listChanged": true},
                "tasks": {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}},
                "experimental": {"x": {}}
            })
        );
        // listChanged is copied as the child has it, not invented.
        assert_eq!(
            advertised_capabilities(
                &json!({"tools": {}, "resources": {"subscribe": true}}),
                Era::Modern
            ),
            json!({"tools": {}, "resources": {}})
        );
        assert_eq!(
            advertised_capabilities(
                &json!({"extensions": {"io.modelcontextprotocol/tasks": {}, "io.modelcontextprotocol/ui": {"a": 1}}}),
                Era::Modern
            ),
            json!({"extensions": {"io.modelcontextprotocol/ui": {"a": 1}}})
        );
        assert_eq!(
            advertised_capabilities(
                &json!({"extensions": {"io.modelcontextprotocol/tasks": {}}}),
                Era::Modern
            ),
            json!({})
        );
        assert_eq!(
            advertised_capabilities(&Value::Null, Era::Legacy),
            json!({})
        );
    }

    #[test]
    fn discover_result_shape() {
        assert_eq!(
            discover_result(&child_init(), &server_info()),
            json!({
                "resultType": "complete",
                "supportedVersions": ["2026-07-28"],
                "capabilities": {
                    "completions": {},
                    "prompts": {"listChanged": true},
                    "resources": {"listChanged": true},
                    "tools": {"listChanged": true},
                    "experimental": {"x": {}}
                },
                "instructions": "Use the tools.",
                "_meta": {meta::SERVER_INFO: {"name": "Forgejo MCP Server", "version": "2.18.0"}},
                "ttlMs": 0,
                "cacheScope": "private"
            })
        );
        let minimal = discover_result(&json!({"capabilities": {"tools": {}}}), &Value::Null);
        assert_eq!(
            minimal,
            json!({"resultType": "complete", "supportedVersions": ["2026-07-28"],
                "capabilities": {"tools": {}}, "ttlMs": 0, "cacheScope": "private"})
        );
        // Decorating it again changes nothing.
        let response = json!({"jsonrpc": "2.0", "id": 1, "result": discover_result(&child_init(), &server_info())});
        assert_eq!(
            decorate_result("server/discover", response.clone(), &server_info()),
            response
        );
    }

    #[test]
    fn legacy_initialize_names_the_negotiated_version() {
        for negotiated in ["2025-11-25", "2025-06-18", "2025-03-26"] {
            let result = legacy_initialize_result(&child_init(), negotiated);
            assert_eq!(result["protocolVersion"], json!(negotiated));
            assert_eq!(result["serverInfo"], server_info());
            assert_eq!(result["instructions"], json!("Use the tools."));
            assert_eq!(result["x-unknown"], json!(1));
            assert_eq!(
                result["capabilities"],
                advertised_capabilities(&child_init()["capabilities"], Era::Legacy)
            );
        }
        let bare = legacy_initialize_result(&json!({"capabilities": {}}), "2025-06-18");
        assert_eq!(bare["serverInfo"]["name"], json!("fjmcp-broker"));
        assert!(bare.get("instructions").is_none());
    }

    proptest! {
        #[test]
        fn decorate_never_changes_id_or_jsonrpc(
            id in prop_oneof![
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                "[a-zA-Z0-9 ]{0,8}".prop_map(Value::from),
                Just(Value::from(1.5)),
            ],
            method in prop_oneof![
                Just("tools/list".to_owned()), Just("tools/call".to_owned()), Just("resources/read".to_owned()),
                Just("server/discover".to_owned()), "[a-z/]{0,10}"
            ],
            is_error in any::<bool>(),
            code in any::<i64>(),
            result_type in prop::option::of(prop_oneof![Just("complete"), Just("input_required"), Just("other")]),
        ) {
            let response = if is_error {
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": "m"}})
            } else {
                let mut result = json!({"k": code});
                if let Some(t) = result_type { result["resultType"] = json!(t); }
                json!({"jsonrpc": "2.0", "id": id, "result": result})
            };
            let decorated = decorate_result(&method, response.clone(), &server_info());
            prop_assert_eq!(&decorated["id"], &response["id"]);
            prop_assert_eq!(&decorated["jsonrpc"], &response["jsonrpc"]);
            prop_assert_eq!(decorated.as_object().unwrap().len(), response.as_object().unwrap().len());
            if !is_error {
                prop_assert_eq!(&decorated["result"]["k"], &response["result"]["k"]);
            }
        }
    }
}
