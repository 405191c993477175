//! The authorization server end to end: the real broker binary, the Forgejo
//! test double, and a scripted browser and client.

mod support;

use forgejo_double::{Endpoint, Fault};
use secrecy::ExposeSecret;
use support::oauth::{Attempt, CLAUDE_CALLBACK, Landing, Stack};

#[tokio::test]
async fn metadata_documents() {
    let stack = Stack::start(&[]).await;
    let issuer = stack.issuer.clone();
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let body: serde_json::Value = stack
            .http
            .get(stack.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "resource": format!("{issuer}/mcp"),
                "authorization_servers": [issuer],
                "bearer_methods_supported": ["header"],
                "scopes_supported": ["mcp"],
                "resource_name": "Forgejo (via fjmcp-broker)",
            }),
            "{path}"
        );
    }
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/oauth-authorization-server/mcp",
    ] {
        let response = stack.http.get(stack.url(path)).send().await.unwrap();
        assert_eq!(response.headers()["content-type"], "application/json");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "issuer": issuer,
                "authorization_endpoint": format!("{issuer}/oauth/authorize"),
                "token_endpoint": format!("{issuer}/oauth/token"),
                "registration_endpoint": format!("{issuer}/oauth/register"),
                "revocation_endpoint": format!("{issuer}/oauth/revoke"),
                "scopes_supported": ["mcp"],
                "response_types_supported": ["code"],
                "response_modes_supported": ["query"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
                "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
                "client_id_metadata_document_supported": true,
                "authorization_response_iss_parameter_supported": true,
            }),
            "{path}"
        );
    }
    // No partial OpenID configuration: a client must not mistake it for one.
    let oidc = stack
        .http
        .get(stack.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(oidc.status(), 404);
}

#[tokio::test]
async fn two_users_and_two_clients_of_one_user_get_tokens_and_keep_forgejo_valid() {
    let stack = Stack::start(&[]).await;
    let claude = stack.register("Claude", &[CLAUDE_CALLBACK]).await;
    let inspector = stack.register("Inspector", &[CLAUDE_CALLBACK]).await;

    let alice_claude = stack.tokens_for("alice", &claude).await;
    let bob_claude = stack.tokens_for("bob", &claude).await;
    let alice_inspector = stack.tokens_for("alice", &inspector).await;
    for tokens in [&alice_claude, &bob_claude, &alice_inspector] {
        assert_eq!(tokens["token_type"], "Bearer");
        assert_eq!(tokens["expires_in"], 3600);
        assert_eq!(tokens["scope"], "mcp");
        assert!(
            tokens["access_token"]
                .as_str()
                .unwrap()
                .starts_with("fjat_")
        );
        assert!(
            tokens["refresh_token"]
                .as_str()
                .unwrap()
                .starts_with("fjrt_")
        );
    }

    // The broker holds one credential per Forgejo user, and it is the live one:
    // alice's second login replaced her first (Forgejo invalidated its refresh token).
    let store = stack.open_store().await;
    for (id, login) in [("1", "alice"), ("2", "bob")] {
        let (user, credential) = store.upstream_credential(id).await.unwrap().unwrap();
        assert_eq!(user.identity.login, login);
        assert!(
            stack
                .double
                .valid_access_tokens(login)
                .contains(&credential.access_token.expose_secret().to_string())
        );
        assert!(
            stack.double.valid_refresh_tokens(login).contains(
                &credential
                    .refresh_token
                    .unwrap()
                    .expose_secret()
                    .to_string()
            )
        );
    }
    let grants = store.live_grants_of_user("1").await.unwrap();
    assert_eq!(grants.len(), 2);
    assert_eq!(store.live_grants_of_user("2").await.unwrap().len(), 1);
    // Each access token stands for its own user and client.
    let check = |token: &serde_json::Value| {
        fjmcp_broker::crypto::hash_secret(token["access_token"].as_str().unwrap())
    };
    let alice = store
        .authenticate_access_token(&check(&alice_claude))
        .await
        .unwrap()
        .unwrap();
    let bob = store
        .authenticate_access_token(&check(&bob_claude))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (alice.user_id.as_str(), alice.client_id.as_str()),
        ("1", claude.as_str())
    );
    assert_eq!(
        (bob.user_id.as_str(), bob.client_id.as_str()),
        ("2", claude.as_str())
    );

    // No token, broker-issued or Forgejo's, ever reaches the log.
    let logs = stack.broker.log_text();
    assert!(
        logs.contains("user.login") || logs.contains("/oauth/callback"),
        "the flow was logged"
    );
    let mut secrets: Vec<String> = [&alice_claude, &bob_claude, &alice_inspector]
        .iter()
        .flat_map(|t| {
            [
                t["access_token"].as_str().unwrap().to_string(),
                t["refresh_token"].as_str().unwrap().to_string(),
            ]
        })
        .collect();
    for login in ["alice", "bob"] {
        secrets.extend(stack.double.valid_access_tokens(login));
        secrets.extend(stack.double.valid_refresh_tokens(login));
    }
    secrets.push(support::oauth::BROKER_CLIENT_SECRET.to_string());
    for secret in secrets {
        assert!(!logs.contains(&secret), "a secret reached the log");
    }
}

