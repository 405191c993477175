//! The tool catalog: `tools/list` and `tools/call` dispatch.
//!
//! Every tool is a variant of [`Tool`], so the compiler checks that each listed tool has a
//! description, a schema and a handler, and [`Tool::ALL`] fixes the `tools/list` order (the
//! 2026-07-28 revision asks for a deterministic order). Handlers live by audience:
//! [`conformance`] for the conformance suite's fixtures, [`crate::mrtr`] for its 2026-07-28
//! input-required scenarios, [`broker`] for fjmcp-broker's own tests.

mod broker;
mod conformance;

use serde_json::{Map, Value, json};

use crate::mrtr;
use crate::peer::RequestContext;
use crate::protocol::RpcError;

/// Every tool this server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    SimpleText,
    ImageContent,
    AudioContent,
    EmbeddedResource,
    MultipleContentTypes,
    ToolWithLogging,
    ToolWithProgress,
    ErrorHandling,
    Reconnection,
    Sampling,
    Elicitation,
    ElicitationSep1034Defaults,
    ElicitationSep1330Enums,
    JsonSchema202012,
    MissingCapability,
    StreamingElicitation,
    LoggingTool,
    TriggerToolChange,
    TriggerPromptChange,
    InputRequiredElicitation,
    InputRequiredSampling,
    InputRequiredListRoots,
    InputRequiredRequestState,
    InputRequiredMultipleInputs,
    InputRequiredMultiRound,
    InputRequiredTamperedState,
    InputRequiredCapabilities,
    Whoami,
    EnvNames,
    Sleep,
    Crash,
    TriggerListChanged,
    Echo,
}

