//! The token endpoint and what tokens unlock: code exchange, client authentication, refresh
//! rotation, expiry, revocation, userinfo and `/api/v1`.

mod support;

use std::time::Duration;

use forgejo_double::{App, Endpoint, Fault, TokenStats};
use reqwest::StatusCode;
use serde_json::Value;
use support::*;

#[tokio::test]
async fn code_flow_with_s256_pkce_yields_working_tokens() {
    let f = start().await;
    let reply = f.login("alice").await;
    assert_eq!(reply.body["token_type"], "bearer");
    assert_eq!(reply.body["expires_in"], 3600);
    let access = reply.access_token();
    assert!(access.starts_with("fgj_at_"), "{access}");
    assert!(reply.refresh_token().starts_with("fgj_rt_"));

    let response = f.userinfo(&access).await;
    assert_eq!(response.status(), StatusCode::OK);
    let claims: Value = response.json().await.unwrap();
    assert_eq!(claims["sub"], "42");
    assert_eq!(claims["preferred_username"], "alice");
    assert_eq!(claims["name"], "Alice");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["groups"], serde_json::json!([]));
    assert!(claims["picture"].as_str().unwrap().starts_with("http://"));

    assert_eq!(f.double.valid_access_tokens("alice"), vec![access]);
    assert_eq!(f.double.valid_access_tokens("bob"), Vec::<String>::new());
    assert_eq!(
        f.double.token_stats(),
        TokenStats {
            code_exchanges: 1,
            ..TokenStats::default()
        }
    );
}

#[tokio::test]
async fn code_flow_with_plain_pkce_for_a_public_client() {
    let f = start().await;
    f.double.set_auto_login(Some("bob"));
    let redirect = "http://127.0.0.1:51234/callback";
    let response = f
        .authorize(&[
            ("client_id", PUB_ID),
            ("redirect_uri", redirect),
            ("response_type", "code"),
            ("state", "s1"),
            ("code_challenge", "plain-challenge-value"),
            ("code_challenge_method", "plain"),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(
        response.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("http://127.0.0.1:51234/callback?")
    );
    let code = location_param(&response, "code").unwrap();

    // A public client needs no secret, but the right verifier.
    let exchange = |verifier: &'static str| {
        let code = code.clone();
        let f = &f;
        async move {
            f.token(
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", redirect),
                    ("client_id", PUB_ID),
                    ("code_verifier", verifier),
                ],
                None,
            )
            .await
        }
    };
    let (error, description) = exchange("not-the-challenge").await.expect_error();
    assert_eq!(error, "unauthorized_client");
    assert_eq!(description, "failed PKCE code challenge");
    let reply = exchange("plain-challenge-value").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let response = f.userinfo(&reply.access_token()).await;
    let claims: Value = response.json().await.unwrap();
    assert_eq!(claims["sub"], "43");
}

