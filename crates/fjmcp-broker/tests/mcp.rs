//! The `/mcp` endpoint end to end: the real broker binary, the Forgejo test
//! double, real fixture children, raw HTTP for the wire rules and the official
//! Rust SDK (rmcp) as a client of each era.

mod support;

use serde_json::{Value, json};
use support::mcp::{
    MODERN, call_modern, initialize, modern, modern_headers, post, session_of, stack, stack_with,
    token_of,
};
use support::oauth::Stack;
use support::wait::{REACTION, eventually, time_until};

#[tokio::test]
async fn screening_and_authentication_come_before_any_protocol_logic() {
    let stack = stack().await;
    let token = token_of(&stack, "alice").await;
    let no_token = post(&stack, None, &[], initialize("2025-11-25")).await;
    assert_eq!(no_token.status, 401);
    assert!(
        no_token.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("resource_metadata=")
    );
    let garbage_without_token = post(&stack, None, &[], json!("not json-rpc")).await;
    assert_eq!(garbage_without_token.status, 401, "401 before parsing");

    let hostile = post(
        &stack,
        Some(&token),
        &[("origin", "https://evil.example.com")],
        initialize("2025-11-25"),
    )
    .await;
    assert_eq!(hostile.status, 403);
    let rebinding = post(
        &stack,
        Some(&token),
        &[("host", "evil.example.com")],
        initialize("2025-11-25"),
    )
    .await;
    assert_eq!(rebinding.status, 403);
    let own_origin = post(
        &stack,
        Some(&token),
        &[("origin", &stack.issuer)],
        initialize("2025-11-25"),
    )
    .await;
    assert_eq!(own_origin.status, 200, "{}", own_origin.text);
}

