//! The double's model of Forgejo's OAuth2 provider: users, apps, grants, authorization codes,
//! tokens, browser sessions and pending consents. Nothing here knows HTTP; the routes turn
//! requests into calls on [`DoubleState`] and its errors into responses.
//!
//! The grant rules follow Forgejo: there is one grant per (user, app); each grant has a
//! counter; with `invalidate_refresh_tokens` every token issuance for the grant (code exchange
//! or refresh) bumps the counter and only a refresh token carrying the current counter is
//! accepted. Access tokens are checked only for expiry and for their grant still existing, so
//! rotation leaves older access tokens usable until they expire, and revoking the grant kills
//! them all.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::clock::{Clock, Instant};
use crate::config::{App, Config, User};
use crate::faults::FaultBook;
use crate::pkce::Challenge;
use crate::random::{self, RandomUnavailable};

/// Forgejo keeps authorization codes for ten minutes.
const CODE_LIFETIME: Duration = Duration::from_secs(600);

/// How long a login waits on the consent page before it has to start again.
const CONSENT_LIFETIME: Duration = Duration::from_secs(600);

/// OAuth error codes the double answers with (RFC 6749 §4.1.2.1 and §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    AccessDenied,
    ServerError,
}

impl ErrorCode {
    /// The wire spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::ServerError => "server_error",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth error: the code and the human-readable description Forgejo would send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub(crate) struct OAuthError {
    pub(crate) code: ErrorCode,
    pub(crate) description: String,
}

impl OAuthError {
    pub(crate) fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        OAuthError {
            code,
            description: description.into(),
        }
    }
}

impl From<RandomUnavailable> for OAuthError {
    fn from(err: RandomUnavailable) -> Self {
        tracing::error!(%err, "cannot issue a token");
        OAuthError::new(ErrorCode::ServerError, "cannot issue a token")
    }
}

/// Why an authorization request failed, and where the failure may be reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthorizeError {
    /// The client or its redirect URI cannot be trusted: show an error page, never redirect.
    Page(OAuthError),
    /// Report to the client at its verified redirect URI, echoing its `state`.
    Redirect {
        redirect_uri: String,
        state: String,
        error: OAuthError,
    },
}

impl AuthorizeError {
    fn redirect(req: &AuthorizeRequest, code: ErrorCode, description: &str) -> Self {
        AuthorizeError::Redirect {
            redirect_uri: req.redirect_uri.clone(),
            state: req.state.clone(),
            error: OAuthError::new(code, description),
        }
    }
}

/// The query parameters of an authorization request, as received (empty means absent).
#[derive(Debug, Clone, Default)]
pub(crate) struct AuthorizeParams {
    pub(crate) client_id: Option<String>,
    pub(crate) redirect_uri: Option<String>,
    pub(crate) response_type: Option<String>,
    pub(crate) state: Option<String>,
    pub(crate) scope: Option<String>,
    pub(crate) code_challenge: Option<String>,
    pub(crate) code_challenge_method: Option<String>,
}

/// An authorization request that passed validation: the client exists, the redirect URI is
/// registered for it, and the PKCE parameters are usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthorizeRequest {
    pub(crate) client_id: String,
    pub(crate) confidential: bool,
    pub(crate) redirect_uri: String,
    /// Echoed back on every redirect; Forgejo always sends the parameter, empty if absent.
    pub(crate) state: String,
    /// Recorded on a new grant; a public client asking again with another scope is refused.
    pub(crate) scope: String,
    pub(crate) challenge: Option<Challenge>,
}

/// Client credentials from the token request, after HTTP Basic and body were reconciled.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientCredentials {
    pub(crate) client_id: Option<String>,
    pub(crate) client_secret: Option<String>,
}

/// A successful token response.
#[derive(Debug, Clone)]
pub(crate) struct IssuedTokens {
    pub(crate) access_token: String,
    pub(crate) refresh_token: String,
    pub(crate) expires_in: u64,
}

/// What introspection reveals about an active token.
#[derive(Debug, Clone)]
pub(crate) struct Introspection {
    pub(crate) scope: String,
    pub(crate) username: String,
    pub(crate) subject: String,
    pub(crate) client_id: String,
    pub(crate) expires_at: u64,
}