/// A code exchange with extra form fields and optional HTTP Basic credentials.
async fn exchange_with(
    f: &Fixture,
    code: &str,
    extra: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> support::TokenReply {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", CONF_REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    form.extend_from_slice(extra);
    f.token(&form, basic).await
}

#[tokio::test]
async fn confidential_clients_authenticate_by_basic_or_post() {
    let f = start().await;
    let basic = Some((CONF_ID, CONF_SECRET));
    let post = [("client_id", CONF_ID), ("client_secret", CONF_SECRET)];

    let code = f.code_for("alice").await;
    let reply = exchange_with(&f, &code, &[], basic).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "client_secret_basic: {}",
        reply.body
    );

    let code = f.code_for("alice").await;
    let reply = exchange_with(&f, &code, &post, None).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "client_secret_post: {}",
        reply.body
    );

    // Both, agreeing, is fine.
    let code = f.code_for("alice").await;
    let reply = exchange_with(&f, &code, &post, basic).await;
    assert_eq!(reply.status, StatusCode::OK, "both: {}", reply.body);

    // Both, disagreeing, is invalid_request.
    let code = f.code_for("alice").await;
    let (error, description) = exchange_with(&f, &code, &[("client_secret", "other")], basic)
        .await
        .expect_error();
    assert_eq!(error, "invalid_request");
    assert!(description.contains("inconsistent"), "{description}");

    // Wrong, missing and unknown credentials are invalid_client; the code survives them.
    let wrong = exchange_with(&f, &code, &[], Some((CONF_ID, "wrong"))).await;
    assert_eq!(
        wrong.expect_error(),
        (
            "invalid_client".to_owned(),
            "invalid client secret".to_owned()
        )
    );
    let no_secret = exchange_with(&f, &code, &[("client_id", CONF_ID)], None).await;
    assert_eq!(
        no_secret.expect_error(),
        (
            "invalid_client".to_owned(),
            "invalid empty client secret".to_owned()
        )
    );
    let unknown = exchange_with(&f, &code, &[], Some(("nobody", "x"))).await;
    assert_eq!(unknown.expect_error().0, "invalid_client");
    let anonymous = exchange_with(&f, &code, &[], None).await;
    assert_eq!(anonymous.expect_error().0, "invalid_client");
    let reply = exchange_with(&f, &code, &[], basic).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn a_code_works_once() {
    let f = start().await;
    let code = f.code_for("alice").await;
    assert_eq!(f.exchange(&code).await.status, StatusCode::OK);
    let (error, description) = f.exchange(&code).await.expect_error();
    assert_eq!(error, "unauthorized_client");
    assert_eq!(description, "client is not authorized");
    let (error, _) = f.exchange("fgj_ac_made-up").await.expect_error();
    assert_eq!(error, "unauthorized_client");
}

#[tokio::test]
async fn pkce_and_redirect_mismatches_are_unauthorized_client() {
    let f = start().await;
    let code = f.code_for("alice").await;
    let attempt = |verifier: Option<&'static str>, redirect: &'static str| {
        let code = code.clone();
        let f = &f;
        async move {
            let mut form = vec![
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", redirect),
            ];
            if let Some(verifier) = verifier {
                form.push(("code_verifier", verifier));
            }
            f.token(&form, Some((CONF_ID, CONF_SECRET))).await
        }
    };
    let (error, description) = attempt(Some("wrong-verifier"), CONF_REDIRECT)
        .await
        .expect_error();
    assert_eq!(
        (error.as_str(), description.as_str()),
        ("unauthorized_client", "failed PKCE code challenge")
    );
    let (error, _) = attempt(None, CONF_REDIRECT).await.expect_error();
    assert_eq!(error, "unauthorized_client");
    let (error, description) = attempt(Some(VERIFIER), "https://broker.example/other")
        .await
        .expect_error();
    assert_eq!(
        (error.as_str(), description.as_str()),
        ("unauthorized_client", "unexpected redirect URI")
    );
    // As in Forgejo, failed attempts do not consume the code.
    assert_eq!(
        attempt(Some(VERIFIER), CONF_REDIRECT).await.status,
        StatusCode::OK
    );
    assert_eq!(f.double.token_stats().rejected, 3);
}

#[tokio::test]
async fn codes_expire_after_ten_minutes() {
    let f = start().await;
    let code = f.code_for("alice").await;
    f.double.advance_clock(Duration::from_secs(601));
    let (error, _) = f.exchange(&code).await.expect_error();
    assert_eq!(error, "unauthorized_client");
}

