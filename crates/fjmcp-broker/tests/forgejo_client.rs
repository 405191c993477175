//! The broker's Forgejo client against the Forgejo test double over real HTTP,
//! and against a deliberately broken server for what the double never sends.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use fjmcp_broker::crypto::pkce_pair;
use fjmcp_broker::forgejo::{
    EndpointOverrides, ForgejoClient, ForgejoEndpoints, ForgejoError, TokenResponse,
};
use fjmcp_broker::upstream::UserIdentity;
use forgejo_double::{App, Config, Endpoint, Fault, ForgejoDouble, User};
use http_body::Frame;
use secrecy::{ExposeSecret, SecretString};

const CLIENT_ID: &str = "broker";
const CLIENT_SECRET: &str = "broker-client-secret-0123456789";
const REDIRECT: &str = "http://127.0.0.1:8080/oauth/callback";
const SCOPES: &str = "openid profile";

/// Every secret value a test used, so that each error it sees can be checked
/// against all of them.
#[derive(Default, Clone)]
struct Secrets(Arc<Mutex<Vec<String>>>);

impl Secrets {
    fn new() -> Self {
        let secrets = Self::default();
        secrets.add(CLIENT_SECRET);
        // The Basic credentials reveal the secret to anyone who decodes them.
        secrets.add(&base64_basic());
        secrets
    }

    fn add(&self, secret: &str) {
        self.0.lock().unwrap().push(secret.to_owned());
    }

    fn add_tokens(&self, tokens: &TokenResponse) {
        self.add(tokens.access_token.expose_secret());
        if let Some(refresh) = &tokens.refresh_token {
            self.add(refresh.expose_secret());
        }
    }

    /// Asserts that neither the message nor the `Debug` form of `err` holds a secret.
    fn assert_absent_from(&self, err: &ForgejoError) {
        let shown = format!("{err} / {err:?}");
        for secret in self.0.lock().unwrap().iter() {
            assert!(
                !shown.contains(secret.as_str()),
                "error output leaks a secret: {shown}"
            );
        }
    }

    /// Unwraps the error of `result` after checking it for secrets.
    fn err<T: std::fmt::Debug>(&self, result: Result<T, ForgejoError>) -> ForgejoError {
        let err = result.expect_err("the call should have failed");
        self.assert_absent_from(&err);
        err
    }
}

async fn double() -> ForgejoDouble {
    ForgejoDouble::start(
        Config::default()
            .with_user(User::new(1, "alice", "pw"))
            .with_app(App::confidential(CLIENT_ID, CLIENT_SECRET, &[REDIRECT]))
            .with_auto_login("alice"),
    )
    .await
    .expect("the double starts")
}

