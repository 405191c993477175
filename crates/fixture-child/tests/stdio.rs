//! The MCP surface of the real binary over stdio: handshake, the conformance fixtures, JSON-RPC
//! edge cases, concurrency and cancellation.

mod common;

use std::time::Duration;

use common::{Child, first_text};
use serde_json::{Value, json};

/// The tools/list order the broker's tests and the conformance runs can rely on.
const EXPECTED_TOOLS: [&str; 33] = [
    "test_simple_text",
    "test_image_content",
    "test_audio_content",
    "test_embedded_resource",
    "test_multiple_content_types",
    "test_tool_with_logging",
    "test_tool_with_progress",
    "test_error_handling",
    "test_reconnection",
    "test_sampling",
    "test_elicitation",
    "test_elicitation_sep1034_defaults",
    "test_elicitation_sep1330_enums",
    "json_schema_2020_12_tool",
    "test_missing_capability",
    "test_streaming_elicitation",
    "test_logging_tool",
    "test_trigger_tool_change",
    "test_trigger_prompt_change",
    "test_input_required_result_elicitation",
    "test_input_required_result_sampling",
    "test_input_required_result_list_roots",
    "test_input_required_result_request_state",
    "test_input_required_result_multiple_inputs",
    "test_input_required_result_multi_round",
    "test_input_required_result_tampered_state",
    "test_input_required_result_capabilities",
    "whoami",
    "env_names",
    "sleep",
    "crash",
    "trigger_list_changed",
    "echo",
];

