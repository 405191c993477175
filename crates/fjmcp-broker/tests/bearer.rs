//! The bearer check in front of `/mcp`, on an in-process broker sharing the
//! database of the real broker binary that issued the tokens.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use fjmcp_broker::{config, server};
use support::oauth::{CLAUDE_CALLBACK, Stack};

/// Serves an in-process broker with `public_url` on the stack's database;
/// returns its `/mcp` URL.
async fn serve(stack: &Stack, public_url: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let env: BTreeMap<String, String> = [
        ("FJMCP_PUBLIC_URL", public_url),
        ("FJMCP_FORGEJO_URL", &stack.double.url()),
        ("FJMCP_FORGEJO_CLIENT_ID", "x"),
        ("FJMCP_FORGEJO_CLIENT_SECRET", "y"),
        // The test connects to the listener's own address.
        ("FJMCP_ALLOWED_HOSTS", &addr),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let (config, _) = config::load(&[], None, &env).unwrap();
    let broker = server::assemble(
        Arc::new(config),
        stack.open_store().await,
        Arc::new(fjmcp_broker::clock::SystemClock),
    );
    // Served as the binary serves (background tasks included); never stopped.
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(server::serve(listener, broker, shutdown));
    format!("http://{addr}/mcp")
}

/// Past the bearer check, `{}` is refused by the MCP rules (400, JSON-RPC
/// -32600), never with 401.
async fn assert_authenticated(response: reqwest::Response) {
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32600, "{body}");
}

#[tokio::test]
async fn only_valid_unrevoked_tokens_for_this_resource_pass() {
    let stack = Stack::start(&[]).await;
    let client = stack.register("c", &[CLAUDE_CALLBACK]).await;
    let tokens = stack.tokens_for("alice", &client).await;
    let access = tokens["access_token"].as_str().unwrap();
    let mcp = serve(&stack, &stack.issuer).await;
    let http = reqwest::Client::new();
    let prm = format!("{}/.well-known/oauth-protected-resource/mcp", stack.issuer);

    let ok = http
        .post(&mcp)
        .bearer_auth(access)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_authenticated(ok).await;

    let none = http.post(&mcp).body("{}").send().await.unwrap();
    assert_eq!(none.status(), 401);
    let challenge = none.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(&format!("resource_metadata=\"{prm}\"")),
        "{challenge}"
    );
    assert!(
        !challenge.contains("error="),
        "no error attribute without a token: {challenge}"
    );

    for bad in [
        http.post(&mcp).bearer_auth("fjat_unknown").body("{}"),
        http.post(&mcp)
            .header("authorization", format!("Basic {access}"))
            .body("{}"),
        http.post(format!("{mcp}?access_token={access}")).body("{}"),
    ] {
        let response = bad.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            challenge.contains(&format!("resource_metadata=\"{prm}\"")),
            "{challenge}"
        );
    }
    let invalid = http
        .post(&mcp)
        .bearer_auth("fjat_unknown")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(
        invalid.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );

    // A token for another resource (a broker at another public URL) is refused.
    let elsewhere = serve(&stack, "http://localhost:1").await;
    let foreign = http
        .post(&elsewhere)
        .bearer_auth(access)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 401);

    // A revocation by another instance (the binary) is seen within a second.
    assert_eq!(stack.revoke(access, &client).await, 200);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let after = http
            .post(&mcp)
            .bearer_auth(access)
            .body("{}")
            .send()
            .await
            .unwrap();
        if after.status() == 401 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still accepted");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_refused_request_leaves_the_connection_usable() {
    let stack = Stack::start(&[]).await;
    let mcp = serve(&stack, &stack.issuer).await;
    // One connection: a second request on it must still be answered.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    for _ in 0..3 {
        let response = http
            .post(&mcp)
            .body(vec![b'x'; 32 * 1024])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
}
