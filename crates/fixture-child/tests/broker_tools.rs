//! The behaviour fjmcp-broker's tests rely on: the Forgejo start-up check, `whoami`,
//! `env_names`, `crash`, `echo`, and the misbehaviour flags.

mod common;

use std::time::Duration;

use common::{Child, FakeForgejo, GOOD_TOKEN, LOGIN, first_text};
use serde_json::json;

#[tokio::test]
async fn good_token_passes_the_startup_check_and_whoami_reports_the_login() {
    let forgejo = FakeForgejo::start().await;
    let mut child = Child::spawn_with(
        &[
            ("FORGEJO_URL", &format!("{}/", forgejo.url)),
            ("FORGEJO_ACCESS_TOKEN", GOOD_TOKEN),
        ],
        &["--transport", "stdio"],
    );
    child.initialize(json!({})).await;
    let whoami = child.call_tool("whoami", json!({})).await;
    assert!(whoami.get("isError").is_none(), "{whoami}");
    assert_eq!(first_text(&whoami), LOGIN);
    assert!(
        !child.stderr().contains(GOOD_TOKEN),
        "token leaked to stderr"
    );
}

#[tokio::test]
async fn rejected_token_exits_1_before_serving_and_never_prints_the_token() {
    let forgejo = FakeForgejo::start().await;
    let bad_token = "bad-token-7c1e9f";
    let mut child = Child::spawn_with(
        &[
            ("FORGEJO_URL", &forgejo.url),
            ("FORGEJO_ACCESS_TOKEN", bad_token),
        ],
        &[],
    );
    assert_eq!(child.wait_exit().await.code(), Some(1));
    let stderr = child.final_stderr().await;
    assert!(
        stderr.contains("rejected the access token (HTTP 401)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(bad_token),
        "token leaked to stderr: {stderr}"
    );
}

#[tokio::test]
async fn missing_token_is_rejected_like_forgejo_mcp() {
    let forgejo = FakeForgejo::start().await;
    let mut child = Child::spawn_with(&[("FORGEJO_URL", &forgejo.url)], &[]);
    assert_eq!(child.wait_exit().await.code(), Some(1));
}

#[tokio::test]
async fn unreachable_forgejo_exits_1() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut child = Child::spawn_with(
        &[
            ("FORGEJO_URL", &format!("http://127.0.0.1:{port}")),
            ("FORGEJO_ACCESS_TOKEN", GOOD_TOKEN),
        ],
        &[],
    );
    assert_eq!(child.wait_exit().await.code(), Some(1));
    let stderr = child.final_stderr().await;
    assert!(stderr.contains("could not reach Forgejo"), "{stderr}");
}

#[tokio::test]
async fn url_flag_overrides_the_environment() {
    let forgejo = FakeForgejo::start().await;
    let mut child = Child::spawn_with(
        &[
            ("FORGEJO_URL", "http://127.0.0.1:9"),
            ("FORGEJO_ACCESS_TOKEN", GOOD_TOKEN),
        ],
        &["--url", &forgejo.url],
    );
    child.initialize(json!({})).await;
    assert_eq!(
        first_text(&child.call_tool("whoami", json!({})).await),
        LOGIN
    );
}

#[tokio::test]
async fn whoami_without_forgejo_is_an_error_result() {
    let mut child = Child::spawn();
    child.initialize(json!({})).await;
    let whoami = child.call_tool("whoami", json!({})).await;
    assert_eq!(whoami["isError"], true);
    assert!(first_text(&whoami).contains("FORGEJO_URL"));
}

#[tokio::test]
async fn env_names_lists_exactly_the_given_variables_without_values() {
    let forgejo = FakeForgejo::start().await;
    let mut child = Child::spawn_with(
        &[
            ("FORGEJO_URL", &forgejo.url),
            ("FORGEJO_ACCESS_TOKEN", GOOD_TOKEN),
            ("ZZ_ALLOWED", "value-that-must-not-appear"),
        ],
        &[],
    );
    child.initialize(json!({})).await;
    let names = child.call_tool("env_names", json!({})).await;
    assert_eq!(
        first_text(&names),
        "FORGEJO_ACCESS_TOKEN\nFORGEJO_URL\nZZ_ALLOWED"
    );

    let mut bare = Child::spawn();
    bare.initialize(json!({})).await;
    assert_eq!(
        first_text(&bare.call_tool("env_names", json!({})).await),
        ""
    );
}

#[tokio::test]
async fn crash_exits_with_status_3_without_answering() {
    let mut child = Child::spawn();
    child.initialize(json!({})).await;
    let id = child
        .send_request("tools/call", json!({ "name": "crash", "arguments": {} }))
        .await;
    assert_eq!(child.wait_exit().await.code(), Some(3));
    let after = child.collect_for(Duration::from_millis(100)).await;
    assert!(
        after.iter().all(|m| m["id"] != id),
        "crash answered: {after:?}"
    );
}

#[tokio::test]
async fn echo_and_sleep_validate_their_arguments() {
    let mut child = Child::spawn();
    child.initialize(json!({})).await;
    let echoed = child
        .call_tool("echo", json!({ "text": "hello\nworld" }))
        .await;
    assert_eq!(first_text(&echoed), "hello\nworld");
    let no_text = child.call_tool("echo", json!({})).await;
    assert_eq!(no_text["isError"], true);
    let bad_ms = child.call_tool("sleep", json!({ "ms": "soon" })).await;
    assert_eq!(bad_ms["isError"], true);
    let slept = child.call_tool("sleep", json!({ "ms": 0 })).await;
    assert_eq!(first_text(&slept), "slept 0 ms");
    let not_object = child
        .error("tools/call", json!({ "name": "echo", "arguments": [1] }))
        .await;
    assert_eq!(not_object["code"], -32602);
}

#[tokio::test]
async fn ignore_initialize_flag_leaves_the_handshake_unanswered() {
    let mut child = Child::spawn_with(&[], &["--ignore-initialize"]);
    let init = child
        .send_request(
            "initialize",
            json!({ "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "t", "version": "0" } }),
        )
        .await;
    // Other requests still work, so the test observes silence rather than a dead process.
    assert_eq!(child.result("ping", json!({})).await, json!({}));
    let seen = child.collect_for(Duration::from_millis(300)).await;
    assert!(
        seen.iter().all(|m| m["id"] != init),
        "initialize answered: {seen:?}"
    );
}

#[tokio::test]
async fn noise_flag_writes_one_non_json_line_first() {
    let mut child = Child::spawn_with(&[], &["--noise-on-stdout"]);
    let line = child.raw_line().await;
    assert!(
        serde_json::from_str::<serde_json::Value>(&line).is_err(),
        "{line}"
    );
    assert_eq!(child.result("ping", json!({})).await, json!({}));
}

#[tokio::test]
async fn unknown_flags_are_a_usage_error() {
    let mut child = Child::spawn_with(&[], &["--transport", "http"]);
    assert_eq!(child.wait_exit().await.code(), Some(2));
}