#[tokio::test]
async fn a_2025_session_lives_from_initialize_to_delete() {
    let stack = stack().await;
    let token = token_of(&stack, "alice").await;
    let init = post(&stack, Some(&token), &[], initialize("2025-06-18")).await;
    assert_eq!(init.status, 200);
    assert_eq!(init.headers["content-type"], "application/json");
    let result = &init.json()["result"];
    assert_eq!(
        result["protocolVersion"], "2025-06-18",
        "the client's version is echoed"
    );
    assert!(result["capabilities"].get("logging").is_none());
    assert!(
        result["capabilities"]["resources"]
            .get("subscribe")
            .is_none()
    );
    assert_eq!(result["serverInfo"]["name"], "fjmcp-fixture-child");
    let session = init.headers["mcp-session-id"].to_str().unwrap().to_string();
    assert!(session.bytes().all(|b| (0x21..=0x7e).contains(&b)));

    let with_session = |extra: &[(&'static str, &'static str)]| {
        let mut h: Vec<(&str, String)> = vec![("mcp-session-id", session.clone())];
        h.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        h
    };
    let send = |headers: Vec<(&'static str, String)>, body: Value| {
        let stack = &stack;
        let token = token.clone();
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post(stack, Some(&token), &headers, body).await
        }
    };
    assert_eq!(
        send(
            with_session(&[]),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
        )
        .await
        .status,
        202
    );
    let tools = send(
        with_session(&[("mcp-protocol-version", "2025-06-18")]),
        json!({"jsonrpc": "2.0", "id": "t", "method": "tools/list"}),
    )
    .await;
    assert_eq!(tools.status, 200, "{}", tools.text);
    assert_eq!(tools.json()["id"], "t");
    assert!(
        tools.json()["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "whoami")
    );
    let who = send(with_session(&[]), json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}})).await;
    assert_eq!(who.json()["result"]["content"][0]["text"], "alice");
    let subscribe = send(
        with_session(&[]),
        json!({"jsonrpc": "2.0", "id": 30, "method": "resources/subscribe", "params": {"uri": "test://static-text"}}),
    )
    .await;
    assert_eq!(
        subscribe.json()["error"]["code"],
        -32601,
        "only known requests reach the child"
    );
    let ping = send(
        with_session(&[]),
        json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}),
    )
    .await;
    assert_eq!(ping.json()["result"], json!({}));
    let bad_version = send(
        with_session(&[("mcp-protocol-version", "1999-01-01")]),
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}),
    )
    .await;
    assert_eq!(bad_version.status, 400);
    let missing = post(
        &stack,
        Some(&token),
        &[],
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"}),
    )
    .await;
    assert_eq!(missing.status, 400);
    let unknown = post(
        &stack,
        Some(&token),
        &[("mcp-session-id", "fjms_unknown")],
        json!({"jsonrpc": "2.0", "id": 6, "method": "tools/list"}),
    )
    .await;
    assert_eq!(unknown.status, 404);

    let delete = stack
        .http
        .delete(stack.url("/mcp"))
        .bearer_auth(&token)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert!(delete.status().is_success());
    let after = send(
        with_session(&[]),
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}),
    )
    .await;
    assert_eq!(after.status, 404, "an ended session is 404, not 410");
    let get = stack
        .http
        .get(stack.url("/mcp"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    let delete_none = stack
        .http
        .delete(stack.url("/mcp"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(delete_none.status(), 405);
}

#[tokio::test]
async fn sessions_belong_to_their_grant_and_users_never_share_a_child() {
    let stack = stack().await;
    let alice = token_of(&stack, "alice").await;
    let bob = token_of(&stack, "bob").await;
    let alice_session = session_of(&stack, &alice, "2025-11-25").await;
    let bob_session = session_of(&stack, &bob, "2025-11-25").await;
    let whoami = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}});
    let a = post(
        &stack,
        Some(&alice),
        &[("mcp-session-id", &alice_session)],
        whoami.clone(),
    )
    .await;
    let b = post(
        &stack,
        Some(&bob),
        &[("mcp-session-id", &bob_session)],
        whoami.clone(),
    )
    .await;
    assert_eq!(a.json()["result"]["content"][0]["text"], "alice");
    assert_eq!(b.json()["result"]["content"][0]["text"], "bob");
    let stolen = post(
        &stack,
        Some(&bob),
        &[("mcp-session-id", &alice_session)],
        whoami.clone(),
    )
    .await;
    assert_eq!(stolen.status, 404, "another grant's session is not served");
    let modern_bob = post(
        &stack,
        Some(&bob),
        &modern_headers("tools/call", Some("whoami")),
        modern(
            json!(9),
            "tools/call",
            json!({"name": "whoami", "arguments": {}}),
        ),
    )
    .await;
    assert_eq!(modern_bob.json()["result"]["content"][0]["text"], "bob");
}

