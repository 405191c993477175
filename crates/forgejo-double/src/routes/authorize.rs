//! The authorization endpoint and the browser steps behind it: sign-in form, consent page,
//! and the redirect back to the client with a code or an error.
//!
//! Flow: `GET /login/oauth/authorize` validates the request, then signs the user in by
//! auto-login, by session cookie, or by showing the form (posted to `/user/login`).
//! Confidential clients get their code right after sign-in; public clients see a consent page
//! (posted to `/login/oauth/grant`). Redirects use 303 See Other, as Forgejo does.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::{Params, Shared, internal_server_error, pages};
use crate::state::{AuthorizeError, AuthorizeParams, AuthorizeRequest, ErrorCode, OAuthError};

/// Forgejo's session cookie name (inherited from Gitea).
const SESSION_COOKIE: &str = "i_like_gitea";

/// `GET /login/oauth/authorize`.
pub(super) async fn authorize(
    State(state): State<Shared>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::from_urlencoded(query.unwrap_or_default().as_bytes());
    let request = match state.validate_authorize(&authorize_params(&params)) {
        Ok(request) => request,
        Err(err) => return reject(&err),
    };
    if let Some(user_id) = state.auto_login_user() {
        return issue(&state, user_id, &request);
    }
    if let Some(user_id) = session_cookie(&headers).and_then(|s| state.session_user(s)) {
        return signed_in(&state, user_id, request, None);
    }
    html(StatusCode::OK, pages::login(&carried(&params), "", None))
}

/// `POST /user/login`: the sign-in form, which also carries the authorization request.
pub(super) async fn login(State(state): State<Shared>, body: Bytes) -> Response {
    let params = Params::from_urlencoded(&body);
    // The hidden fields came from the browser, so they are validated again.
    let request = match state.validate_authorize(&authorize_params(&params)) {
        Ok(request) => request,
        Err(err) => return reject(&err),
    };
    if params.get("action") == Some("cancel") {
        return redirect_with_error(
            &request.redirect_uri,
            &request.state,
            &OAuthError::new(ErrorCode::AccessDenied, "the user cancelled the sign-in"),
        );
    }
    let user_name = params.get("user_name").unwrap_or_default();
    let password = params.get("password").unwrap_or_default();
    let Some(user_id) = state.authenticate_user(user_name, password) else {
        // Forgejo re-renders the form with a flash message and status 200.
        let page = pages::login(
            &carried(&params),
            user_name,
            Some("Username or password is incorrect."),
        );
        return html(StatusCode::OK, page);
    };
    match state.create_session(user_id) {
        Ok(session) => signed_in(&state, user_id, request, Some(session)),
        Err(err) => {
            tracing::error!(%err, "cannot start a session");
            internal_server_error()
        }
    }
}

/// `POST /login/oauth/grant`: the consent page's Approve (`granted=true`) or Cancel.
pub(super) async fn grant(State(state): State<Shared>, body: Bytes) -> Response {
    let params = Params::from_urlencoded(&body);
    let Some((user_id, request)) = params
        .get("consent_id")
        .and_then(|id| state.take_consent(id))
    else {
        let error = OAuthError::new(
            ErrorCode::InvalidRequest,
            "unknown or expired authorization request; start again",
        );
        return html(StatusCode::BAD_REQUEST, pages::error(&error));
    };
    if params.get("granted") != Some("true") {
        return redirect_with_error(
            &request.redirect_uri,
            &request.state,
            &OAuthError::new(ErrorCode::AccessDenied, "the request is denied"),
        );
    }
    issue(&state, user_id, &request)
}

/// After sign-in: a code for confidential clients, the consent page for public ones.
fn signed_in(
    state: &Shared,
    user_id: i64,
    request: AuthorizeRequest,
    new_session: Option<String>,
) -> Response {
    let mut response = if request.confidential {
        issue(state, user_id, &request)
    } else {
        let login = state.user(user_id).map(|u| u.login).unwrap_or_default();
        match state.create_consent(user_id, request.clone()) {
            Ok(id) => html(
                StatusCode::OK,
                pages::consent(&id, &request.client_id, &login, &request.scope),
            ),
            Err(err) => {
                tracing::error!(%err, "cannot park the consent");
                internal_server_error()
            }
        }
    };
    if let Some(session) = new_session {
        let cookie = format!("{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Lax");
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// Issues a code and sends the browser back to the client with it.
fn issue(state: &Shared, user_id: i64, request: &AuthorizeRequest) -> Response {
    match state.issue_code(user_id, request) {
        Ok(code) => {
            tracing::info!(client_id = %request.client_id, user_id, "issued an authorization code");
            redirect_to(
                &request.redirect_uri,
                &[("code", &code), ("state", &request.state)],
            )
        }
        Err(err) => reject(&err),
    }
}

/// Reports an authorization error where it may be reported.
fn reject(err: &AuthorizeError) -> Response {
    match err {
        AuthorizeError::Page(error) => html(StatusCode::BAD_REQUEST, pages::error(error)),
        AuthorizeError::Redirect {
            redirect_uri,
            state,
            error,
        } => redirect_with_error(redirect_uri, state, error),
    }
}

fn redirect_with_error(redirect_uri: &str, state: &str, error: &OAuthError) -> Response {
    redirect_to(
        redirect_uri,
        &[
            ("error", error.code.as_str()),
            ("error_description", &error.description),
            ("state", state),
        ],
    )
}

/// 303 to `redirect_uri` with `pairs` added to its query (an existing query is kept).
fn redirect_to(redirect_uri: &str, pairs: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        // Unreachable in practice: validation parsed the same string.
        let error = OAuthError::new(ErrorCode::InvalidRequest, "Unregistered Redirect URI");
        return html(StatusCode::BAD_REQUEST, pages::error(&error));
    };
    url.query_pairs_mut().extend_pairs(pairs);
    Redirect::to(url.as_str()).into_response()
}

fn authorize_params(params: &Params) -> AuthorizeParams {
    AuthorizeParams {
        client_id: params.owned("client_id"),
        redirect_uri: params.owned("redirect_uri"),
        response_type: params.owned("response_type"),
        state: params.owned("state"),
        scope: params.owned("scope"),
        code_challenge: params.owned("code_challenge"),
        code_challenge_method: params.owned("code_challenge_method"),
    }
}

/// The authorization parameters present in `params`, for the login form's hidden fields.
fn carried(params: &Params) -> Vec<(&'static str, &str)> {
    pages::CARRIED_PARAMS
        .iter()
        .filter_map(|name| params.get(name).map(|value| (*name, value)))
        .collect()
}

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

fn html(status: StatusCode, body: String) -> Response {
    (status, Html(body)).into_response()
}
