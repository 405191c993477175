//! Authorization responses sent back to the client's redirect URI, always with
//! the client's `state` and the broker's `iss` (RFC 9207), success or error.

use axum::response::{IntoResponse, Redirect, Response};
use url::Url;

/// Where and how to answer one authorization request.
pub(crate) struct ClientRedirect {
    /// The verified redirect URI, exactly as the client presented it.
    pub redirect_uri: String,
    /// The client's `state`, returned unchanged.
    pub state: Option<String>,
    /// The broker's issuer identifier.
    pub issuer: String,
}

impl ClientRedirect {
    /// Redirects with `code`.
    pub(crate) fn code(&self, code: &str) -> Response {
        self.send(&[("code", code)])
    }

    /// Redirects with an OAuth error (RFC 6749 §4.1.2.1).
    pub(crate) fn error(&self, error: &str, description: &str) -> Response {
        self.send(&[("error", error), ("error_description", description)])
    }

    fn send(&self, params: &[(&str, &str)]) -> Response {
        let mut url = match Url::parse(&self.redirect_uri) {
            Ok(url) => url,
            // Verified redirect URIs always parse; refuse rather than guess.
            Err(_) => {
                return super::pages::error_page(
                    http::StatusCode::BAD_REQUEST,
                    "Invalid redirect URI",
                    "The application's redirect URI cannot be used.",
                );
            }
        };
        {
            let mut query = url.query_pairs_mut();
            for (name, value) in params {
                query.append_pair(name, value);
            }
            if let Some(state) = &self.state {
                query.append_pair("state", state);
            }
            query.append_pair("iss", &self.issuer);
        }
        let mut response = Redirect::to(url.as_str()).into_response();
        super::pages::protect(response.headers_mut());
        response
    }
}
