//! The "Connected apps" page at `/account`: a Forgejo user sees the MCP
//! clients acting as them through the broker, revokes one (its grant ends and
//! the consent is withdrawn, so it must ask again), or revokes them all.
//!
//! Sign-in goes through Forgejo exactly like an authorization (the broker's
//! own client id, PKCE, a fresh `state`), but never creates a grant or a code:
//! it ends in a broker session cookie. Forgejo sends every browser back to the
//! one registered `/oauth/callback`, so [`callback`] routes by the `state`:
//! account sign-ins carry [`STATE_PREFIX`], everything else goes to the OAuth
//! callback unchanged.
//!
//! Every POST needs the session cookie (`SameSite=Lax`, `HttpOnly`, `__Host-`
//! behind https), a CSRF token derived from it, and no foreign `Origin`;
//! a grant id of another user is answered as unknown (404).

mod pages;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use secrecy::ExposeSecret;

use crate::clock::Clock;
use crate::config::Config;
use crate::credentials::Credentials;
use crate::crypto::{constant_time_eq, csrf_token_for, hash_secret, mint_secret, pkce_pair};
use crate::forgejo::ForgejoClient;
use crate::oauth::OAuthState;
use crate::oauth::pages::protect;
use crate::shared::Shared;
use crate::store::{AuditEvent, GrantSelector, Store, UserGrantRevocation};
use pages::{Notice, error_page};

/// Starts the `state` of an account sign-in. `.` is not in the base64url
/// alphabet of minted secrets, so no authorization's state can start with it.
const STATE_PREFIX: &str = "acct.";
/// How long a sign-in at Forgejo may take.
const LOGIN_LIFETIME_SECONDS: i64 = 600;
/// How long an account-page session lasts (not extended by use).
const SESSION_LIFETIME_SECONDS: i64 = 3600;
/// Prefix of session secrets, so a leaked one says what it is.
const SESSION_PREFIX: &str = "fjas_";

/// What the account page's handlers need.
pub(crate) type AccountState = Shared<AccountShared>;

/// The contents of an [`AccountState`].
#[derive(Debug)]
pub(crate) struct AccountShared {
    pub(crate) config: Arc<Config>,
    pub(crate) store: Store,
    /// "Now" for sign-in and session expiry.
    pub(crate) clock: Arc<dyn Clock>,
    /// The broker's OAuth client of Forgejo (the same one authorizations use).
    pub(crate) forgejo: ForgejoClient,
    /// Saves the new Forgejo credential a sign-in brings, so the user's child follows it.
    pub(crate) credentials: Credentials,
}

/// The two cookies: the session, and the one binding a sign-in in progress to
/// the browser that started it (so nobody can finish their own sign-in in a
/// victim's browser). `__Host-` (Secure, whole host) behind https; plain names
/// on a loopback http deployment, where browsers drop Secure cookies.
#[derive(Debug, Clone, Copy)]
enum Cookie {
    Session,
    Login,
}

impl AccountShared {
    fn https(&self) -> bool {
        self.config.public_url.as_str().starts_with("https://")
    }
}

impl Cookie {
    fn name(self, https: bool) -> &'static str {
        match (self, https) {
            (Cookie::Session, true) => "__Host-fjmcp-account",
            (Cookie::Session, false) => "fjmcp-account",
            (Cookie::Login, true) => "__Host-fjmcp-account-login",
            (Cookie::Login, false) => "fjmcp-account-login",
        }
    }

    /// The `Set-Cookie` value; `None` clears the cookie.
    fn set(self, state: &AccountState, value: Option<&str>) -> String {
        self.set_on(state.https(), value)
    }

    fn set_on(self, https: bool, value: Option<&str>) -> String {
        let name = self.name(https);
        let secure = if name.starts_with("__Host-") {
            "; Secure"
        } else {
            ""
        };
        let max_age = match (value, self) {
            (None, _) => 0,
            (Some(_), Cookie::Session) => SESSION_LIFETIME_SECONDS,
            (Some(_), Cookie::Login) => LOGIN_LIFETIME_SECONDS,
        };
        format!(
            "{name}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
            value.unwrap_or("")
        )
    }

    fn read<'h>(self, state: &AccountState, headers: &'h HeaderMap) -> Option<&'h str> {
        let name = self.name(state.https());
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, v)| *n == name && !v.is_empty())
            .map(|(_, v)| v)
    }
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// A 303 to `path` on this broker, never cached.
fn see_other(path: &str) -> Response {
    let mut response = Redirect::to(path).into_response();
    protect(response.headers_mut());
    response
}

