//! The input-required (MRTR, SEP-2322) fixtures of the 2026-07-28 conformance scenarios.
//!
//! In 2026-07-28 a server that needs input returns `resultType: "input_required"` with
//! `inputRequests` (keyed elicitation / sampling / roots requests) and an opaque
//! `requestState`; the client retries the same call with `inputResponses` and the state. Each
//! round is a pure function of the request, so these fixtures work through a broker that simply
//! forwards `inputResponses` and `requestState` (they sit in `params`, not `_meta`) and relays
//! the result. Every `requestState` is sealed by [`crate::seal`] and bound to its tool by a
//! `kind`, so a tampered or foreign state is a -32602 error.
//!
//! The keys, messages and texts are the reference server's. These tools answer every call this
//! way, whichever protocol version was negotiated; a 2025-era client simply sees an unusual
//! result, which is acceptable for a fixture.

use serde_json::{Map, Value, json};

use crate::content::{self, input_required, tool_text};
use crate::peer::RequestContext;
use crate::protocol::RpcError;

/// The input-required prompt of `input-required-result-non-tool-request`.
pub const PROMPT_NAME: &str = "test_input_required_result_prompt";

/// `test_input_required_result_elicitation`: asks for a name, then greets it.
pub fn elicitation(params: &Value) -> Result<Value, RpcError> {
    let responses = input_responses(params)?;
    if let Some(answer) = response(responses, "user_name") {
        let name = elicited_text(answer, "name");
        return Ok(tool_text(format!("Hello, {name}!")));
    }
    Ok(input_required(
        json!({ "user_name": elicit("What is your name?", "name", "string") }),
        None,
    ))
}

/// `test_input_required_result_sampling`: asks the client's LLM a question, then reports the
/// answer.
pub fn sampling(params: &Value) -> Result<Value, RpcError> {
    let responses = input_responses(params)?;
    if let Some(answer) = response(responses, "capital_question") {
        let text = answer
            .get("content")
            .and_then(|c| c.get("text"))
            .and_then(Value::as_str)
            .unwrap_or("no response");
        return Ok(tool_text(format!("Sampling result: {text}")));
    }
    Ok(input_required(
        json!({ "capital_question": sample("What is the capital of France?", 100) }),
        None,
    ))
}

/// `test_input_required_result_list_roots`: asks for the client's roots, then counts them.
pub fn list_roots(params: &Value) -> Result<Value, RpcError> {
    let responses = input_responses(params)?;
    if let Some(answer) = response(responses, "client_roots") {
        return Ok(tool_text(format!("Found {} root(s)", roots_count(answer))));
    }
    Ok(input_required(
        json!({ "client_roots": list_roots_request() }),
        None,
    ))
}

/// `test_input_required_result_request_state`: asks for a confirmation together with a state
/// that must come back unchanged.
pub fn request_state(params: &Value, ctx: &RequestContext) -> Result<Value, RpcError> {
    confirm_with_state(
        params,
        ctx,
        "request-state",
        "state-ok: requestState validated",
    )
}

/// `test_input_required_result_tampered_state`: like `request_state`; the scenario alters the
/// state and expects an error.
pub fn tampered_state(params: &Value, ctx: &RequestContext) -> Result<Value, RpcError> {
    confirm_with_state(params, ctx, "tamper-test", "integrity-ok: state verified")
}

/// `test_input_required_result_multiple_inputs`: elicitation, sampling and roots in one round.
pub fn multiple_inputs(params: &Value, ctx: &RequestContext) -> Result<Value, RpcError> {
    const KIND: &str = "multiple-inputs";
    let state = open_state(params, ctx, KIND)?;
    let responses = input_responses(params)?;
    if state.is_some()
        && let (Some(user), Some(greeting), Some(roots)) = (
            response(responses, "user_name"),
            response(responses, "greeting"),
            response(responses, "client_roots"),
        )
    {
        let name = elicited_text(user, "name");
        let greeting = greeting
            .get("content")
            .and_then(|c| c.get("text"))
            .and_then(Value::as_str)
            .unwrap_or("Hello there!");
        return Ok(tool_text(format!(
            "Name: {name}; Greeting: {greeting}; Roots: {}",
            roots_count(roots)
        )));
    }
    Ok(input_required(
        json!({
            "user_name": elicit("What is your name?", "name", "string"),
            "greeting": sample("Generate a greeting", 50),
            "client_roots": list_roots_request()
        }),
        Some(seal(ctx, KIND, json!({}))),
    ))
}

