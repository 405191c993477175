//! Shared fixture for the integration tests: a started double with two users and two apps,
//! and an HTTP client that does not follow redirects, so tests can read `Location`.

// Shared by several test binaries, each using a part: `pub` marks what they
// may use, not what leaves the crate.
#![allow(dead_code, unreachable_pub)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use forgejo_double::{App, Config, ForgejoDouble, User};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The confidential app's registered redirect URI. Nothing listens there: redirects are read,
/// never followed.
pub const CONF_REDIRECT: &str = "https://broker.example/oauth/callback";
pub const CONF_ID: &str = "conf-client";
pub const CONF_SECRET: &str = "conf-secret";
/// The public app registers a portless loopback URI, so any port matches.
pub const PUB_REDIRECT: &str = "http://127.0.0.1/callback";
pub const PUB_ID: &str = "public-client";
/// A PKCE verifier used throughout.
pub const VERIFIER: &str = "a-verifier-that-is-long-enough-to-be-realistic-0123456789";

pub struct Fixture {
    pub double: ForgejoDouble,
    pub http: reqwest::Client,
}

/// Users alice (id 42) and bob (id 43); a confidential and a public app.
pub fn config() -> Config {
    Config::default()
        .with_user(User::new(42, "alice", "alice-password"))
        .with_user(User::new(43, "bob", "bob-password"))
        .with_app(App::confidential(CONF_ID, CONF_SECRET, &[CONF_REDIRECT]))
        .with_app(App::public(PUB_ID, &[PUB_REDIRECT]))
}

pub async fn start() -> Fixture {
    start_with(config()).await
}

pub async fn start_with(config: Config) -> Fixture {
    let double = ForgejoDouble::start(config).await.expect("double starts");
    Fixture {
        double,
        http: client(),
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client builds")
}

pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A token endpoint answer.
#[derive(Debug)]
pub struct TokenReply {
    pub status: StatusCode,
    pub body: Value,
}

impl TokenReply {
    pub fn access_token(&self) -> String {
        self.field("access_token")
    }
    pub fn refresh_token(&self) -> String {
        self.field("refresh_token")
    }
    pub fn error(&self) -> String {
        self.field("error")
    }
    pub fn description(&self) -> String {
        self.field("error_description")
    }
    fn field(&self, name: &str) -> String {
        self.body[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {} {}", self.status, self.body))
            .to_owned()
    }
    /// Asserts an OAuth error response and returns (error, description).
    pub fn expect_error(&self) -> (String, String) {
        assert_eq!(self.status, StatusCode::BAD_REQUEST, "{}", self.body);
        (self.error(), self.description())
    }
}

/// Reads one query parameter of a `Location` header.
pub fn location_param(response: &reqwest::Response, name: &str) -> Option<String> {
    let location = response.headers().get("location")?.to_str().ok()?;
    let url = url::Url::parse(location).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl Fixture {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.double.url())
    }

    /// The authorization endpoint with these query parameters.
    pub fn authorize_url(&self, params: &[(&str, &str)]) -> url::Url {
        url::Url::parse_with_params(&self.url("/login/oauth/authorize"), params)
            .expect("valid authorize URL")
    }

    /// `GET /login/oauth/authorize` with these query parameters.
    pub async fn authorize(&self, params: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .get(self.authorize_url(params))
            .send()
            .await
            .expect("authorize request")
    }

    /// A code for the confidential app via auto-login, with an S256 challenge of `VERIFIER`.
    pub async fn code_for(&self, login: &str) -> String {
        self.double.set_auto_login(Some(login));
        let challenge = s256(VERIFIER);
        let response = self
            .authorize(&[
                ("client_id", CONF_ID),
                ("redirect_uri", CONF_REDIRECT),
                ("response_type", "code"),
                ("state", "st"),
                ("scope", "openid profile"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ])
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        location_param(&response, "code").expect("a code in the redirect")
    }

    /// POSTs a form to the token endpoint, optionally with HTTP Basic credentials.
    pub async fn token(&self, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> TokenReply {
        let mut request = self
            .http
            .post(self.url("/login/oauth/access_token"))
            .form(form);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        let response = request.send().await.expect("token request");
        let status = response.status();
        let text = response.text().await.expect("token body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        TokenReply { status, body }
    }

    /// Exchanges a confidential-app code (client_secret_basic).
    pub async fn exchange(&self, code: &str) -> TokenReply {
        self.token(
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", CONF_REDIRECT),
                ("code_verifier", VERIFIER),
            ],
            Some((CONF_ID, CONF_SECRET)),
        )
        .await
    }

    /// Signs `login` in to the confidential app and returns the token response.
    pub async fn login(&self, login: &str) -> TokenReply {
        let code = self.code_for(login).await;
        let reply = self.exchange(&code).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply
    }

    /// Refreshes for the confidential app (client_secret_post).
    pub async fn refresh(&self, refresh_token: &str) -> TokenReply {
        self.token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", CONF_ID),
                ("client_secret", CONF_SECRET),
            ],
            None,
        )
        .await
    }

    /// `GET /login/oauth/userinfo` with a bearer token.
    pub async fn userinfo(&self, access_token: &str) -> reqwest::Response {
        self.http
            .get(self.url("/login/oauth/userinfo"))
            .bearer_auth(access_token)
            .send()
            .await
            .expect("userinfo request")
    }
}