#[tokio::test]
async fn stateless_2026_requests_are_validated_forwarded_and_decorated() {
    let stack = stack().await;
    let token = token_of(&stack, "alice").await;
    let discover = call_modern(&stack, &token, json!(1), "server/discover", json!({})).await;
    assert_eq!(discover.status, 200, "{}", discover.text);
    let result = &discover.json()["result"];
    assert_eq!(result["supportedVersions"], json!([MODERN]));
    assert_eq!(result["resultType"], "complete");
    assert!(result["capabilities"].get("logging").is_none());

    let list = call_modern(&stack, &token, json!("l"), "tools/list", json!({})).await;
    assert_eq!(list.status, 200, "{}", list.text);
    let body = list.json();
    assert_eq!(body["id"], "l");
    assert_eq!(body["result"]["resultType"], "complete");
    assert_eq!(body["result"]["cacheScope"], "private");
    assert!(body["result"]["ttlMs"].as_u64().is_some());
    assert_eq!(
        body["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "fjmcp-fixture-child"
    );
    assert!(
        list.headers.get("mcp-session-id").is_none(),
        "no sessions in 2026-07-28"
    );

    let call = call_modern(
        &stack,
        &token,
        json!(2),
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hi"}}),
    )
    .await;
    assert_eq!(call.json()["result"]["content"][0]["text"], "hi");

    let missing_resource = call_modern(
        &stack,
        &token,
        json!(3),
        "resources/read",
        json!({"uri": "test://nope"}),
    )
    .await;
    assert_eq!(
        missing_resource.json()["error"]["code"],
        -32602,
        "{}",
        missing_resource.text
    );

    // Error rows of the 2026-07-28 table.
    let mismatch = post(
        &stack,
        Some(&token),
        &modern_headers("tools/call", Some("other")),
        modern(
            json!(4),
            "tools/call",
            json!({"name": "echo", "arguments": {}}),
        ),
    )
    .await;
    assert_eq!(
        (mismatch.status, mismatch.json()["error"]["code"].as_i64()),
        (400, Some(-32020))
    );
    let no_headers = post(
        &stack,
        Some(&token),
        &[],
        modern(json!(5), "tools/list", json!({})),
    )
    .await;
    assert_eq!(
        (
            no_headers.status,
            no_headers.json()["error"]["code"].as_i64()
        ),
        (400, Some(-32020))
    );
    let mut no_caps = modern(json!(6), "tools/list", json!({}));
    no_caps["params"]["_meta"]
        .as_object_mut()
        .unwrap()
        .remove("io.modelcontextprotocol/clientCapabilities");
    let no_caps = post(
        &stack,
        Some(&token),
        &modern_headers("tools/list", None),
        no_caps,
    )
    .await;
    assert_eq!(
        (no_caps.status, no_caps.json()["error"]["code"].as_i64()),
        (400, Some(-32602))
    );
    let mut future = modern(json!(7), "tools/list", json!({}));
    future["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let future = post(
        &stack,
        Some(&token),
        &[
            ("mcp-protocol-version", "2099-01-01"),
            ("mcp-method", "tools/list"),
        ],
        future,
    )
    .await;
    assert_eq!(
        (future.status, future.json()["error"]["code"].as_i64()),
        (400, Some(-32022))
    );
    assert_eq!(future.json()["error"]["data"]["requested"], "2099-01-01");
    for removed in [
        "initialize",
        "ping",
        "logging/setLevel",
        "resources/subscribe",
        "no/such/method",
    ] {
        let reply = post(
            &stack,
            Some(&token),
            &modern_headers(removed, None),
            modern(json!(8), removed, json!({})),
        )
        .await;
        assert_eq!(
            (reply.status, reply.json()["error"]["code"].as_i64()),
            (404, Some(-32601)),
            "{removed}"
        );
    }
    let get = stack
        .http
        .get(stack.url("/mcp"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);

    let malformed = stack
        .http
        .post(stack.url("/mcp"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let body: Value = malformed.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32700);
}

#[tokio::test]
async fn progress_streams_as_sse_with_the_callers_token_and_json_only_clients_get_json() {
    let stack = stack().await;
    let token = token_of(&stack, "alice").await;
    let mut call = modern(
        json!(1),
        "tools/call",
        json!({"name": "test_tool_with_progress", "arguments": {}}),
    );
    call["params"]["_meta"]["progressToken"] = json!("my-token");
    let mut headers = modern_headers("tools/call", Some("test_tool_with_progress"));
    headers.push(("accept", "application/json, text/event-stream"));
    let streamed = post(&stack, Some(&token), &headers, call.clone()).await;
    assert_eq!(streamed.headers["content-type"], "text/event-stream");
    assert_eq!(streamed.headers["x-accel-buffering"], "no");
    let events = streamed.events();
    let progress: Vec<&Value> = events
        .iter()
        .filter(|e| e["method"] == "notifications/progress")
        .collect();
    assert!(!progress.is_empty(), "{events:?}");
    assert!(
        progress
            .iter()
            .all(|p| p["params"]["progressToken"] == "my-token")
    );
    assert_eq!(events.last().unwrap()["id"], 1);
    assert!(events.last().unwrap()["result"].is_object());
    assert!(!streamed.text.contains("id:"), "no SSE event ids");

    let json_only = post(
        &stack,
        Some(&token),
        &[
            headers[0],
            headers[1],
            headers[2],
            ("accept", "application/json"),
        ],
        call,
    )
    .await;
    assert_eq!(json_only.headers["content-type"], "application/json");
    assert!(json_only.json()["result"].is_object());
}

#[tokio::test]
async fn list_changes_reach_listen_streams_and_standalone_streams() {
    let stack = stack().await;
    let token = token_of(&stack, "alice").await;
    let session = session_of(&stack, &token, "2025-11-25").await;
    let mut listen = modern(
        json!("sub-1"),
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true, "promptsListChanged": true}}),
    );
    listen["params"]["notifications"]["resourceSubscriptions"] = json!(["test://static-text"]);
    let mut listen_request = stack
        .http
        .post(stack.url("/mcp"))
        .bearer_auth(&token)
        .json(&listen)
        .header("accept", "text/event-stream");
    for (k, v) in modern_headers("subscriptions/listen", None) {
        listen_request = listen_request.header(k, v);
    }
    let mut listen_stream = listen_request.send().await.unwrap();
    assert_eq!(listen_stream.headers()["content-type"], "text/event-stream");
    let mut get_stream = stack
        .http
        .get(stack.url("/mcp"))
        .bearer_auth(&token)
        .header("mcp-session-id", &session)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(get_stream.status(), 200);

    let first = String::from_utf8(listen_stream.chunk().await.unwrap().unwrap().to_vec()).unwrap();
    let ack: Value = serde_json::from_str(
        first
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "sub-1"
    );
    assert!(
        ack["params"]["notifications"]
            .get("resourceSubscriptions")
            .is_none(),
        "not honoured, so not acknowledged"
    );

    let trigger = post(&stack, Some(&token), &[("mcp-session-id", &session)], json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "trigger_list_changed", "arguments": {}}})).await;
    assert_eq!(trigger.status, 200, "{}", trigger.text);

    let mut seen = String::new();
    while !seen.contains("notifications/tools/list_changed") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), listen_stream.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let tagged: Value = serde_json::from_str(
        seen.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .find(|d| d.contains("tools/list_changed"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        tagged["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "sub-1"
    );
    assert!(!seen.contains("resources/list_changed"), "not asked for");
    let mut standalone = String::new();
    while !standalone.contains("list_changed") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), get_stream.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        standalone.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn a_session_survives_a_child_crash_and_a_broker_restart() {
    let mut stack = stack().await;
    let token = token_of(&stack, "alice").await;
    let session = session_of(&stack, &token, "2025-11-25").await;
    let crash = post(&stack, Some(&token), &[("mcp-session-id", &session)], json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "crash", "arguments": {}}})).await;
    assert_eq!(crash.json()["error"]["code"], -32603, "{}", crash.text);
    let echo = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "still here"}}});
    let after_crash = post(
        &stack,
        Some(&token),
        &[("mcp-session-id", &session)],
        echo.clone(),
    )
    .await;
    assert_eq!(
        after_crash.json()["result"]["content"][0]["text"],
        "still here"
    );

    let _first = stack.broker.restart().await;
    let after_restart = post(&stack, Some(&token), &[("mcp-session-id", &session)], echo).await;
    assert_eq!(
        after_restart.status,
        200,
        "{}\n{}",
        after_restart.text,
        stack.broker.log_text()
    );
    assert_eq!(
        after_restart.json()["result"]["content"][0]["text"],
        "still here"
    );
}