fn unavailable(e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "account page: store failed");
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "The broker cannot show your connected apps right now. Try again in a moment.",
    )
}

/// `GET /account`: the page for a signed-in browser, otherwise off to Forgejo.
pub(crate) async fn page(
    State(state): State<AccountState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(secret) = Cookie::Session.read(&state, &headers) {
        match state.store.account_session(&hash_secret(secret)).await {
            Ok(Some(session)) => {
                let notice = Notice::from_query(query.as_deref());
                return match state.store.connected_apps(&session.user_id).await {
                    Ok(apps) => pages::apps_page(&pages::AppsView {
                        login: &session.login,
                        forgejo_url: &state.config.forgejo.url,
                        apps: &apps,
                        csrf: &csrf_token_for(secret),
                        notice,
                    }),
                    Err(e) => unavailable(&e),
                };
            }
            Ok(None) => {}
            Err(e) => return unavailable(&e),
        }
    }
    sign_in(&state).await
}

/// Sends the browser to Forgejo to sign in, remembering the attempt.
async fn sign_in(state: &AccountState) -> Response {
    let upstream_state = mint_secret(STATE_PREFIX);
    let browser = mint_secret("");
    let (verifier, challenge) = pkce_pair();
    let callback = state.config.public_url.join("/oauth/callback");
    let forgejo_url = match state
        .forgejo
        .authorize_url(&callback, &upstream_state, &challenge)
        .await
    {
        Ok(url) => url,
        Err(e) => {
            tracing::error!(error = %e, "account page: Forgejo's endpoints are unavailable");
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Forgejo cannot be reached",
                "Signing in needs Forgejo, which does not answer right now. Try again in a moment.",
            );
        }
    };
    if let Err(e) = state
        .store
        .create_account_login(
            &hash_secret(&upstream_state),
            &hash_secret(&browser),
            &verifier,
            state.clock.now() + LOGIN_LIFETIME_SECONDS,
        )
        .await
    {
        return unavailable(&e);
    }
    let response = Redirect::to(&forgejo_url).into_response();
    let mut response = with_cookie(response, &Cookie::Login.set(state, Some(&browser)));
    protect(response.headers_mut());
    response
}

/// `GET /oauth/callback`: account sign-ins here, authorizations to the OAuth
/// server's callback.
pub(crate) async fn callback(
    State(account): State<AccountState>,
    State(oauth): State<OAuthState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = url::form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes());
    let is_account = params
        .filter(|(name, _)| name == "state")
        .any(|(_, value)| value.starts_with(STATE_PREFIX));
    if !is_account {
        return crate::oauth::callback(State(oauth), RawQuery(query)).await;
    }
    let response = finish_sign_in(&account, &headers, query.as_deref().unwrap_or_default()).await;
    // Whatever happened, the sign-in attempt is over.
    with_cookie(response, &Cookie::Login.set(&account, None))
}

