//! OAuth error responses (RFC 6749 §5.2) for the token, revocation and
//! registration endpoints. The description is for the client; the cause of a
//! server error goes to the log only.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use crate::store::StoreError;

/// An error the client can act on, in OAuth's JSON shape.
#[derive(Debug)]
pub(crate) struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: String,
    /// Set for `invalid_client` after HTTP Basic authentication (RFC 6749 §5.2).
    www_authenticate: Option<&'static str>,
}

impl OAuthError {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: description.into(),
            www_authenticate: None,
        }
    }

    pub(crate) fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    pub(crate) fn invalid_client(description: impl Into<String>, used_basic: bool) -> Self {
        let mut error = Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description);
        if used_basic {
            error.www_authenticate = Some("Basic realm=\"fjmcp-broker\"");
        }
        error
    }

    pub(crate) fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    /// The client may not use this grant type (it did not register it).
    pub(crate) fn unauthorized_client(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", description)
    }

    pub(crate) fn unsupported_grant_type(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            description,
        )
    }

    /// A bearer token that does not authorize the request (RFC 6750 §3.1); the
    /// caller adds the `WWW-Authenticate` challenge.
    pub(crate) fn invalid_token(description: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_token", description)
    }

    /// The broker cannot serve the request right now; the client may retry.
    pub(crate) fn temporarily_unavailable(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            description,
        )
    }

    pub(crate) fn invalid_target(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_target", description)
    }

    /// A registration error (`invalid_redirect_uri`, `invalid_client_metadata`).
    pub(crate) fn registration(code: &'static str, description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, description)
    }

    /// Something failed on the broker's side; `cause` is logged, not returned.
    pub(crate) fn server_error(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "oauth endpoint failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the authorization server failed; try again later",
        )
    }
}

impl From<StoreError> for OAuthError {
    fn from(error: StoreError) -> Self {
        OAuthError::server_error(&error)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({ "error": self.code, "error_description": self.description })),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(challenge) = self.www_authenticate {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}