mod official_sdk {
    use super::*;
    use rmcp::ServiceExt;
    use rmcp::model::{CallToolRequestParams, ProtocolVersion};
    use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

    fn transport(stack: &Stack, token: &str) -> StreamableHttpClientTransport<reqwest::Client> {
        StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(stack.url("/mcp")).auth_header(token),
        )
    }

    #[tokio::test]
    async fn rmcp_speaks_the_2025_era_through_the_broker() {
        let stack = stack().await;
        let token = token_of(&stack, "alice").await;
        let client = ().serve(transport(&stack, &token)).await.unwrap();
        assert_eq!(
            client.peer_info().unwrap().protocol_version,
            ProtocolVersion::V_2025_11_25
        );
        let tools = client.list_all_tools().await.unwrap();
        assert!(tools.iter().any(|t| t.name == "echo"));
        let mut args = serde_json::Map::new();
        args.insert("text".into(), json!("from rmcp"));
        let result = client
            .call_tool(CallToolRequestParams::new("echo").with_arguments(args))
            .await
            .unwrap();
        assert_eq!(result.content[0].as_text().unwrap().text, "from rmcp");
        client.cancel().await.unwrap();
    }

    #[tokio::test]
    async fn rmcp_speaks_2026_07_28_through_the_broker() {
        let stack = stack().await;
        let token = token_of(&stack, "alice").await;
        let client = ()
            .serve_with_lifecycle(
                transport(&stack, &token),
                ClientLifecycleMode::Auto {
                    preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                    legacy_version: Some(ProtocolVersion::V_2025_11_25),
                },
            )
            .await
            .unwrap();
        assert_eq!(
            client.peer_info().unwrap().protocol_version,
            ProtocolVersion::V_2026_07_28
        );
        let tools = client.list_all_tools().await.unwrap();
        assert!(tools.iter().any(|t| t.name == "whoami"));
        let result = client
            .call_tool(CallToolRequestParams::new("whoami"))
            .await
            .unwrap();
        assert_eq!(result.content[0].as_text().unwrap().text, "alice");
        client.cancel().await.unwrap();
    }
}

