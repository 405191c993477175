//! Handlers of the conformance suite's fixture tools.
//!
//! Texts, delays, schemas and payloads follow the reference server
//! (`examples/servers/typescript/everything-server.ts` of modelcontextprotocol/conformance,
//! v0.1.16 and 0.2.0-alpha.11). Deviations, each deliberate:
//! - progress notifications are sent only when the caller supplied a progress token (the spec's
//!   rule; the reference falls back to token `0`);
//! - sampling and elicitation check the client's declared capability first and return an
//!   `isError` result when it is missing or the client refuses (the reference returns a plain
//!   text result);
//! - the 2026-07-28 diagnostic tools (`test_missing_capability`, `test_logging_tool`, …) read the
//!   request's own `_meta`, so a broker that forwards it gets the reference's behaviour.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::required_str;
use crate::content::{
    self, TEST_AUDIO_BASE64, TEST_IMAGE_BASE64, tool_error, tool_result, tool_text,
};
use crate::peer::{LogLevel, META_LOG_LEVEL, RequestContext};
use crate::protocol::{RpcError, codes};

/// The pause between steps of the logging and progress tools, so the notifications arrive
/// spread over the call as the scenarios intend.
const STEP_DELAY: Duration = Duration::from_millis(50);

/// `test_simple_text`.
pub(crate) fn simple_text() -> Value {
    tool_text("This is a simple text response for testing.")
}

/// `test_image_content`.
pub(crate) fn image_content() -> Value {
    tool_result(vec![content::image(TEST_IMAGE_BASE64, "image/png")])
}

/// `test_audio_content`.
pub(crate) fn audio_content() -> Value {
    tool_result(vec![content::audio(TEST_AUDIO_BASE64, "audio/wav")])
}

/// `test_embedded_resource`.
pub(crate) fn embedded_resource() -> Value {
    tool_result(vec![content::embedded_text(
        "test://embedded-resource",
        "text/plain",
        "This is an embedded resource content.",
    )])
}

/// `test_multiple_content_types`.
pub(crate) fn multiple_content_types() -> Value {
    tool_result(vec![
        content::text("Multiple content types test:"),
        content::image(TEST_IMAGE_BASE64, "image/png"),
        content::embedded_text(
            "test://mixed-content-resource",
            "application/json",
            r#"{"test":"data","value":123}"#,
        ),
    ])
}

/// `test_tool_with_logging`: three info-level log notifications, 50 ms apart.
pub(crate) async fn with_logging(ctx: &RequestContext) -> Value {
    let peer = ctx.peer();
    peer.log(LogLevel::Info, json!("Tool execution started"));
    tokio::time::sleep(STEP_DELAY).await;
    peer.log(LogLevel::Info, json!("Tool processing data"));
    tokio::time::sleep(STEP_DELAY).await;
    peer.log(LogLevel::Info, json!("Tool execution completed"));
    tool_text("Tool with logging executed successfully")
}

/// `test_tool_with_progress`: progress 0, 50, 100 of 100, 50 ms apart; answers with the token.
pub(crate) async fn with_progress(ctx: &RequestContext) -> Value {
    for (i, progress) in [0u64, 50, 100].into_iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(STEP_DELAY).await;
        }
        ctx.progress(progress, 100, &format!("Completed step {progress} of 100"));
    }
    match ctx.progress_token() {
        Some(Value::String(token)) => tool_text(token.clone()),
        Some(token) => tool_text(token.to_string()),
        None => tool_text("No progress token was supplied"),
    }
}

/// `test_error_handling`.
pub(crate) fn error_handling() -> Value {
    tool_error("This tool intentionally returns an error for testing")
}

/// `test_reconnection`. Over HTTP the reference closes the SSE stream mid-call; a stdio server
/// has no stream to close, so it only keeps the reference's delay (closing is the broker's job).
pub(crate) async fn reconnection() -> Value {
    tokio::time::sleep(Duration::from_millis(100)).await;
    tool_text(
        "Reconnection test completed successfully. If you received this, the client properly \
         reconnected after stream closure.",
    )
}

