//! The broker's OAuth client of Forgejo: discovery, the authorization URL, the
//! code exchange, refresh, and userinfo.
//!
//! Invariants:
//! - This is the only module that talks to Forgejo over HTTP, so timeouts,
//!   size limits, client authentication and error classification are decided
//!   once, here.
//! - Every failure is one of three [`ForgejoError`]s, sorted by what the caller
//!   must do (sign the user in again, retry, or fix the configuration).
//! - No token, code, verifier or the client secret ever appears in an error,
//!   a `Debug` output or a log line; logs name the endpoint and the status only.
//! - Redirects are never followed: a token request redirected elsewhere would
//!   carry the client credentials and the code with it.

mod error;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::OnceCell;

pub use error::ForgejoError;
use wire::{Call, Discovered};

use crate::upstream::{UpstreamCredential, UserIdentity};

/// Longest answer read from Forgejo. Real answers are a few kilobytes; the cap
/// keeps a misbehaving server or proxy from making the broker buffer without
/// bound.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Default overall time for one call, body included.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Default time to establish a connection (TCP and TLS).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Lifetime assumed when Forgejo omits `expires_in`: Forgejo's default
/// `ACCESS_TOKEN_EXPIRATION_TIME`. Assuming a finite lifetime makes the broker
/// refresh in time rather than use a token until it is rejected.
const ASSUMED_EXPIRES_IN: u64 = 3600;

/// Endpoints configured by the operator instead of taken from discovery.
///
/// Needed when Forgejo's advertised URLs are not the ones the broker should
/// use, typically a Forgejo whose `ROOT_URL` is public while the broker reaches
/// it on an internal address: the browser needs the public authorize URL, the
/// server-to-server token and userinfo calls the internal ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointOverrides {
    /// Where the browser is sent to sign in.
    pub authorize: Option<String>,
    /// Where codes are exchanged and tokens refreshed.
    pub token: Option<String>,
    /// Where the signed-in user's identity is read.
    pub userinfo: Option<String>,
}

/// The three Forgejo endpoints the broker uses, overrides applied. Each is an
/// absolute http(s) URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgejoEndpoints {
    /// Authorization endpoint (browser-facing).
    pub authorize: String,
    /// Token endpoint (code exchange and refresh).
    pub token: String,
    /// OpenID Connect userinfo endpoint.
    pub userinfo: String,
}

/// Tokens Forgejo issued, from a code exchange or a refresh. `Debug` shows
/// only that the tokens are there.
#[derive(Debug, Clone)]
pub struct TokenResponse {
    /// The new access token (opaque to the broker; Forgejo makes it a JWT).
    pub access_token: SecretString,
    /// The new refresh token. With Forgejo's default rotation every issuance
    /// invalidates the previous one, so it must replace the stored one at once.
    pub refresh_token: Option<SecretString>,
    /// Seconds until the access token expires, as Forgejo said.
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    /// The credential to store, with the expiry made absolute against `now`
    /// (the broker's clock, in Unix seconds). A missing `expires_in` is taken as
    /// 3600 s, Forgejo's default access-token lifetime.
    pub fn into_credential(self, now: i64) -> UpstreamCredential {
        let lifetime = self.expires_in.unwrap_or(ASSUMED_EXPIRES_IN);
        let lifetime = i64::try_from(lifetime).unwrap_or(i64::MAX);
        UpstreamCredential {
            access_token: self.access_token,
            refresh_token: self.refresh_token,
            access_expires_at: now.saturating_add(lifetime),
        }
    }
}

/// The broker's OAuth client of one Forgejo instance.
///
/// Cheap to clone: clones share one connection pool and one discovery cache,
/// so the whole broker can hold a single client.
#[derive(Clone)]
pub struct ForgejoClient {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    http: reqwest::Client,
    /// The discovery document's endpoints, once fetched successfully.
    discovered: OnceCell<Discovered>,
}

/// What the client was built from, kept so [`ForgejoClient::with_timeout`]
/// can build it again.
#[derive(Clone)]
struct Settings {
    base_url: String,
    client_id: String,
    client_secret: SecretString,
    scopes: String,
    overrides: EndpointOverrides,
}

impl std::fmt::Debug for ForgejoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let settings = &self.inner.settings;
        f.debug_struct("ForgejoClient")
            .field("base_url", &settings.base_url)
            .field("client_id", &settings.client_id)
            .field("scopes", &settings.scopes)
            .field("overrides", &settings.overrides)
            .finish_non_exhaustive()
    }
}

impl ForgejoClient {
    /// A client for the Forgejo at `base_url` (a trailing slash is ignored),
    /// authenticating as the OAuth2 application `client_id`, and asking for
    /// `scopes` (space-separated; keep them stable, since Forgejo refuses to
    /// authorize an existing grant with a different scope).
    ///
    /// Nothing is fetched yet: discovery happens on first use, so a broker can
    /// start while Forgejo is down.
    pub fn new(
        base_url: &str,
        client_id: &str,
        client_secret: SecretString,
        scopes: &str,
        overrides: EndpointOverrides,
    ) -> Self {
        let settings = Settings {
            base_url: base_url.trim_end_matches('/').to_owned(),
            client_id: client_id.to_owned(),
            client_secret,
            scopes: scopes.to_owned(),
            overrides,
        };
        Self::build(settings, DEFAULT_TIMEOUT)
    }