/// `test_input_required_result_multi_round`: a name, then a colour, with the state carrying the
/// name between rounds.
pub fn multi_round(params: &Value, ctx: &RequestContext) -> Result<Value, RpcError> {
    const KIND: &str = "multi-round";
    let state = open_state(params, ctx, KIND)?;
    let responses = input_responses(params)?;
    let round = state
        .as_ref()
        .and_then(|s| s.get("round"))
        .and_then(Value::as_u64);
    match (
        round,
        response(responses, "step1"),
        response(responses, "step2"),
    ) {
        (Some(1), Some(step1), _) => {
            let name = elicited_text(step1, "name");
            Ok(input_required(
                json!({ "step2": elicit("Step 2: What is your favorite color?", "color", "string") }),
                Some(seal(ctx, KIND, json!({ "round": 2, "name": name }))),
            ))
        }
        (Some(2), _, Some(step2)) => {
            let name = state
                .as_ref()
                .and_then(|s| s.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("friend");
            let color = elicited_text(step2, "color");
            Ok(tool_text(format!(
                "Multi-round complete for {name} who likes {color}"
            )))
        }
        // First call, or answers that do not fit the state: start over.
        _ => Ok(input_required(
            json!({ "step1": elicit("Step 1: What is your name?", "name", "string") }),
            Some(seal(ctx, KIND, json!({ "round": 1 }))),
        )),
    }
}

/// `test_input_required_result_capabilities`: asks only for what the client declared.
pub fn capabilities(params: &Value, ctx: &RequestContext) -> Result<Value, RpcError> {
    const KIND: &str = "capabilities-test";
    open_state(params, ctx, KIND)?;
    if let Some(responses) = input_responses(params)?
        && !responses.is_empty()
    {
        let keys: Vec<&str> = responses.keys().map(String::as_str).collect();
        return Ok(tool_text(format!(
            "capabilities-ok: received {}",
            keys.join(",")
        )));
    }
    let mut requests = Map::new();
    if ctx.client_declares("elicitation") {
        requests.insert(
            "elicit_input".into(),
            elicit("Elicitation input", "value", "string"),
        );
    }
    if ctx.client_declares("sampling") {
        requests.insert("sample_input".into(), sample("Sample request", 50));
    }
    if requests.is_empty() {
        return Ok(tool_text("No supported capabilities declared"));
    }
    Ok(input_required(
        Value::Object(requests),
        Some(seal(ctx, KIND, json!({}))),
    ))
}

/// `prompts/get` of [`PROMPT_NAME`]: asks for context, then builds the prompt from it.
pub fn prompt(params: &Value) -> Result<Value, RpcError> {
    let responses = input_responses(params)?;
    if let Some(answer) = response(responses, "user_context") {
        let context = elicited_text(answer, "context");
        return Ok(json!({
            "messages": [content::user_message(content::text(format!(
                "Prompt with context: {context}"
            )))]
        }));
    }
    Ok(input_required(
        json!({
            "user_context": elicit("What context should the prompt use?", "context", "string")
        }),
        None,
    ))
}

/// The confirm-with-state round trip shared by `request_state` and `tampered_state`.
fn confirm_with_state(
    params: &Value,
    ctx: &RequestContext,
    kind: &str,
    done: &str,
) -> Result<Value, RpcError> {
    let state = open_state(params, ctx, kind)?;
    let responses = input_responses(params)?;
    let confirmed = response(responses, "confirm")
        .and_then(|r| r.get("content"))
        .and_then(|c| c.get("ok"))
        .and_then(Value::as_bool)
        == Some(true);
    if state.is_some() && confirmed {
        return Ok(tool_text(done));
    }
    Ok(input_required(
        json!({ "confirm": elicit("Please confirm", "ok", "boolean") }),
        Some(seal(ctx, kind, json!({}))),
    ))
}

/// `params.inputResponses`: absent is fine, anything but an object is a protocol error.
fn input_responses(params: &Value) -> Result<Option<&Map<String, Value>>, RpcError> {
    match params.get("inputResponses") {
        None => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(RpcError::invalid_params("inputResponses must be an object")),
    }
}

/// One answer, if present and shaped like a result object; anything else counts as missing,
/// so the server asks again (the spec's SHOULD for missing answers).
fn response<'a>(
    responses: Option<&'a Map<String, Value>>,
    key: &str,
) -> Option<&'a Map<String, Value>> {
    responses?.get(key)?.as_object()
}

/// A text field of an accepted elicitation, or `unknown`.
fn elicited_text(answer: &Map<String, Value>, field: &str) -> String {
    answer
        .get("content")
        .and_then(|c| c.get(field))
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_owned()
}