async fn finish_sign_in(state: &AccountState, headers: &HeaderMap, query: &str) -> Response {
    let mut upstream_state = None;
    let mut code = None;
    let mut error = None;
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let slot = match name.as_ref() {
            "state" => &mut upstream_state,
            "code" => &mut code,
            "error" => &mut error,
            _ => continue,
        };
        if slot.replace(value.into_owned()).is_some() {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Invalid sign-in response",
                &format!("The response from Forgejo repeats `{name}`."),
            );
        }
    }
    let Some(browser) = Cookie::Login.read(state, headers) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Sign-in could not be verified",
            "The sign-in must finish in the browser that started it, with cookies enabled.",
        );
    };
    let verifier = match state
        .store
        .claim_account_login(
            &hash_secret(upstream_state.as_deref().unwrap_or_default()),
            &hash_secret(browser),
        )
        .await
    {
        Ok(Some(verifier)) => verifier,
        Ok(None) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Sign-in expired",
                "This sign-in has expired, was already used, or was started in another browser.",
            );
        }
        Err(e) => return unavailable(&e),
    };
    if let Some(error) = error {
        tracing::info!(error, "Forgejo returned an error to an account sign-in");
        return error_page(
            StatusCode::FORBIDDEN,
            "Not signed in",
            "Forgejo did not sign you in.",
        );
    }
    let Some(code) = code else {
        return error_page(
            StatusCode::BAD_GATEWAY,
            "Sign-in failed",
            "Forgejo's response had no code.",
        );
    };
    let upstream_failure = |what: &str, e: &crate::forgejo::ForgejoError| {
        tracing::warn!(error = %e, "account sign-in: Forgejo {what} failed");
        if e.is_refusal() {
            error_page(
                StatusCode::FORBIDDEN,
                "Not signed in",
                "Forgejo refused the sign-in.",
            )
        } else {
            error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Forgejo cannot be reached",
                "Signing in needs Forgejo, which does not answer right now. Try again in a moment.",
            )
        }
    };
    let callback = state.config.public_url.join("/oauth/callback");
    let tokens = match state
        .forgejo
        .exchange_code(&code, verifier.expose_secret(), &callback)
        .await
    {
        Ok(tokens) => tokens,
        Err(e) => return upstream_failure("code exchange", &e),
    };
    let identity = match state.forgejo.userinfo(&tokens.access_token).await {
        Ok(identity) => identity,
        Err(e) => return upstream_failure("userinfo", &e),
    };
    let credential_dead = match state.store.credential_generation(&identity.id).await {
        Ok(Some((_, dead))) => dead,
        Ok(None) => {
            // Nobody connected an app as this user: nothing to show, and no
            // reason to keep their Forgejo tokens or a session.
            tracing::info!(user_id = %identity.id, "account sign-in of a user without connections");
            return pages::nothing_connected_page(&identity.login, &state.config.forgejo.url);
        }
        Err(e) => return unavailable(&e),
    };
    // Forgejo has just issued new tokens for the user's one grant and made the
    // stored refresh token unusable: a working credential is replaced (and the
    // user's child follows it), as a sign-in for an authorization does. A dead
    // one stays dead: signing in here approves nothing.
    if !credential_dead {
        let credential = tokens.into_credential(state.clock.now());
        if let Err(e) = state.credentials.save_sign_in(&identity, &credential).await {
            return unavailable(&e);
        }
    }
    let secret = mint_secret(SESSION_PREFIX);
    let created = state
        .store
        .create_account_session(
            &hash_secret(&secret),
            &identity.id,
            state.clock.now() + SESSION_LIFETIME_SECONDS,
        )
        .await;
    match created {
        Ok(true) => {}
        Ok(false) => {
            return unavailable(&"the user row disappeared during the sign-in");
        }
        Err(e) => return unavailable(&e),
    }
    audit(
        state,
        "account.login",
        &identity.id,
        None,
        serde_json::json!({ "login": identity.login }),
    )
    .await;
    tracing::info!(user_id = %identity.id, login = %identity.login, "signed in to the account page");
    with_cookie(
        see_other("/account"),
        &Cookie::Session.set(state, Some(&secret)),
    )
}

async fn audit(
    state: &AccountState,
    kind: &str,
    user_id: &str,
    client_id: Option<&str>,
    detail: serde_json::Value,
) {
    let event = AuditEvent {
        kind: kind.into(),
        user_id: Some(user_id.to_string()),
        client_id: client_id.map(str::to_string),
        detail,
    };
    if let Err(e) = state.store.append_audit(&event).await {
        tracing::warn!(error = %e, kind, "account page: audit failed");
    }
}

/// A POST the page's own forms sent: same origin, a live session, its CSRF token.
struct Authorized {
    user_id: String,
    /// The session cookie's value (for signing out).
    secret: String,
    params: Vec<(String, String)>,
}