    /// The same client with another overall timeout per call (the connect
    /// timeout is capped by it too), and a fresh discovery cache. For tests
    /// that must not wait 30 s for a slow Forgejo, and for operators who want
    /// a tighter bound.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Self::build(self.inner.settings.clone(), timeout)
    }

    fn build(settings: Settings, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .user_agent(concat!("fjmcp-broker/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .build()
            // Only fails when the TLS backend cannot initialise, which no
            // request could recover from either.
            .expect("the HTTP client for Forgejo cannot be built (TLS backend unavailable)");
        Self {
            inner: Arc::new(Inner {
                settings,
                http,
                discovered: OnceCell::new(),
            }),
        }
    }

    /// Endpoints from `<base>/.well-known/openid-configuration`, fetched once
    /// and cached (a failed fetch is not cached, so the next call retries);
    /// every override wins over discovery, and with all three overridden no
    /// discovery request is made.
    ///
    /// Fetched lazily rather than at start-up so the broker can start, and
    /// serve what does not need Forgejo, while Forgejo is down.
    pub async fn endpoints(&self) -> Result<ForgejoEndpoints, ForgejoError> {
        let overrides = &self.inner.settings.overrides;
        if overrides.authorize.is_some()
            && overrides.token.is_some()
            && overrides.userinfo.is_some()
        {
            return wire::merge_endpoints(overrides, None);
        }
        let discovered = self
            .inner
            .discovered
            .get_or_try_init(|| self.discover())
            .await?;
        wire::merge_endpoints(overrides, Some(discovered))
    }

    async fn discover(&self) -> Result<Discovered, ForgejoError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.inner.settings.base_url
        );
        let request = self.inner.http.get(url).header(ACCEPT, "application/json");
        let (status, body) = self.call(Call::Discovery, request, false).await?;
        wire::discovery_outcome(status, &body)
    }

    /// The URL to send the browser to: `response_type=code`, `client_id`,
    /// `redirect_uri`, `scope`, `state`, `code_challenge`,
    /// `code_challenge_method=S256`, properly URL-encoded (an authorize
    /// endpoint that already has a query string keeps it).
    ///
    /// `state` and `code_challenge` come from the caller, which keeps the
    /// matching state and verifier (see [`crate::crypto::pkce_pair`]).
    pub async fn authorize_url(
        &self,
        redirect_uri: &str,
        state: &str,
        code_challenge: &str,
    ) -> Result<String, ForgejoError> {
        let endpoints = self.endpoints().await?;
        let settings = &self.inner.settings;
        wire::authorize_url(
            &endpoints.authorize,
            &settings.client_id,
            redirect_uri,
            &settings.scopes,
            state,
            code_challenge,
        )
    }

    /// Exchanges an authorization code for tokens (RFC 6749 §4.1.3 with the
    /// PKCE verifier). `redirect_uri` must be the one the authorization request
    /// used. A bad, expired or reused code, or a wrong verifier, is
    /// [`ForgejoError::Refused`].
    pub async fn exchange_code(
        &self,
        code: &str,
        code_verifier: &str,
        redirect_uri: &str,
    ) -> Result<TokenResponse, ForgejoError> {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_verifier", code_verifier)
            .finish();
        self.token_request(SecretString::from(form), &[code, code_verifier])
            .await
    }

    /// Trades a refresh token for new tokens (RFC 6749 §6). Forgejo rotates
    /// refresh tokens: after success the old one is dead, so the caller must
    /// store the new credential before anything else; a dead or unknown refresh
    /// token is [`ForgejoError::Refused`].
    ///
    /// A [`ForgejoError::Transient`] does not prove the old token still works:
    /// if Forgejo rotated and the answer was lost on the way back, a retry with
    /// the same token is refused, and only a new sign-in recovers.
    pub async fn refresh(
        &self,
        refresh_token: &SecretString,
    ) -> Result<TokenResponse, ForgejoError> {
        let refresh_token = refresh_token.expose_secret();
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", refresh_token)
            .finish();
        self.token_request(SecretString::from(form), &[refresh_token])
            .await
    }

    /// POSTs a form to the token endpoint with client_secret_basic. `secrets`
    /// are the request's secret values, scrubbed from Forgejo's error texts.
    async fn token_request(
        &self,
        form: SecretString,
        secrets: &[&str],
    ) -> Result<TokenResponse, ForgejoError> {
        let endpoints = self.endpoints().await?;
        let settings = &self.inner.settings;
        let client_secret = settings.client_secret.expose_secret();
        let basic = wire::basic_credentials(&settings.client_id, client_secret);
        let authorization = sensitive_header(&basic)?;
        let request = self
            .inner
            .http
            .post(&endpoints.token)
            .header(AUTHORIZATION, authorization)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(form.expose_secret().to_owned());
        let (status, body) = self.call(Call::Token, request, false).await?;
        // The encoded credentials are as good as the secret, should a proxy echo them.
        let encoded_credentials = basic.trim_start_matches("Basic ");
        let mut all_secrets = secrets.to_vec();
        all_secrets.extend([client_secret, encoded_credentials]);
        wire::token_outcome(status, &body, &all_secrets)
    }

    /// GET userinfo with the Bearer token → [`UserIdentity`] `{ id: sub, login:
    /// preferred_username (fallback: name) }`. `sub` is Forgejo's numeric user
    /// id, which survives renames, so it is the user's key in the store.
    ///
    /// A 401 (Forgejo does not accept the access token) is
    /// [`ForgejoError::Refused`] with error `invalid_token`: refresh, and if
    /// that is refused too, sign the user in again.
    pub async fn userinfo(
        &self,
        access_token: &SecretString,
    ) -> Result<UserIdentity, ForgejoError> {
        let endpoints = self.endpoints().await?;
        let authorization = sensitive_header(&format!("Bearer {}", access_token.expose_secret()))?;
        let request = self
            .inner
            .http
            .get(&endpoints.userinfo)
            .header(AUTHORIZATION, authorization)
            .header(ACCEPT, "application/json");
        let (status, body) = self.call(Call::Userinfo, request, true).await?;
        wire::userinfo_outcome(status, &body)
    }

    /// Whether Forgejo's API accepts `access_token`: `GET /api/v1/user` with it,
    /// which is also how `forgejo-mcp` checks its token at start. A refusal
    /// (401) is [`ForgejoError::Refused`]; an unreachable or failing Forgejo is
    /// [`ForgejoError::Transient`].
    pub async fn check_token(&self, access_token: &SecretString) -> Result<(), ForgejoError> {
        let url = format!("{}/api/v1/user", self.inner.settings.base_url);
        let authorization = sensitive_header(&format!("Bearer {}", access_token.expose_secret()))?;
        let request = self
            .inner
            .http
            .get(url)
            .header(AUTHORIZATION, authorization)
            .header(ACCEPT, "application/json");
        let (status, _) = self.call(Call::ApiUser, request, true).await?;
        wire::api_user_outcome(status)
    }

    /// Sends a request and reads its answer, capped at [`MAX_RESPONSE_BYTES`].
    /// Bodies of answers that are failures whatever they say (server errors,
    /// and a 401 when `skip_401_body`) are not read at all.
    async fn call(
        &self,
        call: Call,
        request: reqwest::RequestBuilder,
        skip_401_body: bool,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), ForgejoError> {
        let mut response = request.send().await.map_err(|err| {
            let message = transport_error(call, err);
            tracing::debug!(endpoint = call.name(), error = %message, "Forgejo call failed");
            message
        })?;
        let status = response.status();
        tracing::debug!(
            endpoint = call.name(),
            status = status.as_u16(),
            "Forgejo answered"
        );
        if wire::is_transient_status(status)
            || (skip_401_body && status == reqwest::StatusCode::UNAUTHORIZED)
        {
            return Ok((status, Vec::new()));
        }
        let too_large = || {
            ForgejoError::Protocol(format!(
                "the {} endpoint's answer is larger than {} bytes",
                call.name(),
                MAX_RESPONSE_BYTES
            ))
        };
        // Content-Length only lets us fail early; the loop below enforces the cap.
        if let Some(length) = response
            .content_length()
            .filter(|&length| length > MAX_RESPONSE_BYTES as u64)
        {
            return Err(ForgejoError::Protocol(format!(
                "the {} endpoint's answer announces {length} bytes, more than the {} allowed",
                call.name(),
                MAX_RESPONSE_BYTES
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| transport_error(call, err))?
        {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }
}

/// A header value that HTTP/2 must never index and `Debug` never prints.
fn sensitive_header(value: &str) -> Result<HeaderValue, ForgejoError> {
    let mut header = HeaderValue::from_str(value).map_err(|_| {
        ForgejoError::Protocol("a credential contains characters not allowed in a header".into())
    })?;
    header.set_sensitive(true);
    Ok(header)
}

/// Classifies a failure to send or to read: an invalid request is a
/// configuration problem, anything on the way (connect, timeout, reset) is
/// worth retrying. The URL is stripped from reqwest's message; the rest of its
/// chain names only the transport failure.
fn transport_error(call: Call, err: reqwest::Error) -> ForgejoError {
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let is_builder = err.is_builder();
    let err = err.without_url();
    let mut message = format!("the {} endpoint: {what}: {err}", call.name());
    // Append the cause chain ("client error (Connect): tcp connect error: …").
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    if is_builder {
        ForgejoError::Protocol(message)
    } else {
        ForgejoError::Transient(message)
    }
}