/// Counters of the token endpoint, for tests that assert how the code under test used it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenStats {
    /// Authorization codes exchanged for tokens.
    pub code_exchanges: u64,
    /// Refresh grants served (successful refreshes).
    pub refreshes: u64,
    /// Token requests answered with an OAuth error (injected faults not included).
    pub rejected: u64,
    /// Refresh attempts with a superseded refresh token ("token was already used"), a subset
    /// of `rejected`. Non-zero usually means the code under test refreshed twice.
    pub refresh_reuse: u64,
}

/// Everything shared by the running server and the test's handle.
#[derive(Debug)]
pub(crate) struct DoubleState {
    /// `http://127.0.0.1:PORT`, without trailing slash; the issuer is this plus `/`.
    base_url: String,
    /// The double's time, which tests can advance.
    clock: Clock,
    /// Injected faults and call counters; separate from `inner` because the fault layer runs
    /// before any handler.
    faults: FaultBook,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    users: Vec<User>,
    apps: Vec<App>,
    auto_login: Option<String>,
    access_token_lifetime: Duration,
    refresh_token_lifetime: Duration,
    invalidate_refresh_tokens: bool,
    /// Issues grant ids and orders tokens by issuance in reports.
    sequence: u64,
    grants: HashMap<u64, Grant>,
    codes: HashMap<String, AuthCode>,
    access_tokens: HashMap<String, AccessToken>,
    refresh_tokens: HashMap<String, RefreshToken>,
    /// Browser sessions (cookie value → user id), so a second authorization in the same
    /// browser needs no password, as in Forgejo.
    sessions: HashMap<String, i64>,
    /// Logins waiting on the consent page (consent id → who and what).
    consents: HashMap<String, PendingConsent>,
    stats: TokenStats,
}

/// The user's authorization of one app.
#[derive(Debug)]
struct Grant {
    user_id: i64,
    client_id: String,
    scope: String,
    /// Bumped on every issuance when refresh tokens are invalidated; only a refresh token
    /// carrying the current value is accepted.
    counter: u64,
}

#[derive(Debug)]
struct AuthCode {
    grant_id: u64,
    redirect_uri: String,
    challenge: Option<Challenge>,
    expires_at: Instant,
}

#[derive(Debug)]
struct AccessToken {
    grant_id: u64,
    issued: u64,
    expires_at: Instant,
}

#[derive(Debug)]
struct RefreshToken {
    grant_id: u64,
    issued: u64,
    counter: u64,
    expires_at: Instant,
}

#[derive(Debug)]
struct PendingConsent {
    user_id: i64,
    request: AuthorizeRequest,
    expires_at: Instant,
}

