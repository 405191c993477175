//! JSON-RPC 2.0 framing for the MCP stdio transport.
//!
//! Every message is one line of JSON on stdin or stdout (the stdio transport forbids embedded
//! newlines, and `serde_json` never emits raw ones). This module only classifies lines and builds
//! envelopes; it knows nothing about MCP methods, so the dispatcher and the fixtures stay free of
//! framing details.

use serde_json::{Map, Value, json};

/// The only JSON-RPC version MCP speaks.
pub const JSONRPC_VERSION: &str = "2.0";

/// JSON-RPC and MCP error codes this server emits.
pub mod codes {
    /// The line was not valid JSON (JSON-RPC 2.0 §5.1).
    pub const PARSE_ERROR: i64 = -32700;
    /// Valid JSON, but not a JSON-RPC message we accept.
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Bad or missing parameters, unknown tool or prompt.
    pub const INVALID_PARAMS: i64 = -32602;
    /// Anything that went wrong on our side.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// "Resource not found" as the 2025 revisions define it (the 2026-07-28 revision moved this
    /// to -32602; translating is the broker's job, so the child keeps the code of its era).
    pub const RESOURCE_NOT_FOUND: i64 = -32002;
    /// `MissingRequiredClientCapabilityError` (2026-07-28), used by `test_missing_capability`.
    pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
}

/// A JSON-RPC error object, as sent in an error response or received from the client.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// The numeric code (see [`codes`]).
    pub code: i64,
    /// A short human-readable message.
    pub message: String,
    /// Optional structured detail, e.g. the `uri` of a missing resource.
    pub data: Option<Value>,
}

impl RpcError {
    /// An error without `data`.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// Attaches structured `data`.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// -32601 for `method`.
    pub fn method_not_found(method: &str) -> Self {
        Self::new(
            codes::METHOD_NOT_FOUND,
            format!("Method not found: {method}"),
        )
    }

    /// -32602 with `message`.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_PARAMS, message)
    }

    /// The wire form of the error object.
    pub fn to_json(&self) -> Value {
        let mut error = Map::new();
        error.insert("code".into(), self.code.into());
        error.insert("message".into(), self.message.clone().into());
        if let Some(data) = &self.data {
            error.insert("data".into(), data.clone());
        }
        Value::Object(error)
    }

    /// Reads an error object received from the peer; tolerant, because a malformed error is
    /// still an error.
    fn from_json(value: &Value) -> Self {
        Self {
            code: value.get("code").and_then(Value::as_i64).unwrap_or(0),
            message: value
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            data: value.get("data").cloned(),
        }
    }
}

/// One classified line from stdin.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A request from the client; the `id` is kept verbatim (number or string) so the response
    /// carries exactly the same value.
    Request {
        id: Value,
        method: String,
        params: Option<Value>,
    },
    /// A notification from the client.
    Notification {
        method: String,
        params: Option<Value>,
    },
    /// The client's answer to a request this server sent (sampling, elicitation).
    Response {
        id: Value,
        outcome: Result<Value, RpcError>,
    },
}

/// A line that could not be accepted, with the id to answer under (`null` when the id could not
/// be read, as JSON-RPC 2.0 §5 requires).
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// The id of the offending request, or `null`.
    pub id: Value,
    /// Why it was rejected.
    pub error: RpcError,
}

/// Classifies one line of input. The rejection is boxed because it holds two JSON values,
/// which are large when the workspace enables serde_json's `preserve_order` (the broker does).
pub fn parse_line(line: &str) -> Result<Incoming, Box<Rejected>> {
    let value: Value = serde_json::from_str(line).map_err(|e| {
        Box::new(Rejected {
            id: Value::Null,
            error: RpcError::new(codes::PARSE_ERROR, format!("Parse error: {e}")),
        })
    })?;
    classify(value)
}