#[tokio::test]
async fn refresh_rotates_and_old_refresh_tokens_are_already_used() {
    let f = start().await;
    let first = f.login("alice").await;
    let second = f.refresh(&first.refresh_token()).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_ne!(second.access_token(), first.access_token());
    assert_ne!(second.refresh_token(), first.refresh_token());

    let (error, description) = f.refresh(&first.refresh_token()).await.expect_error();
    assert_eq!(error, "unauthorized_client");
    assert_eq!(description, "token was already used");

    // The old access token keeps working until it expires; both are listed as valid.
    assert_eq!(
        f.userinfo(&first.access_token()).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        f.double.valid_access_tokens("alice"),
        vec![first.access_token(), second.access_token()]
    );
    assert_eq!(
        f.double.valid_refresh_tokens("alice"),
        vec![second.refresh_token()]
    );

    let third = f.refresh(&second.refresh_token()).await;
    assert_eq!(third.status, StatusCode::OK, "{}", third.body);
    assert_eq!(
        f.double.token_stats(),
        TokenStats {
            code_exchanges: 1,
            refreshes: 2,
            rejected: 1,
            refresh_reuse: 1,
        }
    );
}

#[tokio::test]
async fn a_new_login_invalidates_the_previous_refresh_token() {
    let f = start().await;
    let first = f.login("alice").await;
    let second = f.login("alice").await;
    let (error, description) = f.refresh(&first.refresh_token()).await.expect_error();
    assert_eq!(error, "unauthorized_client");
    assert_eq!(description, "token was already used");
    assert_eq!(
        f.refresh(&second.refresh_token()).await.status,
        StatusCode::OK
    );
    // Another user's grant is independent.
    let bobs = f.login("bob").await;
    assert_eq!(
        f.refresh(&bobs.refresh_token()).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn without_invalidation_refresh_tokens_are_reusable() {
    let f = start_with(config().with_invalidate_refresh_tokens(false)).await;
    let first = f.login("alice").await;
    assert_eq!(
        f.refresh(&first.refresh_token()).await.status,
        StatusCode::OK
    );
    assert_eq!(
        f.refresh(&first.refresh_token()).await.status,
        StatusCode::OK
    );
    assert_eq!(f.double.valid_refresh_tokens("alice").len(), 3);
}

#[tokio::test]
async fn access_tokens_expire_on_the_doubles_clock() {
    let f = start_with(config().with_access_token_lifetime(Duration::from_secs(120))).await;
    let reply = f.login("alice").await;
    assert_eq!(reply.body["expires_in"], 120);
    let access = reply.access_token();
    assert_eq!(f.userinfo(&access).await.status(), StatusCode::OK);

    f.double.advance_clock(Duration::from_secs(119));
    assert_eq!(f.userinfo(&access).await.status(), StatusCode::OK);
    f.double.advance_clock(Duration::from_secs(1));
    let response = f.userinfo(&access).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"\"");
    assert_eq!(response.text().await.unwrap(), "no valid authorization");
    let response = f
        .http
        .get(f.url("/api/v1/user"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(f.double.valid_access_tokens("alice").is_empty());

    // The refresh token outlives the access token.
    let renewed = f.refresh(&reply.refresh_token()).await;
    assert_eq!(renewed.status, StatusCode::OK);
    assert_eq!(
        f.userinfo(&renewed.access_token()).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn revoking_the_grant_kills_its_tokens() {
    let f = start().await;
    let alice = f.login("alice").await;
    let bob = f.login("bob").await;
    assert!(f.double.revoke_grant("alice", CONF_ID));
    assert!(!f.double.revoke_grant("alice", CONF_ID));

    assert_eq!(
        f.userinfo(&alice.access_token()).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let (error, _) = f.refresh(&alice.refresh_token()).await.expect_error();
    assert_eq!(error, "invalid_grant");
    assert!(f.double.valid_access_tokens("alice").is_empty());
    assert!(f.double.valid_refresh_tokens("alice").is_empty());
    assert_eq!(
        f.userinfo(&bob.access_token()).await.status(),
        StatusCode::OK
    );

    // Signing in again creates a fresh grant.
    let again = f.login("alice").await;
    assert_eq!(
        f.userinfo(&again.access_token()).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn malformed_token_requests_get_the_right_oauth_errors() {
    let f = start().await;
    let basic = Some((CONF_ID, CONF_SECRET));
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![], "invalid_request"),
        (
            vec![("grant_type", "client_credentials")],
            "unsupported_grant_type",
        ),
        (vec![("grant_type", "password")], "unsupported_grant_type"),
        (
            vec![("grant_type", "authorization_code")],
            "invalid_request",
        ),
        (
            vec![("grant_type", "authorization_code"), ("code", "x")],
            "invalid_request",
        ),
        (vec![("grant_type", "refresh_token")], "invalid_request"),
        (
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", "garbage"),
            ],
            "invalid_grant",
        ),
    ];
    for (form, expected) in cases {
        let (error, _) = f.token(&form, basic).await.expect_error();
        assert_eq!(error, expected, "{form:?}");
    }
    // A Basic header that is not base64 of id:secret.
    let response = f
        .http
        .post(f.url("/login/oauth/access_token"))
        .header("authorization", "Basic %%%")
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    // Broken JSON.
    let response = f
        .http
        .post(f.url("/login/oauth/access_token"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
}

#[tokio::test]
async fn the_token_endpoint_accepts_json_bodies() {
    let f = start().await;
    let first = f.login("alice").await;
    let response = f
        .http
        .post(f.url("/login/oauth/access_token"))
        .json(&serde_json::json!({
            "grant_type": "refresh_token",
            "refresh_token": first.refresh_token(),
            "client_id": CONF_ID,
            "client_secret": CONF_SECRET,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert!(
        body["access_token"]
            .as_str()
            .unwrap()
            .starts_with("fgj_at_")
    );
}

#[tokio::test]
async fn api_user_accepts_bearer_and_token_schemes() {
    let f = start().await;
    let access = f.login("alice").await.access_token();
    for scheme in ["Bearer", "token"] {
        let response = f
            .http
            .get(f.url("/api/v1/user"))
            .header("authorization", format!("{scheme} {access}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{scheme}");
        let user: Value = response.json().await.unwrap();
        assert_eq!(user["id"], 42);
        assert_eq!(user["login"], "alice");
        assert_eq!(user["username"], "alice");
        assert_eq!(user["full_name"], "Alice");
        assert_eq!(user["email"], "alice@example.com");
    }
    for authorization in [
        None,
        Some("Bearer nope".to_owned()),
        Some(format!("Basic {access}")),
    ] {
        let mut request = f.http.get(f.url("/api/v1/user"));
        if let Some(value) = &authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{authorization:?}"
        );
        let body: Value = response.json().await.unwrap();
        assert!(body["message"].is_string());
    }
    let response = f.http.get(f.url("/api/v1/version")).send().await.unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["version"], "11.0.0+double");
}

#[tokio::test]
async fn server_errors_are_served_then_the_endpoint_recovers() {
    let f = start().await;
    let first = f.login("alice").await;
    f.double
        .inject_fault(Endpoint::Token, Fault::ServerError, 2);
    assert_eq!(
        f.refresh(&first.refresh_token()).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        f.refresh(&first.refresh_token()).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    // The faults touched nothing: the same refresh token still works.
    assert_eq!(
        f.refresh(&first.refresh_token()).await.status,
        StatusCode::OK
    );
    assert_eq!(f.double.calls(Endpoint::Token), 4);
    assert_eq!(f.double.token_stats().refreshes, 1);

    f.double
        .inject_fault(Endpoint::Userinfo, Fault::ServerError, 1);
    let access = f.double.valid_access_tokens("alice").pop().unwrap();
    assert_eq!(
        f.userinfo(&access).await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(f.userinfo(&access).await.status(), StatusCode::OK);
    assert_eq!(f.double.calls(Endpoint::Userinfo), 2);
}

#[tokio::test]
async fn injected_oauth_errors_look_like_forgejos() {
    let f = start().await;
    let first = f.login("alice").await;
    f.double
        .inject_fault(Endpoint::Token, Fault::InvalidGrant, 1);
    f.double
        .inject_fault(Endpoint::Token, Fault::UnauthorizedClient, 1);
    let (error, _) = f.refresh(&first.refresh_token()).await.expect_error();
    assert_eq!(error, "invalid_grant");
    let (error, _) = f.refresh(&first.refresh_token()).await.expect_error();
    assert_eq!(error, "unauthorized_client");
    assert_eq!(
        f.refresh(&first.refresh_token()).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_delay_fault_waits_then_serves() {
    let f = start().await;
    let delay = Duration::from_millis(300);
    f.double
        .inject_fault(Endpoint::Discovery, Fault::Delay(delay), 1);
    let url = f.url("/.well-known/openid-configuration");
    let started = tokio::time::Instant::now();
    let response = f.http.get(&url).send().await.unwrap();
    assert!(started.elapsed() >= delay);
    assert_eq!(response.status(), StatusCode::OK);
    // A client with a shorter timeout sees the delay as a timeout.
    f.double
        .inject_fault(Endpoint::Discovery, Fault::Delay(Duration::from_secs(5)), 1);
    let result = f
        .http
        .get(&url)
        .timeout(Duration::from_millis(100))
        .send()
        .await;
    assert!(result.unwrap_err().is_timeout());
}

#[tokio::test]
async fn a_lost_refresh_response_still_rotates_the_tokens() {
    let f = start().await;
    let first = f.login("alice").await;
    f.double
        .inject_fault(Endpoint::Token, Fault::ServerErrorAfterProcessing, 1);
    assert_eq!(
        f.refresh(&first.refresh_token()).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let (error, description) = f.refresh(&first.refresh_token()).await.expect_error();
    assert_eq!(
        (error.as_str(), description.as_str()),
        ("unauthorized_client", "token was already used")
    );
    assert_eq!(f.double.valid_refresh_tokens("alice").len(), 1);
}

#[tokio::test]
async fn introspection_needs_a_confidential_client_and_reports_live_tokens() {
    let f = start().await;
    let reply = f.login("alice").await;
    let introspect = |token: String, basic: Option<(&'static str, &'static str)>| {
        let f = &f;
        async move {
            let mut request = f
                .http
                .post(f.url("/login/oauth/introspect"))
                .form(&[("token", token)]);
            if let Some((id, secret)) = basic {
                request = request.basic_auth(id, Some(secret));
            }
            request.send().await.unwrap()
        }
    };
    let response = introspect(reply.access_token(), None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = introspect(reply.access_token(), Some((PUB_ID, ""))).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let response = introspect(reply.access_token(), Some((CONF_ID, CONF_SECRET))).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["active"], true);
    assert_eq!(body["sub"], "42");
    assert_eq!(body["username"], "alice");
    assert_eq!(body["scope"], "openid profile");
    assert_eq!(body["iss"], f.double.issuer());

    let response = introspect("garbage".to_owned(), Some((CONF_ID, CONF_SECRET))).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"active": false}));
}

#[tokio::test]
async fn apps_and_users_can_be_added_while_running() {
    let f = start().await;
    f.double
        .add_user(forgejo_double::User::new(7, "carol", "pw"));
    f.double.add_app(App::confidential(
        "late",
        "late-secret",
        &["https://late.example/cb"],
    ));
    f.double.set_auto_login(Some("carol"));
    let response = f
        .authorize(&[
            ("client_id", "late"),
            ("redirect_uri", "https://late.example/cb"),
            ("response_type", "code"),
        ])
        .await;
    let code = location_param(&response, "code").expect("code");
    let reply = f
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "https://late.example/cb"),
            ],
            Some(("late", "late-secret")),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let claims: Value = f
        .userinfo(&reply.access_token())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(claims["preferred_username"], "carol");
}