#[tokio::test]
async fn resources_prompts_and_completion_pass_through_in_both_eras() {
    let stack = stack().await;
    let token = token_of(&stack, "alice").await;
    let session = session_of(&stack, &token, "2025-11-25").await;
    let legacy = |id: i64, method: &str, params: Value| json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let read = post(
        &stack,
        Some(&token),
        &[("mcp-session-id", &session)],
        legacy(1, "resources/read", json!({"uri": "test://static-text"})),
    )
    .await;
    assert_eq!(
        read.json()["result"]["contents"][0]["uri"],
        "test://static-text",
        "{}",
        read.text
    );
    let missing = post(
        &stack,
        Some(&token),
        &[("mcp-session-id", &session)],
        legacy(2, "resources/read", json!({"uri": "test://nope"})),
    )
    .await;
    assert_eq!(
        missing.json()["error"]["code"],
        -32002,
        "2025 clients get the 2025 code"
    );
    let prompt = post(
        &stack,
        Some(&token),
        &[("mcp-session-id", &session)],
        legacy(3, "prompts/get", json!({"name": "test_simple_prompt"})),
    )
    .await;
    assert!(
        prompt.json()["result"]["messages"].is_array(),
        "{}",
        prompt.text
    );

    let resources = call_modern(&stack, &token, json!(4), "resources/list", json!({})).await;
    assert!(
        resources.json()["result"]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["uri"] == "test://static-text")
    );
    assert_eq!(resources.json()["result"]["cacheScope"], "private");
    let templates = call_modern(
        &stack,
        &token,
        json!(5),
        "resources/templates/list",
        json!({}),
    )
    .await;
    assert!(
        templates.json()["result"]["resourceTemplates"].is_array(),
        "{}",
        templates.text
    );
    let read = call_modern(
        &stack,
        &token,
        json!(6),
        "resources/read",
        json!({"uri": "test://template/7/data"}),
    )
    .await;
    assert_eq!(
        read.json()["result"]["resultType"],
        "complete",
        "{}",
        read.text
    );
    assert!(read.json()["result"]["ttlMs"].is_number());
    let prompts = call_modern(&stack, &token, json!(7), "prompts/list", json!({})).await;
    assert!(
        prompts.json()["result"]["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "test_prompt_with_arguments")
    );
    let get = call_modern(
        &stack,
        &token,
        json!(8),
        "prompts/get",
        json!({"name": "test_prompt_with_arguments", "arguments": {"arg1": "a", "arg2": "b"}}),
    )
    .await;
    assert!(get.json()["result"]["messages"].is_array(), "{}", get.text);
    let complete = call_modern(&stack, &token, json!(9), "completion/complete", json!({"ref": {"type": "ref/prompt", "name": "test_prompt_with_arguments"}, "argument": {"name": "arg1", "value": ""}})).await;
    assert!(
        complete.json()["result"]["completion"]["values"].is_array(),
        "{}",
        complete.text
    );
    // A capability the client did not declare: -32021 with HTTP 400.
    let needs_sampling = call_modern(
        &stack,
        &token,
        json!(10),
        "tools/call",
        json!({"name": "test_missing_capability", "arguments": {}}),
    )
    .await;
    assert_eq!(
        (
            needs_sampling.status,
            needs_sampling.json()["error"]["code"].as_i64()
        ),
        (400, Some(-32021)),
        "{}",
        needs_sampling.text
    );
}

