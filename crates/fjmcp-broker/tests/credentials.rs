//! The user's Forgejo credential as clients experience it, on the real broker
//! binary with real children and the Forgejo test double: revoking the broker
//! in Forgejo, signing in again, denying consent, Forgejo failing or refusing,
//! restarts, and two instances on one PostgreSQL database.

mod support;

use std::time::Duration;

use forgejo_double::{Endpoint, Fault};
use serde_json::{Value, json};
use support::mcp::{
    call_modern, initialize, post, post_to, session_of, text_of, token_of, tool_call,
};
use support::oauth::{BROKER_CLIENT_ID, CLAUDE_CALLBACK, Landing, Stack};
use support::pair::Pair;
use support::wait::{REACTION, eventually};

fn fixture() -> String {
    support::children::fixture_child().display().to_string()
}

/// A 2025-era `whoami` on `session`: the login of the token the user's child
/// holds, or the tool's error text when Forgejo refuses that token.
async fn whoami(stack: &Stack, token: &str, session: &str) -> (u16, Value) {
    let reply = post(
        stack,
        Some(token),
        &[("mcp-session-id", session)],
        tool_call(json!("w"), "whoami", json!({})),
    )
    .await;
    let body = if reply.status == 200 {
        reply.json()
    } else {
        Value::Null
    };
    (reply.status, body)
}

