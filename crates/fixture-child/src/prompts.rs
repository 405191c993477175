//! The conformance suite's fixture prompts.
//!
//! Texts and argument names are the reference server's. A missing required argument or an
//! unknown prompt is -32602, as in the TypeScript SDK the reference runs on.

use serde_json::{Map, Value, json};

use crate::content::{self, TEST_IMAGE_BASE64, user_message};
use crate::mrtr;
use crate::protocol::RpcError;

/// One prompt argument: name, description, required.
type Argument = (&'static str, &'static str, bool);

/// A listed prompt.
struct PromptSpec {
    name: &'static str,
    title: &'static str,
    description: &'static str,
    arguments: &'static [Argument],
}

/// Every prompt, in `prompts/list` order.
const PROMPTS: &[PromptSpec] = &[
    PromptSpec {
        name: "test_simple_prompt",
        title: "Simple Test Prompt",
        description: "A simple prompt without arguments",
        arguments: &[],
    },
    PromptSpec {
        name: "test_prompt_with_arguments",
        title: "Prompt With Arguments",
        description: "A prompt with required arguments",
        arguments: &[
            ("arg1", "First test argument", true),
            ("arg2", "Second test argument", true),
        ],
    },
    PromptSpec {
        name: "test_prompt_with_embedded_resource",
        title: "Prompt With Embedded Resource",
        description: "A prompt that includes an embedded resource",
        arguments: &[("resourceUri", "URI of the resource to embed", true)],
    },
    PromptSpec {
        name: "test_prompt_with_image",
        title: "Prompt With Image",
        description: "A prompt that includes image content",
        arguments: &[],
    },
    PromptSpec {
        name: mrtr::PROMPT_NAME,
        title: "MRTR Prompt",
        description: "MRTR: prompt that requires elicitation input (2026-07-28 InputRequiredResult)",
        arguments: &[],
    },
];

/// `prompts/list`.
pub fn list() -> Value {
    let prompts: Vec<Value> = PROMPTS
        .iter()
        .map(|p| {
            let arguments: Vec<Value> = p
                .arguments
                .iter()
                .map(|(name, description, required)| {
                    json!({ "name": name, "description": description, "required": required })
                })
                .collect();
            json!({
                "name": p.name,
                "title": p.title,
                "description": p.description,
                "arguments": arguments
            })
        })
        .collect();
    json!({ "prompts": prompts })
}

/// The names of the arguments of prompt `name`, if it exists (used by completion).
pub fn argument_names(name: &str) -> Option<Vec<&'static str>> {
    PROMPTS
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.arguments.iter().map(|(n, _, _)| *n).collect())
}

/// `prompts/get`.
pub fn get(params: &Value) -> Result<Value, RpcError> {
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("prompts/get needs a string `name`"))?;
    let spec = PROMPTS
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| RpcError::invalid_params(format!("Unknown prompt: {name}")))?;
    let arguments = arguments(params, spec)?;
    let arg = |key: &str| arguments.get(key).and_then(Value::as_str).unwrap_or("");
    let messages = match spec.name {
        "test_simple_prompt" => vec![user_message(content::text(
            "This is a simple prompt for testing.",
        ))],
        "test_prompt_with_arguments" => vec![user_message(content::text(format!(
            "Prompt with arguments: arg1='{}', arg2='{}'",
            arg("arg1"),
            arg("arg2")
        )))],
        "test_prompt_with_embedded_resource" => vec![
            user_message(content::embedded_text(
                arg("resourceUri"),
                "text/plain",
                "Embedded resource content for testing.",
            )),
            user_message(content::text("Please process the embedded resource above.")),
        ],
        "test_prompt_with_image" => vec![
            user_message(content::image(TEST_IMAGE_BASE64, "image/png")),
            user_message(content::text("Please analyze the image above.")),
        ],
        mrtr::PROMPT_NAME => return mrtr::prompt(params),
        other => unreachable!("prompt {other} is listed but has no body"),
    };
    Ok(json!({ "description": spec.description, "messages": messages }))
}

/// `params.arguments`, checked against the prompt's declared arguments.
fn arguments(params: &Value, spec: &PromptSpec) -> Result<Map<String, Value>, RpcError> {
    let arguments = match params.get("arguments") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => {
            return Err(RpcError::invalid_params(
                "prompt arguments must be an object",
            ));
        }
    };
    for (name, _, required) in spec.arguments {
        match arguments.get(*name) {
            Some(Value::String(_)) => {}
            None if !required => {}
            None => {
                return Err(RpcError::invalid_params(format!(
                    "Missing required argument `{name}` for prompt {}",
                    spec.name
                )));
            }
            Some(_) => {
                return Err(RpcError::invalid_params(format!(
                    "Argument `{name}` must be a string"
                )));
            }
        }
    }
    Ok(arguments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_prompt_can_be_fetched() {
        for spec in PROMPTS {
            let arguments: Map<String, Value> = spec
                .arguments
                .iter()
                .map(|(n, _, _)| (n.to_string(), json!("v")))
                .collect();
            let result = get(&json!({ "name": spec.name, "arguments": arguments })).unwrap();
            let has_messages = result["messages"].as_array().is_some_and(|m| !m.is_empty());
            let asks_for_input = result["resultType"] == "input_required";
            assert!(has_messages || asks_for_input, "{}: {result}", spec.name);
        }
    }

    #[test]
    fn arguments_are_substituted_and_required() {
        let result = get(&json!({
            "name": "test_prompt_with_arguments",
            "arguments": { "arg1": "testValue1", "arg2": "testValue2" }
        }))
        .unwrap();
        assert_eq!(
            result["messages"][0]["content"]["text"],
            "Prompt with arguments: arg1='testValue1', arg2='testValue2'"
        );
        let missing =
            get(&json!({ "name": "test_prompt_with_arguments", "arguments": { "arg1": "x" } }));
        assert_eq!(missing.unwrap_err().code, -32602);
        assert_eq!(get(&json!({ "name": "nope" })).unwrap_err().code, -32602);
    }
}
