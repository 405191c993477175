//! The token endpoint: request parsing and client authentication as Forgejo does them.
//! Every error is HTTP 400 with `{"error", "error_description"}`, as in Forgejo.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{Params, Shared, oauth_error};
use crate::state::{ClientCredentials, ErrorCode, IssuedTokens, OAuthError};

/// `POST /login/oauth/access_token`.
pub(super) async fn access_token(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match handle(&state, &headers, &body) {
        Ok(tokens) => {
            let body = serde_json::json!({
                "access_token": tokens.access_token,
                "token_type": "bearer",
                "expires_in": tokens.expires_in,
                "refresh_token": tokens.refresh_token,
            });
            ([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
        }
        Err(err) => {
            state.record_token_rejection();
            tracing::info!(%err, "refused a token request");
            oauth_error(&err)
        }
    }
}

fn handle(state: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<IssuedTokens, OAuthError> {
    let params = parse_body(headers, body)?;
    let credentials = client_credentials(headers, &params)?;
    let grant_type = params
        .get("grant_type")
        .ok_or_else(|| missing("grant_type"))?;
    if !matches!(grant_type, "authorization_code" | "refresh_token") {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "Only refresh_token or authorization_code grant type is supported",
        ));
    }
    let app = state.authenticate_client(&credentials)?;
    if grant_type == "authorization_code" {
        let code = params.get("code").ok_or_else(|| missing("code"))?;
        // Forgejo tolerates a missing redirect_uri; RFC 6749 §4.1.3 requires it when the
        // authorization request had one (always, with Forgejo), so the double insists.
        let redirect_uri = params
            .get("redirect_uri")
            .ok_or_else(|| missing("redirect_uri"))?;
        state.exchange_code(&app, code, redirect_uri, params.get("code_verifier"))
    } else {
        let refresh_token = params
            .get("refresh_token")
            .ok_or_else(|| missing("refresh_token"))?;
        state.refresh(&app, refresh_token)
    }
}

fn missing(name: &str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRequest, format!("missing {name}"))
}

/// Forgejo binds the token request from a form or, with a JSON content type, from JSON.
fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Params, OAuthError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if json {
        Params::from_json(body).map_err(|e| OAuthError::new(ErrorCode::InvalidRequest, e))
    } else {
        Ok(Params::from_urlencoded(body))
    }
}

/// Client id and secret from the body (client_secret_post) and/or HTTP Basic
/// (client_secret_basic). When both carry a value they must agree. The Basic credentials are
/// not form-decoded, as in Forgejo (its ids and secrets never need escaping).
fn client_credentials(
    headers: &HeaderMap,
    params: &Params,
) -> Result<ClientCredentials, OAuthError> {
    let mut credentials = ClientCredentials {
        client_id: params.owned("client_id"),
        client_secret: params.owned("client_secret"),
    };
    let Some((id, secret)) = basic_auth(headers)? else {
        return Ok(credentials);
    };
    for (field, from_body, from_header) in [
        ("client_id", &mut credentials.client_id, id),
        ("client_secret", &mut credentials.client_secret, secret),
    ] {
        match from_body {
            Some(value) if *value != from_header => {
                return Err(OAuthError::new(
                    ErrorCode::InvalidRequest,
                    format!("{field} in request body inconsistent with Authorization header"),
                ));
            }
            Some(_) => {}
            None if from_header.is_empty() => {}
            None => *from_body = Some(from_header),
        }
    }
    Ok(credentials)
}

/// `Authorization: Basic base64(id:secret)`, if the request has a Basic header at all.
pub(super) fn basic_auth(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().unwrap_or_default();
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let unparsable =
        || OAuthError::new(ErrorCode::InvalidRequest, "cannot parse basic auth header");
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| unparsable())?;
    let decoded = String::from_utf8(decoded).map_err(|_| unparsable())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(unparsable)?;
    Ok(Some((id.to_owned(), secret.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn basic(id: &str, secret: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&value).unwrap(),
        );
        headers
    }

    #[test]
    fn basic_and_body_credentials_merge_when_they_agree() {
        let params = Params::from_urlencoded(b"client_id=c");
        let credentials = client_credentials(&basic("c", "s"), &params).unwrap();
        assert_eq!(credentials.client_id.as_deref(), Some("c"));
        assert_eq!(credentials.client_secret.as_deref(), Some("s"));

        let params = Params::from_urlencoded(b"client_id=c&client_secret=other");
        let err = client_credentials(&basic("c", "s"), &params).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn malformed_basic_is_invalid_request() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        let err = client_credentials(&headers, &Params::default()).unwrap_err();
        assert_eq!(err.description, "cannot parse basic auth header");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {}", STANDARD.encode("nocolon"))).unwrap(),
        );
        assert!(client_credentials(&headers, &Params::default()).is_err());
    }
}
