//! A whole stack for OAuth tests: the Forgejo test double, the real broker
//! binary, and a "browser" that follows the flow the way an MCP client's user
//! would, plus the client's own calls (registration, token exchange).

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use forgejo_double::{App, Config, ForgejoDouble, User};
use sha2::{Digest, Sha256};
use url::Url;

use super::broker::Broker;

pub const CLAUDE_CALLBACK: &str = "https://claude.ai/api/mcp/auth_callback";
pub const BROKER_CLIENT_ID: &str = "fjmcp-broker";
pub const BROKER_CLIENT_SECRET: &str = "fjmcp-broker-secret";

pub struct Stack {
    pub double: ForgejoDouble,
    pub broker: Broker,
    /// `http://127.0.0.1:PORT`: the broker's public URL and issuer.
    pub issuer: String,
    /// Follows no redirects: every hop is checked by the tests.
    pub http: reqwest::Client,
    /// The broker's state (SQLite file, sealing key), across restarts.
    _state: tempfile::TempDir,
}

/// One authorization attempt's client-side secrets.
pub struct Attempt {
    pub verifier: String,
    pub state: String,
    pub redirect_uri: String,
    pub client_id: String,
}

impl Attempt {
    pub fn new(client_id: &str, redirect_uri: &str) -> Attempt {
        Attempt {
            verifier: fjmcp_broker::crypto::mint_secret(""),
            state: fjmcp_broker::crypto::mint_secret("st"),
            redirect_uri: redirect_uri.to_string(),
            client_id: client_id.to_string(),
        }
    }

    pub fn challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.verifier.as_bytes()))
    }
}

/// Where the browser ended up.
#[derive(Debug)]
pub enum Landing {
    /// Redirected to the client's redirect URI with these query parameters.
    Client(BTreeMap<String, String>),
    /// The broker's consent page, with the form's ticket and the consent cookie.
    Consent {
        ticket: String,
        cookie: String,
        html: String,
    },
    /// An HTML page (status, body): an error the broker could not redirect.
    Page(u16, String),
}

impl Stack {
    /// The double (users alice and bob, the broker's app) and the broker with
    /// the test settings plus `env`.
    pub async fn start(env: &[(&str, &str)]) -> Stack {
        Stack::start_with(env, |config| config).await
    }

