//! `completion/complete` for the fixture prompts' arguments and the resource template.
//!
//! The conformance check only needs a well-formed `completion.values` array, but a fixture that
//! really filters by prefix lets broker tests tell a forwarded answer from an invented one.

use serde_json::{Value, json};

use crate::prompts;
use crate::protocol::RpcError;
use crate::resources;

/// The spec's cap on values in one completion.
const MAX_VALUES: usize = 100;

/// `completion/complete`.
pub fn complete(params: &Value) -> Result<Value, RpcError> {
    let reference = params
        .get("ref")
        .ok_or_else(|| RpcError::invalid_params("completion/complete needs `ref`"))?;
    let argument = params
        .get("argument")
        .ok_or_else(|| RpcError::invalid_params("completion/complete needs `argument`"))?;
    let argument_name = argument
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("argument.name must be a string"))?;
    let prefix = argument.get("value").and_then(Value::as_str).unwrap_or("");

    let candidates: &[&str] = match reference.get("type").and_then(Value::as_str) {
        Some("ref/prompt") => {
            let name = reference.get("name").and_then(Value::as_str).unwrap_or("");
            let arguments = prompts::argument_names(name)
                .ok_or_else(|| RpcError::invalid_params(format!("Unknown prompt: {name}")))?;
            if arguments.contains(&argument_name) {
                prompt_candidates(name, argument_name)
            } else {
                &[]
            }
        }
        Some("ref/resource") => {
            let uri = reference.get("uri").and_then(Value::as_str).unwrap_or("");
            match (uri, argument_name) {
                (resources::TEMPLATE_URI, "id") => &["1", "123", "42"],
                (
                    resources::TEMPLATE_URI
                    | resources::STATIC_TEXT_URI
                    | resources::STATIC_BINARY_URI
                    | resources::WATCHED_URI,
                    _,
                ) => &[],
                _ => {
                    return Err(RpcError::invalid_params(format!(
                        "Unknown resource or template: {uri}"
                    )));
                }
            }
        }
        _ => {
            return Err(RpcError::invalid_params(
                "ref.type must be ref/prompt or ref/resource",
            ));
        }
    };

    let values: Vec<&str> = candidates
        .iter()
        .copied()
        .filter(|c| c.starts_with(prefix))
        .collect();
    let total = values.len();
    let values: Vec<&str> = values.into_iter().take(MAX_VALUES).collect();
    Ok(json!({
        "completion": { "values": values, "total": total, "hasMore": total > MAX_VALUES }
    }))
}

/// Suggestions for one prompt argument.
fn prompt_candidates(prompt: &str, argument: &str) -> &'static [&'static str] {
    match (prompt, argument) {
        ("test_prompt_with_arguments", "arg1") => &["paris", "park", "party", "testValue1"],
        ("test_prompt_with_arguments", "arg2") => &["testValue2", "world"],
        ("test_prompt_with_embedded_resource", "resourceUri") => &[
            resources::STATIC_TEXT_URI,
            resources::STATIC_BINARY_URI,
            resources::WATCHED_URI,
        ],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(params: Value) -> Vec<String> {
        let result = complete(&params).unwrap();
        serde_json::from_value(result["completion"]["values"].clone()).unwrap()
    }

    #[test]
    fn prompt_arguments_are_filtered_by_prefix() {
        let params = |value: &str| {
            json!({
                "ref": { "type": "ref/prompt", "name": "test_prompt_with_arguments" },
                "argument": { "name": "arg1", "value": value }
            })
        };
        assert_eq!(values(params("par")), ["paris", "park", "party"]);
        assert_eq!(values(params("test")), ["testValue1"]);
        assert!(values(params("zzz")).is_empty());
    }

    #[test]
    fn template_ids_complete_and_unknown_refs_fail() {
        let ok = json!({
            "ref": { "type": "ref/resource", "uri": "test://template/{id}/data" },
            "argument": { "name": "id", "value": "1" }
        });
        assert_eq!(values(ok), ["1", "123"]);
        let unknown = json!({
            "ref": { "type": "ref/prompt", "name": "nope" },
            "argument": { "name": "x", "value": "" }
        });
        assert_eq!(complete(&unknown).unwrap_err().code, -32602);
    }
}