/// Polls `probe` until it returns true, for at most `limit`.
async fn within(limit: Duration, mut probe: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if probe().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn revoking_the_broker_in_forgejo_ends_every_clients_access() {
    let child = fixture();
    let stack = Stack::start(&[
        ("FJMCP_CHILD_COMMAND", &child),
        ("FJMCP_FORGEJO_CHECK_INTERVAL", "1s"),
        ("FJMCP_ROTATE_INTERVAL", "1s"),
    ])
    .await;
    let first = token_of(&stack, "alice").await;
    let second = token_of(&stack, "alice").await;
    let session = session_of(&stack, &first, "2025-11-25").await;
    let (status, who) = whoami(&stack, &first, &session).await;
    assert_eq!((status, text_of(&who)), (200, "alice".to_string()));
    let found = call_modern(&stack, &second, json!(1), "server/discover", json!({})).await;
    assert_eq!(found.status, 200, "{}", found.text);

    assert!(stack.double.revoke_grant("alice", BROKER_CLIENT_ID));

    // A session start of either client is sent to sign in at once.
    let start = post(&stack, Some(&first), &[], initialize("2025-11-25")).await;
    assert_eq!(start.status, 401, "{}", start.text);
    assert!(
        start.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    let discover = call_modern(&stack, &second, json!(2), "server/discover", json!({})).await;
    assert_eq!(discover.status, 401, "{}", discover.text);
    // Every grant of the user went with the credential: the open session too.
    let (status, _) = whoami(&stack, &first, &session).await;
    assert_eq!(status, 401);
    let store = stack.open_store().await;
    assert!(store.live_grants_of_user("1").await.unwrap().is_empty());
    let audit = store.recent_audit(10).await.unwrap();
    assert!(
        audit.iter().any(|(_, e)| e.kind == "credential.dead"),
        "{audit:?}"
    );
}

#[tokio::test]
async fn a_live_child_loses_a_revoked_token_within_the_check_interval() {
    let child = fixture();
    let stack = Stack::start(&[
        ("FJMCP_CHILD_COMMAND", &child),
        ("FJMCP_FORGEJO_CHECK_INTERVAL", "1s"),
        ("FJMCP_ROTATE_INTERVAL", "1s"),
    ])
    .await;
    let token = token_of(&stack, "alice").await;
    let session = session_of(&stack, &token, "2025-11-25").await;
    assert_eq!(whoami(&stack, &token, &session).await.0, 200);
    assert!(stack.double.revoke_grant("alice", BROKER_CLIENT_ID));
    // No session start, no new child: only the sweep's check can notice.
    let noticed = within(Duration::from_secs(10), async || {
        whoami(&stack, &token, &session).await.0 == 401
    })
    .await;
    assert!(noticed, "{}", stack.broker.log_text());
}

#[tokio::test]
async fn a_sign_in_while_a_child_lives_replaces_it_at_once() {
    let child = fixture();
    let stack = Stack::start(&[("FJMCP_CHILD_COMMAND", &child)]).await;
    let first = token_of(&stack, "alice").await;
    let session = session_of(&stack, &first, "2025-11-25").await;
    assert_eq!(text_of(&whoami(&stack, &first, &session).await.1), "alice");
    // The user revokes the broker in Forgejo and approves it again through a
    // second client before the broker has noticed: the live child's token is
    // dead, the new sign-in's works.
    assert!(stack.double.revoke_grant("alice", BROKER_CLIENT_ID));
    let who = whoami(&stack, &first, &session).await.1;
    assert!(who["result"]["isError"] == json!(true), "{who}");
    token_of(&stack, "alice").await;
    let followed = within(Duration::from_secs(10), async || {
        let (status, who) = whoami(&stack, &first, &session).await;
        status == 200 && who["result"]["content"][0]["text"] == "alice"
    })
    .await;
    assert!(
        followed,
        "the child did not follow the new credential: {}",
        stack.broker.log_text()
    );
}

#[tokio::test]
async fn a_denied_consent_stores_nothing_and_keeps_what_the_user_had() {
    let child = fixture();
    let stack = Stack::start(&[("FJMCP_CHILD_COMMAND", &child)]).await;
    let store = stack.open_store().await;

    // Bob has never used the broker: he signs in at Forgejo (which issues him
    // tokens) and denies the client.
    let client = stack.register("denied", &[CLAUDE_CALLBACK]).await;
    let attempt = support::oauth::Attempt::new(&client, CLAUDE_CALLBACK);
    let Landing::Consent { ticket, cookie, .. } = stack
        .browse_as("bob", &stack.authorize_url(&attempt, &[]))
        .await
    else {
        panic!("expected the consent page");
    };
    match stack.decide(&ticket, &cookie, "deny").await {
        Landing::Client(query) => assert_eq!(query["error"], "access_denied"),
        other => panic!("{other:?}"),
    }
    assert!(
        !stack.double.valid_refresh_tokens("bob").is_empty(),
        "Forgejo did issue a grant"
    );
    assert!(store.user("2").await.unwrap().is_none(), "nothing stored");

    // Alice uses one client; she signs in for a second one and denies it.
    let first = token_of(&stack, "alice").await;
    let session = session_of(&stack, &first, "2025-11-25").await;
    assert_eq!(text_of(&whoami(&stack, &first, &session).await.1), "alice");
    let second = stack.register("second", &[CLAUDE_CALLBACK]).await;
    let attempt = support::oauth::Attempt::new(&second, CLAUDE_CALLBACK);
    let Landing::Consent { ticket, cookie, .. } = stack
        .browse_as("alice", &stack.authorize_url(&attempt, &[]))
        .await
    else {
        panic!("expected the consent page");
    };
    assert!(matches!(
        stack.decide(&ticket, &cookie, "deny").await,
        Landing::Client(_)
    ));
    // Her first client keeps working, and keeps its grant; the broker holds
    // the newest refresh token Forgejo issued (it made the older one unusable).
    assert_eq!(text_of(&whoami(&stack, &first, &session).await.1), "alice");
    assert_eq!(store.live_grants_of_user("1").await.unwrap().len(), 1);
    let (_, credential) = store.upstream_credential("1").await.unwrap().unwrap();
    use secrecy::ExposeSecret;
    assert_eq!(
        stack.double.valid_refresh_tokens("alice"),
        vec![
            credential
                .refresh_token
                .unwrap()
                .expose_secret()
                .to_string()
        ]
    );
}

/// The `Retry-After` of a 503, in seconds.
fn retry_after(reply: &support::mcp::Reply) -> u64 {
    let wait: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    wait
}

#[tokio::test]
async fn forgejo_failing_a_check_is_503_and_kills_nothing() {
    let child = fixture();
    let stack = Stack::start(&[("FJMCP_CHILD_COMMAND", &child)]).await;
    let token = token_of(&stack, "alice").await;
    stack
        .double
        .inject_fault(Endpoint::ApiUser, Fault::ServerError, 1);
    let failed = post(&stack, Some(&token), &[], initialize("2025-11-25")).await;
    assert_eq!(failed.status, 503, "{}", failed.text);
    let wait = retry_after(&failed);
    // A client that honours Retry-After gets through: nothing was revoked.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let session = session_of(&stack, &token, "2025-11-25").await;
    assert_eq!(text_of(&whoami(&stack, &token, &session).await.1), "alice");
    let store = stack.open_store().await;
    assert_eq!(store.live_grants_of_user("1").await.unwrap().len(), 1);
    assert!(!store.credential_generation("1").await.unwrap().unwrap().1);
}

#[tokio::test]
async fn forgejo_failing_a_refresh_is_503_and_kills_nothing() {
    let child = fixture();
    let stack = Stack::start_with(&[("FJMCP_CHILD_COMMAND", &child)], |double| {
        double.with_access_token_lifetime(Duration::from_secs(4))
    })
    .await;
    let token = token_of(&stack, "alice").await;
    // Past half its life the token must be refreshed before a session start
    // is served (waiting longer only makes that more so).
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    stack
        .double
        .inject_fault(Endpoint::Token, Fault::ServerError, 1);
    let failed = post(&stack, Some(&token), &[], initialize("2025-11-25")).await;
    assert_eq!(failed.status, 503, "{}", failed.text);
    let wait = retry_after(&failed);
    let store = stack.open_store().await;
    assert_eq!(store.live_grants_of_user("1").await.unwrap().len(), 1);
    assert!(!store.credential_generation("1").await.unwrap().unwrap().1);
    // Once Forgejo answers again, the refresh succeeds.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let session = session_of(&stack, &token, "2025-11-25").await;
    assert_eq!(text_of(&whoami(&stack, &token, &session).await.1), "alice");
    assert!(stack.double.token_stats().refreshes >= 1);
}

#[tokio::test]
async fn a_refusal_by_forgejo_ends_the_authorization_whatever_its_error_code() {
    for refusal in [Fault::InvalidGrant, Fault::UnauthorizedClient] {
        let child = fixture();
        let stack = Stack::start_with(&[("FJMCP_CHILD_COMMAND", &child)], |double| {
            double.with_access_token_lifetime(Duration::from_secs(50))
        })
        .await;
        let token = token_of(&stack, "alice").await;
        // By Forgejo's clock the access token has expired, and Forgejo refuses
        // the refresh token too: nothing of the grant works any more.
        stack.double.advance_clock(Duration::from_secs(60));
        stack.double.inject_fault(Endpoint::Token, refusal, 1);
        let refused = post(&stack, Some(&token), &[], initialize("2025-11-25")).await;
        assert_eq!(refused.status, 401, "{refusal:?}: {}", refused.text);
        let again = post(&stack, Some(&token), &[], initialize("2025-11-25")).await;
        assert_eq!(again.status, 401, "the grant is revoked");
    }
}

#[tokio::test]
async fn a_grant_deleted_in_forgejo_during_a_request_ends_it_cleanly() {
    let child = fixture();
    let stack = Stack::start(&[
        ("FJMCP_CHILD_COMMAND", &child),
        ("FJMCP_FORGEJO_CHECK_INTERVAL", "1s"),
        ("FJMCP_ROTATE_INTERVAL", "1s"),
    ])
    .await;
    let token = token_of(&stack, "alice").await;
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
                .json(&tool_call(json!("slow"), "sleep", json!({"ms": 3000})))
                .send()
                .await
                .unwrap()
        })
    };
    assert!(
        eventually(REACTION, || stack
            .broker
            .log_text()
            .contains("tools/call sleep"))
        .await
    );
    assert!(stack.double.revoke_grant("alice", BROKER_CLIENT_ID));
    // The request in flight gets an answer (its result, or a JSON-RPC error
    // when the child is stopped under it), never a hang.
    let answered = tokio::time::timeout(Duration::from_secs(15), slow)
        .await
        .expect("answered")
        .unwrap();
    assert_eq!(answered.status(), 200);
    let body: Value = answered.json().await.unwrap();
    assert_eq!(body["id"], "slow", "{body}");
    assert!(body.get("result").is_some() || body.get("error").is_some());
    let ended = within(Duration::from_secs(10), async || {
        whoami(&stack, &token, &session).await.0 == 401
    })
    .await;
    assert!(ended);
}