    /// As [`Stack::start`], with the double's configuration adjusted by
    /// `double` (token lifetimes, rotation).
    pub async fn start_with(env: &[(&str, &str)], double: impl FnOnce(Config) -> Config) -> Stack {
        let listener = super::broker::listener();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let callback = format!("{issuer}/oauth/callback");
        let double = ForgejoDouble::start(double(
            Config::default()
                .with_user(User::new(1, "alice", "alice-password"))
                .with_user(User::new(2, "bob", "bob-password"))
                .with_app(App::confidential(
                    BROKER_CLIENT_ID,
                    BROKER_CLIENT_SECRET,
                    &[&callback],
                )),
        ))
        .await
        .unwrap();
        let forgejo = double.url();
        let mut all: Vec<(&str, &str)> = vec![
            ("FJMCP_PUBLIC_URL", &issuer),
            ("FJMCP_FORGEJO_URL", &forgejo),
            ("FJMCP_FORGEJO_CLIENT_ID", BROKER_CLIENT_ID),
            ("FJMCP_FORGEJO_CLIENT_SECRET", BROKER_CLIENT_SECRET),
        ];
        all.extend_from_slice(env);
        let state = tempfile::tempdir().unwrap();
        let broker = Broker::start_on(listener, state.path(), &all).await;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Stack {
            double,
            broker,
            issuer,
            http,
            _state: state,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// Registers a public client (RFC 7591) and returns its `client_id`.
    pub async fn register(&self, name: &str, redirect_uris: &[&str]) -> String {
        let response = self
            .http
            .post(self.url("/oauth/register"))
            .json(&serde_json::json!({
                "client_name": name,
                "redirect_uris": redirect_uris,
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: serde_json::Value = response.json().await.unwrap();
        body["client_id"].as_str().unwrap().to_string()
    }

    /// The authorize URL for an attempt, with extra or overriding parameters.
    pub fn authorize_url(&self, attempt: &Attempt, overrides: &[(&str, Option<&str>)]) -> String {
        let challenge = attempt.challenge();
        let resource = self.url("/mcp");
        let mut params: Vec<(&str, Option<&str>)> = vec![
            ("response_type", Some("code")),
            ("client_id", Some(&attempt.client_id)),
            ("redirect_uri", Some(&attempt.redirect_uri)),
            ("state", Some(&attempt.state)),
            ("code_challenge", Some(&challenge)),
            ("code_challenge_method", Some("S256")),
            ("scope", Some("mcp")),
            ("resource", Some(&resource)),
        ];
        for (name, value) in overrides {
            params.retain(|(n, _)| n != name);
            params.push((name, *value));
        }
        let mut url = Url::parse(&self.url("/oauth/authorize")).unwrap();
        for (name, value) in params {
            if let Some(value) = value {
                url.query_pairs_mut().append_pair(name, value);
            }
        }
        url.to_string()
    }

    /// Runs the browser part as `login` (auto-login at Forgejo) from `url`.
    pub async fn browse_as(&self, login: &str, url: &str) -> Landing {
        self.double.set_auto_login(Some(login));
        let mut next = url.to_string();
        for _ in 0..5 {
            if next.starts_with(&self.double.url()) || next.starts_with(&self.issuer) {
                let response = self.http.get(&next).send().await.unwrap();
                let status = response.status().as_u16();
                if (300..400).contains(&status) {
                    next = response.headers()["location"].to_str().unwrap().to_string();
                    continue;
                }
                return self.page(response).await;
            }
            return Landing::Client(query_of(&next));
        }
        panic!("too many redirects");
    }

    async fn page(&self, response: reqwest::Response) -> Landing {
        let status = response.status().as_u16();
        let cookie = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.contains("fjmcp-consent="))
            .map(|v| v.split(';').next().unwrap().to_string());
        let html = response.text().await.unwrap();
        match (status, cookie) {
            (200, Some(cookie)) => {
                let ticket = html
                    .split("name=\"ticket\" value=\"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .expect("consent page has a ticket")
                    .to_string();
                Landing::Consent {
                    ticket,
                    cookie,
                    html,
                }
            }
            _ => Landing::Page(status, html),
        }
    }

    /// Answers a consent page.
    pub async fn decide(&self, ticket: &str, cookie: &str, decision: &str) -> Landing {
        let response = self
            .http
            .post(self.url("/oauth/consent"))
            .header("cookie", cookie)
            .form(&[("ticket", ticket), ("decision", decision)])
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        if (300..400).contains(&status) {
            let location = response.headers()["location"].to_str().unwrap().to_string();
            return Landing::Client(query_of(&location));
        }
        self.page(response).await
    }

    /// Authorizes as `login`, approving consent if asked; returns the code.
    pub async fn code_for(&self, login: &str, attempt: &Attempt) -> String {
        let landing = match self
            .browse_as(login, &self.authorize_url(attempt, &[]))
            .await
        {
            Landing::Consent { ticket, cookie, .. } => {
                self.decide(&ticket, &cookie, "approve").await
            }
            other => other,
        };
        match landing {
            Landing::Client(query) => {
                assert_eq!(query.get("state"), Some(&attempt.state));
                assert_eq!(query.get("iss"), Some(&self.issuer));
                query
                    .get("code")
                    .cloned()
                    .unwrap_or_else(|| panic!("no code: {query:?}"))
            }
            other => panic!("expected a redirect with a code, got {other:?}"),
        }
    }

    /// Posts to the token endpoint.
    pub async fn token(&self, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
        let response = self
            .http
            .post(self.url("/oauth/token"))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        if status == 200 {
            assert_eq!(response.headers()["cache-control"], "no-store");
        }
        (status, response.json().await.unwrap())
    }

    /// Revokes `token` as public client `client_id` (RFC 7009); returns the status.
    pub async fn revoke(&self, token: &str, client_id: &str) -> u16 {
        self.http
            .post(self.url("/oauth/revoke"))
            .form(&[("token", token), ("client_id", client_id)])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Exchanges a code from `attempt`; returns the token response.
    pub async fn exchange(&self, attempt: &Attempt, code: &str) -> (u16, serde_json::Value) {
        let resource = self.url("/mcp");
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", &attempt.client_id),
            ("redirect_uri", &attempt.redirect_uri),
            ("code_verifier", &attempt.verifier),
            ("resource", &resource),
        ])
        .await
    }

    /// Full flow to tokens.
    pub async fn tokens_for(&self, login: &str, client_id: &str) -> serde_json::Value {
        let attempt = Attempt::new(client_id, CLAUDE_CALLBACK);
        let code = self.code_for(login, &attempt).await;
        let (status, body) = self.exchange(&attempt, &code).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Opens the broker's own store (same files, same key) to look inside.
    pub async fn open_store(&self) -> fjmcp_broker::store::Store {
        let key =
            fjmcp_broker::crypto::SealingKey::load(&self.broker.dir.join("broker.db.sealing-key"))
                .unwrap();
        fjmcp_broker::store::Store::open(
            &fjmcp_broker::config::StoreLocation::Sqlite(self.broker.dir.join("broker.db")),
            Arc::new(fjmcp_broker::crypto::Sealer::new(key)),
            Arc::new(fjmcp_broker::clock::SystemClock),
        )
        .await
        .unwrap()
    }
}

/// The query parameters of a URL.
pub fn query_of(url: &str) -> BTreeMap<String, String> {
    Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