/// `test_sampling`: asks the client for an LLM completion of `prompt`.
pub(crate) async fn sampling(args: &Map<String, Value>, ctx: &RequestContext) -> Value {
    let prompt = match required_str(args, "prompt") {
        Ok(p) => p,
        Err(error) => return error,
    };
    if !ctx.client_declares("sampling") {
        return tool_error(
            "Sampling not supported: the client did not declare the sampling capability",
        );
    }
    let params = json!({
        "messages": [ { "role": "user", "content": { "type": "text", "text": prompt } } ],
        "maxTokens": 100
    });
    match ctx
        .peer()
        .request_client("sampling/createMessage", params)
        .await
    {
        Ok(result) => {
            let text = result
                .pointer("/content/text")
                .or_else(|| result.pointer("/message/content/text"))
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .unwrap_or("No response");
            tool_text(format!("LLM response: {text}"))
        }
        Err(e) => tool_error(format!("Sampling failed: {e}")),
    }
}

/// `test_elicitation`: asks the user for a `response` string, showing `message`.
pub(crate) async fn elicitation(args: &Map<String, Value>, ctx: &RequestContext) -> Value {
    let message = match required_str(args, "message") {
        Ok(m) => m,
        Err(error) => return error,
    };
    let schema = json!({
        "type": "object",
        "properties": { "response": { "type": "string", "description": "User's response" } },
        "required": ["response"]
    });
    elicit(ctx, message, schema, "User response").await
}

/// `test_elicitation_sep1034_defaults`: a form whose fields all carry defaults (SEP-1034).
pub(crate) async fn elicitation_sep1034_defaults(ctx: &RequestContext) -> Value {
    let schema = json!({
        "type": "object",
        "properties": {
            "name": { "type": "string", "description": "User name", "default": "John Doe" },
            "age": { "type": "integer", "description": "User age", "default": 30 },
            "score": { "type": "number", "description": "User score", "default": 95.5 },
            "status": {
                "type": "string",
                "description": "User status",
                "enum": ["active", "inactive", "pending"],
                "default": "active"
            },
            "verified": { "type": "boolean", "description": "Verification status", "default": true }
        },
        "required": []
    });
    elicit(
        ctx,
        "Please review and update the form fields with defaults",
        schema,
        "Elicitation completed",
    )
    .await
}

/// `test_elicitation_sep1330_enums`: the five enum shapes of SEP-1330.
pub(crate) async fn elicitation_sep1330_enums(ctx: &RequestContext) -> Value {
    let schema = json!({
        "type": "object",
        "properties": {
            "untitledSingle": {
                "type": "string",
                "description": "Select one option",
                "enum": ["option1", "option2", "option3"]
            },
            "titledSingle": {
                "type": "string",
                "description": "Select one option with titles",
                "oneOf": [
                    { "const": "value1", "title": "First Option" },
                    { "const": "value2", "title": "Second Option" },
                    { "const": "value3", "title": "Third Option" }
                ]
            },
            "legacyEnum": {
                "type": "string",
                "description": "Select one option (legacy)",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"]
            },
            "untitledMulti": {
                "type": "array",
                "description": "Select multiple options",
                "minItems": 1,
                "maxItems": 3,
                "items": { "type": "string", "enum": ["option1", "option2", "option3"] }
            },
            "titledMulti": {
                "type": "array",
                "description": "Select multiple options with titles",
                "minItems": 1,
                "maxItems": 3,
                "items": {
                    "anyOf": [
                        { "const": "value1", "title": "First Choice" },
                        { "const": "value2", "title": "Second Choice" },
                        { "const": "value3", "title": "Third Choice" }
                    ]
                }
            }
        },
        "required": []
    });
    elicit(
        ctx,
        "Please select options from the enum fields",
        schema,
        "Elicitation completed",
    )
    .await
}