impl DoubleState {
    /// A fresh provider with `config`'s users and apps, serving at `base_url`.
    pub(crate) fn new(base_url: String, config: Config) -> Self {
        DoubleState {
            base_url,
            clock: Clock::default(),
            faults: FaultBook::default(),
            inner: Mutex::new(Inner {
                users: config.users,
                apps: config.apps,
                auto_login: config.auto_login,
                access_token_lifetime: config.access_token_lifetime,
                refresh_token_lifetime: config.refresh_token_lifetime,
                invalidate_refresh_tokens: config.invalidate_refresh_tokens,
                sequence: 0,
                grants: HashMap::new(),
                codes: HashMap::new(),
                access_tokens: HashMap::new(),
                refresh_tokens: HashMap::new(),
                sessions: HashMap::new(),
                consents: HashMap::new(),
                stats: TokenStats::default(),
            }),
        }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub(crate) fn base_url(&self) -> &str {
        &self.base_url
    }

    pub(crate) fn clock(&self) -> &Clock {
        &self.clock
    }

    pub(crate) fn faults(&self) -> &FaultBook {
        &self.faults
    }

    /// The lock is never held across an await, so poisoning can only follow a bug elsewhere;
    /// carrying on keeps one failed test from cascading into others sharing the double.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // ----- users, apps and settings -------------------------------------------------------

    /// Adds a user, replacing one with the same login.
    pub(crate) fn add_user(&self, user: User) {
        let mut inner = self.lock();
        inner.users.retain(|u| u.login != user.login);
        inner.users.push(user);
    }

    /// Registers an app, replacing one with the same client id (its grants stay).
    pub(crate) fn add_app(&self, app: App) {
        let mut inner = self.lock();
        inner.apps.retain(|a| a.client_id != app.client_id);
        inner.apps.push(app);
    }

    /// One more than the highest user id in use, for users added without an id.
    pub(crate) fn unused_user_id(&self) -> i64 {
        let inner = self.lock();
        inner
            .users
            .iter()
            .map(|u| u.id)
            .max()
            .unwrap_or(0)
            .saturating_add(1)
    }

    /// Whether a user with this login exists.
    pub(crate) fn has_user(&self, login: &str) -> bool {
        self.lock().user_by_login(login).is_some()
    }

    pub(crate) fn set_auto_login(&self, login: Option<&str>) {
        self.lock().auto_login = login.map(str::to_owned);
    }

    /// The user authorization requests are signed in as without a form, if any.
    pub(crate) fn auto_login_user(&self) -> Option<i64> {
        let inner = self.lock();
        let login = inner.auto_login.as_deref()?;
        let user = inner.user_by_login(login);
        if user.is_none() {
            tracing::warn!(
                login,
                "auto-login user does not exist; showing the login form"
            );
        }
        user.map(|u| u.id)
    }

    /// Checks a login form submission. Like Forgejo, the e-mail address works in place of the
    /// login, and neither is case-sensitive.
    pub(crate) fn authenticate_user(&self, login_or_email: &str, password: &str) -> Option<i64> {
        self.lock()
            .users
            .iter()
            .find(|u| {
                (u.login.eq_ignore_ascii_case(login_or_email)
                    || u.email.eq_ignore_ascii_case(login_or_email))
                    && u.password == password
            })
            .map(|u| u.id)
    }

    pub(crate) fn user(&self, user_id: i64) -> Option<User> {
        self.lock().user_by_id(user_id).cloned()
    }

    // ----- browser sessions and consents --------------------------------------------------

    /// Starts a browser session for a signed-in user; returns the cookie value.
    pub(crate) fn create_session(&self, user_id: i64) -> Result<String, RandomUnavailable> {
        let id = random::token("")?;
        self.lock().sessions.insert(id.clone(), user_id);
        Ok(id)
    }

    /// The user signed in with this session cookie, if it is known and the user still exists.
    pub(crate) fn session_user(&self, session: &str) -> Option<i64> {
        let inner = self.lock();
        let user_id = *inner.sessions.get(session)?;
        inner.user_by_id(user_id).map(|u| u.id)
    }

    /// Parks a signed-in user's request until they answer the consent page.
    pub(crate) fn create_consent(
        &self,
        user_id: i64,
        request: AuthorizeRequest,
    ) -> Result<String, RandomUnavailable> {
        let id = random::token("")?;
        let expires_at = self.clock.now().saturating_add(CONSENT_LIFETIME);
        self.lock().consents.insert(
            id.clone(),
            PendingConsent {
                user_id,
                request,
                expires_at,
            },
        );
        Ok(id)
    }

    /// Takes a pending consent (single use); `None` if unknown, used or expired.
    pub(crate) fn take_consent(&self, id: &str) -> Option<(i64, AuthorizeRequest)> {
        let now = self.clock.now();
        let consent = self.lock().consents.remove(id)?;
        (now < consent.expires_at).then_some((consent.user_id, consent.request))
    }

    // ----- authorization endpoint ---------------------------------------------------------

    /// Validates an authorization request in Forgejo's order: client, redirect URI (both
    /// reported on a page, never by redirect), then response type and PKCE (reported to the
    /// redirect URI).
    pub(crate) fn validate_authorize(
        &self,
        params: &AuthorizeParams,
    ) -> Result<AuthorizeRequest, AuthorizeError> {
        let client_id = params.client_id.clone().unwrap_or_default();
        let app = self.lock().app(&client_id).cloned().ok_or_else(|| {
            AuthorizeError::Page(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "Client ID not registered",
            ))
        })?;
        let redirect_uri = params.redirect_uri.clone().unwrap_or_default();
        if !app.accepts_redirect_uri(&redirect_uri) || url::Url::parse(&redirect_uri).is_err() {
            return Err(AuthorizeError::Page(OAuthError::new(
                ErrorCode::InvalidRequest,
                "Unregistered Redirect URI",
            )));
        }
        let mut request = AuthorizeRequest {
            client_id,
            confidential: app.confidential,
            redirect_uri,
            state: params.state.clone().unwrap_or_default(),
            scope: params.scope.clone().unwrap_or_default(),
            challenge: None,
        };
        if params.response_type.as_deref() != Some("code") {
            return Err(AuthorizeError::redirect(
                &request,
                ErrorCode::UnsupportedResponseType,
                "Only code response type is supported.",
            ));
        }
        let challenge = params.code_challenge.clone();
        request.challenge = match (params.code_challenge_method.as_deref(), challenge) {
            (Some("S256"), Some(challenge)) => Some(Challenge::S256(challenge)),
            (Some("plain"), Some(challenge)) => Some(Challenge::Plain(challenge)),
            // Forgejo would accept this and then fail every exchange; failing now is kinder.
            (Some("S256" | "plain"), None) => {
                return Err(AuthorizeError::redirect(
                    &request,
                    ErrorCode::InvalidRequest,
                    "code_challenge is required with code_challenge_method",
                ));
            }
            (Some(_), _) => {
                return Err(AuthorizeError::redirect(
                    &request,
                    ErrorCode::InvalidRequest,
                    "unsupported code challenge method",
                ));
            }
            // Forgejo keys PKCE on the method: without one, a challenge is ignored.
            (None, _) if app.confidential => None,
            (None, _) => {
                return Err(AuthorizeError::redirect(
                    &request,
                    ErrorCode::InvalidRequest,
                    "PKCE is required for public clients",
                ));
            }
        };
        Ok(request)
    }