/// Classifies a parsed JSON value.
fn classify(value: Value) -> Result<Incoming, Box<Rejected>> {
    let invalid = |id: Value, message: &str| {
        Box::new(Rejected {
            id,
            error: RpcError::new(codes::INVALID_REQUEST, message),
        })
    };
    let Value::Object(mut object) = value else {
        // Batches were removed from MCP in 2025-06-18; a bare array or scalar is answered with
        // one error rather than guessed at.
        return Err(invalid(
            Value::Null,
            "Invalid Request: expected a JSON object",
        ));
    };
    let id = object.remove("id");
    let id_is_valid = matches!(id, Some(Value::String(_)) | Some(Value::Number(_)));
    let reply_id = if id_is_valid {
        id.clone().unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    if object.get("jsonrpc").and_then(Value::as_str) != Some(JSONRPC_VERSION) {
        return Err(invalid(
            reply_id,
            "Invalid Request: jsonrpc must be \"2.0\"",
        ));
    }
    match object.remove("method") {
        Some(Value::String(method)) => {
            let params = object.remove("params");
            if let Some(p) = &params
                && !p.is_object()
                && !p.is_array()
            {
                return Err(invalid(
                    reply_id,
                    "Invalid Request: params must be structured",
                ));
            }
            match id {
                None => Ok(Incoming::Notification { method, params }),
                Some(id) if id_is_valid => Ok(Incoming::Request { id, method, params }),
                Some(_) => Err(invalid(
                    Value::Null,
                    "Invalid Request: id must be a string or a number",
                )),
            }
        }
        Some(_) => Err(invalid(
            reply_id,
            "Invalid Request: method must be a string",
        )),
        None => {
            let Some(id) = id.filter(|_| id_is_valid) else {
                return Err(invalid(Value::Null, "Invalid Request: no method and no id"));
            };
            let outcome = match (object.remove("result"), object.remove("error")) {
                (Some(result), None) => Ok(result),
                (None, Some(error)) => Err(RpcError::from_json(&error)),
                _ => {
                    return Err(invalid(
                        id,
                        "Invalid Request: response needs result or error",
                    ));
                }
            };
            Ok(Incoming::Response { id, outcome })
        }
    }
}

/// A success response.
pub fn response(id: &Value, result: Value) -> Value {
    json!({ "jsonrpc": JSONRPC_VERSION, "id": id, "result": result })
}

/// An error response.
pub fn error_response(id: &Value, error: &RpcError) -> Value {
    json!({ "jsonrpc": JSONRPC_VERSION, "id": id, "error": error.to_json() })
}

/// A notification.
pub fn notification(method: &str, params: Value) -> Value {
    json!({ "jsonrpc": JSONRPC_VERSION, "method": method, "params": params })
}

/// A request from this server to the client.
pub fn request(id: &Value, method: &str, params: Value) -> Value {
    json!({ "jsonrpc": JSONRPC_VERSION, "id": id, "method": method, "params": params })
}

/// A hashable key for a request id that keeps `1` and `"1"` apart (they are different ids).
pub fn id_key(id: &Value) -> String {
    id.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_keep_their_id_verbatim() {
        let parsed = parse_line(r#"{"jsonrpc":"2.0","id":"abc","method":"ping"}"#).unwrap();
        assert_eq!(
            parsed,
            Incoming::Request {
                id: json!("abc"),
                method: "ping".into(),
                params: None
            }
        );
        let parsed = parse_line(r#"{"jsonrpc":"2.0","id":7,"method":"x","params":{}}"#).unwrap();
        assert!(matches!(parsed, Incoming::Request { id, .. } if id == json!(7)));
    }

    #[test]
    fn notifications_and_responses_are_told_apart() {
        let n = parse_line(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert!(
            matches!(n, Incoming::Notification { method, .. } if method == "notifications/initialized")
        );
        let ok = parse_line(r#"{"jsonrpc":"2.0","id":3,"result":{"a":1}}"#).unwrap();
        assert_eq!(
            ok,
            Incoming::Response {
                id: json!(3),
                outcome: Ok(json!({"a":1}))
            }
        );
        let err =
            parse_line(r#"{"jsonrpc":"2.0","id":3,"error":{"code":-1,"message":"no"}}"#).unwrap();
        assert!(
            matches!(err, Incoming::Response { outcome: Err(e), .. } if e.code == -1 && e.message == "no")
        );
    }

    #[test]
    fn malformed_lines_are_rejected_with_the_right_code() {
        let bad = parse_line("{not json").unwrap_err();
        assert_eq!(bad.id, Value::Null);
        assert_eq!(bad.error.code, codes::PARSE_ERROR);

        let batch = parse_line(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#).unwrap_err();
        assert_eq!(batch.error.code, codes::INVALID_REQUEST);

        let version = parse_line(r#"{"jsonrpc":"1.0","id":5,"method":"ping"}"#).unwrap_err();
        assert_eq!(
            (version.id, version.error.code),
            (json!(5), codes::INVALID_REQUEST)
        );

        let bad_id = parse_line(r#"{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}"#).unwrap_err();
        assert_eq!(
            (bad_id.id, bad_id.error.code),
            (Value::Null, codes::INVALID_REQUEST)
        );

        let scalar_params =
            parse_line(r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":3}"#).unwrap_err();
        assert_eq!(scalar_params.error.code, codes::INVALID_REQUEST);
    }

    #[test]
    fn id_keys_distinguish_numbers_from_strings() {
        assert_ne!(id_key(&json!(1)), id_key(&json!("1")));
        assert_eq!(id_key(&json!("a")), id_key(&json!("a")));
    }

    #[test]
    fn error_objects_omit_absent_data() {
        let e = RpcError::new(-1, "m");
        assert_eq!(e.to_json(), json!({"code": -1, "message": "m"}));
        let e = e.with_data(json!({"uri": "x"}));
        assert_eq!(e.to_json()["data"]["uri"], "x");
    }
}