async fn wait_for_log(stack: &Stack, needle: &str) {
    wait_for_log_count(stack, needle, 1).await;
}

/// Waits until `needle` appears `times` times in the broker's log (children's
/// stderr lines included).
async fn wait_for_log_count(stack: &Stack, needle: &str, times: usize) {
    let seen = || stack.broker.log_text().matches(needle).count() >= times;
    assert!(
        eventually(REACTION, seen).await,
        "`{needle}` did not appear {times} times in the broker's log"
    );
}

#[tokio::test]
async fn closing_a_stream_or_sending_cancelled_cancels_the_child_request() {
    let stack = stack().await;
    let token = token_of(&stack, "alice").await;
    // Start alice's child first, so the slow request below reaches it at once.
    let warm = call_modern(&stack, &token, json!(0), "tools/list", json!({})).await;
    assert_eq!(warm.status, 200);
    // 2026-07-28: close the SSE response stream of a slow request.
    let mut call = modern(
        json!(1),
        "tools/call",
        json!({"name": "sleep", "arguments": {"ms": 30000}}),
    );
    call["params"]["_meta"]["progressToken"] = json!("p");
    let mut request = stack
        .http
        .post(stack.url("/mcp"))
        .bearer_auth(&token)
        .json(&call)
        .header("accept", "text/event-stream");
    for (k, v) in modern_headers("tools/call", Some("sleep")) {
        request = request.header(k, v);
    }
    let stream = request.send().await.unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    // The child is working on it; now hang up.
    wait_for_log(&stack, "tools/call sleep").await;
    drop(stream);
    wait_for_log(&stack, "request cancelled by the client").await;

    // 2025 era: notifications/cancelled on the session.
    let session = session_of(&stack, &token, "2025-11-25").await;
    let slow = {
        let (http, url, token, session) = (
            stack.http.clone(),
            stack.url("/mcp"),
            token.clone(),
            session.clone(),
        );
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .header("mcp-session-id", session)
                .json(&json!({"jsonrpc": "2.0", "id": "slow", "method": "tools/call", "params": {"name": "sleep", "arguments": {"ms": 30000}}}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    wait_for_log_count(&stack, "tools/call sleep", 2).await;
    let cancel = post(&stack, Some(&token), &[("mcp-session-id", &session)], json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "slow", "reason": "user"}})).await;
    assert_eq!(cancel.status, 202);
    let answered = tokio::time::timeout(std::time::Duration::from_secs(10), slow)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answered["id"], "slow");
    assert!(answered["error"].is_object(), "{answered}");
}