/// Sends `elicitation/create` and reports the answer as `<label>: action=…, content=…`.
async fn elicit(ctx: &RequestContext, message: &str, schema: Value, label: &str) -> Value {
    if !ctx.client_declares("elicitation") {
        return tool_error(
            "Elicitation not supported: the client did not declare the elicitation capability",
        );
    }
    let params = json!({ "message": message, "requestedSchema": schema });
    match ctx
        .peer()
        .request_client("elicitation/create", params)
        .await
    {
        Ok(result) => {
            let action = result
                .get("action")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            let content = result
                .get("content")
                .filter(|c| !c.is_null())
                .cloned()
                .unwrap_or_else(|| json!({}));
            tool_text(format!("{label}: action={action}, content={content}"))
        }
        Err(e) => tool_error(format!("Elicitation failed: {e}")),
    }
}

/// The input schema of `json_schema_2020_12_tool`: the conformance suite's
/// `JSON_SCHEMA_2020_12_FIXTURE`, whose keywords (`$schema`, `$defs`, `$anchor`, `allOf`,
/// `if`/`then`/`else`, `additionalProperties`) must survive `tools/list` unchanged.
pub(crate) fn json_schema_2020_12() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": { "street": { "type": "string" }, "city": { "type": "string" } }
            }
        },
        "properties": {
            "name": { "type": "string" },
            "address": { "$ref": "#/$defs/address" },
            "contactMethod": { "type": "string", "enum": ["phone", "email"] },
            "phone": { "type": "string" },
            "email": { "type": "string" }
        },
        "allOf": [ { "anyOf": [ { "required": ["phone"] }, { "required": ["email"] } ] } ],
        "if": {
            "properties": { "contactMethod": { "const": "phone" } },
            "required": ["contactMethod"]
        },
        "then": { "required": ["phone"] },
        "else": { "required": ["email"] },
        "additionalProperties": false
    })
}

/// `json_schema_2020_12_tool`: echoes its arguments.
pub(crate) fn json_schema_tool(args: &Map<String, Value>) -> Value {
    tool_text(format!(
        "JSON Schema 2020-12 tool called with: {}",
        Value::Object(args.clone())
    ))
}

/// `test_missing_capability`: refuses with `MissingRequiredClientCapabilityError` (-32021)
/// unless the client declared `sampling`.
pub(crate) fn missing_capability(ctx: &RequestContext) -> Result<Value, RpcError> {
    if !ctx.client_declares("sampling") {
        return Err(RpcError::new(
            codes::MISSING_REQUIRED_CLIENT_CAPABILITY,
            "Missing required client capability: sampling",
        )
        .with_data(json!({ "requiredCapabilities": { "sampling": {} } })));
    }
    Ok(tool_text("Success"))
}

/// `test_streaming_elicitation`: one progress notification (if asked for), then the result.
/// It sends no server→client request, which is what the stateless scenario checks.
pub(crate) fn streaming_elicitation(ctx: &RequestContext) -> Value {
    ctx.progress(50, 100, "Streaming");
    tool_text("Streaming complete")
}

/// `test_logging_tool`: logs only when the request asked for logs in its `_meta`, the
/// 2026-07-28 rule ("MUST NOT emit notifications/message for requests that did not include
/// this field").
pub(crate) fn logging_tool(ctx: &RequestContext) -> Value {
    if let Some(level) = ctx.meta(META_LOG_LEVEL).and_then(Value::as_str) {
        let threshold = LogLevel::parse(level).unwrap_or(LogLevel::Debug);
        if LogLevel::Info >= threshold {
            ctx.peer().notify(
                "notifications/message",
                json!({
                    "level": "info",
                    "logger": crate::peer::LOGGER_NAME,
                    "data": "Diagnostic trace logging activated"
                }),
            );
        }
    }
    tool_text("Logging evaluated")
}

/// `test_trigger_tool_change`.
pub(crate) fn trigger_tool_change(ctx: &RequestContext) -> Value {
    ctx.peer()
        .notify("notifications/tools/list_changed", json!({}));
    tool_text("Mutation triggered")
}

/// `test_trigger_prompt_change`.
pub(crate) fn trigger_prompt_change(ctx: &RequestContext) -> Value {
    ctx.peer()
        .notify("notifications/prompts/list_changed", json!({}));
    tool_text("Mutation triggered")
}