impl Tool {
    /// Every tool, in `tools/list` order.
    pub const ALL: [Tool; 33] = [
        Tool::SimpleText,
        Tool::ImageContent,
        Tool::AudioContent,
        Tool::EmbeddedResource,
        Tool::MultipleContentTypes,
        Tool::ToolWithLogging,
        Tool::ToolWithProgress,
        Tool::ErrorHandling,
        Tool::Reconnection,
        Tool::Sampling,
        Tool::Elicitation,
        Tool::ElicitationSep1034Defaults,
        Tool::ElicitationSep1330Enums,
        Tool::JsonSchema202012,
        Tool::MissingCapability,
        Tool::StreamingElicitation,
        Tool::LoggingTool,
        Tool::TriggerToolChange,
        Tool::TriggerPromptChange,
        Tool::InputRequiredElicitation,
        Tool::InputRequiredSampling,
        Tool::InputRequiredListRoots,
        Tool::InputRequiredRequestState,
        Tool::InputRequiredMultipleInputs,
        Tool::InputRequiredMultiRound,
        Tool::InputRequiredTamperedState,
        Tool::InputRequiredCapabilities,
        Tool::Whoami,
        Tool::EnvNames,
        Tool::Sleep,
        Tool::Crash,
        Tool::TriggerListChanged,
        Tool::Echo,
    ];

    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Tool::SimpleText => "test_simple_text",
            Tool::ImageContent => "test_image_content",
            Tool::AudioContent => "test_audio_content",
            Tool::EmbeddedResource => "test_embedded_resource",
            Tool::MultipleContentTypes => "test_multiple_content_types",
            Tool::ToolWithLogging => "test_tool_with_logging",
            Tool::ToolWithProgress => "test_tool_with_progress",
            Tool::ErrorHandling => "test_error_handling",
            Tool::Reconnection => "test_reconnection",
            Tool::Sampling => "test_sampling",
            Tool::Elicitation => "test_elicitation",
            Tool::ElicitationSep1034Defaults => "test_elicitation_sep1034_defaults",
            Tool::ElicitationSep1330Enums => "test_elicitation_sep1330_enums",
            Tool::JsonSchema202012 => "json_schema_2020_12_tool",
            Tool::MissingCapability => "test_missing_capability",
            Tool::StreamingElicitation => "test_streaming_elicitation",
            Tool::LoggingTool => "test_logging_tool",
            Tool::TriggerToolChange => "test_trigger_tool_change",
            Tool::TriggerPromptChange => "test_trigger_prompt_change",
            Tool::InputRequiredElicitation => "test_input_required_result_elicitation",
            Tool::InputRequiredSampling => "test_input_required_result_sampling",
            Tool::InputRequiredListRoots => "test_input_required_result_list_roots",
            Tool::InputRequiredRequestState => "test_input_required_result_request_state",
            Tool::InputRequiredMultipleInputs => "test_input_required_result_multiple_inputs",
            Tool::InputRequiredMultiRound => "test_input_required_result_multi_round",
            Tool::InputRequiredTamperedState => "test_input_required_result_tampered_state",
            Tool::InputRequiredCapabilities => "test_input_required_result_capabilities",
            Tool::Whoami => "whoami",
            Tool::EnvNames => "env_names",
            Tool::Sleep => "sleep",
            Tool::Crash => "crash",
            Tool::TriggerListChanged => "trigger_list_changed",
            Tool::Echo => "echo",
        }
    }

    /// The tool named `name`.
    pub fn from_name(name: &str) -> Option<Tool> {
        Tool::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The `description` in `tools/list`.
    fn description(self) -> &'static str {
        match self {
            Tool::SimpleText => "Tests simple text content response",
            Tool::ImageContent => "Tests image content response",
            Tool::AudioContent => "Tests audio content response",
            Tool::EmbeddedResource => "Tests embedded resource content response",
            Tool::MultipleContentTypes => {
                "Tests response with multiple content types (text, image, resource)"
            }
            Tool::ToolWithLogging => "Tests tool that emits log messages during execution",
            Tool::ToolWithProgress => "Tests tool that reports progress notifications",
            Tool::ErrorHandling => "Tests error response handling",
            Tool::Reconnection => {
                "Tests SSE stream disconnection and client reconnection (SEP-1699); over stdio \
                 it simply answers after a short delay"
            }
            Tool::Sampling => "Tests server-initiated sampling (LLM completion request)",
            Tool::Elicitation => "Tests server-initiated elicitation (user input request)",
            Tool::ElicitationSep1034Defaults => {
                "Tests elicitation with default values per SEP-1034"
            }
            Tool::ElicitationSep1330Enums => {
                "Tests elicitation with enum schema improvements per SEP-1330"
            }
            Tool::JsonSchema202012 => {
                "Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613)"
            }
            Tool::MissingCapability => "Test tool requiring sampling",
            Tool::StreamingElicitation => "Diagnostic tool validating response progress streams",
            Tool::LoggingTool => "Diagnostic logging validator tool",
            Tool::TriggerToolChange => "Sends notifications/tools/list_changed",
            Tool::TriggerPromptChange => "Sends notifications/prompts/list_changed",
            Tool::InputRequiredElicitation => {
                "MRTR: returns InputRequiredResult with elicitation request"
            }
            Tool::InputRequiredSampling => {
                "MRTR: returns InputRequiredResult with sampling request"
            }
            Tool::InputRequiredListRoots => {
                "MRTR: returns InputRequiredResult with roots/list request"
            }
            Tool::InputRequiredRequestState => {
                "MRTR: returns InputRequiredResult with requestState"
            }
            Tool::InputRequiredMultipleInputs => {
                "MRTR: returns InputRequiredResult with multiple input requests"
            }
            Tool::InputRequiredMultiRound => "MRTR: multi-round InputRequiredResult workflow",
            Tool::InputRequiredTamperedState => "MRTR: HMAC-signed requestState integrity test",
            Tool::InputRequiredCapabilities => {
                "MRTR: respects client capabilities in inputRequests"
            }
            Tool::Whoami => {
                "Returns the login of the Forgejo user whose token this process was started with"
            }
            Tool::EnvNames => "Returns the sorted names (not values) of this process's environment",
            Tool::Sleep => "Sleeps for `ms` milliseconds, then answers; honours cancellation",
            Tool::Crash => "Exits the process immediately with status 3, without answering",
            Tool::TriggerListChanged => {
                "Sends tools, resources and prompts list_changed notifications"
            }
            Tool::Echo => "Returns its `text` argument",
        }
    }

    /// The `inputSchema` in `tools/list`.
    fn input_schema(self) -> Value {
        match self {
            Tool::Sampling => object_schema(
                json!({ "prompt": { "type": "string", "description": "The prompt to send to the LLM" } }),
                &["prompt"],
            ),
            Tool::Elicitation => object_schema(
                json!({ "message": { "type": "string", "description": "The message to show the user" } }),
                &["message"],
            ),
            Tool::JsonSchema202012 => conformance::json_schema_2020_12(),
            Tool::Sleep => object_schema(
                json!({ "ms": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": broker::MAX_SLEEP_MS,
                    "description": "How long to sleep, in milliseconds"
                } }),
                &["ms"],
            ),
            Tool::Echo => object_schema(
                json!({ "text": { "type": "string", "description": "The text to return" } }),
                &["text"],
            ),
            _ => object_schema(json!({}), &[]),
        }
    }

    /// The `tools/list` entry.
    fn listing(self) -> Value {
        json!({
            "name": self.name(),
            "description": self.description(),
            "inputSchema": self.input_schema(),
        })
    }
}