impl Authorized {
    fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn forbidden(message: &str) -> Response {
    error_page(StatusCode::FORBIDDEN, "Request refused", message)
}

/// Checks a POST before it may change anything; the answer to a refused one.
async fn authorize_post(
    state: &AccountState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Authorized, Response> {
    // A browser names where a form came from: another site's form is refused
    // before the cookie is even looked at.
    let origins: Vec<&[u8]> = headers
        .get_all(header::ORIGIN)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    let origin = origins.first().map(|o| String::from_utf8_lossy(o));
    // Sec-Fetch-Site is set by the browser itself (no page can forge it);
    // browsers that send it also send `Origin: null` for a same-origin form
    // from a page whose referrer policy hides its origin.
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    let same_origin_fetch = fetch_site == Some("same-origin");
    let cross_site = fetch_site.is_some_and(|site| !matches!(site, "same-origin" | "none"))
        || match origins.as_slice() {
            [] => false,
            [one] => {
                *one != state.config.public_url.origin().as_bytes()
                    && !(*one == b"null" && same_origin_fetch)
            }
            // Browsers send one; several cannot be told apart safely.
            _ => true,
        };
    if cross_site {
        tracing::warn!(
            ?origin,
            ?fetch_site,
            "account page: cross-site POST refused"
        );
        return Err(forbidden(
            "This form can only be sent from the broker's own page.",
        ));
    }
    let Some(secret) = Cookie::Session.read(state, headers) else {
        return Err(forbidden(
            "You are not signed in, or your session has ended. Open the page again to sign in.",
        ));
    };
    let session = match state.store.account_session(&hash_secret(secret)).await {
        Ok(Some(session)) => session,
        Ok(None) => {
            return Err(forbidden(
                "Your session has ended. Open the page again to sign in.",
            ));
        }
        Err(e) => return Err(unavailable(&e)),
    };
    let params: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    let sent: Vec<&str> = params
        .iter()
        .filter(|(n, _)| n == "csrf")
        .map(|(_, v)| v.as_str())
        .collect();
    let expected = csrf_token_for(secret);
    let csrf_ok =
        matches!(sent.as_slice(), [one] if constant_time_eq(one.as_bytes(), expected.as_bytes()));
    if !csrf_ok {
        tracing::warn!(user_id = %session.user_id, "account page: POST without its CSRF token refused");
        return Err(forbidden(
            "This form is out of date. Open the page again and retry.",
        ));
    }
    Ok(Authorized {
        user_id: session.user_id,
        secret: secret.to_string(),
        params,
    })
}

/// `POST /account/revoke`: ends one of the user's grants and withdraws the consent.
pub(crate) async fn revoke(
    State(state): State<AccountState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let post = match authorize_post(&state, &headers, &body).await {
        Ok(post) => post,
        Err(refused) => return refused,
    };
    let Some(grant_id) = post.get("grant") else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "The form names no app.",
        );
    };
    match state.store.revoke_user_grant(&post.user_id, grant_id).await {
        Ok(UserGrantRevocation::Revoked { client_id }) => {
            audit(
                &state,
                "grant.revoked",
                &post.user_id,
                Some(&client_id),
                serde_json::json!({ "grant_id": grant_id, "by": "user", "consent_withdrawn": true }),
            )
            .await;
            see_other("/account?done=revoked")
        }
        Ok(UserGrantRevocation::AlreadyRevoked { .. }) => see_other("/account?done=revoked"),
        Ok(UserGrantRevocation::NotFound) => {
            tracing::warn!(user_id = %post.user_id, "account page: revocation of an unknown or foreign grant");
            error_page(
                StatusCode::NOT_FOUND,
                "No such app",
                "None of your connected apps has this id.",
            )
        }
        Err(e) => unavailable(&e),
    }
}

/// `POST /account/revoke-all`: "sign out everywhere": every grant of the user
/// ends and every consent is withdrawn.
pub(crate) async fn revoke_all(
    State(state): State<AccountState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let post = match authorize_post(&state, &headers, &body).await {
        Ok(post) => post,
        Err(refused) => return refused,
    };
    match state
        .store
        .revoke_grants(&GrantSelector::User(post.user_id.clone()))
        .await
    {
        Ok(revoked) => {
            for grant in revoked.unwrap_or_default() {
                audit(
                    &state,
                    "grant.revoked",
                    &post.user_id,
                    Some(&grant.grant.client_id),
                    serde_json::json!({ "grant_id": grant.id, "by": "user", "consent_withdrawn": true, "all": true }),
                )
                .await;
            }
            see_other("/account?done=revoked-all")
        }
        Err(e) => unavailable(&e),
    }
}

/// `POST /account/sign-out`: ends this browser's account-page session.
pub(crate) async fn sign_out(
    State(state): State<AccountState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let post = match authorize_post(&state, &headers, &body).await {
        Ok(post) => post,
        Err(refused) => return refused,
    };
    if let Err(e) = state
        .store
        .end_account_session(&hash_secret(&post.secret))
        .await
    {
        return unavailable(&e);
    }
    with_cookie(pages::signed_out_page(), &Cookie::Session.set(&state, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_states_never_look_like_authorization_states() {
        // Authorizations mint their upstream state without a prefix: base64url only.
        for _ in 0..100 {
            assert!(!mint_secret("").contains('.'));
        }
        assert!(mint_secret(STATE_PREFIX).starts_with(STATE_PREFIX));
    }

    #[test]
    fn cookies_are_host_only_and_secure_behind_https_and_lax_always() {
        assert_eq!(
            Cookie::Session.set_on(true, Some("v")),
            "__Host-fjmcp-account=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=3600; Secure"
        );
        assert_eq!(
            Cookie::Login.set_on(true, None),
            "__Host-fjmcp-account-login=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure"
        );
        // Loopback http: browsers drop Secure cookies there, so no prefix, no Secure.
        assert_eq!(
            Cookie::Session.set_on(false, Some("v")),
            "fjmcp-account=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=3600"
        );
        assert_eq!(
            Cookie::Login.set_on(false, Some("b")),
            "fjmcp-account-login=b; Path=/; HttpOnly; SameSite=Lax; Max-Age=600"
        );
    }
}
