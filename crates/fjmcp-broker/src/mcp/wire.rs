//! JSON-RPC 2.0 as MCP uses it: reserved `_meta` keys, error codes, the
//! protocol error type every rule in this module returns, response builders,
//! and the parser that tells a request from a notification, a response and a
//! batch.
//!
//! Everything here works on raw [`serde_json::Value`]s: a message is parsed
//! once, its shape is checked, and the original value travels on untouched, so
//! fields this broker does not know survive the trip to the child and back.
//!
//! Decisions:
//!
//! - **An unknown id is omitted, never `null`.** The MCP schemas from
//!   2025-11-25 on define `JSONRPCErrorResponse.id` as optional `RequestId`
//!   (a string or a number, never `null`), the 2026-07-28 transport speaks of
//!   "a JSON-RPC error response that has no `id`", and a dual-era client's
//!   recognizer of modern errors validates the body against that schema (the
//!   conformance suite needs an explicit carve-out to tolerate `null`). So
//!   [`error_response`] leaves `id` out when it is not known.
//! - **An id we can read is echoed even when the message is invalid**
//!   (`{"jsonrpc":"1.0","id":7,…}` gets an error with id 7): the conformance
//!   suite checks that every error carries the request id, and echoing a
//!   well-formed id never misleads the client.
//! - **Request ids are strings or numbers.** MCP forbids `null` ids on
//!   requests ("Unlike base JSON-RPC, the ID MUST NOT be null"), so a request
//!   with `"id": null` (or any other type) is an invalid request (-32600).
//!   Numbers are kept as `serde_json` parsed them: every `i64`/`u64` id round-
//!   trips exactly; an integer outside both ranges would come back as a float,
//!   which no real client sends (MCP ids are "string or integer").
//! - **`params` must be an object** when present: every MCP request and
//!   notification defines its params as an object, so array params are an
//!   invalid request rather than something to forward.

use http::StatusCode;
use serde_json::{Map, Value, json};

/// The only JSON-RPC version there is; every message must say so.
const JSONRPC_VERSION: &str = "2.0";

/// Reserved `_meta` keys (2026-07-28 `basic/index.mdx`, table "Reserved keys").
pub(crate) mod meta {
    /// Protocol version of one 2026-07-28 request; its presence is the
    /// "envelope claim" that classifies a request as modern.
    pub(crate) const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
    /// The client's capabilities for one request (required on modern requests).
    pub(crate) const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
    /// The client's self-reported identity (optional, display only).
    pub(crate) const CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
    /// The least severe log level the client wants for one request (optional).
    pub(crate) const LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
    /// The server's self-reported identity, on every result.
    pub(crate) const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
    /// The id of the `subscriptions/listen` request a notification belongs to.
    pub(crate) const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
}

/// JSON-RPC error codes this module emits or translates.
pub(crate) mod codes {
    /// The body is not JSON.
    pub(crate) const PARSE_ERROR: i64 = -32700;
    /// The body is JSON but not a valid JSON-RPC message.
    pub(crate) const INVALID_REQUEST: i64 = -32600;
    /// The method does not exist in the revision the request speaks.
    pub(crate) const METHOD_NOT_FOUND: i64 = -32601;
    /// Malformed params, including a malformed 2026-07-28 `_meta` envelope and
    /// (since SEP-2164) an unknown resource.
    pub(crate) const INVALID_PARAMS: i64 = -32602;
    /// A failure inside the server.
    pub(crate) const INTERNAL_ERROR: i64 = -32603;
    /// SEP-2243: HTTP headers missing, malformed or disagreeing with the body.
    pub(crate) const HEADER_MISMATCH: i64 = -32020;
    /// A request needs a client capability the request did not declare.
    pub(crate) const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
    /// The request's protocol version is not one this server implements.
    pub(crate) const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
    /// Resource not found in 2025-era revisions; 2026-07-28 servers MUST NOT
    /// emit it (replaced by [`INVALID_PARAMS`]).
    pub(crate) const LEGACY_RESOURCE_NOT_FOUND: i64 = -32002;
    /// The sub-range the MCP specification reserves for its own codes; a
    /// server MUST NOT emit a code from it that the specification does not
    /// define.
    pub(crate) const SPEC_RESERVED: std::ops::RangeInclusive<i64> = -32099..=-32020;
}