    /// Issues an authorization code to `user_id` for a validated request, creating the grant
    /// if the user has none for this app. A public client's request is a fresh consent, and
    /// Forgejo refuses one whose scope differs from the existing grant's.
    pub(crate) fn issue_code(
        &self,
        user_id: i64,
        request: &AuthorizeRequest,
    ) -> Result<String, AuthorizeError> {
        let code = random::token("fgj_ac_").map_err(|err| {
            let error = OAuthError::from(err);
            AuthorizeError::redirect(request, error.code, &error.description)
        })?;
        let now = self.clock.now();
        let mut inner = self.lock();
        let grant_id = match inner.grant_of(user_id, &request.client_id) {
            Some((id, grant)) => {
                if !request.confidential && grant.scope != request.scope {
                    return Err(AuthorizeError::redirect(
                        request,
                        ErrorCode::ServerError,
                        "a grant exists with different scope",
                    ));
                }
                id
            }
            None => {
                let id = inner.next_sequence();
                inner.grants.insert(
                    id,
                    Grant {
                        user_id,
                        client_id: request.client_id.clone(),
                        scope: request.scope.clone(),
                        counter: 1,
                    },
                );
                id
            }
        };
        inner.codes.insert(
            code.clone(),
            AuthCode {
                grant_id,
                redirect_uri: request.redirect_uri.clone(),
                challenge: request.challenge.clone(),
                expires_at: now.saturating_add(CODE_LIFETIME),
            },
        );
        Ok(code)
    }

    // ----- token endpoint -----------------------------------------------------------------