#[tokio::test]
async fn consent_is_asked_once_per_user_and_client_and_can_be_denied() {
    let stack = Stack::start(&[]).await;
    let client = stack.register("Some Client <b>", &[CLAUDE_CALLBACK]).await;

    let attempt = Attempt::new(&client, CLAUDE_CALLBACK);
    let Landing::Consent {
        ticket,
        cookie,
        html,
    } = stack
        .browse_as("alice", &stack.authorize_url(&attempt, &[]))
        .await
    else {
        panic!("first login must show consent")
    };
    assert!(
        html.contains("Some Client &lt;b&gt;"),
        "the client name is shown, escaped"
    );
    assert!(html.contains("claude.ai"), "the redirect host is shown");
    assert!(html.contains("alice"));
    // Without the browser's cookie the form is refused, and stays answerable.
    match stack
        .decide(&ticket, "fjmcp-consent=forged", "approve")
        .await
    {
        Landing::Page(400, _) => {}
        other => panic!("{other:?}"),
    }
    let Landing::Client(denied) = stack.decide(&ticket, &cookie, "deny").await else {
        panic!("deny redirects to the client")
    };
    assert_eq!(
        denied.get("error").map(String::as_str),
        Some("access_denied")
    );
    assert_eq!(denied.get("state"), Some(&attempt.state));
    assert_eq!(denied.get("iss"), Some(&stack.issuer));
    assert!(!denied.contains_key("code"));
    // The answered form cannot be replayed.
    assert!(matches!(
        stack.decide(&ticket, &cookie, "approve").await,
        Landing::Page(400, _)
    ));

    // Denial is not remembered: the next attempt asks again; approval is remembered.
    let code = stack
        .code_for("alice", &Attempt::new(&client, CLAUDE_CALLBACK))
        .await;
    assert!(code.starts_with("fjac_"));
    let again = Attempt::new(&client, CLAUDE_CALLBACK);
    let Landing::Client(query) = stack
        .browse_as("alice", &stack.authorize_url(&again, &[]))
        .await
    else {
        panic!("an approved pair skips the consent page")
    };
    assert!(query.contains_key("code"));
    // Another user of the same client is asked.
    let bob = Attempt::new(&client, CLAUDE_CALLBACK);
    assert!(matches!(
        stack
            .browse_as("bob", &stack.authorize_url(&bob, &[]))
            .await,
        Landing::Consent { .. }
    ));
}