/// The number of roots in a `roots/list` result.
fn roots_count(answer: &Map<String, Value>) -> usize {
    answer
        .get("roots")
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

/// The verified payload of `params.requestState`, if any. A state that fails verification or
/// belongs to another tool is refused, never silently restarted.
fn open_state(params: &Value, ctx: &RequestContext, kind: &str) -> Result<Option<Value>, RpcError> {
    let Some(raw) = params.get("requestState") else {
        return Ok(None);
    };
    let payload = raw
        .as_str()
        .and_then(|s| ctx.peer().sealer().open(s))
        .filter(|p| p.get("kind").and_then(Value::as_str) == Some(kind))
        .ok_or_else(|| RpcError::invalid_params("requestState integrity check failed"))?;
    Ok(Some(payload))
}

/// A sealed state of `kind` carrying `fields`.
fn seal(ctx: &RequestContext, kind: &str, mut fields: Value) -> String {
    fields["kind"] = Value::from(kind);
    ctx.peer().sealer().seal(&fields)
}

/// An `elicitation/create` input request for one required field.
fn elicit(message: &str, field: &str, field_type: &str) -> Value {
    json!({
        "method": "elicitation/create",
        "params": {
            "message": message,
            "requestedSchema": {
                "type": "object",
                "properties": { field: { "type": field_type } },
                "required": [field]
            }
        }
    })
}

/// A `sampling/createMessage` input request.
fn sample(text: &str, max_tokens: u64) -> Value {
    json!({
        "method": "sampling/createMessage",
        "params": {
            "messages": [ { "role": "user", "content": { "type": "text", "text": text } } ],
            "maxTokens": max_tokens
        }
    })
}

/// A `roots/list` input request.
fn list_roots_request() -> Value {
    json!({ "method": "roots/list", "params": {} })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::Options;
    use crate::peer::{META_CLIENT_CAPABILITIES, Peer};
    use crate::seal::StateSealer;

    fn ctx(params: &Value) -> RequestContext {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let peer = Arc::new(Peer::new(
            tx,
            Options::default(),
            StateSealer::from_key([9; 32]),
        ));
        RequestContext::new(peer, params)
    }

    fn accept(content: Value) -> Value {
        json!({ "action": "accept", "content": content })
    }

    #[test]
    fn elicitation_round_trip_and_input_validation() {
        let first = elicitation(&json!({})).unwrap();
        assert_eq!(first["resultType"], "input_required");
        assert_eq!(
            first["inputRequests"]["user_name"]["method"],
            "elicitation/create"
        );

        let done = elicitation(&json!({ "inputResponses": {
            "user_name": accept(json!({ "name": "Alice" })),
            "unknown_extra_key": accept(json!({}))
        } }))
        .unwrap();
        assert_eq!(done["content"][0]["text"], "Hello, Alice!");

        let wrong_shape =
            elicitation(&json!({ "inputResponses": { "user_name": 12345 } })).unwrap();
        assert_eq!(wrong_shape["resultType"], "input_required");
        let null = elicitation(&json!({ "inputResponses": null })).unwrap_err();
        assert_eq!(null.code, -32602);
    }

    #[test]
    fn tampered_or_foreign_state_is_an_error() {
        let params = json!({});
        let context = ctx(&params);
        let first = tampered_state(&params, &context).unwrap();
        let state = first["requestState"].as_str().unwrap().to_owned();

        let good = json!({ "inputResponses": { "confirm": accept(json!({ "ok": true })) }, "requestState": state });
        assert_eq!(
            tampered_state(&good, &context).unwrap()["content"][0]["text"],
            "integrity-ok: state verified"
        );
        let tampered = json!({
            "inputResponses": { "confirm": accept(json!({ "ok": true })) },
            "requestState": format!("{state}-TAMPERED")
        });
        assert_eq!(
            tampered_state(&tampered, &context).unwrap_err().code,
            -32602
        );
        // A valid state of another tool is refused too.
        assert_eq!(request_state(&good, &context).unwrap_err().code, -32602);
    }

    #[test]
    fn multi_round_carries_the_name_in_the_state() {
        let context = ctx(&json!({}));
        let r1 = multi_round(&json!({}), &context).unwrap();
        let r2 = multi_round(
            &json!({
                "inputResponses": { "step1": accept(json!({ "name": "Bob" })) },
                "requestState": r1["requestState"]
            }),
            &context,
        )
        .unwrap();
        assert!(r2["inputRequests"]["step2"].is_object());
        let r3 = multi_round(
            &json!({
                "inputResponses": { "step2": accept(json!({ "color": "blue" })) },
                "requestState": r2["requestState"]
            }),
            &context,
        )
        .unwrap();
        assert_eq!(
            r3["content"][0]["text"],
            "Multi-round complete for Bob who likes blue"
        );
    }

    #[test]
    fn capabilities_limit_the_input_requests() {
        let params = json!({ "_meta": { META_CLIENT_CAPABILITIES: { "sampling": {} } } });
        let result = capabilities(&params, &ctx(&params)).unwrap();
        let requests = result["inputRequests"].as_object().unwrap();
        assert!(
            requests
                .values()
                .all(|r| r["method"] != "elicitation/create")
        );
        assert!(
            requests
                .values()
                .any(|r| r["method"] == "sampling/createMessage")
        );
    }

    #[test]
    fn multiple_inputs_need_every_answer() {
        let context = ctx(&json!({}));
        let r1 = multiple_inputs(&json!({}), &context).unwrap();
        assert_eq!(r1["inputRequests"].as_object().unwrap().len(), 3);
        let r2 = multiple_inputs(
            &json!({
                "inputResponses": {
                    "user_name": accept(json!({ "name": "Alice" })),
                    "greeting": { "role": "assistant", "content": { "type": "text", "text": "Hi!" }, "model": "m" },
                    "client_roots": { "roots": [ { "uri": "file:///r" } ] }
                },
                "requestState": r1["requestState"]
            }),
            &context,
        )
        .unwrap();
        assert_eq!(
            r2["content"][0]["text"],
            "Name: Alice; Greeting: Hi!; Roots: 1"
        );
    }
}