#[tokio::test]
async fn session_caps_batches_and_sessions_across_token_rotation() {
    let child = support::children::fixture_child().display().to_string();
    // Four-second tokens refreshed three seconds ahead: the sweep rotates the
    // child every couple of seconds.
    let stack = Stack::start_with(
        &[
            ("FJMCP_CHILD_COMMAND", &child),
            ("FJMCP_MAX_SESSIONS_PER_USER", "2"),
            ("FJMCP_REFRESH_LEAD", "3s"),
            ("FJMCP_ROTATE_INTERVAL", "1s"),
        ],
        |double| double.with_access_token_lifetime(std::time::Duration::from_secs(4)),
    )
    .await;
    let token = token_of(&stack, "alice").await;
    let session = session_of(&stack, &token, "2025-11-25").await;
    session_of(&stack, &token, "2025-11-25").await;
    let third = post(&stack, Some(&token), &[], initialize("2025-11-25")).await;
    assert_eq!(third.status, 503);
    assert!(third.headers.contains_key("retry-after"));

    let batch = post(
        &stack,
        Some(&token),
        &[("mcp-session-id", &session)],
        json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}]),
    )
    .await;
    assert_eq!(batch.status, 400);

    let echo = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}});
    let before = post(
        &stack,
        Some(&token),
        &[("mcp-session-id", &session)],
        echo.clone(),
    )
    .await;
    assert_eq!(before.json()["result"]["content"][0]["text"], "alice");
    assert!(
        eventually(REACTION, || stack.double.token_stats().refreshes >= 2).await,
        "the child was rotated"
    );
    let after = post(&stack, Some(&token), &[("mcp-session-id", &session)], echo).await;
    assert_eq!(
        after.json()["result"]["content"][0]["text"],
        "alice",
        "{}",
        after.text
    );
}

#[tokio::test]
async fn a_refused_initialize_leaves_no_session_behind() {
    let stack = stack_with(&[
        ("FJMCP_MAX_CHILDREN", "1"),
        ("FJMCP_MAX_SESSIONS_PER_USER", "1"),
    ])
    .await;
    let alice = token_of(&stack, "alice").await;
    let bob = token_of(&stack, "bob").await;
    let session = session_of(&stack, &alice, "2025-11-25").await;
    // The session's row is written while the child starts; Bob's child cannot.
    for _ in 0..3 {
        let full = post(&stack, Some(&bob), &[], initialize("2025-11-25")).await;
        assert_eq!(full.status, 503, "{}", full.text);
        assert!(
            !full.text.contains("too many open sessions"),
            "{}",
            full.text
        );
    }

    // Alice's child goes: Bob's next initialize is his first session, not his fourth.
    let crash = post(
        &stack,
        Some(&alice),
        &[("mcp-session-id", &session)],
        support::mcp::tool_call(json!(1), "crash", json!({})),
    )
    .await;
    assert_eq!(crash.json()["error"]["code"], -32603);
    let mut last = String::new();
    let served = time_until(std::time::Duration::from_secs(5), async || {
        let reply = post(&stack, Some(&bob), &[], initialize("2025-11-25")).await;
        assert!(
            !reply.text.contains("too many open sessions"),
            "{}",
            reply.text
        );
        let session = reply.status == 200 && reply.headers.contains_key("mcp-session-id");
        last = reply.text;
        session
    })
    .await;
    assert!(served.is_some(), "Bob never got a session: {last}");
}