/// A protocol-level refusal: the HTTP status to answer with and the JSON-RPC
/// error to put in the body. Every validation rule in [`crate::mcp`] returns
/// one, so the HTTP edge turns any of them into a response the same way:
/// `(err.status, Json(err.body()))`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("HTTP {status}, JSON-RPC error {code}: {message}")]
pub(crate) struct WireError {
    /// The HTTP status: 400 for malformed requests, header and version
    /// problems, 404 for unknown methods (2026-07-28 requires both).
    pub status: StatusCode,
    /// The id of the request being refused, when it could be read; `None`
    /// omits `id` from the body (see the module notes).
    pub id: Option<Value>,
    /// The JSON-RPC error code.
    pub code: i64,
    /// A one-sentence, client-facing message; never internal detail.
    pub message: String,
    /// Structured detail the specification asks for (e.g. `supported` and
    /// `requested` on -32022).
    pub data: Option<Value>,
}

impl WireError {
    /// An error without id or data.
    pub(crate) fn new(status: StatusCode, code: i64, message: impl Into<String>) -> Self {
        Self {
            status,
            id: None,
            code,
            message: message.into(),
            data: None,
        }
    }

    /// The same error, answering the request with this id.
    #[must_use]
    pub(crate) fn with_id(mut self, id: Option<Value>) -> Self {
        self.id = id;
        self
    }

    /// The same error, with `data`.
    #[must_use]
    pub(crate) fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// The JSON-RPC error response to send as the HTTP body.
    pub(crate) fn body(&self) -> Value {
        error_response(self.id.clone(), self.code, &self.message, self.data.clone())
    }

    /// 400 with -32700: the body is not JSON.
    fn parse_error(detail: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::PARSE_ERROR,
            format!("Parse error: {detail}"),
        )
    }

    /// 400 with -32600: JSON, but not a JSON-RPC message MCP accepts.
    pub(crate) fn invalid_request(id: Option<Value>, detail: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_REQUEST,
            format!("Invalid Request: {detail}"),
        )
        .with_id(id)
    }
}

/// A JSON-RPC error response. `id: None` omits the member (see the module
/// notes for why never `null`); `data: None` omits `data`.
pub(crate) fn error_response(
    id: Option<Value>,
    code: i64,
    message: &str,
    data: Option<Value>,
) -> Value {
    let mut error = Map::new();
    error.insert("code".into(), Value::from(code));
    error.insert("message".into(), Value::from(message));
    if let Some(data) = data {
        error.insert("data".into(), data);
    }
    let mut response = Map::new();
    response.insert("jsonrpc".into(), Value::from(JSONRPC_VERSION));
    if let Some(id) = id {
        response.insert("id".into(), id);
    }
    response.insert("error".into(), Value::Object(error));
    Value::Object(response)
}

/// A JSON-RPC success response carrying `result` for the request `id`.
pub(crate) fn result_response(id: Value, result: Value) -> Value {
    json!({ "jsonrpc": JSONRPC_VERSION, "id": id, "result": result })
}

/// A JSON-RPC notification.
pub(crate) fn notification(method: &str, params: Value) -> Value {
    json!({ "jsonrpc": JSONRPC_VERSION, "method": method, "params": params })
}

/// A request: it has a `method` and an `id` and expects exactly one response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RpcRequest {
    /// The request id (a string or a number), echoed on the response.
    pub id: Value,
    /// The method name.
    pub method: String,
    /// The whole message as received, unknown fields included.
    pub message: Value,
}

impl RpcRequest {
    /// `params`, when present (always an object: the parser refuses others).
    pub(crate) fn params(&self) -> Option<&Map<String, Value>> {
        self.message.get("params").and_then(Value::as_object)
    }

    /// `params._meta`, when present and an object.
    pub(crate) fn meta(&self) -> Option<&Map<String, Value>> {
        params_meta(&self.message)
    }
}

/// A notification: a `method` without an `id`; nobody answers it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RpcNotification {
    /// The method name.
    pub method: String,
    /// The whole message as received.
    pub message: Value,
}

/// A response posted by a 2025-era client (the answer to a request the
/// server sent it over the session).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RpcResponse {
    /// The id of the request answered; `None` for an error response whose id
    /// the client could not determine.
    pub id: Option<Value>,
    /// The whole message as received.
    pub message: Value,
}

/// One parsed HTTP POST body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Incoming {
    /// A single request.
    Request(RpcRequest),
    /// A single notification.
    Notification(RpcNotification),
    /// A single response (2025-era sessions only).
    Response(RpcResponse),
    /// A non-empty JSON array of messages, none of them a batch itself
    /// (2025-03-26 allowed batches; later revisions removed them).
    Batch(Vec<Incoming>),
}

