//! The conformance suite's fixture resources.
//!
//! Three direct resources and one template, as in the reference server. Reading an unknown URI
//! is a JSON-RPC error -32002 with the URI in `data`: the code of the 2025 revisions this child
//! speaks (SEP-2164 moved it to -32602 in 2026-07-28, which the broker translates), and the
//! `data.uri` SEP-2164 asks for, which both eras accept.

use serde_json::{Value, json};

use crate::content::TEST_IMAGE_BASE64;
use crate::protocol::{RpcError, codes};

/// A static text resource (`resources-read-text`).
pub const STATIC_TEXT_URI: &str = "test://static-text";
/// A static binary resource (`resources-read-binary`).
pub const STATIC_BINARY_URI: &str = "test://static-binary";
/// The resource the subscribe scenarios subscribe to.
pub const WATCHED_URI: &str = "test://watched-resource";
/// The template of `resources-templates-read`.
pub const TEMPLATE_URI: &str = "test://template/{id}/data";

/// Text of [`STATIC_TEXT_URI`].
const STATIC_TEXT: &str = "This is the content of the static text resource.";
/// Text of [`WATCHED_URI`].
const WATCHED_TEXT: &str = "Watched resource content";
/// The part of [`TEMPLATE_URI`] before `{id}`.
const TEMPLATE_PREFIX: &str = "test://template/";
/// The part of [`TEMPLATE_URI`] after `{id}`.
const TEMPLATE_SUFFIX: &str = "/data";

/// `resources/list`.
pub fn list() -> Value {
    json!({
        "resources": [
            {
                "uri": STATIC_TEXT_URI,
                "name": "static-text",
                "title": "Static Text Resource",
                "description": "A static text resource for testing",
                "mimeType": "text/plain"
            },
            {
                "uri": STATIC_BINARY_URI,
                "name": "static-binary",
                "title": "Static Binary Resource",
                "description": "A static binary resource (image) for testing",
                "mimeType": "image/png"
            },
            {
                "uri": WATCHED_URI,
                "name": "watched-resource",
                "title": "Watched Resource",
                "description": "A resource clients can subscribe to",
                "mimeType": "text/plain"
            }
        ]
    })
}

/// `resources/templates/list`.
pub fn list_templates() -> Value {
    json!({
        "resourceTemplates": [
            {
                "uriTemplate": TEMPLATE_URI,
                "name": "template",
                "title": "Resource Template",
                "description": "A resource template with parameter substitution",
                "mimeType": "application/json"
            }
        ]
    })
}

/// `resources/read`.
pub fn read(params: &Value) -> Result<Value, RpcError> {
    let uri = required_uri(params, "resources/read")?;
    let contents = match uri {
        STATIC_TEXT_URI => json!({ "uri": uri, "mimeType": "text/plain", "text": STATIC_TEXT }),
        STATIC_BINARY_URI => {
            json!({ "uri": uri, "mimeType": "image/png", "blob": TEST_IMAGE_BASE64 })
        }
        WATCHED_URI => json!({ "uri": uri, "mimeType": "text/plain", "text": WATCHED_TEXT }),
        _ => match template_id(uri) {
            Some(id) => json!({
                "uri": uri,
                "mimeType": "application/json",
                "text": json!({
                    "id": id,
                    "templateTest": true,
                    "data": format!("Data for ID: {id}")
                })
                .to_string()
            }),
            None => return Err(not_found(uri)),
        },
    };
    Ok(json!({ "contents": [contents] }))
}

/// `resources/subscribe` and `resources/unsubscribe`: accepted for any URI with `{}`. The
/// fixture resources never change, so there is nothing to track.
pub fn subscription(params: &Value, method: &str) -> Result<Value, RpcError> {
    required_uri(params, method)?;
    Ok(json!({}))
}

/// The `{id}` of a URI matching [`TEMPLATE_URI`]: one non-empty path segment.
fn template_id(uri: &str) -> Option<&str> {
    let id = uri
        .strip_prefix(TEMPLATE_PREFIX)?
        .strip_suffix(TEMPLATE_SUFFIX)?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// The error for an unknown URI.
fn not_found(uri: &str) -> RpcError {
    RpcError::new(codes::RESOURCE_NOT_FOUND, "Resource not found").with_data(json!({ "uri": uri }))
}

/// `params.uri`, or -32602.
fn required_uri<'a>(params: &'a Value, method: &str) -> Result<&'a str, RpcError> {
    params
        .get("uri")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params(format!("{method} needs a string `uri`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_matches_one_segment() {
        assert_eq!(template_id("test://template/123/data"), Some("123"));
        assert_eq!(template_id("test://template//data"), None);
        assert_eq!(template_id("test://template/1/2/data"), None);
        assert_eq!(template_id("test://template/1/datum"), None);
    }

    #[test]
    fn template_read_substitutes_the_id() {
        let result = read(&json!({ "uri": "test://template/abc/data" })).unwrap();
        let text = result["contents"][0]["text"].as_str().unwrap();
        let parsed: Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            parsed,
            json!({ "id": "abc", "templateTest": true, "data": "Data for ID: abc" })
        );
    }

    #[test]
    fn unknown_uri_is_resource_not_found_with_the_uri() {
        let error = read(&json!({ "uri": "test://nope" })).unwrap_err();
        assert_eq!(error.code, -32002);
        assert_eq!(error.data, Some(json!({ "uri": "test://nope" })));
        assert_eq!(read(&json!({})).unwrap_err().code, -32602);
    }
}