#[tokio::test]
async fn streams_end_with_their_session_and_never_hold_shutdown() {
    let mut stack = stack().await;
    let token = token_of(&stack, "alice").await;
    let session = session_of(&stack, &token, "2025-11-25").await;
    let open_stream = |session: String| {
        let (http, url, token) = (stack.http.clone(), stack.url("/mcp"), token.clone());
        async move {
            http.get(url)
                .bearer_auth(token)
                .header("mcp-session-id", session)
                .header("accept", "text/event-stream")
                .send()
                .await
                .unwrap()
        }
    };
    let mut stream = open_stream(session.clone()).await;
    assert_eq!(stream.status(), 200);
    let delete = stack
        .http
        .delete(stack.url("/mcp"))
        .bearer_auth(&token)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 204);
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "DELETE ends the session's open stream");

    let other = session_of(&stack, &token, "2025-11-25").await;
    let _open = open_stream(other).await;
    let listen = modern(
        json!("sub-9"),
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true}}),
    );
    let mut listen_request = stack
        .http
        .post(stack.url("/mcp"))
        .bearer_auth(&token)
        .json(&listen)
        .header("accept", "text/event-stream");
    for (k, v) in modern_headers("subscriptions/listen", None) {
        listen_request = listen_request.header(k, v);
    }
    let mut listen_stream = listen_request.send().await.unwrap();
    assert_eq!(listen_stream.status(), 200);
    let started = tokio::time::Instant::now();
    stack.broker.terminate();
    let status = tokio::time::timeout(std::time::Duration::from_secs(2), stack.broker.child.wait())
        .await
        .unwrap_or_else(|_| panic!("an open stream held shutdown for {:?}", started.elapsed()))
        .unwrap();
    assert!(status.success());
    // The broker ended the subscription gracefully: its last message is the
    // listen request's response.
    let mut text = String::new();
    while let Ok(Some(chunk)) = listen_stream.chunk().await {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let last: Value = serde_json::from_str(
        text.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .next_back()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(last["id"], "sub-9", "{text}");
    assert_eq!(last["result"]["resultType"], "complete");
    assert_eq!(
        last["result"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "sub-9"
    );
}

#[tokio::test]
async fn admission_failures_are_http_statuses_also_for_clients_that_asked_for_a_stream() {
    let child = support::children::fixture_child().display().to_string();
    // Forgejo's tokens expire within the minute, so every child start refreshes first.
    let stack = Stack::start_with(
        &[("FJMCP_CHILD_COMMAND", &child), ("FJMCP_MAX_CHILDREN", "1")],
        |double| double.with_access_token_lifetime(std::time::Duration::from_secs(30)),
    )
    .await;
    let alice = token_of(&stack, "alice").await;
    let bob = token_of(&stack, "bob").await;
    let session = session_of(&stack, &alice, "2025-11-25").await;
    let sse_only = [("accept", "text/event-stream")];

    // Alice's child is the only one allowed: Bob waits.
    let full = post(&stack, Some(&bob), &sse_only, initialize("2025-11-25")).await;
    assert_eq!(full.status, 503, "{}", full.text);
    assert!(full.headers.contains_key("retry-after"));
    assert_eq!(full.headers["content-type"], "application/json");
    assert_eq!(full.json()["id"], 1);

    // Alice's child goes, and she revokes the broker in Forgejo: starting her
    // next child needs a refresh, which Forgejo refuses.
    let crash = post(
        &stack,
        Some(&alice),
        &[("mcp-session-id", &session)],
        support::mcp::tool_call(json!(1), "crash", json!({})),
    )
    .await;
    assert_eq!(crash.json()["error"]["code"], -32603);
    assert!(
        stack
            .double
            .revoke_grant("alice", support::oauth::BROKER_CLIENT_ID)
    );
    let mut headers = sse_only.to_vec();
    headers.push(("mcp-session-id", &session));
    let dead = post(
        &stack,
        Some(&alice),
        &headers,
        support::mcp::tool_call(json!(2), "echo", json!({"text": "x"})),
    )
    .await;
    assert_eq!(dead.status, 401, "{}", dead.text);
    let challenge = dead.headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(&format!(
            "resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"",
            stack.issuer
        )),
        "{challenge}"
    );
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert_eq!(dead.json()["error"], "invalid_token");
}