#[tokio::test]
async fn initialize_echoes_known_versions_and_counter_offers_the_latest() {
    for (asked, answered) in [
        ("2025-11-25", "2025-11-25"),
        ("2025-06-18", "2025-06-18"),
        ("2025-03-26", "2025-03-26"),
        ("2024-11-05", "2024-11-05"),
        ("2026-07-28", "2025-11-25"),
        ("1999-01-01", "2025-11-25"),
    ] {
        let mut child = Child::spawn();
        let result = child
            .result(
                "initialize",
                json!({
                    "protocolVersion": asked,
                    "capabilities": {},
                    "clientInfo": { "name": "t", "version": "0" }
                }),
            )
            .await;
        assert_eq!(result["protocolVersion"], answered, "asked {asked}");
        assert_eq!(result["serverInfo"]["name"], "fjmcp-fixture-child");
        assert_eq!(result["serverInfo"]["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(
            result["capabilities"],
            json!({
                "tools": { "listChanged": true },
                "resources": { "subscribe": true, "listChanged": true },
                "prompts": { "listChanged": true },
                "logging": {},
                "completions": {}
            })
        );
        // notifications/initialized is accepted silently and the session works.
        child.notify("notifications/initialized", json!({})).await;
        assert_eq!(child.result("ping", json!({})).await, json!({}));
    }
}

#[tokio::test]
async fn tools_list_is_complete_well_formed_and_stable() {
    let mut child = Child::spawn();
    child.initialize(json!({})).await;
    let first = child.result("tools/list", json!({})).await;
    let names: Vec<&str> = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, EXPECTED_TOOLS);
    for tool in first["tools"].as_array().unwrap() {
        assert!(
            tool["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{tool}"
        );
        assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
    }
    let sampling = &first["tools"][9];
    assert_eq!(sampling["inputSchema"]["required"], json!(["prompt"]));
    let second = child.result("tools/list", json!({})).await;
    assert_eq!(first, second, "tools/list must be deterministic");
}

#[tokio::test]
async fn json_schema_tool_keeps_every_2020_12_keyword() {
    let mut child = Child::spawn();
    child.initialize(json!({})).await;
    let list = child.result("tools/list", json!({})).await;
    let tool = list["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "json_schema_2020_12_tool")
        .unwrap();
    let schema = &tool["inputSchema"];
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(schema["$defs"]["address"]["$anchor"], "addressDef");
    assert_eq!(schema["properties"]["address"]["$ref"], "#/$defs/address");
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["allOf"][0]["anyOf"][1]["required"], json!(["email"]));
    assert_eq!(
        schema["if"]["properties"]["contactMethod"]["const"],
        "phone"
    );
    assert_eq!(schema["then"]["required"], json!(["phone"]));
    assert_eq!(schema["else"]["required"], json!(["email"]));

    let result = child
        .call_tool("json_schema_2020_12_tool", json!({ "name": "n" }))
        .await;
    assert_eq!(
        first_text(&result),
        r#"JSON Schema 2020-12 tool called with: {"name":"n"}"#
    );
}

#[tokio::test]
async fn content_tools_return_the_reference_shapes() {
    let mut child = Child::spawn();
    child.initialize(json!({})).await;

    // `arguments` omitted, as tools-call-simple-text does.
    let simple = child
        .result("tools/call", json!({ "name": "test_simple_text" }))
        .await;
    assert_eq!(
        simple,
        json!({ "content": [ { "type": "text", "text": "This is a simple text response for testing." } ] })
    );

    let image = child.call_tool("test_image_content", json!({})).await;
    assert_eq!(image["content"][0]["type"], "image");
    assert_eq!(image["content"][0]["mimeType"], "image/png");
    assert!(
        image["content"][0]["data"]
            .as_str()
            .unwrap()
            .starts_with("iVBORw0KGgo")
    );

    let audio = child.call_tool("test_audio_content", json!({})).await;
    assert_eq!(audio["content"][0]["type"], "audio");
    assert_eq!(audio["content"][0]["mimeType"], "audio/wav");
    assert!(
        audio["content"][0]["data"]
            .as_str()
            .unwrap()
            .starts_with("UklGR")
    );

    let embedded = child.call_tool("test_embedded_resource", json!({})).await;
    assert_eq!(
        embedded["content"][0],
        json!({
            "type": "resource",
            "resource": {
                "uri": "test://embedded-resource",
                "mimeType": "text/plain",
                "text": "This is an embedded resource content."
            }
        })
    );

    let mixed = child
        .call_tool("test_multiple_content_types", json!({}))
        .await;
    let types: Vec<&str> = mixed["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["text", "image", "resource"]);
    assert_eq!(
        mixed["content"][2]["resource"]["uri"],
        "test://mixed-content-resource"
    );
    let embedded_json: Value =
        serde_json::from_str(mixed["content"][2]["resource"]["text"].as_str().unwrap()).unwrap();
    assert_eq!(embedded_json, json!({ "test": "data", "value": 123 }));

    let error = child.call_tool("test_error_handling", json!({})).await;
    assert_eq!(error["isError"], true);
    assert_eq!(
        first_text(&error),
        "This tool intentionally returns an error for testing"
    );

    let reconnection = child.call_tool("test_reconnection", json!({})).await;
    assert!(first_text(&reconnection).starts_with("Reconnection test completed successfully"));
}

#[tokio::test]
async fn progress_notifications_carry_the_callers_token() {
    let mut child = Child::spawn();
    child.initialize(json!({})).await;
    for token in [json!("progress-test-1"), json!(42)] {
        let id = child
            .send_request(
                "tools/call",
                json!({
                    "name": "test_tool_with_progress",
                    "arguments": {},
                    "_meta": { "progressToken": token }
                }),
            )
            .await;
        let response = child.response_to(&id).await;
        let progress = child.take_notifications("notifications/progress");
        assert_eq!(progress.len(), 3, "{progress:?}");
        let values: Vec<u64> = progress
            .iter()
            .map(|n| {
                assert_eq!(n["params"]["progressToken"], token, "token echoed verbatim");
                assert_eq!(n["params"]["total"], 100);
                n["params"]["progress"].as_u64().unwrap()
            })
            .collect();
        assert_eq!(values, [0, 50, 100]);
        let expected = match &token {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        assert_eq!(first_text(&response["result"]), expected);
    }

    // Without a token there is nothing to report progress against.
    child.call_tool("test_tool_with_progress", json!({})).await;
    let stray = child.collect_for(Duration::from_millis(100)).await;
    assert!(stray.is_empty(), "unexpected messages: {stray:?}");
}

#[tokio::test]
async fn logging_tool_logs_three_messages_and_honours_set_level() {
    let mut child = Child::spawn();
    child.initialize(json!({})).await;
    assert_eq!(
        child
            .result("logging/setLevel", json!({ "level": "debug" }))
            .await,
        json!({})
    );
    let result = child.call_tool("test_tool_with_logging", json!({})).await;
    assert_eq!(
        first_text(&result),
        "Tool with logging executed successfully"
    );
    let logs = child.take_notifications("notifications/message");
    let data: Vec<&str> = logs
        .iter()
        .map(|n| n["params"]["data"].as_str().unwrap())
        .collect();
    assert_eq!(
        data,
        [
            "Tool execution started",
            "Tool processing data",
            "Tool execution completed"
        ]
    );
    assert!(logs.iter().all(|n| n["params"]["level"] == "info"));

    child
        .result("logging/setLevel", json!({ "level": "warning" }))
        .await;
    child.call_tool("test_tool_with_logging", json!({})).await;
    assert!(child.take_notifications("notifications/message").is_empty());

    let bad = child
        .error("logging/setLevel", json!({ "level": "chatty" }))
        .await;
    assert_eq!(bad["code"], -32602);
}

#[tokio::test]
async fn sampling_goes_to_the_client_and_back() {
    let mut child = Child::spawn();
    child.initialize(json!({ "sampling": {} })).await;
    let call = child
        .send_request(
            "tools/call",
            json!({ "name": "test_sampling", "arguments": { "prompt": "Test prompt for sampling" } }),
        )
        .await;
    let request = child
        .wait_for(|m| m["method"] == "sampling/createMessage")
        .await;
    assert_eq!(
        request["params"],
        json!({
            "messages": [ { "role": "user", "content": { "type": "text", "text": "Test prompt for sampling" } } ],
            "maxTokens": 100
        })
    );
    child
        .send(json!({
            "jsonrpc": "2.0",
            "id": request["id"],
            "result": {
                "role": "assistant",
                "content": { "type": "text", "text": "This is a test response from the client" },
                "model": "test-model",
                "stopReason": "endTurn"
            }
        }))
        .await;
    let response = child.response_to(&call).await;
    assert_eq!(
        first_text(&response["result"]),
        "LLM response: This is a test response from the client"
    );
    assert!(response["result"].get("isError").is_none());

    // A refusal from the client becomes an error result, not a protocol error.
    let call = child
        .send_request(
            "tools/call",
            json!({ "name": "test_sampling", "arguments": { "prompt": "p" } }),
        )
        .await;
    let request = child
        .wait_for(|m| m["method"] == "sampling/createMessage")
        .await;
    child
        .send(json!({ "jsonrpc": "2.0", "id": request["id"], "error": { "code": -1, "message": "User rejected sampling request" } }))
        .await;
    let response = child.response_to(&call).await;
    assert_eq!(response["result"]["isError"], true);
    assert!(first_text(&response["result"]).contains("User rejected sampling request"));
}

#[tokio::test]
async fn elicitation_goes_to_the_client_and_back() {
    let mut child = Child::spawn();
    child.initialize(json!({ "elicitation": {} })).await;
    let call = child
        .send_request(
            "tools/call",
            json!({ "name": "test_elicitation", "arguments": { "message": "Please provide your information" } }),
        )
        .await;
    let request = child
        .wait_for(|m| m["method"] == "elicitation/create")
        .await;
    assert_eq!(
        request["params"]["message"],
        "Please provide your information"
    );
    assert_eq!(request["params"]["requestedSchema"]["type"], "object");
    child
        .send(json!({
            "jsonrpc": "2.0",
            "id": request["id"],
            "result": { "action": "accept", "content": { "username": "testuser" } }
        }))
        .await;
    let response = child.response_to(&call).await;
    assert_eq!(
        first_text(&response["result"]),
        r#"User response: action=accept, content={"username":"testuser"}"#
    );

    // SEP-1034: every primitive field carries its default.
    let call = child
        .send_request(
            "tools/call",
            json!({ "name": "test_elicitation_sep1034_defaults", "arguments": {} }),
        )
        .await;
    let request = child
        .wait_for(|m| m["method"] == "elicitation/create")
        .await;
    let properties = &request["params"]["requestedSchema"]["properties"];
    assert_eq!(properties["name"]["default"], "John Doe");
    assert_eq!(properties["age"]["type"], "integer");
    assert_eq!(properties["age"]["default"], 30);
    assert_eq!(properties["score"]["default"], 95.5);
    assert_eq!(properties["status"]["default"], "active");
    assert_eq!(properties["verified"]["default"], true);
    child
        .send(json!({ "jsonrpc": "2.0", "id": request["id"], "result": { "action": "decline" } }))
        .await;
    let response = child.response_to(&call).await;
    assert_eq!(
        first_text(&response["result"]),
        "Elicitation completed: action=decline, content={}"
    );

    // SEP-1330: the five enum shapes.
    let call = child
        .send_request(
            "tools/call",
            json!({ "name": "test_elicitation_sep1330_enums", "arguments": {} }),
        )
        .await;
    let request = child
        .wait_for(|m| m["method"] == "elicitation/create")
        .await;
    let properties = &request["params"]["requestedSchema"]["properties"];
    assert_eq!(properties["titledSingle"]["oneOf"][0]["const"], "value1");
    assert_eq!(properties["legacyEnum"]["enumNames"][2], "Option Three");
    assert_eq!(properties["untitledMulti"]["items"]["enum"][0], "option1");
    assert_eq!(
        properties["titledMulti"]["items"]["anyOf"][1]["title"],
        "Second Choice"
    );
    child
        .send(json!({ "jsonrpc": "2.0", "id": request["id"], "result": { "action": "cancel" } }))
        .await;
    child.response_to(&call).await;
}

#[tokio::test]
async fn undeclared_capabilities_give_error_results_without_asking_the_client() {
    let mut child = Child::spawn();
    child.initialize(json!({})).await;
    let sampling = child
        .call_tool("test_sampling", json!({ "prompt": "p" }))
        .await;
    assert_eq!(sampling["isError"], true);
    assert!(first_text(&sampling).contains("sampling capability"));
    let elicitation = child
        .call_tool("test_elicitation", json!({ "message": "m" }))
        .await;
    assert_eq!(elicitation["isError"], true);
    let missing_argument = child.call_tool("test_sampling", json!({})).await;
    assert_eq!(missing_argument["isError"], true);
    let stray = child.collect_for(Duration::from_millis(100)).await;
    assert!(stray.is_empty(), "the client was asked anyway: {stray:?}");
}

#[tokio::test]
async fn assume_client_capabilities_flag_relays_sampling_after_an_empty_handshake() {
    let mut child = Child::spawn_with(&[], &["--assume-client-capabilities"]);
    child.initialize(json!({})).await;
    let call = child
        .send_request(
            "tools/call",
            json!({ "name": "test_sampling", "arguments": { "prompt": "p" } }),
        )
        .await;
    let request = child
        .wait_for(|m| m["method"] == "sampling/createMessage")
        .await;
    child
        .send(json!({
            "jsonrpc": "2.0",
            "id": request["id"],
            "result": { "role": "assistant", "content": { "type": "text", "text": "ok" }, "model": "m" }
        }))
        .await;
    let response = child.response_to(&call).await;
    assert_eq!(first_text(&response["result"]), "LLM response: ok");
}

#[tokio::test]
async fn cancelling_a_tool_withdraws_its_pending_client_request() {
    let mut child = Child::spawn();
    child.initialize(json!({ "sampling": {} })).await;
    let call = child
        .send_request(
            "tools/call",
            json!({ "name": "test_sampling", "arguments": { "prompt": "p" } }),
        )
        .await;
    let request = child
        .wait_for(|m| m["method"] == "sampling/createMessage")
        .await;
    child
        .notify(
            "notifications/cancelled",
            json!({ "requestId": call, "reason": "test" }),
        )
        .await;
    let withdrawn = child
        .wait_for(|m| m["method"] == "notifications/cancelled")
        .await;
    assert_eq!(withdrawn["params"]["requestId"], request["id"]);
    let rest = child.collect_for(Duration::from_millis(300)).await;
    assert!(
        rest.iter().all(|m| m["id"] != call),
        "a cancelled call was answered: {rest:?}"
    );
}

#[tokio::test]
async fn resources_read_list_and_subscribe() {
    let mut child = Child::spawn();
    child.initialize(json!({})).await;

    let list = child.result("resources/list", json!({})).await;
    let uris: Vec<&str> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert!(r["name"].is_string());
            r["uri"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        uris,
        [
            "test://static-text",
            "test://static-binary",
            "test://watched-resource"
        ]
    );

    let text = child
        .result("resources/read", json!({ "uri": "test://static-text" }))
        .await;
    assert_eq!(
        text["contents"],
        json!([{
            "uri": "test://static-text",
            "mimeType": "text/plain",
            "text": "This is the content of the static text resource."
        }])
    );

    let binary = child
        .result("resources/read", json!({ "uri": "test://static-binary" }))
        .await;
    assert_eq!(binary["contents"][0]["mimeType"], "image/png");
    assert!(
        binary["contents"][0]["blob"]
            .as_str()
            .unwrap()
            .starts_with("iVBOR")
    );
    assert!(binary["contents"][0].get("text").is_none());

    let templates = child.result("resources/templates/list", json!({})).await;
    assert_eq!(
        templates["resourceTemplates"][0]["uriTemplate"],
        "test://template/{id}/data"
    );
    let templated = child
        .result(
            "resources/read",
            json!({ "uri": "test://template/123/data" }),
        )
        .await;
    assert_eq!(templated["contents"][0]["uri"], "test://template/123/data");
    assert_eq!(templated["contents"][0]["mimeType"], "application/json");
    let data: Value =
        serde_json::from_str(templated["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(
        data,
        json!({ "id": "123", "templateTest": true, "data": "Data for ID: 123" })
    );

    let missing = child
        .error(
            "resources/read",
            json!({ "uri": "test://nonexistent-resource-for-conformance-testing" }),
        )
        .await;
    assert_eq!(missing["code"], -32002);
    assert_eq!(missing["message"], "Resource not found");
    assert_eq!(
        missing["data"]["uri"],
        "test://nonexistent-resource-for-conformance-testing"
    );

    for method in ["resources/subscribe", "resources/unsubscribe"] {
        assert_eq!(
            child
                .result(method, json!({ "uri": "test://watched-resource" }))
                .await,
            json!({})
        );
    }
}

#[tokio::test]
async fn prompts_list_and_get() {
    let mut child = Child::spawn();
    child.initialize(json!({})).await;
    let list = child.result("prompts/list", json!({})).await;
    let names: Vec<&str> = list["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "test_simple_prompt",
            "test_prompt_with_arguments",
            "test_prompt_with_embedded_resource",
            "test_prompt_with_image",
            "test_input_required_result_prompt"
        ]
    );
    assert_eq!(
        list["prompts"][1]["arguments"][0],
        json!({
            "name": "arg1", "description": "First test argument", "required": true
        })
    );

    let simple = child
        .result("prompts/get", json!({ "name": "test_simple_prompt" }))
        .await;
    assert_eq!(
        simple["messages"],
        json!([{ "role": "user", "content": { "type": "text", "text": "This is a simple prompt for testing." } }])
    );

    let with_args = child
        .result(
            "prompts/get",
            json!({ "name": "test_prompt_with_arguments", "arguments": { "arg1": "testValue1", "arg2": "testValue2" } }),
        )
        .await;
    assert_eq!(
        with_args["messages"][0]["content"]["text"],
        "Prompt with arguments: arg1='testValue1', arg2='testValue2'"
    );

    let embedded = child
        .result(
            "prompts/get",
            json!({ "name": "test_prompt_with_embedded_resource", "arguments": { "resourceUri": "test://example-resource" } }),
        )
        .await;
    assert_eq!(embedded["messages"][0]["content"]["type"], "resource");
    assert_eq!(
        embedded["messages"][0]["content"]["resource"]["uri"],
        "test://example-resource"
    );

    let image = child
        .result("prompts/get", json!({ "name": "test_prompt_with_image" }))
        .await;
    assert_eq!(image["messages"][0]["content"]["type"], "image");
    assert_eq!(image["messages"][0]["content"]["mimeType"], "image/png");
    assert!(image["messages"][0]["content"]["data"].is_string());

    let missing_arg = child
        .error(
            "prompts/get",
            json!({ "name": "test_prompt_with_arguments", "arguments": { "arg1": "x" } }),
        )
        .await;
    assert_eq!(missing_arg["code"], -32602);
    let unknown = child.error("prompts/get", json!({ "name": "nope" })).await;
    assert_eq!(unknown["code"], -32602);
}

#[tokio::test]
async fn completion_suggests_by_prefix() {
    let mut child = Child::spawn();
    child.initialize(json!({})).await;
    let result = child
        .result(
            "completion/complete",
            json!({
                "ref": { "type": "ref/prompt", "name": "test_prompt_with_arguments" },
                "argument": { "name": "arg1", "value": "par" }
            }),
        )
        .await;
    assert_eq!(
        result["completion"],
        json!({ "values": ["paris", "park", "party"], "total": 3, "hasMore": false })
    );
    // The conformance scenario's exact request.
    let scenario = child
        .result(
            "completion/complete",
            json!({
                "ref": { "type": "ref/prompt", "name": "test_prompt_with_arguments" },
                "argument": { "name": "arg1", "value": "test" }
            }),
        )
        .await;
    assert!(scenario["completion"]["values"].is_array());
}

#[tokio::test]
async fn json_rpc_edge_cases() {
    let mut child = Child::spawn();
    // Lenient: a request before initialize is answered.
    assert_eq!(child.result("ping", json!({})).await, json!({}));
    child.initialize(json!({})).await;

    child.send_raw("{this is not json").await;
    let parse_error = child.wait_for(|m| m["error"]["code"] == -32700).await;
    assert_eq!(parse_error["id"], Value::Null);

    child
        .send_raw(r#"{"jsonrpc":"2.0","id":"req-α","method":"ping"}"#)
        .await;
    let pong = child.response_to(&json!("req-α")).await;
    assert_eq!(pong["result"], json!({}));

    child
        .send_raw(r#"{"jsonrpc":"2.0","id":"7","method":"ping"}"#)
        .await;
    let string_seven = child.response_to(&json!("7")).await;
    assert!(
        string_seven["id"].is_string(),
        "id type preserved: {string_seven}"
    );

    let unknown = child.error("no/such/method", json!({})).await;
    assert_eq!(unknown["code"], -32601);
    let unknown_tool = child.error("tools/call", json!({ "name": "nope" })).await;
    assert_eq!(unknown_tool["code"], -32602);

    // Notifications, known or not, are never answered.
    child
        .notify("notifications/roots/list_changed", json!({}))
        .await;
    child.notify("notifications/whatever", json!({})).await;
    let stray = child.collect_for(Duration::from_millis(200)).await;
    assert!(stray.is_empty(), "notifications were answered: {stray:?}");
}

#[tokio::test]
async fn a_slow_sleep_does_not_block_tools_list() {
    let mut child = Child::spawn();
    child.initialize(json!({})).await;
    let sleep = child
        .send_request(
            "tools/call",
            json!({ "name": "sleep", "arguments": { "ms": 400 } }),
        )
        .await;
    let list = child.send_request("tools/list", json!({})).await;
    let first = child.wait_for(|m| m.get("id").is_some()).await;
    assert_eq!(first["id"], list, "tools/list must overtake the sleep");
    let slept = child.response_to(&sleep).await;
    assert_eq!(first_text(&slept["result"]), "slept 400 ms");
}

#[tokio::test]
async fn a_cancelled_sleep_is_never_answered() {
    let mut child = Child::spawn();
    child.initialize(json!({})).await;
    let sleep = child
        .send_request(
            "tools/call",
            json!({ "name": "sleep", "arguments": { "ms": 1000 } }),
        )
        .await;
    child
        .notify(
            "notifications/cancelled",
            json!({ "requestId": sleep, "reason": "user" }),
        )
        .await;
    let seen = child.collect_for(Duration::from_millis(1300)).await;
    assert!(seen.is_empty(), "cancelled sleep produced output: {seen:?}");
    // The child is still healthy.
    assert_eq!(child.result("ping", json!({})).await, json!({}));
}

#[tokio::test]
async fn list_changed_triggers() {
    let mut child = Child::spawn();
    child.initialize(json!({})).await;
    child.call_tool("trigger_list_changed", json!({})).await;
    for method in [
        "notifications/tools/list_changed",
        "notifications/resources/list_changed",
        "notifications/prompts/list_changed",
    ] {
        assert_eq!(child.take_notifications(method).len(), 1, "{method}");
    }
    child.call_tool("test_trigger_tool_change", json!({})).await;
    assert_eq!(
        child
            .take_notifications("notifications/tools/list_changed")
            .len(),
        1
    );
    child
        .call_tool("test_trigger_prompt_change", json!({}))
        .await;
    assert_eq!(
        child
            .take_notifications("notifications/prompts/list_changed")
            .len(),
        1
    );
}

#[tokio::test]
async fn modern_diagnostic_tools_read_the_request_meta() {
    let mut child = Child::spawn();
    child.initialize(json!({})).await;

    let refused = child
        .error(
            "tools/call",
            json!({
                "name": "test_missing_capability",
                "arguments": {},
                "_meta": { "io.modelcontextprotocol/clientCapabilities": {} }
            }),
        )
        .await;
    assert_eq!(refused["code"], -32021);
    assert_eq!(
        refused["data"]["requiredCapabilities"],
        json!({ "sampling": {} })
    );
    let allowed = child
        .result(
            "tools/call",
            json!({
                "name": "test_missing_capability",
                "arguments": {},
                "_meta": { "io.modelcontextprotocol/clientCapabilities": { "sampling": {} } }
            }),
        )
        .await;
    assert_eq!(first_text(&allowed), "Success");

    child.call_tool("test_logging_tool", json!({})).await;
    assert!(child.take_notifications("notifications/message").is_empty());
    child
        .result(
            "tools/call",
            json!({
                "name": "test_logging_tool",
                "arguments": {},
                "_meta": { "io.modelcontextprotocol/logLevel": "debug" }
            }),
        )
        .await;
    assert_eq!(child.take_notifications("notifications/message").len(), 1);

    let streamed = child
        .call_tool("test_streaming_elicitation", json!({}))
        .await;
    assert_eq!(first_text(&streamed), "Streaming complete");
}

#[tokio::test]
async fn input_required_round_trips_over_stdio() {
    let mut child = Child::spawn();
    child.initialize(json!({})).await;
    let first = child
        .call_tool("test_input_required_result_elicitation", json!({}))
        .await;
    assert_eq!(first["resultType"], "input_required");
    assert_eq!(
        first["inputRequests"]["user_name"]["params"]["message"],
        "What is your name?"
    );
    let second = child
        .result(
            "tools/call",
            json!({
                "name": "test_input_required_result_elicitation",
                "arguments": {},
                "inputResponses": { "user_name": { "action": "accept", "content": { "name": "Alice" } } }
            }),
        )
        .await;
    assert_eq!(first_text(&second), "Hello, Alice!");

    let sealed = child
        .call_tool("test_input_required_result_tampered_state", json!({}))
        .await;
    let state = sealed["requestState"].as_str().unwrap();
    let tampered = child
        .error(
            "tools/call",
            json!({
                "name": "test_input_required_result_tampered_state",
                "arguments": {},
                "inputResponses": { "confirm": { "action": "accept", "content": { "ok": true } } },
                "requestState": format!("{state}-TAMPERED")
            }),
        )
        .await;
    assert_eq!(tampered["code"], -32602);

    let prompt = child
        .result(
            "prompts/get",
            json!({ "name": "test_input_required_result_prompt" }),
        )
        .await;
    assert_eq!(prompt["resultType"], "input_required");
    assert!(prompt["inputRequests"]["user_context"].is_object());
}

#[tokio::test]
async fn stdin_end_of_file_exits_cleanly() {
    let mut child = Child::spawn();
    child.initialize(json!({})).await;
    child.close_stdin();
    assert_eq!(child.wait_exit().await.code(), Some(0));
}

#[tokio::test]
async fn sigterm_exits_cleanly() {
    let mut child = Child::spawn();
    child.initialize(json!({})).await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    assert_eq!(child.wait_exit().await.code(), Some(0));
}
