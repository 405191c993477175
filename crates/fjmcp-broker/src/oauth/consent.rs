//! The consent step: the user approves or denies a client before the broker
//! issues it a code. This is what stops a malicious registered client from
//! riding Forgejo's silent re-approval (the MCP spec's confused-deputy rule).
//! The approval is recorded, so later logins of the same (user, client) skip it.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::OAuthState;
use super::pages::error_page;
use super::params::Params;
use super::response::ClientRedirect;
use crate::crypto::{hash_secret, mint_secret};
use crate::store::{AuditEvent, NewAuthorizationCode, NewGrant, PendingAuthorization};

/// How long the broker's authorization code stays redeemable.
const CODE_LIFETIME_SECONDS: i64 = 60;
/// Prefix of the broker's authorization codes.
const CODE_PREFIX: &str = "fjac_";

/// The consent cookie: `__Host-` (Secure, whole host) behind https; a plain
/// name on a loopback http deployment, where browsers drop Secure cookies.
fn cookie_name(state: &OAuthState) -> &'static str {
    if state.config.public_url.as_str().starts_with("https://") {
        "__Host-fjmcp-consent"
    } else {
        "fjmcp-consent"
    }
}

/// The `Set-Cookie` value binding a consent form to this browser.
pub(crate) fn cookie(state: &OAuthState, csrf: &str) -> String {
    let secure = if cookie_name(state).starts_with("__Host-") {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{}={csrf}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        cookie_name(state),
        super::authorize::PENDING_LIFETIME_SECONDS
    )
}

fn clear_cookie(state: &OAuthState) -> String {
    let secure = if cookie_name(state).starts_with("__Host-") {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}",
        cookie_name(state)
    )
}

fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Where the answer to a pending authorization goes.
pub(crate) fn reply_for(state: &OAuthState, pending: &PendingAuthorization) -> ClientRedirect {
    ClientRedirect {
        redirect_uri: pending.request.redirect_uri.clone(),
        state: pending.request.client_state.clone(),
        issuer: state.config.public_url.as_str().to_string(),
    }
}

/// `POST /oauth/consent`.
pub(crate) async fn decide(
    State(state): State<OAuthState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = match Params::parse(&body) {
        Ok(params) => params,
        Err(why) => return error_page(StatusCode::BAD_REQUEST, "Invalid consent form", &why),
    };
    let (Some(ticket), Some(decision)) = (params.get("ticket"), params.get("decision")) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Invalid consent form",
            "The form is incomplete.",
        );
    };
    let Some(csrf) = cookie_value(&headers, cookie_name(&state)) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Consent could not be verified",
            "The consent form must be answered in the browser that started the sign-in (cookies must be enabled).",
        );
    };
    let pending = match state
        .store
        .claim_pending_for_consent(&hash_secret(ticket), &hash_secret(csrf))
        .await
    {
        Ok(Some(pending)) => pending,
        Ok(None) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Consent expired",
                "This consent request has expired, was already answered, or was not made in this browser.",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "consent: store failed");
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "The broker cannot process sign-ins right now.",
            );
        }
    };
    let Some(user_id) = pending.user_id.clone() else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Consent expired",
            "This consent request is not complete.",
        );
    };
    let client_id = pending.request.client_id.clone();
    let mut response = match decision {
        "approve" => {
            let recorded = async {
                // A sign-in without a stored credential brought it here: it is
                // the user's credential now that they approve.
                if let Some((identity, credential)) = &pending.held {
                    state.credentials.save_sign_in(identity, credential).await?;
                }
                state
                    .store
                    .record_consent(&user_id, &client_id, &pending.request.scopes)
                    .await?;
                state
                    .store
                    .append_audit(&AuditEvent {
                        kind: "consent.granted".into(),
                        user_id: Some(user_id.clone()),
                        client_id: Some(client_id.clone()),
                        detail: serde_json::json!({ "scopes": pending.request.scopes }),
                    })
                    .await
            };
            match recorded.await {
                Ok(()) => issue_code(&state, &pending, &user_id)
                    .await
                    .unwrap_or_else(|r| r),
                Err(e) => {
                    tracing::error!(error = %e, "consent: store failed");
                    reply_for(&state, &pending)
                        .error("server_error", "the broker could not record the approval")
                }
            }
        }
        _ => {
            crate::metrics::metrics().oauth_event(crate::metrics::OAuthEvent::ConsentDenied);
            if let Err(e) = state
                .store
                .append_audit(&AuditEvent {
                    kind: "consent.denied".into(),
                    user_id: Some(user_id),
                    client_id: Some(client_id),
                    detail: serde_json::json!({}),
                })
                .await
            {
                tracing::warn!(error = %e, "consent: audit failed");
            }
            reply_for(&state, &pending).error("access_denied", "the user denied access")
        }
    };
    if let Ok(value) = HeaderValue::from_str(&clear_cookie(&state)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// Creates the grant and the broker's code, and redirects to the client with it.
pub(crate) async fn issue_code(
    state: &OAuthState,
    pending: &PendingAuthorization,
    user_id: &str,
) -> Result<Response, Response> {
    let reply = reply_for(state, pending);
    let request = &pending.request;
    let code = mint_secret(CODE_PREFIX);
    let issued = state
        .store
        .issue_authorization_code(&NewAuthorizationCode {
            code_hash: hash_secret(&code),
            grant: NewGrant {
                user_id: user_id.to_string(),
                client_id: request.client_id.clone(),
                scopes: request.scopes.clone(),
                resource: request.resource.clone(),
            },
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge.clone(),
            expires_at: state.clock.now() + CODE_LIFETIME_SECONDS,
        })
        .await;
    match issued {
        Ok(_) => Ok(reply.code(&code)),
        Err(e) => {
            tracing::error!(error = %e, "could not issue an authorization code");
            Err(reply.error("server_error", "the broker could not issue a code"))
        }
    }
}
