//! What one instance's memory must not hide: revocations and ended sessions on
//! another instance (two brokers on one PostgreSQL database), a revoked token
//! on the instance that revoked it, and what a broker killed outright loses.

mod support;

use std::time::Duration;

use serde_json::json;
use support::mcp::{initialize, post, post_to, session_of, stack, text_of, token_of, tool_call};
use support::oauth::CLAUDE_CALLBACK;
use support::pair::Pair;
use support::wait::time_until;

/// How quickly another instance must see a revocation (the promise).
const ACROSS_INSTANCES: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_revocation_on_one_instance_is_seen_on_the_other_within_a_second() {
    let Some(pair) = Pair::start(&[], |double| double).await else {
        return;
    };
    let stack = &pair.stack;
    let second = pair.second_mcp();
    let client = stack.register("revoked", &[CLAUDE_CALLBACK]).await;
    let tokens = stack.tokens_for("alice", &client).await;
    let access = tokens["access_token"].as_str().unwrap();
    // Both instances have verified (and cached) the token.
    let session = session_of(stack, access, "2025-11-25").await;
    let on_b = post_to(stack, &second, Some(access), &[], initialize("2025-11-25")).await;
    assert_eq!(on_b.status, 200, "{}", on_b.text);

    assert_eq!(stack.revoke(access, &client).await, 200);
    // At once on the instance that revoked …
    let on_a = post(
        stack,
        Some(access),
        &[("mcp-session-id", &session)],
        tool_call(json!(1), "echo", json!({"text": "x"})),
    )
    .await;
    assert_eq!(on_a.status, 401, "{}", on_a.text);
    // … and within a second on the other.
    let seen = time_until(Duration::from_secs(5), async || {
        post_to(stack, &second, Some(access), &[], initialize("2025-11-25"))
            .await
            .status
            == 401
    })
    .await
    .expect("instance B never saw the revocation");
    assert!(seen <= ACROSS_INSTANCES, "seen after {seen:?}");
}

#[tokio::test]
async fn a_token_minted_on_one_instance_and_revoked_on_the_other_is_refused_within_a_second() {
    let Some(pair) = Pair::start(&[], |double| double).await else {
        return;
    };
    let stack = &pair.stack;
    let client = stack.register("minted", &[CLAUDE_CALLBACK]).await;
    // Instance A mints the token and trusts it from then on without asking the store.
    let tokens = stack.tokens_for("alice", &client).await;
    let access = tokens["access_token"].as_str().unwrap();
    let session = session_of(stack, access, "2025-11-25").await;

    let revoked = stack
        .http
        .post(format!("{}/oauth/revoke", pair.second.url))
        .form(&[("token", access), ("client_id", client.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let echo = tool_call(json!(1), "echo", json!({"text": "x"}));
    let seen = time_until(Duration::from_secs(5), async || {
        post(
            stack,
            Some(access),
            &[("mcp-session-id", &session)],
            echo.clone(),
        )
        .await
        .status
            == 401
    })
    .await
    .expect("instance A kept trusting the token it minted");
    assert!(seen <= ACROSS_INSTANCES, "seen after {seen:?}");
}

#[tokio::test]
async fn a_session_deleted_on_one_instance_is_404_on_the_other_within_a_second() {
    let Some(pair) = Pair::start(&[], |double| double).await else {
        return;
    };
    let stack = &pair.stack;
    let second = pair.second_mcp();
    let token = token_of(stack, "alice").await;
    let session = session_of(stack, &token, "2025-11-25").await;
    let echo = tool_call(json!(1), "echo", json!({"text": "both"}));
    // Instance B serves the session too (and now holds it in memory).
    let on_b = post_to(
        stack,
        &second,
        Some(&token),
        &[("mcp-session-id", &session)],
        echo.clone(),
    )
    .await;
    assert_eq!(text_of(&on_b.json()), "both");

    let deleted = stack
        .http
        .delete(stack.url("/mcp"))
        .bearer_auth(&token)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let seen = time_until(Duration::from_secs(5), async || {
        post_to(
            stack,
            &second,
            Some(&token),
            &[("mcp-session-id", &session)],
            echo.clone(),
        )
        .await
        .status
            == 404
    })
    .await
    .expect("instance B kept serving the deleted session");
    assert!(seen <= ACROSS_INSTANCES, "seen after {seen:?}");
}

#[tokio::test]
async fn a_revoked_token_never_works_again_on_the_instance_that_revoked_it() {
    let stack = stack().await;
    for _ in 0..3 {
        let client = stack.register("often", &[CLAUDE_CALLBACK]).await;
        let tokens = stack.tokens_for("alice", &client).await;
        let access = tokens["access_token"].as_str().unwrap();
        let session = session_of(&stack, access, "2025-11-25").await;
        let echo = tool_call(json!(1), "echo", json!({"text": "x"}));
        // Cached by several successful requests.
        for _ in 0..5 {
            let ok = post(
                &stack,
                Some(access),
                &[("mcp-session-id", &session)],
                echo.clone(),
            )
            .await;
            assert_eq!(ok.status, 200);
        }
        assert_eq!(stack.revoke(access, &client).await, 200);
        for _ in 0..5 {
            let refused = post(
                &stack,
                Some(access),
                &[("mcp-session-id", &session)],
                echo.clone(),
            )
            .await;
            assert_eq!(refused.status, 401, "{}", refused.text);
        }
    }
}

#[tokio::test]
async fn a_broker_killed_outright_keeps_its_sessions_and_grants() {
    let mut stack = stack().await;
    let token = token_of(&stack, "alice").await;
    let session = session_of(&stack, &token, "2025-11-25").await;
    let echo = tool_call(json!(1), "echo", json!({"text": "after"}));
    let used = post(
        &stack,
        Some(&token),
        &[("mcp-session-id", &session)],
        echo.clone(),
    )
    .await;
    assert_eq!(used.status, 200);

    // SIGKILL: no shutdown, no write-behind of the last uses.
    let pid = stack.broker.child.id().unwrap();
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    stack.broker.child.wait().await.unwrap();
    let _killed = stack.broker.restart_after_exit().await;

    let after = post(&stack, Some(&token), &[("mcp-session-id", &session)], echo).await;
    assert_eq!(after.status, 200, "{}", after.text);
    assert_eq!(text_of(&after.json()), "after");
    let store = stack.open_store().await;
    assert_eq!(store.live_grants_of_user("1").await.unwrap().len(), 1);
}
