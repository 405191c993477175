//! The `/_double/` HTTP control API that end-to-end tests in other languages use.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::*;

async fn post(f: &Fixture, path: &str, body: Value) -> (StatusCode, Value) {
    let response = f
        .http
        .post(f.url(path))
        .json(&body)
        .send()
        .await
        .expect("control request");
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

async fn get(f: &Fixture, path: &str) -> (StatusCode, Value) {
    let response = f
        .http
        .get(f.url(path))
        .send()
        .await
        .expect("control request");
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn tokens_clock_and_revocation_over_http() {
    let f = start().await;
    let reply = f.login("alice").await;

    let (status, tokens) = get(&f, "/_double/tokens/alice").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tokens["access_tokens"], json!([reply.access_token()]));
    assert_eq!(tokens["refresh_tokens"], json!([reply.refresh_token()]));
    assert_eq!(
        get(&f, "/_double/tokens/nobody").await.0,
        StatusCode::NOT_FOUND
    );

    let (status, body) = post(&f, "/_double/clock/advance", json!({"seconds": 3600})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["offset_seconds"], 3600);
    let (_, tokens) = get(&f, "/_double/tokens/alice").await;
    assert_eq!(tokens["access_tokens"], json!([]));
    assert_eq!(tokens["refresh_tokens"], json!([reply.refresh_token()]));

    let revoke = json!({"login": "alice", "client_id": CONF_ID});
    assert_eq!(
        post(&f, "/_double/revoke", revoke.clone()).await.1["revoked"],
        true
    );
    assert_eq!(
        post(&f, "/_double/revoke", revoke).await.1["revoked"],
        false
    );
    let (_, tokens) = get(&f, "/_double/tokens/alice").await;
    assert_eq!(tokens["refresh_tokens"], json!([]));
}

#[tokio::test]
async fn faults_and_stats_over_http() {
    let f = start().await;
    let first = f.login("alice").await;
    let fault = json!({"endpoint": "token", "fault": "server_error", "times": 2});
    assert_eq!(post(&f, "/_double/faults", fault).await.0, StatusCode::OK);
    assert_eq!(
        f.refresh(&first.refresh_token()).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );

    // Clearing drops the second one.
    let response = f
        .http
        .delete(f.url("/_double/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        f.refresh(&first.refresh_token()).await.status,
        StatusCode::OK
    );

    let delay = json!({"endpoint": "api_version", "fault": "delay", "delay_ms": 10});
    assert_eq!(post(&f, "/_double/faults", delay).await.0, StatusCode::OK);
    for bad in [
        json!({"endpoint": "nope", "fault": "server_error"}),
        json!({"endpoint": "token", "fault": "nope"}),
        json!({"endpoint": "token", "fault": "delay"}),
    ] {
        let (status, body) = post(&f, "/_double/faults", bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(body["error"].is_string());
    }
    // Not JSON at all is still a client error.
    let response = f
        .http
        .post(f.url("/_double/faults"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error());

    let (status, stats) = get(&f, "/_double/stats").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["calls"]["token"], 3);
    assert_eq!(stats["calls"]["authorize"], 1);
    assert_eq!(stats["calls"]["api_version"], 0);
    assert_eq!(stats["tokens"]["code_exchanges"], 1);
    assert_eq!(stats["tokens"]["refreshes"], 1);
    assert_eq!(stats["tokens"]["rejected"], 0);
}

#[tokio::test]
async fn users_apps_and_auto_login_over_http() {
    let f = start().await;
    let (status, body) = post(
        &f,
        "/_double/users",
        json!({"login": "dave", "password": "dave-pw", "full_name": "Dave D."}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["id"], 44);
    let app = json!({"client_id": "e2e", "redirect_uris": ["http://127.0.0.1/cb"]});
    assert_eq!(post(&f, "/_double/apps", app).await.0, StatusCode::CREATED);

    let unknown = json!({"login": "nobody"});
    assert_eq!(
        post(&f, "/_double/auto-login", unknown).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post(&f, "/_double/auto-login", json!({"login": "dave"}))
            .await
            .0,
        StatusCode::OK
    );
    let challenge = s256(VERIFIER);
    let response = f
        .authorize(&[
            ("client_id", "e2e"),
            ("redirect_uri", "http://127.0.0.1:12345/cb"),
            ("response_type", "code"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .await;
    let code = location_param(&response, "code").expect("auto-login code");
    let reply = f
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "e2e"),
                ("code", &code),
                ("redirect_uri", "http://127.0.0.1:12345/cb"),
                ("code_verifier", VERIFIER),
            ],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let claims: Value = f
        .userinfo(&reply.access_token())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(claims["name"], "Dave D.");

    assert_eq!(
        post(&f, "/_double/auto-login", json!({"login": null}))
            .await
            .0,
        StatusCode::OK
    );
    let response = f
        .authorize(&[
            ("client_id", "e2e"),
            ("redirect_uri", "http://127.0.0.1:12345/cb"),
            ("response_type", "code"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}