    /// Authenticates the client of a token request. Public clients need only their id;
    /// confidential ones also their secret.
    pub(crate) fn authenticate_client(
        &self,
        credentials: &ClientCredentials,
    ) -> Result<App, OAuthError> {
        let client_id = credentials.client_id.as_deref().unwrap_or_default();
        let app = self.lock().app(client_id).cloned().ok_or_else(|| {
            OAuthError::new(
                ErrorCode::InvalidClient,
                format!("cannot load client with client id: {client_id:?}"),
            )
        })?;
        if app.confidential {
            match credentials.client_secret.as_deref() {
                None => {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidClient,
                        "invalid empty client secret",
                    ));
                }
                Some(secret) if secret != app.client_secret => {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidClient,
                        "invalid client secret",
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(app)
    }

    /// `grant_type=authorization_code` for an authenticated client. The code is consumed only
    /// when the exchange succeeds, as in Forgejo.
    pub(crate) fn exchange_code(
        &self,
        app: &App,
        code: &str,
        redirect_uri: &str,
        code_verifier: Option<&str>,
    ) -> Result<IssuedTokens, OAuthError> {
        let access_token = random::token("fgj_at_")?;
        let refresh_token = random::token("fgj_rt_")?;
        let now = self.clock.now();
        let mut inner = self.lock();
        let not_authorized =
            || OAuthError::new(ErrorCode::UnauthorizedClient, "client is not authorized");
        let stored = inner.codes.get(code).ok_or_else(not_authorized)?;
        if now >= stored.expires_at {
            inner.codes.remove(code);
            return Err(not_authorized());
        }
        if stored.redirect_uri != redirect_uri {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "unexpected redirect URI",
            ));
        }
        if let Some(challenge) = &stored.challenge
            && !challenge.verify(code_verifier)
        {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "failed PKCE code challenge",
            ));
        }
        let grant_id = stored.grant_id;
        match inner.grants.get(&grant_id) {
            None => return Err(not_authorized()),
            Some(grant) if grant.client_id != app.client_id => {
                return Err(OAuthError::new(ErrorCode::InvalidGrant, "invalid grant"));
            }
            Some(_) => {}
        }
        inner.codes.remove(code);
        inner.stats.code_exchanges += 1;
        Ok(inner.issue_tokens(grant_id, now, access_token, refresh_token))
    }

    /// `grant_type=refresh_token` for an authenticated client.
    pub(crate) fn refresh(
        &self,
        app: &App,
        refresh_token: &str,
    ) -> Result<IssuedTokens, OAuthError> {
        let new_access = random::token("fgj_at_")?;
        let new_refresh = random::token("fgj_rt_")?;
        let now = self.clock.now();
        let mut inner = self.lock();
        // Unknown strings, expired tokens and tokens of revoked grants all mean the grant is
        // gone as far as the client can tell.
        let no_grant = || OAuthError::new(ErrorCode::InvalidGrant, "grant does not exist");
        let stored = inner
            .refresh_tokens
            .get(refresh_token)
            .ok_or_else(no_grant)?;
        let (grant_id, counter) = (stored.grant_id, stored.counter);
        if now >= stored.expires_at {
            return Err(no_grant());
        }
        let grant = inner.grants.get(&grant_id).ok_or_else(no_grant)?;
        if grant.client_id != app.client_id {
            return Err(OAuthError::new(
                ErrorCode::InvalidGrant,
                "refresh token was issued to another client",
            ));
        }
        if inner.invalidate_refresh_tokens && grant.counter != counter {
            inner.stats.refresh_reuse += 1;
            tracing::warn!(grant_id, "a refresh token was used twice");
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "token was already used",
            ));
        }
        inner.stats.refreshes += 1;
        Ok(inner.issue_tokens(grant_id, now, new_access, new_refresh))
    }

    /// Counts a token request that was answered with an OAuth error.
    pub(crate) fn record_token_rejection(&self) {
        self.lock().stats.rejected += 1;
    }

    pub(crate) fn token_stats(&self) -> TokenStats {
        self.lock().stats
    }

    // ----- resource side ------------------------------------------------------------------

    /// The user an access token currently stands for: it must be known, unexpired, and its
    /// grant must still exist.
    pub(crate) fn user_for_access_token(&self, token: &str) -> Option<User> {
        let now = self.clock.now();
        let inner = self.lock();
        let stored = inner.access_tokens.get(token)?;
        if now >= stored.expires_at {
            return None;
        }
        let grant = inner.grants.get(&stored.grant_id)?;
        inner.user_by_id(grant.user_id).cloned()
    }

    /// Introspects `token` for an authenticated confidential client (Forgejo requires HTTP
    /// Basic with a valid secret). `Err` means the client failed to authenticate; `Ok(None)`
    /// that the token is not active.
    pub(crate) fn introspect(
        &self,
        client_id: &str,
        client_secret: &str,
        token: &str,
    ) -> Result<Option<Introspection>, ()> {
        let now = self.clock.now();
        let inner = self.lock();
        match inner.app(client_id) {
            Some(app) if app.confidential && app.client_secret == client_secret => {}
            _ => return Err(()),
        }
        let live = if let Some(at) = inner.access_tokens.get(token) {
            (now < at.expires_at).then_some((at.grant_id, at.expires_at))
        } else if let Some(rt) = inner.refresh_tokens.get(token) {
            inner
                .refresh_token_live(rt, now)
                .then_some((rt.grant_id, rt.expires_at))
        } else {
            None
        };
        let Some((grant_id, expires_at)) = live else {
            return Ok(None);
        };
        let Some(grant) = inner.grants.get(&grant_id) else {
            return Ok(None);
        };
        Ok(Some(Introspection {
            scope: grant.scope.clone(),
            username: inner
                .user_by_id(grant.user_id)
                .map(|u| u.login.clone())
                .unwrap_or_default(),
            subject: grant.user_id.to_string(),
            client_id: grant.client_id.clone(),
            expires_at: expires_at.as_secs(),
        }))
    }

    // ----- test control -------------------------------------------------------------------

    /// Access tokens of `login` that the API and userinfo currently accept, oldest first.
    pub(crate) fn valid_access_tokens(&self, login: &str) -> Vec<String> {
        let now = self.clock.now();
        let inner = self.lock();
        let Some(user_id) = inner.user_by_login(login).map(|u| u.id) else {
            return Vec::new();
        };
        let mut tokens: Vec<_> = inner
            .access_tokens
            .iter()
            .filter(|(_, t)| now < t.expires_at && inner.grant_user(t.grant_id) == Some(user_id))
            .map(|(token, t)| (t.issued, token.clone()))
            .collect();
        tokens.sort();
        tokens.into_iter().map(|(_, token)| token).collect()
    }

    /// Refresh tokens of `login` that the token endpoint currently accepts, oldest first.
    pub(crate) fn valid_refresh_tokens(&self, login: &str) -> Vec<String> {
        let now = self.clock.now();
        let inner = self.lock();
        let Some(user_id) = inner.user_by_login(login).map(|u| u.id) else {
            return Vec::new();
        };
        let mut tokens: Vec<_> = inner
            .refresh_tokens
            .iter()
            .filter(|(_, t)| {
                inner.refresh_token_live(t, now) && inner.grant_user(t.grant_id) == Some(user_id)
            })
            .map(|(token, t)| (t.issued, token.clone()))
            .collect();
        tokens.sort();
        tokens.into_iter().map(|(_, token)| token).collect()
    }

    /// Deletes the grant of `login` for `client_id` with all its codes and tokens, as when the
    /// user revokes the app in Forgejo's settings. Returns whether there was such a grant.
    pub(crate) fn revoke_grant(&self, login: &str, client_id: &str) -> bool {
        let mut inner = self.lock();
        let Some(user_id) = inner.user_by_login(login).map(|u| u.id) else {
            return false;
        };
        let Some(grant_id) = inner.grant_of(user_id, client_id).map(|(id, _)| id) else {
            return false;
        };
        inner.grants.remove(&grant_id);
        inner.codes.retain(|_, c| c.grant_id != grant_id);
        inner.access_tokens.retain(|_, t| t.grant_id != grant_id);
        inner.refresh_tokens.retain(|_, t| t.grant_id != grant_id);
        true
    }
}

