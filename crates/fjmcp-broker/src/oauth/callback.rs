//! `GET /oauth/callback`: Forgejo sends the browser back here. Exchange its
//! code, learn who the user is, store their Forgejo tokens, and either issue the
//! broker's code (client already approved by this user) or ask for consent.

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use super::OAuthState;
use super::consent::{issue_code, reply_for};
use super::pages::{ClientIdentity, ConsentView, consent_page, error_page};
use super::params::Params;
use super::redirect_uri;
use crate::crypto::{hash_secret, mint_secret};
use crate::store::{AuditEvent, ClientKind, PendingAuthorization};

pub(crate) async fn callback(
    State(state): State<OAuthState>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = match Params::parse(query.unwrap_or_default().as_bytes()) {
        Ok(params) => params,
        Err(why) => return error_page(StatusCode::BAD_REQUEST, "Invalid sign-in response", &why),
    };
    let Some(upstream_state) = params.get("state") else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Invalid sign-in response",
            "The response from Forgejo has no state.",
        );
    };
    let state_hash = hash_secret(upstream_state);
    let pending = match state.store.claim_pending_for_callback(&state_hash).await {
        Ok(Some(pending)) => pending,
        Ok(None) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Sign-in expired",
                "This sign-in has expired or was already used.",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "callback: store failed");
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "The broker cannot process sign-ins right now.",
            );
        }
    };
    match complete(&state, &params, &pending).await {
        Ok(response) => response,
        Err(response) => {
            // Whatever failed, this state must never be usable again.
            if let Err(e) = state.store.finish_pending(&state_hash).await {
                tracing::error!(error = %e, "callback: could not close the pending authorization");
            }
            response
        }
    }
}

async fn complete(
    state: &OAuthState,
    params: &Params,
    pending: &PendingAuthorization,
) -> Result<Response, Response> {
    let reply = reply_for(state, pending);
    let request = &pending.request;
    if let Some(error) = params.get("error") {
        tracing::info!(error, client_id = %request.client_id, "Forgejo returned an error to the callback");
        return Err(if error == "access_denied" {
            reply.error("access_denied", "the user declined at Forgejo")
        } else {
            reply.error("server_error", "Forgejo could not complete the sign-in")
        });
    }
    let Some(code) = params.get("code") else {
        return Err(reply.error("server_error", "Forgejo's response had no code"));
    };
    let callback = state.config.public_url.join("/oauth/callback");
    let upstream_failure = |what: &str, e: &crate::forgejo::ForgejoError| {
        tracing::warn!(error = %e, "callback: Forgejo {what} failed");
        if e.is_refusal() {
            reply.error("access_denied", "Forgejo refused the sign-in")
        } else {
            reply.error("temporarily_unavailable", "Forgejo could not be reached")
        }
    };
    use secrecy::ExposeSecret;
    let tokens = state
        .forgejo
        .exchange_code(code, request.upstream_verifier.expose_secret(), &callback)
        .await
        .map_err(|e| upstream_failure("code exchange", &e))?;
    let identity = state
        .forgejo
        .userinfo(&tokens.access_token)
        .await
        .map_err(|e| upstream_failure("userinfo", &e))?;
    tracing::info!(user_id = %identity.id, login = %identity.login, client_id = %request.client_id, "user signed in at Forgejo");
    let credential = tokens.into_credential(state.clock.now());
    let server_error = |e: crate::store::StoreError| {
        tracing::error!(error = %e, "callback: store failed");
        reply.error("server_error", "the broker could not record the sign-in")
    };
    let approved = state
        .store
        .consent(&identity.id, &request.client_id)
        .await
        .map_err(server_error)?;
    // A user with a working credential has it replaced now, whatever they
    // decide about this client: Forgejo has just made its refresh token
    // unusable. Anyone else gets nothing stored unless they approve: the
    // sign-in's tokens wait with the pending authorization.
    let has_credential = matches!(
        state
            .store
            .credential_generation(&identity.id)
            .await
            .map_err(server_error)?,
        Some((_, false))
    );
    let stored = has_credential || approved.is_some();
    if stored {
        state
            .credentials
            .save_sign_in(&identity, &credential)
            .await
            .map_err(server_error)?;
    }
    state
        .store
        .append_audit(&AuditEvent {
            kind: "user.login".into(),
            user_id: Some(identity.id.clone()),
            client_id: Some(request.client_id.clone()),
            detail: serde_json::json!({ "login": identity.login, "credential_stored": stored }),
        })
        .await
        .map_err(server_error)?;
    // A code for a loopback or private-use redirect goes to whichever local program
    // listens there: an earlier approval is not reused for it, the user is asked again.
    let owner_unprovable = redirect_uri::stays_on_this_computer(&request.redirect_uri);
    if approved.is_some() && !owner_unprovable {
        state
            .store
            .finish_pending(&request.state_hash)
            .await
            .map_err(server_error)?;
        return issue_code(state, pending, &identity.id).await;
    }

    let client = state
        .store
        .client(&request.client_id)
        .await
        .map_err(server_error)?
        .ok_or_else(|| reply.error("server_error", "the application is no longer registered"))?;
    let ticket = mint_secret("");
    let csrf = mint_secret("");
    state
        .store
        .await_consent(
            &request.state_hash,
            &identity,
            (!stored).then_some(&credential),
            &hash_secret(&ticket),
            &hash_secret(&csrf),
        )
        .await
        .map_err(server_error)?;
    let document_host = url::Url::parse(&client.client.client_id)
        .ok()
        .and_then(|url| url.host_str().map(str::to_string));
    let shown = match (client.client.kind, &document_host) {
        (ClientKind::MetadataDocument, Some(host)) => ClientIdentity::Verified {
            name: client.client.client_name.as_deref().unwrap_or(host),
            host,
        },
        _ => ClientIdentity::SelfDeclared(client.client.client_name.as_deref()),
    };
    let mut page = consent_page(&ConsentView {
        client: shown,
        client_id: &client.client.client_id,
        redirect_host: &redirect_uri::shown_host(&request.redirect_uri),
        local_redirect: owner_unprovable,
        user_login: &identity.login,
        forgejo_url: &state.config.forgejo.url,
        ticket: &ticket,
    });
    let cookie = super::consent::cookie(state, &csrf);
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        page.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(page.into_response())
}