fn client_for(base_url: &str) -> ForgejoClient {
    ForgejoClient::new(
        base_url,
        CLIENT_ID,
        SecretString::from(CLIENT_SECRET),
        SCOPES,
        EndpointOverrides::default(),
    )
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Plays the browser: follows the broker's authorization URL into the double
/// (auto-login, no consent for a confidential client) and returns the code
/// from the redirect back, after checking the state came back unchanged.
async fn authorize(client: &ForgejoClient, challenge: &str) -> String {
    let state = "state with spaces & symbols=?";
    let url = client
        .authorize_url(REDIRECT, state, challenge)
        .await
        .unwrap();
    let response = no_redirects().get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{url}");
    let location = response.headers()[header::LOCATION].to_str().unwrap();
    let location = url::Url::parse(location).unwrap();
    assert!(location.as_str().starts_with(REDIRECT), "{location}");
    let param = |name: &str| {
        location
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(param("error"), None, "{location}");
    assert_eq!(param("state").as_deref(), Some(state));
    param("code").expect("a code in the redirect")
}

/// A complete sign-in: authorize, then exchange the code.
async fn sign_in(client: &ForgejoClient, secrets: &Secrets) -> TokenResponse {
    let (verifier, challenge) = pkce_pair();
    let code = authorize(client, &challenge).await;
    secrets.add(&code);
    secrets.add(verifier.expose_secret());
    let tokens = client
        .exchange_code(&code, verifier.expose_secret(), REDIRECT)
        .await
        .expect("the code exchange succeeds");
    secrets.add_tokens(&tokens);
    tokens
}

#[tokio::test]
async fn discovery_is_fetched_once_and_cached() {
    let double = double().await;
    let client = client_for(&format!("{}/", double.url()));
    let expected = ForgejoEndpoints {
        authorize: format!("{}/login/oauth/authorize", double.url()),
        token: format!("{}/login/oauth/access_token", double.url()),
        userinfo: format!("{}/login/oauth/userinfo", double.url()),
    };
    assert_eq!(client.endpoints().await.unwrap(), expected);
    assert_eq!(client.clone().endpoints().await.unwrap(), expected);
    client.authorize_url(REDIRECT, "s", "c").await.unwrap();
    assert_eq!(double.calls(Endpoint::Discovery), 1);
}

#[tokio::test]
async fn a_failed_discovery_is_not_cached() {
    let secrets = Secrets::new();
    let double = double().await;
    let client = client_for(&double.url());
    double.inject_fault(Endpoint::Discovery, Fault::ServerError, 1);
    let err = secrets.err(client.endpoints().await);
    assert!(matches!(err, ForgejoError::Transient(_)), "{err:?}");
    client.endpoints().await.unwrap();
    client.endpoints().await.unwrap();
    assert_eq!(double.calls(Endpoint::Discovery), 2);
}

#[tokio::test]
async fn overrides_win_and_three_of_them_skip_discovery() {
    let double = double().await;
    let all = EndpointOverrides {
        authorize: Some("https://forgejo.example/login/oauth/authorize?x=1".into()),
        token: Some(format!("{}/login/oauth/access_token", double.url())),
        userinfo: Some(format!("{}/login/oauth/userinfo", double.url())),
    };
    let client = ForgejoClient::new(
        &double.url(),
        CLIENT_ID,
        SecretString::from(CLIENT_SECRET),
        SCOPES,
        all.clone(),
    );
    let endpoints = client.endpoints().await.unwrap();
    assert_eq!(endpoints.authorize, all.authorize.clone().unwrap());
    let url = client.authorize_url(REDIRECT, "s", "c").await.unwrap();
    assert!(
        url.starts_with("https://forgejo.example/login/oauth/authorize?x=1&response_type=code&"),
        "{url}"
    );
    assert_eq!(double.calls(Endpoint::Discovery), 0);

    let partial = EndpointOverrides {
        authorize: all.authorize.clone(),
        ..EndpointOverrides::default()
    };
    let client = ForgejoClient::new(
        &double.url(),
        CLIENT_ID,
        SecretString::from(CLIENT_SECRET),
        SCOPES,
        partial,
    );
    let endpoints = client.endpoints().await.unwrap();
    assert_eq!(endpoints.authorize, all.authorize.unwrap());
    assert_eq!(endpoints.token, all.token.unwrap());
    assert_eq!(double.calls(Endpoint::Discovery), 1);
}

#[tokio::test]
async fn the_code_flow_yields_tokens_and_the_identity() {
    let secrets = Secrets::new();
    let double = double().await;
    let client = client_for(&double.url());
    let tokens = sign_in(&client, &secrets).await;
    assert_eq!(tokens.expires_in, Some(3600));
    let refresh = tokens.refresh_token.clone().expect("a refresh token");
    assert_eq!(
        double.valid_refresh_tokens("alice"),
        vec![refresh.expose_secret().to_owned()]
    );
    let shown = format!("{tokens:?}");
    assert!(
        !shown.contains(tokens.access_token.expose_secret()),
        "{shown}"
    );
    assert!(!shown.contains(refresh.expose_secret()), "{shown}");
    let shown = format!("{client:?}");
    assert!(!shown.contains(CLIENT_SECRET), "{shown}");

    let identity = client.userinfo(&tokens.access_token).await.unwrap();
    assert_eq!(
        identity,
        UserIdentity {
            id: "1".into(),
            login: "alice".into()
        }
    );

    let credential = tokens.into_credential(1_000);
    assert_eq!(credential.access_expires_at, 4_600);
    assert_eq!(
        credential.refresh_token.unwrap().expose_secret(),
        refresh.expose_secret()
    );
}

#[tokio::test]
async fn codes_are_single_use_and_bound_to_the_verifier() {
    let secrets = Secrets::new();
    let double = double().await;
    let client = client_for(&double.url());

    let (verifier, challenge) = pkce_pair();
    let (wrong_verifier, _) = pkce_pair();
    let code = authorize(&client, &challenge).await;
    secrets.add(&code);
    secrets.add(verifier.expose_secret());
    secrets.add(wrong_verifier.expose_secret());
    let err = secrets.err(
        client
            .exchange_code(&code, wrong_verifier.expose_secret(), REDIRECT)
            .await,
    );
    assert!(err.is_refusal(), "{err:?}");

    let code = authorize(&client, &challenge).await;
    secrets.add(&code);
    let tokens = client
        .exchange_code(&code, verifier.expose_secret(), REDIRECT)
        .await
        .unwrap();
    secrets.add_tokens(&tokens);
    let err = secrets.err(
        client
            .exchange_code(&code, verifier.expose_secret(), REDIRECT)
            .await,
    );
    assert!(err.is_refusal(), "{err:?}");
}

#[tokio::test]
async fn refresh_rotates_and_the_old_refresh_token_is_refused() {
    let secrets = Secrets::new();
    let double = double().await;
    let client = client_for(&double.url());
    let first = sign_in(&client, &secrets).await;
    let old_refresh = first.refresh_token.clone().unwrap();

    let second = client.refresh(&old_refresh).await.unwrap();
    secrets.add_tokens(&second);
    let new_refresh = second
        .refresh_token
        .clone()
        .expect("a rotated refresh token");
    assert_ne!(new_refresh.expose_secret(), old_refresh.expose_secret());
    assert_eq!(
        double.valid_refresh_tokens("alice"),
        vec![new_refresh.expose_secret().to_owned()]
    );
    // The new access token works.
    assert_eq!(
        client.userinfo(&second.access_token).await.unwrap().login,
        "alice"
    );

    let err = secrets.err(client.refresh(&old_refresh).await);
    match &err {
        ForgejoError::Refused { error, .. } => assert_eq!(error, "unauthorized_client"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(err.is_refusal());

    // The rotated one still refreshes.
    let third = client.refresh(&new_refresh).await.unwrap();
    secrets.add_tokens(&third);

    // A rotation whose answer is lost looks transient, but the token is spent.
    let spent = third.refresh_token.clone().unwrap();
    double.inject_fault(Endpoint::Token, Fault::ServerErrorAfterProcessing, 1);
    let err = secrets.err(client.refresh(&spent).await);
    assert!(matches!(err, ForgejoError::Transient(_)), "{err:?}");
    assert!(secrets.err(client.refresh(&spent).await).is_refusal());
}

#[tokio::test]
async fn injected_faults_are_classified() {
    let secrets = Secrets::new();
    let double = double().await;
    let client = client_for(&double.url());
    let tokens = sign_in(&client, &secrets).await;
    let refresh = tokens.refresh_token.clone().unwrap();

    double.inject_fault(Endpoint::Token, Fault::InvalidGrant, 1);
    let err = secrets.err(client.refresh(&refresh).await);
    match &err {
        ForgejoError::Refused { error, description } => {
            assert_eq!(error, "invalid_grant");
            assert_eq!(
                description.as_deref(),
                Some("injected fault: invalid_grant")
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    double.inject_fault(Endpoint::Token, Fault::UnauthorizedClient, 1);
    assert!(secrets.err(client.refresh(&refresh).await).is_refusal());

    double.inject_fault(Endpoint::Token, Fault::ServerError, 1);
    let err = secrets.err(client.refresh(&refresh).await);
    assert!(matches!(err, ForgejoError::Transient(_)), "{err:?}");
    assert!(!err.is_refusal());

    double.inject_fault(Endpoint::Userinfo, Fault::ServerError, 1);
    let err = secrets.err(client.userinfo(&tokens.access_token).await);
    assert!(matches!(err, ForgejoError::Transient(_)), "{err:?}");

    // None of the faults touched the grant: the refresh token still works.
    let fresh = client.refresh(&refresh).await.unwrap();
    secrets.add_tokens(&fresh);
}

#[tokio::test]
async fn a_slow_forgejo_times_out_as_transient() {
    let secrets = Secrets::new();
    let double = double().await;
    let client = client_for(&double.url());
    let tokens = sign_in(&client, &secrets).await;
    let refresh = tokens.refresh_token.clone().unwrap();

    let impatient = client.clone().with_timeout(Duration::from_millis(300));
    double.inject_fault(Endpoint::Token, Fault::Delay(Duration::from_secs(3)), 1);
    let started = tokio::time::Instant::now();
    let err = secrets.err(impatient.refresh(&refresh).await);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    match &err {
        ForgejoError::Transient(message) => assert!(message.contains("timed out"), "{message}"),
        other => panic!("expected a transient error, got {other:?}"),
    }

    double.inject_fault(Endpoint::Discovery, Fault::Delay(Duration::from_secs(3)), 1);
    let fresh = client_for(&double.url()).with_timeout(Duration::from_millis(300));
    let err = secrets.err(fresh.endpoints().await);
    assert!(matches!(err, ForgejoError::Transient(_)), "{err:?}");
}

#[tokio::test]
async fn userinfo_refuses_tokens_forgejo_does_not_accept() {
    let secrets = Secrets::new();
    let double = double().await;
    let client = client_for(&double.url());
    let tokens = sign_in(&client, &secrets).await;

    let bogus = SecretString::from("fgj_at_not-a-token-we-issued");
    secrets.add(bogus.expose_secret());
    let err = secrets.err(client.userinfo(&bogus).await);
    match &err {
        ForgejoError::Refused { error, .. } => assert_eq!(error, "invalid_token"),
        other => panic!("expected a refusal, got {other:?}"),
    }

    assert!(double.revoke_grant("alice", CLIENT_ID));
    assert!(
        secrets
            .err(client.userinfo(&tokens.access_token).await)
            .is_refusal()
    );
    let refresh = tokens.refresh_token.clone().unwrap();
    assert!(secrets.err(client.refresh(&refresh).await).is_refusal());
}

#[tokio::test]
async fn a_wrong_client_secret_is_a_protocol_error() {
    let secrets = Secrets::new();
    let double = double().await;
    let good = client_for(&double.url());
    let tokens = sign_in(&good, &secrets).await;
    let wrong_secret = "not-the-broker-client-secret";
    secrets.add(wrong_secret);
    let client = ForgejoClient::new(
        &double.url(),
        CLIENT_ID,
        SecretString::from(wrong_secret),
        SCOPES,
        EndpointOverrides::default(),
    );
    let err = secrets.err(client.refresh(tokens.refresh_token.as_ref().unwrap()).await);
    match &err {
        ForgejoError::Protocol(message) => assert!(message.contains("invalid_client"), "{message}"),
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_forgejo_is_transient() {
    let secrets = Secrets::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = client_for(&format!("http://{addr}"));
    let err = secrets.err(client.endpoints().await);
    assert!(matches!(err, ForgejoError::Transient(_)), "{err:?}");
    let refresh = SecretString::from("rt-never-sent-anywhere");
    secrets.add(refresh.expose_secret());
    let err = secrets.err(client.refresh(&refresh).await);
    assert!(matches!(err, ForgejoError::Transient(_)), "{err:?}");
}

// ---------------------------------------------------------------------------
// A misbehaving "Forgejo", for answers the double never gives.

const TWO_MIB: usize = 2 * 1024 * 1024;

/// A body of `remaining` bytes sent in 64 KiB chunks with no length
/// announced, so the client only learns the size by reading.
struct Unannounced {
    remaining: usize,
}

impl http_body::Body for Unannounced {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let size = self.remaining.min(64 * 1024);
        self.remaining -= size;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b' '; size])))))
    }
}

fn json(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_owned(),
    )
        .into_response()
}

/// Repeats the request's form and Authorization header inside an OAuth error,
/// as a careless proxy or server might.
async fn echo(headers: HeaderMap, body: String) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let description = format!("bad request {body} from {authorization}");
    let body = serde_json::json!({"error": "invalid_grant", "error_description": description});
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

async fn broken_server() -> String {
    let padded = || async { format!("{{\"access_token\":\"x\"{}}}", " ".repeat(TWO_MIB)) };
    let app = Router::new()
        .route("/garbage", post(|| async { "this is not JSON" }))
        .route(
            "/unannounced",
            post(|| async { axum::body::Body::new(Unannounced { remaining: TWO_MIB }) }),
        )
        .route("/announced", post(padded))
        .route(
            "/no-access-token",
            post(|| async { json(StatusCode::OK, r#"{"token_type":"bearer"}"#) }),
        )
        .route(
            "/mac",
            post(|| async {
                json(
                    StatusCode::OK,
                    r#"{"access_token":"issued-access-token","token_type":"mac"}"#,
                )
            }),
        )
        .route(
            "/redirect",
            post(|| async {
                (
                    StatusCode::FOUND,
                    [(header::LOCATION, "https://elsewhere.example/")],
                )
            }),
        )
        .route(
            "/slow-down",
            post(|| async { StatusCode::TOO_MANY_REQUESTS }),
        )
        .route(
            "/html-400",
            post(|| async { (StatusCode::BAD_REQUEST, "<html>Bad Request</html>") }),
        )
        .route("/echo", post(echo))
        .route(
            "/userinfo-no-sub",
            get(|| async { json(StatusCode::OK, r#"{"preferred_username":"alice"}"#) }),
        )
        .route("/userinfo-huge", get(padded))
        .route(
            "/userinfo-name-only",
            get(|| async { json(StatusCode::OK, r#"{"sub":"9","name":"carol"}"#) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

fn pointed_at(base: &str, token: &str, userinfo: &str) -> ForgejoClient {
    ForgejoClient::new(
        base,
        CLIENT_ID,
        SecretString::from(CLIENT_SECRET),
        SCOPES,
        EndpointOverrides {
            authorize: Some(format!("{base}/authorize")),
            token: Some(format!("{base}{token}")),
            userinfo: Some(format!("{base}{userinfo}")),
        },
    )
}

#[tokio::test]
async fn unusable_answers_are_protocol_errors() {
    let secrets = Secrets::new();
    secrets.add("issued-access-token");
    let base = broken_server().await;
    let code = "the-code-0123456789";
    let verifier = "the-verifier-0123456789-0123456789-0123456789";
    secrets.add(code);
    secrets.add(verifier);

    for (path, expected) in [
        ("/garbage", "not valid JSON"),
        ("/unannounced", "larger than 1048576 bytes"),
        ("/announced", "announces"),
        ("/no-access-token", "no access_token"),
        ("/mac", "not bearer"),
        ("/redirect", "redirects are not followed"),
        ("/html-400", "without an OAuth error"),
    ] {
        let client = pointed_at(&base, path, "/userinfo-no-sub");
        let err = secrets.err(client.exchange_code(code, verifier, REDIRECT).await);
        match &err {
            ForgejoError::Protocol(message) => {
                assert!(message.contains(expected), "{path}: {message}");
            }
            other => panic!("{path}: expected a protocol error, got {other:?}"),
        }
    }

    let client = pointed_at(&base, "/slow-down", "/userinfo-huge");
    let err = secrets.err(client.exchange_code(code, verifier, REDIRECT).await);
    assert!(matches!(err, ForgejoError::Transient(_)), "{err:?}");

    let token = SecretString::from("an-access-token-for-userinfo");
    secrets.add(token.expose_secret());
    let err = secrets.err(client.userinfo(&token).await);
    assert!(matches!(err, ForgejoError::Protocol(_)), "{err:?}");
    let client = pointed_at(&base, "/garbage", "/userinfo-no-sub");
    let err = secrets.err(client.userinfo(&token).await);
    assert!(matches!(err, ForgejoError::Protocol(_)), "{err:?}");
    let client = pointed_at(&base, "/garbage", "/userinfo-name-only");
    assert_eq!(
        client.userinfo(&token).await.unwrap(),
        UserIdentity {
            id: "9".into(),
            login: "carol".into()
        }
    );
}

#[tokio::test]
async fn echoed_request_secrets_never_reach_the_error() {
    let secrets = Secrets::new();
    let base = broken_server().await;
    let client = pointed_at(&base, "/echo", "/userinfo-no-sub");
    let code = "echoed-code-0123456789";
    let verifier = "echoed-verifier-0123456789-0123456789-012345";
    secrets.add(code);
    secrets.add(verifier);
    let err = secrets.err(client.exchange_code(code, verifier, REDIRECT).await);
    match &err {
        ForgejoError::Refused { description, .. } => {
            let description = description.as_deref().unwrap();
            assert!(description.contains("[redacted]"), "{description}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    let refresh = SecretString::from("echoed-refresh-token-0123456789");
    secrets.add(refresh.expose_secret());
    let err = secrets.err(client.refresh(&refresh).await);
    assert!(err.is_refusal(), "{err:?}");
}

/// What client_secret_basic puts on the wire for the test's credentials.
fn base64_basic() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
}
