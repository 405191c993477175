//! The one Forgejo call the fixture makes: `GET /api/v1/user` with the user's token.
//!
//! forgejo-mcp checks its token this way before serving and exits with status 1 if Forgejo
//! refuses it; the fixture does the same so the broker's spawn-failure paths are exercised, and
//! `whoami` reports the login so tests can prove which user's token a child was started with.
//! Like forgejo-mcp, the token is read once at start-up. It never appears in logs or errors.

use std::time::Duration;

use serde::Deserialize;

/// Environment variable naming the Forgejo base URL (as forgejo-mcp reads it).
pub const ENV_URL: &str = "FORGEJO_URL";
/// Environment variable holding the user's Forgejo access token.
pub const ENV_TOKEN: &str = "FORGEJO_ACCESS_TOKEN";

/// How long one call to Forgejo may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A Forgejo access token, kept out of `Debug` output.
#[derive(Clone)]
pub struct AccessToken(String);

impl AccessToken {
    /// Wraps a token.
    pub fn new(token: String) -> Self {
        Self(token)
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// Why `GET /api/v1/user` did not yield a login. Messages never contain the token.
#[derive(Debug, thiserror::Error)]
pub enum ForgejoError {
    /// Forgejo answered 401 or 403: the token is not (or no longer) valid.
    #[error("Forgejo rejected the access token (HTTP {0})")]
    Rejected(u16),
    /// Forgejo answered something else that is not a success.
    #[error("Forgejo answered HTTP {0} to GET /api/v1/user")]
    Status(u16),
    /// The request did not complete.
    #[error("could not reach Forgejo: {0}")]
    Transport(String),
    /// A success without a `login`.
    #[error("Forgejo's /api/v1/user answer has no login")]
    NoLogin,
}

/// A Forgejo API client bound to one user's token.
#[derive(Debug, Clone)]
pub struct Forgejo {
    /// Base URL without a trailing slash.
    base_url: String,
    /// The user's token; `None` sends no `Authorization` header (Forgejo will refuse).
    token: Option<AccessToken>,
    /// HTTP client with a timeout.
    http: reqwest::Client,
}

/// The part of Forgejo's user object we read.
#[derive(Deserialize)]
struct User {
    login: Option<String>,
}

impl Forgejo {
    /// A client for `base_url`, authenticating with `token`.
    pub fn new(base_url: &str, token: Option<AccessToken>) -> Result<Self, ForgejoError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("fjmcp-fixture-child/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ForgejoError::Transport(e.to_string()))?;
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    /// The login of the token's user.
    pub async fn current_user(&self) -> Result<String, ForgejoError> {
        let mut request = self.http.get(format!("{}/api/v1/user", self.base_url));
        if let Some(AccessToken(token)) = &self.token {
            request = request.header(reqwest::header::AUTHORIZATION, format!("token {token}"));
        }
        let response = request
            .send()
            .await
            .map_err(|e| ForgejoError::Transport(e.without_url().to_string()))?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(ForgejoError::Rejected(status.as_u16()));
        }
        if !status.is_success() {
            return Err(ForgejoError::Status(status.as_u16()));
        }
        let user: User = response
            .json()
            .await
            .map_err(|e| ForgejoError::Transport(e.without_url().to_string()))?;
        user.login
            .filter(|l| !l.is_empty())
            .ok_or(ForgejoError::NoLogin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_do_not_leak_through_debug() {
        let client = Forgejo::new(
            "http://127.0.0.1:1/",
            Some(AccessToken::new("s3cret".into())),
        )
        .unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(
            debug.contains("http://127.0.0.1:1\""),
            "trailing slash trimmed: {debug}"
        );
    }
}
