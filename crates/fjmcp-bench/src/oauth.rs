//! One access token per simulated user, through the broker's real OAuth flow, the
//! way an MCP client and its user's browser go through it: dynamic registration,
//! `/oauth/authorize` → sign-in at the Forgejo double (auto-login) → `/oauth/callback`
//! → the consent page → `POST /oauth/consent` → the client's redirect URI with a code →
//! `/oauth/token` with the PKCE verifier.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use forgejo_double::ForgejoDouble;
use sha2::{Digest, Sha256};
use url::Url;

/// Where the authorization server sends the user's browser back to. Never fetched:
/// the bench reads the code from the redirect's `Location`.
const REDIRECT_URI: &str = "http://127.0.0.1:1/callback";

/// The browser and the client, both: follows no redirects, so every hop is checked.
#[derive(Debug)]
pub(crate) struct Flow {
    http: reqwest::Client,
    /// The broker's public URL (its issuer).
    issuer: String,
    double: ForgejoDouble,
}

fn random_secret() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("getrandom: {e}"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn query_of(location: &str) -> Result<BTreeMap<String, String>> {
    Ok(Url::parse(location)
        .with_context(|| format!("redirect to {location}"))?
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect())
}

impl Flow {
    pub(crate) fn new(issuer: &str, double: ForgejoDouble) -> Result<Flow> {
        Ok(Flow {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            issuer: issuer.to_string(),
            double,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// Registers a public client (RFC 7591) and returns its `client_id`.
    async fn register(&self, login: &str) -> Result<String> {
        let response = self
            .http
            .post(self.url("/oauth/register"))
            .json(&serde_json::json!({
                "client_name": format!("fjmcp-bench ({login})"),
                "redirect_uris": [REDIRECT_URI],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
            }))
            .send()
            .await?;
        let status = response.status();
        let body: serde_json::Value = response.json().await?;
        if status != 201 {
            bail!("registration refused ({status}): {body}");
        }
        body["client_id"]
            .as_str()
            .map(str::to_string)
            .context("registration answered without client_id")
    }

    /// Runs the whole flow as `login` and returns an access token for `/mcp`.
    pub(crate) async fn token_for(&self, login: &str) -> Result<String> {
        self.token_flow(login)
            .await
            .with_context(|| format!("OAuth flow for {login}"))
    }

    async fn token_flow(&self, login: &str) -> Result<String> {
        let client_id = self.register(login).await?;
        let verifier = random_secret()?;
        let state = random_secret()?;
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let resource = self.url("/mcp");
        let mut authorize = Url::parse(&self.url("/oauth/authorize"))?;
        authorize
            .query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &client_id)
            .append_pair("redirect_uri", REDIRECT_URI)
            .append_pair("state", &state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("scope", "mcp")
            .append_pair("resource", &resource);

        // The browser: broker → Forgejo (signed in as `login`) → broker's callback,
        // which shows the consent page.
        self.double.set_auto_login(Some(login));
        let mut next = authorize.to_string();
        let consent = loop {
            let response = self.http.get(&next).send().await?;
            let status = response.status();
            if status.is_redirection() {
                next = response
                    .headers()
                    .get("location")
                    .context("redirect without Location")?
                    .to_str()?
                    .to_string();
                if next.starts_with(REDIRECT_URI) {
                    bail!("redirected to the client before consent: {next}");
                }
                continue;
            }
            let cookie = response
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find(|v| v.contains("fjmcp-consent="))
                .and_then(|v| v.split(';').next())
                .map(str::to_string);
            let html = response.text().await?;
            let ticket = html
                .split("name=\"ticket\" value=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .map(str::to_string);
            match (status.as_u16(), cookie, ticket) {
                (200, Some(cookie), Some(ticket)) => break (cookie, ticket),
                _ => bail!(
                    "expected the consent page at {next}, got {status}: {}",
                    html.chars().take(300).collect::<String>()
                ),
            }
        };
        let (cookie, ticket) = consent;
        let response = self
            .http
            .post(self.url("/oauth/consent"))
            .header("cookie", cookie)
            .form(&[("ticket", ticket.as_str()), ("decision", "approve")])
            .send()
            .await?;
        let location = response
            .headers()
            .get("location")
            .with_context(|| format!("consent answered {} without a redirect", response.status()))?
            .to_str()?
            .to_string();
        let query = query_of(&location)?;
        if query.get("state") != Some(&state) {
            bail!("state not returned: {location}");
        }
        let code = query
            .get("code")
            .with_context(|| format!("no code in {location}"))?;

        // The client: the code and the PKCE verifier for tokens.
        let response = self
            .http
            .post(self.url("/oauth/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("client_id", client_id.as_str()),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", verifier.as_str()),
                ("resource", resource.as_str()),
            ])
            .send()
            .await?;
        let status = response.status();
        let body: serde_json::Value = response.json().await?;
        if status != 200 {
            bail!("token endpoint refused ({status}): {body}");
        }
        body["access_token"]
            .as_str()
            .map(str::to_string)
            .context("token answer without access_token")
    }
}