/// Parses an HTTP POST body into a JSON-RPC message or batch.
///
/// Not JSON (including an empty body) is -32700; JSON that is not a JSON-RPC
/// 2.0 request, notification, response or a non-empty array of them is
/// -32600. Both are HTTP 400.
pub(crate) fn parse_body(bytes: &[u8]) -> Result<Incoming, WireError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        // serde's messages name the position, never the content: safe to show.
        WireError::parse_error(&e.to_string())
    })?;
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(WireError::invalid_request(None, "empty batch"));
            }
            let messages = items
                .into_iter()
                .map(|item| {
                    if item.is_array() {
                        Err(WireError::invalid_request(None, "nested batch"))
                    } else {
                        parse_message(item)
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Incoming::Batch(messages))
        }
        other => parse_message(other),
    }
}

/// Classifies one JSON value as a request, notification or response, or
/// refuses it with -32600 (HTTP 400). Arrays are refused: batches are
/// [`parse_body`]'s business.
fn parse_message(value: Value) -> Result<Incoming, WireError> {
    let Some(object) = value.as_object() else {
        return Err(WireError::invalid_request(
            None,
            "a message must be a JSON object",
        ));
    };
    // An id we can read is echoed on the error, whatever else is wrong.
    let readable_id = object.get("id").filter(|id| is_valid_id(id)).cloned();
    if object.get("jsonrpc").and_then(Value::as_str) != Some(JSONRPC_VERSION) {
        return Err(WireError::invalid_request(
            readable_id,
            "\"jsonrpc\" must be \"2.0\"",
        ));
    }
    if let Some(method) = object.get("method") {
        let Some(method) = method.as_str() else {
            return Err(WireError::invalid_request(
                readable_id,
                "\"method\" must be a string",
            ));
        };
        if object.contains_key("result") || object.contains_key("error") {
            return Err(WireError::invalid_request(
                readable_id,
                "a message cannot have both \"method\" and \"result\"/\"error\"",
            ));
        }
        if let Some(params) = object.get("params")
            && !params.is_object()
        {
            return Err(WireError::invalid_request(
                readable_id,
                "\"params\" must be an object",
            ));
        }
        let method = method.to_owned();
        return match object.get("id") {
            None => Ok(Incoming::Notification(RpcNotification {
                method,
                message: value,
            })),
            Some(id) if is_valid_id(id) => Ok(Incoming::Request(RpcRequest {
                id: id.clone(),
                method,
                message: value,
            })),
            Some(_) => Err(WireError::invalid_request(
                None,
                "a request id must be a string or a number",
            )),
        };
    }
    let has_result = object.contains_key("result");
    let has_error = object.contains_key("error");
    if has_result == has_error {
        return Err(WireError::invalid_request(
            readable_id,
            "a message needs \"method\", or exactly one of \"result\" and \"error\"",
        ));
    }
    match object.get("id") {
        Some(id) if is_valid_id(id) => Ok(Incoming::Response(RpcResponse {
            id: Some(id.clone()),
            message: value,
        })),
        // JSON-RPC lets an error response carry a null (or, since MCP
        // 2025-11-25, no) id when the request's id was unreadable.
        None | Some(Value::Null) if has_error => Ok(Incoming::Response(RpcResponse {
            id: None,
            message: value,
        })),
        _ => Err(WireError::invalid_request(
            None,
            "a response id must be a string or a number",
        )),
    }
}

/// Whether `id` may identify a request: a string or a number.
fn is_valid_id(id: &Value) -> bool {
    id.is_string() || id.is_number()
}