#[tokio::test]
async fn pkce_is_required_as_s256_and_checked() {
    let stack = Stack::start(&[]).await;
    let client = stack.register("c", &[CLAUDE_CALLBACK]).await;
    let attempt = Attempt::new(&client, CLAUDE_CALLBACK);
    let no_pkce = [("code_challenge", None), ("code_challenge_method", None)];
    // Nobody approved the client yet: its redirect URI gets no errors (no open redirector).
    assert!(matches!(
        stack
            .browse_as("alice", &stack.authorize_url(&attempt, &no_pkce))
            .await,
        Landing::Page(400, _)
    ));
    let code = stack.code_for("alice", &attempt).await;
    for overrides in [
        no_pkce.to_vec(),
        vec![("code_challenge_method", Some("plain"))],
        vec![("code_challenge_method", None)],
        vec![("code_challenge", Some("short"))],
    ] {
        let Landing::Client(query) = stack
            .browse_as("alice", &stack.authorize_url(&attempt, &overrides))
            .await
        else {
            panic!("PKCE errors go back to an approved client")
        };
        assert_eq!(
            query.get("error").map(String::as_str),
            Some("invalid_request"),
            "{overrides:?}"
        );
        assert_eq!(query.get("state"), Some(&attempt.state));
        assert_eq!(query.get("iss"), Some(&stack.issuer));
    }

    let wrong = Attempt {
        verifier: fjmcp_broker::crypto::mint_secret(""),
        ..Attempt::new(&client, CLAUDE_CALLBACK)
    };
    let (status, body) = stack.exchange(&wrong, &code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // A wrong verifier does not spend the code: its holder cannot burn it.
    let (status, _) = stack.exchange(&attempt, &code).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn redirect_uris_must_be_registered_exactly_and_bad_ones_never_get_a_redirect() {
    let stack = Stack::start(&[]).await;
    let registration = |uris: serde_json::Value| {
        stack
            .http
            .post(stack.url("/oauth/register"))
            .json(
                &serde_json::json!({ "redirect_uris": uris, "token_endpoint_auth_method": "none" }),
            )
            .send()
    };
    for bad in [
        "javascript:alert(1)",
        "data:text/html,x",
        "file:///etc/passwd",
        "http://evil.example.com/cb",
        "http://localhost.evil.com/cb",
        "https://claude.ai/cb#fragment",
    ] {
        let response = registration(serde_json::json!([bad])).await.unwrap();
        assert_eq!(response.status(), 400, "{bad}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_redirect_uri", "{bad}");
    }
    let response = registration(serde_json::json!("not-a-list")).await.unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(matches!(
        body["error"].as_str(),
        Some("invalid_client_metadata" | "invalid_redirect_uri")
    ));

    let client = stack
        .register("c", &[CLAUDE_CALLBACK, "http://127.0.0.1/callback"])
        .await;
    for look_alike in [
        "https://claude.ai/api/mcp/auth_callback/",
        "https://claude.ai/api/mcp/auth_callback?x=1",
        "https://claude.ai.evil.com/api/mcp/auth_callback",
        "http://claude.ai/api/mcp/auth_callback",
        "http://localhost/callback",
    ] {
        let attempt = Attempt::new(&client, look_alike);
        match stack
            .browse_as("alice", &stack.authorize_url(&attempt, &[]))
            .await
        {
            Landing::Page(400, html) => assert!(html.contains("redirect URI"), "{look_alike}"),
            other => panic!("{look_alike}: {other:?}"),
        }
    }
    // A loopback redirect matches on any port (RFC 8252 §7.3).
    let loopback = Attempt::new(&client, "http://127.0.0.1:53123/callback");
    let code = stack.code_for("alice", &loopback).await;
    let (status, _) = stack.exchange(&loopback, &code).await;
    assert_eq!(status, 200);
    // Unknown clients get a page, not a redirect.
    let unknown = Attempt::new("fjc_unknown", CLAUDE_CALLBACK);
    assert!(matches!(
        stack
            .browse_as("alice", &stack.authorize_url(&unknown, &[]))
            .await,
        Landing::Page(400, _)
    ));
}

#[tokio::test]
async fn a_code_works_once_and_its_reuse_revokes_what_it_issued() {
    let stack = Stack::start(&[]).await;
    let client = stack.register("c", &[CLAUDE_CALLBACK]).await;
    let attempt = Attempt::new(&client, CLAUDE_CALLBACK);
    let code = stack.code_for("alice", &attempt).await;
    let (status, tokens) = stack.exchange(&attempt, &code).await;
    assert_eq!(status, 200);
    let (status, body) = stack.exchange(&attempt, &code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let store = stack.open_store().await;
    let hash = fjmcp_broker::crypto::hash_secret(tokens["access_token"].as_str().unwrap());
    assert!(
        store
            .authenticate_access_token(&hash)
            .await
            .unwrap()
            .is_none(),
        "the first tokens are revoked"
    );
    let (status, body) = stack
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", &client),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn refresh_rotates_tolerates_a_concurrent_reuse_and_revokes_on_late_reuse() {
    let stack = Stack::start(&[]).await;
    let client = stack.register("c", &[CLAUDE_CALLBACK]).await;
    let other = stack.register("other", &[CLAUDE_CALLBACK]).await;
    let tokens = stack.tokens_for("alice", &client).await;
    let first = tokens["refresh_token"].as_str().unwrap();
    let stack = &stack;
    let refresh = |token: String, client: String| async move {
        stack
            .token(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &token),
                ("client_id", &client),
            ])
            .await
    };

    // Another client cannot spend it.
    let (status, body) = refresh(first.to_string(), other.clone()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let (status, second) = refresh(first.to_string(), client.clone()).await;
    assert_eq!(status, 200, "{second}");
    assert_ne!(second["refresh_token"], tokens["refresh_token"]);
    // Inside the grace window the old one still works (a concurrent refresh).
    let (status, concurrent) = refresh(first.to_string(), client.clone()).await;
    assert_eq!(status, 200, "{concurrent}");
    // Once a successor has been used, the old token is a stolen copy: the grant ends.
    let (status, third) = refresh(
        second["refresh_token"].as_str().unwrap().to_string(),
        client.clone(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = refresh(first.to_string(), client.clone()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, _) = refresh(
        third["refresh_token"].as_str().unwrap().to_string(),
        client.clone(),
    )
    .await;
    assert_eq!(status, 400, "the whole grant was revoked");
}

#[tokio::test]
async fn forged_and_replayed_callback_states_are_refused() {
    let stack = Stack::start(&[]).await;
    let forged = stack
        .http
        .get(stack.url("/oauth/callback?code=x&state=forged-state"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    assert!(forged.headers().get("location").is_none());

    let client = stack.register("c", &[CLAUDE_CALLBACK]).await;
    let attempt = Attempt::new(&client, CLAUDE_CALLBACK);
    stack.double.set_auto_login(Some("alice"));
    let to_forgejo = stack
        .http
        .get(stack.authorize_url(&attempt, &[]))
        .send()
        .await
        .unwrap();
    let forgejo_url = to_forgejo.headers()["location"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(forgejo_url.starts_with(&stack.double.url()));
    let upstream = support::oauth::query_of(&forgejo_url);
    assert_eq!(upstream["client_id"], support::oauth::BROKER_CLIENT_ID);
    assert_eq!(upstream["code_challenge_method"], "S256");
    assert_ne!(
        upstream["state"], attempt.state,
        "the broker uses its own state upstream"
    );
    let back = stack.http.get(&forgejo_url).send().await.unwrap();
    let callback = back.headers()["location"].to_str().unwrap().to_string();
    let first = stack.http.get(&callback).send().await.unwrap();
    assert_eq!(first.status(), 200, "consent page");
    let replay = stack.http.get(&callback).send().await.unwrap();
    assert_eq!(replay.status(), 400);
    assert!(replay.headers().get("location").is_none());
}

#[tokio::test]
async fn forgejo_failures_and_cancellation_reach_the_client_as_errors_never_codes() {
    let stack = Stack::start(&[]).await;
    let client = stack.register("c", &[CLAUDE_CALLBACK]).await;
    for (fault, expected) in [
        (Fault::ServerError, "temporarily_unavailable"),
        (Fault::InvalidGrant, "access_denied"),
    ] {
        stack.double.inject_fault(Endpoint::Token, fault, 1);
        let attempt = Attempt::new(&client, CLAUDE_CALLBACK);
        let Landing::Client(query) = stack
            .browse_as("alice", &stack.authorize_url(&attempt, &[]))
            .await
        else {
            panic!("errors are redirected")
        };
        assert_eq!(query.get("error").map(String::as_str), Some(expected));
        assert_eq!(query.get("state"), Some(&attempt.state));
        assert_eq!(query.get("iss"), Some(&stack.issuer));
        assert!(!query.contains_key("code"));
    }
    // The user cancels at Forgejo's login form.
    let attempt = Attempt::new(&client, CLAUDE_CALLBACK);
    stack.double.set_auto_login(None);
    let to_forgejo = stack
        .http
        .get(stack.authorize_url(&attempt, &[]))
        .send()
        .await
        .unwrap();
    let forgejo_url = to_forgejo.headers()["location"].to_str().unwrap();
    let upstream = support::oauth::query_of(forgejo_url);
    let cancel = stack
        .http
        .post(format!("{}/user/login", stack.double.url()))
        .form(&[
            ("action", "cancel"),
            ("client_id", upstream["client_id"].as_str()),
            ("redirect_uri", upstream["redirect_uri"].as_str()),
            ("state", upstream["state"].as_str()),
            ("response_type", "code"),
            ("code_challenge", upstream["code_challenge"].as_str()),
            ("code_challenge_method", "S256"),
            ("scope", upstream["scope"].as_str()),
        ])
        .send()
        .await
        .unwrap();
    let callback = cancel.headers()["location"].to_str().unwrap().to_string();
    let back = stack.http.get(&callback).send().await.unwrap();
    let query = support::oauth::query_of(back.headers()["location"].to_str().unwrap());
    assert_eq!(
        query.get("error").map(String::as_str),
        Some("access_denied")
    );
    assert_eq!(query.get("state"), Some(&attempt.state));
}

#[tokio::test]
async fn revocation_ends_the_grant_and_the_resource_must_be_the_mcp_endpoint() {
    let stack = Stack::start(&[]).await;
    let client = stack.register("c", &[CLAUDE_CALLBACK]).await;
    let tokens = stack.tokens_for("alice", &client).await;
    let attempt = Attempt::new(&client, CLAUDE_CALLBACK);
    let Landing::Client(query) = stack
        .browse_as(
            "alice",
            &stack.authorize_url(
                &attempt,
                &[("resource", Some("https://forgejo.example.com/"))],
            ),
        )
        .await
    else {
        panic!("resource errors go back to the (approved) client")
    };
    assert_eq!(
        query.get("error").map(String::as_str),
        Some("invalid_target")
    );

    let store = stack.open_store().await;
    let access = fjmcp_broker::crypto::hash_secret(tokens["access_token"].as_str().unwrap());
    assert!(
        store
            .authenticate_access_token(&access)
            .await
            .unwrap()
            .is_some()
    );
    let revoke = stack
        .http
        .post(stack.url("/oauth/revoke"))
        .form(&[
            ("token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", client.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 200);
    assert!(
        store
            .authenticate_access_token(&access)
            .await
            .unwrap()
            .is_none()
    );
    // Unknown tokens are fine too (RFC 7009 §2.2).
    let again = stack
        .http
        .post(stack.url("/oauth/revoke"))
        .form(&[("token", "nonsense"), ("client_id", client.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
}

#[tokio::test]
async fn token_endpoint_errors_follow_rfc_6749() {
    let stack = Stack::start(&[]).await;
    let client = stack.register("c", &[CLAUDE_CALLBACK]).await;
    let (status, body) = stack
        .token(&[("grant_type", "password"), ("client_id", &client)])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let (status, body) = stack
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", "fjc_nobody"),
            ("code", "x"),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, body) = stack
        .token(&[("grant_type", "authorization_code"), ("client_id", &client)])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, body) = stack
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client),
            ("code", "fjac_forged"),
            ("code_verifier", &"a".repeat(43)),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let json = stack
        .http
        .post(stack.url("/oauth/token"))
        .json(&serde_json::json!({"grant_type": "refresh_token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 400);
}

/// Serves one client ID metadata document on 127.0.0.1 and returns its URL.
async fn serve_metadata_document(redirect_uris: &[&str]) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/oauth/client-metadata.json",
        listener.local_addr().unwrap()
    );
    let document = serde_json::json!({
        "client_id": url,
        "client_name": "Claude Code (test)",
        "redirect_uris": redirect_uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    let app = axum::Router::new().route(
        "/oauth/client-metadata.json",
        axum::routing::get(move || {
            let document = document.clone();
            async move { axum::Json(document) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test]
async fn a_client_id_metadata_document_client_signs_in_with_a_port_less_loopback_redirect() {
    let stack = Stack::start(&[("FJMCP_CLIENT_METADATA_ALLOW_LOOPBACK_HTTP", "true")]).await;
    let client_id =
        serve_metadata_document(&["http://127.0.0.1/callback", "http://localhost/callback"]).await;
    // Claude Code registers port-less loopback URIs and uses a port.
    let attempt = Attempt::new(&client_id, "http://127.0.0.1:45678/callback");
    let Landing::Consent {
        ticket,
        cookie,
        html,
    } = stack
        .browse_as("alice", &stack.authorize_url(&attempt, &[]))
        .await
    else {
        panic!("consent first")
    };
    assert!(html.contains("Claude Code (test)"));
    assert!(
        html.contains("this computer"),
        "loopback-only clients get a warning"
    );
    let Landing::Client(query) = stack.decide(&ticket, &cookie, "approve").await else {
        panic!("approval redirects")
    };
    let (status, tokens) = stack.exchange(&attempt, &query["code"]).await;
    assert_eq!(status, 200, "{tokens}");

    // A redirect URI not in the document is refused with a page.
    let stray = Attempt::new(&client_id, "http://127.0.0.1:45678/other");
    assert!(matches!(
        stack
            .browse_as("alice", &stack.authorize_url(&stray, &[]))
            .await,
        Landing::Page(400, _)
    ));
}

#[tokio::test]
async fn metadata_documents_on_loopback_are_refused_by_default() {
    let stack = Stack::start(&[]).await;
    let client_id = serve_metadata_document(&["http://127.0.0.1/callback"]).await;
    let attempt = Attempt::new(&client_id, "http://127.0.0.1:45678/callback");
    match stack
        .browse_as("alice", &stack.authorize_url(&attempt, &[]))
        .await
    {
        Landing::Page(400, _) => {}
        other => panic!("{other:?}"),
    }
}
