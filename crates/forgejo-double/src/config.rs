//! What the double is started with: its users, its registered OAuth2 applications and the
//! `[oauth2]` settings of the Forgejo instance it pretends to be.

use std::net::IpAddr;
use std::time::Duration;

/// Forgejo's default `ACCESS_TOKEN_EXPIRATION_TIME` (seconds).
pub const DEFAULT_ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// Forgejo's default `REFRESH_TOKEN_EXPIRATION_TIME` (730 hours).
pub const DEFAULT_REFRESH_TOKEN_LIFETIME: Duration = Duration::from_secs(730 * 3600);

/// How the double is set up when it starts. Everything here can also be changed while it runs
/// (see [`crate::ForgejoDouble`]), except the token lifetimes and the refresh-token policy.
#[derive(Debug, Clone)]
pub struct Config {
    /// Accounts that can sign in and own grants.
    pub users: Vec<User>,
    /// Registered OAuth2 applications (Forgejo: Settings → Applications).
    pub apps: Vec<App>,
    /// Lifetime of issued access tokens; also the `expires_in` of token responses.
    pub access_token_lifetime: Duration,
    /// Lifetime of issued refresh tokens (independent of rotation).
    pub refresh_token_lifetime: Duration,
    /// When set, `/login/oauth/authorize` skips the login form and consent page and signs in as
    /// this user straight away, so tests and scripts need no browser.
    pub auto_login: Option<String>,
    /// Forgejo's `INVALIDATE_REFRESH_TOKENS`: when true (Forgejo's default) every token issuance
    /// for a grant makes all older refresh tokens of that grant unusable. When false (Gitea's
    /// default) refresh tokens stay valid until they expire or the grant is revoked.
    pub invalidate_refresh_tokens: bool,
}

impl Default for Config {
    /// No users, no apps, Forgejo's default lifetimes and refresh-token rotation on.
    fn default() -> Self {
        Config {
            users: Vec::new(),
            apps: Vec::new(),
            access_token_lifetime: DEFAULT_ACCESS_TOKEN_LIFETIME,
            refresh_token_lifetime: DEFAULT_REFRESH_TOKEN_LIFETIME,
            auto_login: None,
            invalidate_refresh_tokens: true,
        }
    }
}

impl Config {
    /// Adds a user (builder style).
    pub fn with_user(mut self, user: User) -> Self {
        self.users.push(user);
        self
    }

    /// Registers an application (builder style).
    pub fn with_app(mut self, app: App) -> Self {
        self.apps.push(app);
        self
    }

    /// Signs every authorization request in as `login` without a form (builder style).
    pub fn with_auto_login(mut self, login: &str) -> Self {
        self.auto_login = Some(login.to_owned());
        self
    }

    /// Sets the access-token lifetime (builder style).
    pub fn with_access_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.access_token_lifetime = lifetime;
        self
    }

    /// Turns refresh-token rotation on or off (builder style).
    pub fn with_invalidate_refresh_tokens(mut self, invalidate: bool) -> Self {
        self.invalidate_refresh_tokens = invalidate;
        self
    }

    /// Checks what would otherwise only fail later, in the middle of a test: duplicate logins,
    /// ids or client ids, a confidential app without secret, an auto-login user that does not
    /// exist. Returns every problem, joined with "; ".
    pub fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        for (i, user) in self.users.iter().enumerate() {
            if user.login.is_empty() {
                problems.push("a user has an empty login".to_owned());
            }
            if self.users[..i].iter().any(|u| u.login == user.login) {
                problems.push(format!("user login {:?} is listed twice", user.login));
            }
            if self.users[..i].iter().any(|u| u.id == user.id) {
                problems.push(format!("user id {} is listed twice", user.id));
            }
        }
        for (i, app) in self.apps.iter().enumerate() {
            if app.client_id.is_empty() {
                problems.push("an app has an empty client_id".to_owned());
            }
            if self.apps[..i].iter().any(|a| a.client_id == app.client_id) {
                problems.push(format!("client_id {:?} is registered twice", app.client_id));
            }
            if app.confidential && app.client_secret.is_empty() {
                problems.push(format!(
                    "confidential app {:?} has no client secret",
                    app.client_id
                ));
            }
        }
        if let Some(login) = &self.auto_login
            && !self.users.iter().any(|u| &u.login == login)
        {
            problems.push(format!("auto-login user {login:?} is not a user"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// A Forgejo account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Numeric user id; the OIDC `sub` is this number as a string.
    pub id: i64,
    /// User name (`preferred_username`, API `login`).
    pub login: String,
    /// Password accepted by the login form. Plain text: this is a test double.
    pub password: String,
    /// E-mail address; the login form accepts it in place of the login, like Forgejo.
    pub email: String,
    /// Display name (`name` in userinfo, `full_name` in the API).
    pub full_name: String,
}

impl User {
    /// A user with e-mail `<login>@example.com` and the login, capitalised, as full name.
    pub fn new(id: i64, login: &str, password: &str) -> Self {
        let mut chars = login.chars();
        let full_name = match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => String::new(),
        };
        User {
            id,
            login: login.to_owned(),
            password: password.to_owned(),
            email: format!("{login}@example.com"),
            full_name,
        }
    }
}

/// A registered OAuth2 application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// The client id.
    pub client_id: String,
    /// The client secret; ignored (and usually empty) for public clients.
    pub client_secret: String,
    /// Redirect URIs the authorization endpoint accepts (see [`App::accepts_redirect_uri`]).
    pub redirect_uris: Vec<String>,
    /// Confidential clients authenticate with their secret and skip the consent page; public
    /// clients must use PKCE and always see the consent page.
    pub confidential: bool,
}