/// `params._meta` of a message, when both are objects.
pub(crate) fn params_meta(message: &Value) -> Option<&Map<String, Value>> {
    message.get("params")?.get("_meta")?.as_object()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(incoming: &Incoming) -> &'static str {
        match incoming {
            Incoming::Request(_) => "request",
            Incoming::Notification(_) => "notification",
            Incoming::Response(_) => "response",
            Incoming::Batch(_) => "batch",
        }
    }

    #[test]
    fn parse_body_tells_message_kinds_apart() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
                "request",
            ),
            (
                r#"{"jsonrpc":"2.0","id":"a","method":"x","params":{}}"#,
                "request",
            ),
            (r#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#, "request"),
            (
                r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
                "notification",
            ),
            (r#"{"jsonrpc":"2.0","id":3,"result":{}}"#, "response"),
            (
                r#"{"jsonrpc":"2.0","id":3,"error":{"code":1,"message":"m"}}"#,
                "response",
            ),
            (
                r#"{"jsonrpc":"2.0","id":null,"error":{"code":1,"message":"m"}}"#,
                "response",
            ),
            (
                r#"{"jsonrpc":"2.0","error":{"code":1,"message":"m"}}"#,
                "response",
            ),
            (
                r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"n"}]"#,
                "batch",
            ),
        ];
        for (body, expected) in cases {
            let parsed = parse_body(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(kind(&parsed), *expected, "{body}");
        }
    }

    #[test]
    fn parse_body_refuses_what_is_not_json_rpc() {
        // (body, code, id echoed on the error)
        let cases: &[(&str, i64, Option<Value>)] = &[
            ("", codes::PARSE_ERROR, None),
            ("{", codes::PARSE_ERROR, None),
            ("not json", codes::PARSE_ERROR, None),
            ("[]", codes::INVALID_REQUEST, None),
            ("[[]]", codes::INVALID_REQUEST, None),
            ("42", codes::INVALID_REQUEST, None),
            (r#""x""#, codes::INVALID_REQUEST, None),
            ("null", codes::INVALID_REQUEST, None),
            (
                r#"{"id":1,"method":"x"}"#,
                codes::INVALID_REQUEST,
                Some(json!(1)),
            ),
            (
                r#"{"jsonrpc":"1.0","id":"r","method":"x"}"#,
                codes::INVALID_REQUEST,
                Some(json!("r")),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":5}"#,
                codes::INVALID_REQUEST,
                Some(json!(1)),
            ),
            (
                r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#,
                codes::INVALID_REQUEST,
                None,
            ),
            (
                r#"{"jsonrpc":"2.0","id":{},"method":"x"}"#,
                codes::INVALID_REQUEST,
                None,
            ),
            (
                r#"{"jsonrpc":"2.0","id":true,"method":"x"}"#,
                codes::INVALID_REQUEST,
                None,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}"#,
                codes::INVALID_REQUEST,
                Some(json!(1)),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"x","params":null}"#,
                codes::INVALID_REQUEST,
                Some(json!(1)),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"x","result":{}}"#,
                codes::INVALID_REQUEST,
                Some(json!(1)),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1}"#,
                codes::INVALID_REQUEST,
                Some(json!(1)),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#,
                codes::INVALID_REQUEST,
                Some(json!(1)),
            ),
            (
                r#"{"jsonrpc":"2.0","id":null,"result":{}}"#,
                codes::INVALID_REQUEST,
                None,
            ),
            (
                r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0"}]"#,
                codes::INVALID_REQUEST,
                None,
            ),
        ];
        for (body, code, id) in cases {
            let err = parse_body(body.as_bytes()).expect_err(body);
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(err.code, *code, "{body}");
            assert_eq!(&err.id, id, "{body}");
        }
    }

    #[test]
    fn parsed_messages_keep_the_original_value_and_id_type() {
        let body = r#"{"jsonrpc":"2.0","id":"7","method":"tools/call","params":{"name":"t","x-unknown":[1,{"a":null}]},"extra":true}"#;
        let Incoming::Request(request) = parse_body(body.as_bytes()).unwrap() else {
            panic!("not a request");
        };
        assert_eq!(request.id, json!("7"));
        assert_eq!(request.method, "tools/call");
        assert_eq!(
            request.message,
            serde_json::from_str::<Value>(body).unwrap()
        );
        assert_eq!(
            request.params().unwrap()["x-unknown"],
            json!([1, {"a": null}])
        );
    }

    #[test]
    fn error_responses_omit_unknown_ids_and_absent_data() {
        assert_eq!(
            error_response(None, -32700, "Parse error", None),
            json!({"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"}})
        );
        assert_eq!(
            error_response(Some(json!(0)), -32022, "m", Some(json!({"supported":[]}))),
            json!({"jsonrpc":"2.0","id":0,"error":{"code":-32022,"message":"m","data":{"supported":[]}}})
        );
        let err = WireError::invalid_request(Some(json!("x")), "bad");
        assert_eq!(err.body()["id"], json!("x"));
        assert_eq!(err.body()["error"]["code"], json!(-32600));
    }
}
