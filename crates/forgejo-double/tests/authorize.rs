//! Discovery and the browser side of the flow: authorization request validation, login form,
//! consent page, cancel and deny, sessions.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::*;

/// Pulls `name="<field>" value="..."` out of a page, as a browser would submit it.
fn hidden_value(html: &str, field: &str) -> Option<String> {
    let marker = format!("name=\"{field}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].replace("&amp;", "&"))
}

fn conf_request(state: &str) -> Vec<(&'static str, String)> {
    vec![
        ("client_id", CONF_ID.to_owned()),
        ("redirect_uri", CONF_REDIRECT.to_owned()),
        ("response_type", "code".to_owned()),
        ("state", state.to_owned()),
        ("scope", "openid".to_owned()),
        ("code_challenge", s256(VERIFIER)),
        ("code_challenge_method", "S256".to_owned()),
    ]
}

fn public_request(redirect: &str, state: &str) -> Vec<(&'static str, String)> {
    vec![
        ("client_id", PUB_ID.to_owned()),
        ("redirect_uri", redirect.to_owned()),
        ("response_type", "code".to_owned()),
        ("state", state.to_owned()),
        ("scope", "read:repository".to_owned()),
        ("code_challenge", s256(VERIFIER)),
        ("code_challenge_method", "S256".to_owned()),
    ]
}

fn as_pairs<'a>(params: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    params.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Posts the login form: the request's fields plus credentials and the pressed button.
async fn post_login(
    f: &Fixture,
    request: &[(&'static str, String)],
    user: &str,
    password: &str,
    action: &str,
) -> reqwest::Response {
    let mut form = as_pairs(request);
    form.extend([
        ("user_name", user),
        ("password", password),
        ("action", action),
    ]);
    f.http
        .post(f.url("/user/login"))
        .form(&form)
        .send()
        .await
        .expect("login post")
}

#[tokio::test]
async fn discovery_describes_forgejos_endpoints() {
    let f = start().await;
    let response = f
        .http
        .get(f.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let doc: Value = response.json().await.unwrap();
    let base = f.double.url();
    assert_eq!(doc["issuer"], format!("{base}/"));
    assert_eq!(doc["issuer"], f.double.issuer());
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{base}/login/oauth/authorize")
    );
    assert_eq!(
        doc["token_endpoint"],
        format!("{base}/login/oauth/access_token")
    );
    assert_eq!(
        doc["userinfo_endpoint"],
        format!("{base}/login/oauth/userinfo")
    );
    assert_eq!(doc["jwks_uri"], format!("{base}/login/oauth/keys"));
    assert_eq!(
        doc["introspection_endpoint"],
        format!("{base}/login/oauth/introspect")
    );
    assert_eq!(doc["response_types_supported"], json!(["code", "id_token"]));
    assert_eq!(
        doc["scopes_supported"],
        json!(["openid", "profile", "email", "groups"])
    );
    assert_eq!(
        doc["code_challenge_methods_supported"],
        json!(["plain", "S256"])
    );
    assert_eq!(
        doc["grant_types_supported"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(doc["subject_types_supported"], json!(["public"]));
    assert!(doc.get("registration_endpoint").is_none());
    assert!(doc.get("revocation_endpoint").is_none());
    assert_eq!(f.double.calls(forgejo_double::Endpoint::Discovery), 1);

    let keys: Value = f
        .http
        .get(f.url("/login/oauth/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(keys, json!({"keys": []}));
}

#[tokio::test]
async fn the_login_form_signs_in_and_redirects_with_a_code() {
    let f = start().await;
    let request = conf_request("state-123");
    let response = f.authorize(&as_pairs(&request)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = response.text().await.unwrap();
    assert!(html.contains("action=\"/user/login\""), "{html}");
    assert!(html.contains("name=\"user_name\""));
    assert!(html.contains("name=\"password\""));
    assert!(!html.contains("<script"));
    assert_eq!(hidden_value(&html, "state").as_deref(), Some("state-123"));
    assert_eq!(
        hidden_value(&html, "redirect_uri").as_deref(),
        Some(CONF_REDIRECT)
    );

    // Wrong password: the form again, with an error, and no redirect.
    let response = post_login(&f, &request, "alice", "wrong", "login").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("location").is_none());
    let html = response.text().await.unwrap();
    assert!(
        html.contains("Username or password is incorrect."),
        "{html}"
    );
    assert!(html.contains("name=\"user_name\" value=\"alice\""));

    // Right password (by e-mail address, which Forgejo accepts too).
    let response = post_login(&f, &request, "alice@example.com", "alice-password", "login").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(CONF_REDIRECT), "{location}");
    assert_eq!(
        location_param(&response, "state").as_deref(),
        Some("state-123")
    );
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("i_like_gitea="), "{cookie}");
    assert!(cookie.contains("HttpOnly"));
    let code = location_param(&response, "code").unwrap();
    let reply = f.exchange(&code).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    // The session lets the same browser through without the form next time.
    let session = cookie.split(';').next().unwrap().to_owned();
    let response = f
        .http
        .get(f.authorize_url(&as_pairs(&conf_request("again"))))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location_param(&response, "state").as_deref(), Some("again"));
    assert!(location_param(&response, "code").is_some());
}

#[tokio::test]
async fn cancelling_the_login_returns_access_denied_with_state() {
    let f = start().await;
    let request = conf_request("keep-me");
    let response = post_login(&f, &request, "", "", "cancel").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(
        response.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with(CONF_REDIRECT)
    );
    assert_eq!(
        location_param(&response, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(
        location_param(&response, "state").as_deref(),
        Some("keep-me")
    );
    assert!(location_param(&response, "code").is_none());
}

#[tokio::test]
async fn public_clients_see_a_consent_page_they_can_deny_or_approve() {
    let f = start().await;
    let redirect = "http://127.0.0.1:40000/callback";

    let request = public_request(redirect, "deny-state");
    let response = post_login(&f, &request, "bob", "bob-password", "login").await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(html.contains("action=\"/login/oauth/grant\""), "{html}");
    assert!(html.contains(PUB_ID));
    let consent_id = hidden_value(&html, "consent_id").unwrap();
    let response = f
        .http
        .post(f.url("/login/oauth/grant"))
        .form(&[("consent_id", consent_id.as_str()), ("granted", "false")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location_param(&response, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(
        location_param(&response, "state").as_deref(),
        Some("deny-state")
    );

    let request = public_request(redirect, "approve-state");
    let response = post_login(&f, &request, "bob", "bob-password", "login").await;
    let consent_id = hidden_value(&response.text().await.unwrap(), "consent_id").unwrap();
    let approve = [("consent_id", consent_id.as_str()), ("granted", "true")];
    let response = f
        .http
        .post(f.url("/login/oauth/grant"))
        .form(&approve)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location_param(&response, "state").as_deref(),
        Some("approve-state")
    );
    let code = location_param(&response, "code").unwrap();
    let reply = f
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect),
                ("client_id", PUB_ID),
                ("code_verifier", VERIFIER),
            ],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    // A consent answers once.
    let response = f
        .http
        .post(f.url("/login/oauth/grant"))
        .form(&approve)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("location").is_none());
}

#[tokio::test]
async fn a_public_client_changing_scope_gets_server_error_like_forgejo() {
    let f = start().await;
    f.double.set_auto_login(Some("alice"));
    let redirect = "http://127.0.0.1:40001/callback";
    let response = f.authorize(&as_pairs(&public_request(redirect, "a"))).await;
    assert!(location_param(&response, "code").is_some());

    let mut other_scope = public_request(redirect, "b");
    other_scope[4].1 = "write:issue".to_owned();
    let response = f.authorize(&as_pairs(&other_scope)).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location_param(&response, "error").as_deref(),
        Some("server_error")
    );
    assert_eq!(
        location_param(&response, "error_description").as_deref(),
        Some("a grant exists with different scope")
    );
    assert_eq!(location_param(&response, "state").as_deref(), Some("b"));
}

#[tokio::test]
async fn untrusted_clients_and_redirects_get_an_error_page_not_a_redirect() {
    let f = start().await;
    let cases = [
        ("nobody", CONF_REDIRECT),
        (CONF_ID, "https://evil.example/callback"),
        (CONF_ID, "https://broker.example/oauth/callback/extra"),
        (CONF_ID, ""),
        // Port leniency is for loopback IPs only, as in Forgejo.
        (PUB_ID, "http://localhost:40000/callback"),
    ];
    for (client_id, redirect) in cases {
        let response = f
            .authorize(&[
                ("client_id", client_id),
                ("redirect_uri", redirect),
                ("response_type", "code"),
                ("state", "s"),
                ("code_challenge", "c"),
                ("code_challenge_method", "plain"),
            ])
            .await;
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "{client_id} {redirect}"
        );
        assert!(response.headers().get("location").is_none());
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
    // A request with no parameters at all is the same.
    let response = f.authorize(&[]).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn bad_requests_from_known_clients_are_redirected_with_an_error() {
    let f = start().await;
    f.double.set_auto_login(Some("alice"));
    let redirect = "http://127.0.0.1:40002/callback";
    let base = |extra: &[(&'static str, &'static str)]| {
        let mut params = vec![
            ("client_id", PUB_ID),
            ("redirect_uri", redirect),
            ("state", "xyz"),
        ];
        params.extend_from_slice(extra);
        params
    };
    let cases = [
        (
            base(&[
                ("response_type", "token"),
                ("code_challenge", "c"),
                ("code_challenge_method", "plain"),
            ]),
            "unsupported_response_type",
            None,
        ),
        (
            base(&[("response_type", "code")]),
            "invalid_request",
            Some("PKCE is required for public clients"),
        ),
        (
            base(&[
                ("response_type", "code"),
                ("code_challenge", "c"),
                ("code_challenge_method", "S512"),
            ]),
            "invalid_request",
            Some("unsupported code challenge method"),
        ),
    ];
    for (params, error, description) in cases {
        let response = f.authorize(&params).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{params:?}");
        assert!(
            response.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with(redirect)
        );
        assert_eq!(location_param(&response, "error").as_deref(), Some(error));
        assert_eq!(location_param(&response, "state").as_deref(), Some("xyz"));
        if let Some(description) = description {
            assert_eq!(
                location_param(&response, "error_description").as_deref(),
                Some(description)
            );
        }
        assert!(location_param(&response, "code").is_none());
    }
}

#[tokio::test]
async fn auto_login_can_be_switched_off_again() {
    let f = start().await;
    f.double.set_auto_login(Some("alice"));
    let response = f.authorize(&as_pairs(&conf_request("s"))).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    f.double.set_auto_login(None);
    let response = f.authorize(&as_pairs(&conf_request("s"))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("name=\"password\""));
}