/// An object schema with `properties` and `required`.
fn object_schema(properties: Value, required: &[&str]) -> Value {
    let mut schema = json!({ "type": "object", "properties": properties });
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    schema
}

/// `tools/list`.
pub fn list() -> Value {
    let tools: Vec<Value> = Tool::ALL.into_iter().map(Tool::listing).collect();
    json!({ "tools": tools })
}

/// `tools/call`. An unknown tool or non-object `arguments` is a JSON-RPC error (the call itself
/// is malformed); bad argument values are `isError` results, as 2025-11-25 (SEP-1303) asks, so a
/// model can read them and retry.
pub async fn call(params: &Value, ctx: &RequestContext) -> Result<Value, RpcError> {
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("tools/call needs a string `name`"))?;
    let tool = Tool::from_name(name)
        .ok_or_else(|| RpcError::invalid_params(format!("Unknown tool: {name}")))?;
    let args = match params.get("arguments") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => return Err(RpcError::invalid_params("tool arguments must be an object")),
    };
    tracing::info!("tools/call {name}");
    let result = match tool {
        Tool::SimpleText => conformance::simple_text(),
        Tool::ImageContent => conformance::image_content(),
        Tool::AudioContent => conformance::audio_content(),
        Tool::EmbeddedResource => conformance::embedded_resource(),
        Tool::MultipleContentTypes => conformance::multiple_content_types(),
        Tool::ToolWithLogging => conformance::with_logging(ctx).await,
        Tool::ToolWithProgress => conformance::with_progress(ctx).await,
        Tool::ErrorHandling => conformance::error_handling(),
        Tool::Reconnection => conformance::reconnection().await,
        Tool::Sampling => conformance::sampling(&args, ctx).await,
        Tool::Elicitation => conformance::elicitation(&args, ctx).await,
        Tool::ElicitationSep1034Defaults => conformance::elicitation_sep1034_defaults(ctx).await,
        Tool::ElicitationSep1330Enums => conformance::elicitation_sep1330_enums(ctx).await,
        Tool::JsonSchema202012 => conformance::json_schema_tool(&args),
        Tool::MissingCapability => conformance::missing_capability(ctx)?,
        Tool::StreamingElicitation => conformance::streaming_elicitation(ctx),
        Tool::LoggingTool => conformance::logging_tool(ctx),
        Tool::TriggerToolChange => conformance::trigger_tool_change(ctx),
        Tool::TriggerPromptChange => conformance::trigger_prompt_change(ctx),
        Tool::InputRequiredElicitation => mrtr::elicitation(params)?,
        Tool::InputRequiredSampling => mrtr::sampling(params)?,
        Tool::InputRequiredListRoots => mrtr::list_roots(params)?,
        Tool::InputRequiredRequestState => mrtr::request_state(params, ctx)?,
        Tool::InputRequiredMultipleInputs => mrtr::multiple_inputs(params, ctx)?,
        Tool::InputRequiredMultiRound => mrtr::multi_round(params, ctx)?,
        Tool::InputRequiredTamperedState => mrtr::tampered_state(params, ctx)?,
        Tool::InputRequiredCapabilities => mrtr::capabilities(params, ctx)?,
        Tool::Whoami => broker::whoami(ctx).await,
        Tool::EnvNames => broker::env_names(),
        Tool::Sleep => broker::sleep(&args).await,
        Tool::Crash => broker::crash(),
        Tool::TriggerListChanged => broker::trigger_list_changed(ctx),
        Tool::Echo => broker::echo(&args),
    };
    Ok(result)
}

/// A required string argument, or the `isError` result explaining that it is missing.
fn required_str<'a>(args: &'a Map<String, Value>, key: &str) -> Result<&'a str, Value> {
    args.get(key).and_then(Value::as_str).ok_or_else(|| {
        crate::content::tool_error(format!("Invalid arguments: `{key}` must be a string"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        for tool in Tool::ALL {
            assert_eq!(Tool::from_name(tool.name()), Some(tool));
        }
        let mut names: Vec<_> = Tool::ALL.iter().map(|t| t.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Tool::ALL.len());
    }

    #[test]
    fn listings_satisfy_the_tools_list_scenario() {
        // tools-list: every tool has a name matching SEP-986, a description and an object schema.
        for entry in list()["tools"].as_array().unwrap() {
            let name = entry["name"].as_str().unwrap();
            assert!(
                (1..=64).contains(&name.len())
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c)),
                "{name}"
            );
            assert!(!entry["description"].as_str().unwrap().is_empty());
            assert_eq!(entry["inputSchema"]["type"], "object", "{name}");
        }
    }
}