impl Inner {
    fn user_by_login(&self, login: &str) -> Option<&User> {
        self.users.iter().find(|u| u.login == login)
    }

    fn user_by_id(&self, id: i64) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    fn app(&self, client_id: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.client_id == client_id)
    }

    fn grant_of(&self, user_id: i64, client_id: &str) -> Option<(u64, &Grant)> {
        self.grants
            .iter()
            .find(|(_, g)| g.user_id == user_id && g.client_id == client_id)
            .map(|(id, g)| (*id, g))
    }

    fn grant_user(&self, grant_id: u64) -> Option<i64> {
        self.grants.get(&grant_id).map(|g| g.user_id)
    }

    fn next_sequence(&mut self) -> u64 {
        self.sequence += 1;
        self.sequence
    }

    /// Whether the token endpoint would accept this refresh token now.
    fn refresh_token_live(&self, token: &RefreshToken, now: Instant) -> bool {
        let Some(grant) = self.grants.get(&token.grant_id) else {
            return false;
        };
        now < token.expires_at
            && (!self.invalidate_refresh_tokens || grant.counter == token.counter)
    }

    /// Issues an access and a refresh token for a grant, bumping its counter first when
    /// refresh tokens are invalidated (Forgejo's `newAccessTokenResponse`).
    fn issue_tokens(
        &mut self,
        grant_id: u64,
        now: Instant,
        access_token: String,
        refresh_token: String,
    ) -> IssuedTokens {
        let invalidate = self.invalidate_refresh_tokens;
        let counter = match self.grants.get_mut(&grant_id) {
            Some(grant) => {
                if invalidate {
                    grant.counter += 1;
                }
                grant.counter
            }
            None => 0,
        };
        let issued = self.next_sequence();
        self.access_tokens.insert(
            access_token.clone(),
            AccessToken {
                grant_id,
                issued,
                expires_at: now.saturating_add(self.access_token_lifetime),
            },
        );
        self.refresh_tokens.insert(
            refresh_token.clone(),
            RefreshToken {
                grant_id,
                issued,
                counter,
                expires_at: now.saturating_add(self.refresh_token_lifetime),
            },
        );
        IssuedTokens {
            access_token,
            refresh_token,
            expires_in: self.access_token_lifetime.as_secs(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(invalidate: bool) -> DoubleState {
        let config = Config::default()
            .with_user(User::new(7, "alice", "pw"))
            .with_app(App::confidential("c", "s", &["https://app.example/cb"]))
            .with_invalidate_refresh_tokens(invalidate);
        DoubleState::new("http://127.0.0.1:1".to_owned(), config)
    }

    fn request() -> AuthorizeRequest {
        let params = AuthorizeParams {
            client_id: Some("c".into()),
            redirect_uri: Some("https://app.example/cb".into()),
            response_type: Some("code".into()),
            ..AuthorizeParams::default()
        };
        state(true).validate_authorize(&params).unwrap()
    }

    fn login(state: &DoubleState) -> IssuedTokens {
        let app = state
            .authenticate_client(&ClientCredentials {
                client_id: Some("c".into()),
                client_secret: Some("s".into()),
            })
            .unwrap();
        let code = state.issue_code(7, &request()).unwrap();
        state
            .exchange_code(&app, &code, "https://app.example/cb", None)
            .unwrap()
    }

    #[test]
    fn without_invalidation_old_refresh_tokens_keep_working() {
        let state = state(false);
        let app = state.lock().app("c").cloned().unwrap();
        let first = login(&state);
        let second = state.refresh(&app, &first.refresh_token).unwrap();
        state.refresh(&app, &first.refresh_token).unwrap();
        state.refresh(&app, &second.refresh_token).unwrap();
        assert_eq!(state.valid_refresh_tokens("alice").len(), 4);
    }

    #[test]
    fn with_invalidation_only_the_newest_refresh_token_works() {
        let state = state(true);
        let app = state.lock().app("c").cloned().unwrap();
        let first = login(&state);
        let second = state.refresh(&app, &first.refresh_token).unwrap();
        let err = state.refresh(&app, &first.refresh_token).unwrap_err();
        assert_eq!(err.code, ErrorCode::UnauthorizedClient);
        assert_eq!(
            state.valid_refresh_tokens("alice"),
            vec![second.refresh_token]
        );
        assert_eq!(state.token_stats().refresh_reuse, 1);
    }

    #[test]
    fn expired_codes_are_refused() {
        let state = state(true);
        let app = state.lock().app("c").cloned().unwrap();
        let code = state.issue_code(7, &request()).unwrap();
        state.clock().advance(CODE_LIFETIME);
        let err = state
            .exchange_code(&app, &code, "https://app.example/cb", None)
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::UnauthorizedClient);
    }
}