#[tokio::test]
async fn a_restart_between_sign_in_and_first_request_changes_nothing() {
    let child = fixture();
    let mut stack = Stack::start(&[("FJMCP_CHILD_COMMAND", &child)]).await;
    let token = token_of(&stack, "alice").await;
    let _first = stack.broker.restart().await;
    let session = session_of(&stack, &token, "2025-11-25").await;
    assert_eq!(text_of(&whoami(&stack, &token, &session).await.1), "alice");
}

#[tokio::test]
async fn two_instances_refreshing_one_user_at_once_ask_forgejo_once() {
    let Some(pair) = Pair::start(&[], |double| {
        double.with_access_token_lifetime(Duration::from_secs(4))
    })
    .await
    else {
        return;
    };
    let stack = &pair.stack;
    let token = token_of(stack, "alice").await;
    // Past half its life, the token must be refreshed before a child gets it:
    // each instance's first child needs a refresh.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let before = stack.double.token_stats();
    let second = pair.second_mcp();
    let (a, b) = tokio::join!(
        post(stack, Some(&token), &[], initialize("2025-11-25")),
        post_to(stack, &second, Some(&token), &[], initialize("2025-11-25")),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(b.status, 200, "{}", b.text);
    let after = stack.double.token_stats();
    assert_eq!(after.refreshes - before.refreshes, 1, "{after:?}");
    assert_eq!(after.refresh_reuse, before.refresh_reuse, "{after:?}");
}

#[tokio::test]
async fn five_second_tokens_are_refreshed_in_time_on_both_instances_in_both_eras() {
    let Some(pair) = Pair::start(
        &[
            ("FJMCP_ROTATE_INTERVAL", "1s"),
            ("FJMCP_REFRESH_LEAD", "3s"),
        ],
        |double| double.with_access_token_lifetime(Duration::from_secs(5)),
    )
    .await
    else {
        return;
    };
    let stack = &pair.stack;
    let second = pair.second_mcp();
    let token = token_of(stack, "alice").await;
    let session = session_of(stack, &token, "2025-11-25").await;
    // A sign-in again (another client) while the children live.
    let other = token_of(stack, "alice").await;
    let started = tokio::time::Instant::now();
    let mut requests = 0;
    while started.elapsed() < Duration::from_secs(12) {
        for url in [stack.url("/mcp"), second.clone()] {
            let legacy = post_to(
                stack,
                &url,
                Some(&token),
                &[("mcp-session-id", &session)],
                tool_call(json!(requests), "whoami", json!({})),
            )
            .await;
            assert_eq!(legacy.status, 200, "{}", legacy.text);
            assert_eq!(text_of(&legacy.json()), "alice", "{}", legacy.text);
            let name = "whoami";
            let mut headers = support::mcp::modern_headers("tools/call", Some(name));
            headers.push(("accept", "application/json"));
            let modern = post_to(
                stack,
                &url,
                Some(&other),
                &headers,
                support::mcp::modern(
                    json!(requests),
                    "tools/call",
                    json!({"name": name, "arguments": {}}),
                ),
            )
            .await;
            assert_eq!(modern.status, 200, "{}", modern.text);
            assert_eq!(text_of(&modern.json()), "alice", "{}", modern.text);
            requests += 2;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let stats = stack.double.token_stats();
    // One refresh per rotation: every refresh presented the newest refresh
    // token (none refused as already used), and there were several.
    assert_eq!(stats.refresh_reuse, 0, "{stats:?}");
    assert!(stats.refreshes >= 3, "{stats:?}");
    assert!(requests > 40);
}