impl App {
    /// A confidential client (client_secret_basic or client_secret_post).
    pub fn confidential(client_id: &str, client_secret: &str, redirect_uris: &[&str]) -> Self {
        App {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            redirect_uris: redirect_uris.iter().map(|u| (*u).to_owned()).collect(),
            confidential: true,
        }
    }

    /// A public client (no secret, PKCE required).
    pub fn public(client_id: &str, redirect_uris: &[&str]) -> Self {
        App {
            client_id: client_id.to_owned(),
            client_secret: String::new(),
            redirect_uris: redirect_uris.iter().map(|u| (*u).to_owned()).collect(),
            confidential: false,
        }
    }

    /// Whether `redirect_uri` is registered for this app, by Forgejo's rule: compared without
    /// case and without a trailing slash; for public clients an `http` loopback-IP redirect URI
    /// matches a registered one whatever its port (RFC 8252 §7.3), so native apps can listen on
    /// an ephemeral port. `localhost` gets no such leniency, as in Forgejo.
    pub fn accepts_redirect_uri(&self, redirect_uri: &str) -> bool {
        let normalise = |s: &str| s.trim_end_matches('/').to_lowercase();
        let registered = |candidate: &str| {
            let candidate = normalise(candidate);
            self.redirect_uris
                .iter()
                .any(|uri| normalise(uri) == candidate)
        };
        if registered(redirect_uri) {
            return true;
        }
        if self.confidential {
            return false;
        }
        let Ok(mut url) = url::Url::parse(redirect_uri) else {
            return false;
        };
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            _ => false,
        };
        if url.scheme() != "http" || url.port().is_none() || !loopback {
            return false;
        }
        url.set_port(None).is_ok() && registered(url.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_match_like_forgejo() {
        let public = App::public(
            "p",
            &["http://127.0.0.1/callback", "https://app.example/cb"],
        );
        assert!(public.accepts_redirect_uri("http://127.0.0.1/callback"));
        assert!(public.accepts_redirect_uri("http://127.0.0.1:49152/callback"));
        assert!(public.accepts_redirect_uri("HTTPS://APP.example/cb/"));
        assert!(!public.accepts_redirect_uri("http://127.0.0.1:49152/other"));
        assert!(!public.accepts_redirect_uri("http://localhost:49152/callback"));
        assert!(!public.accepts_redirect_uri("https://app.example/cb?x=1"));
        assert!(!public.accepts_redirect_uri(""));

        let confidential = App::confidential("c", "s", &["http://127.0.0.1/callback"]);
        assert!(confidential.accepts_redirect_uri("http://127.0.0.1/callback"));
        assert!(!confidential.accepts_redirect_uri("http://127.0.0.1:49152/callback"));

        let v6 = App::public("p6", &["http://[::1]/cb"]);
        assert!(v6.accepts_redirect_uri("http://[::1]:8000/cb"));
    }

    #[test]
    fn validate_reports_every_problem() {
        let config = Config::default()
            .with_user(User::new(1, "alice", "pw"))
            .with_user(User::new(1, "alice", "pw"))
            .with_app(App::confidential("c", "", &[]))
            .with_auto_login("bob");
        let err = config.validate().unwrap_err();
        assert!(err.contains("listed twice"), "{err}");
        assert!(err.contains("no client secret"), "{err}");
        assert!(err.contains("\"bob\""), "{err}");
        assert!(
            Config::default()
                .with_user(User::new(1, "alice", "pw"))
                .validate()
                .is_ok()
        );
    }
}
