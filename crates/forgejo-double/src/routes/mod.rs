//! The HTTP face of the double: Forgejo's paths, plus the `/_double/` control API. This is the
//! only module that knows axum; handlers parse the wire format, call [`DoubleState`] and turn
//! its answers and errors into Forgejo-shaped responses.

mod authorize;
mod control;
mod discovery;
mod pages;
mod resource;
mod token;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};

use crate::faults::{Endpoint, Fault};
use crate::state::{DoubleState, ErrorCode, OAuthError};

/// Shared state as handlers see it.
type Shared = Arc<DoubleState>;

/// Builds the whole application.
pub(crate) fn router(state: Shared) -> Router {
    // Each Forgejo endpoint gets the fault layer for its own `Endpoint`, so injected failures
    // and call counts are per endpoint; the login/consent posts and the control API have none.
    let faulty = |endpoint: Endpoint, route: MethodRouter<Shared>| {
        route.layer(middleware::from_fn_with_state(
            (state.clone(), endpoint),
            apply_faults,
        ))
    };
    Router::new()
        .route(
            "/.well-known/openid-configuration",
            faulty(Endpoint::Discovery, get(discovery::openid_configuration)),
        )
        .route(
            "/login/oauth/authorize",
            faulty(Endpoint::Authorize, get(authorize::authorize)),
        )
        .route("/user/login", post(authorize::login))
        .route("/login/oauth/grant", post(authorize::grant))
        .route(
            "/login/oauth/access_token",
            faulty(Endpoint::Token, post(token::access_token)),
        )
        .route(
            "/login/oauth/userinfo",
            faulty(
                Endpoint::Userinfo,
                get(resource::userinfo).post(resource::userinfo),
            ),
        )
        .route("/login/oauth/keys", get(discovery::keys))
        .route("/login/oauth/introspect", post(resource::introspect))
        .route(
            "/api/v1/user",
            faulty(Endpoint::ApiUser, get(resource::api_user)),
        )
        .route(
            "/api/v1/version",
            faulty(Endpoint::ApiVersion, get(resource::api_version)),
        )
        .nest("/_double", control::router())
        .fallback(not_found)
        .with_state(state)
}

/// Counts the call and applies the next injected fault of its endpoint, if any. Faults other
/// than `ServerErrorAfterProcessing` answer before the handler runs, so they change no state.
async fn apply_faults(
    State((state, endpoint)): State<(Shared, Endpoint)>,
    request: Request,
    next: Next,
) -> Response {
    let Some(fault) = state.faults().on_call(endpoint) else {
        return next.run(request).await;
    };
    tracing::info!(%endpoint, ?fault, "serving an injected fault");
    match fault {
        Fault::ServerError => internal_server_error(),
        Fault::InvalidGrant => oauth_error(&OAuthError::new(
            ErrorCode::InvalidGrant,
            "injected fault: invalid_grant",
        )),
        Fault::UnauthorizedClient => oauth_error(&OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "injected fault: unauthorized_client",
        )),
        Fault::Delay(delay) => {
            tokio::time::sleep(delay).await;
            next.run(request).await
        }
        Fault::ServerErrorAfterProcessing => {
            let _lost = next.run(request).await;
            internal_server_error()
        }
    }
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "Not found.\n").into_response()
}

/// What Forgejo's 500 looks like to an API client: a status and a short text.
fn internal_server_error() -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n").into_response()
}

/// An OAuth error as Forgejo's token endpoint sends it: always HTTP 400 with a JSON body.
fn oauth_error(error: &OAuthError) -> Response {
    let body = serde_json::json!({
        "error": error.code.as_str(),
        "error_description": error.description,
    });
    (
        StatusCode::BAD_REQUEST,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(body),
    )
        .into_response()
}

/// Form or query parameters. The first occurrence of a name wins, and empty values count as
/// absent, as Forgejo's form binding treats them.
#[derive(Debug, Default, Clone)]
struct Params(HashMap<String, String>);

impl Params {
    /// Parses `application/x-www-form-urlencoded` bytes (a query string or a form body).
    /// Malformed percent-escapes decode leniently, so this never fails.
    fn from_urlencoded(bytes: &[u8]) -> Self {
        let mut map = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(bytes) {
            map.entry(name.into_owned())
                .or_insert_with(|| value.into_owned());
        }
        Params(map)
    }

    /// A JSON object whose values are strings (numbers and booleans are taken as their text).
    fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|err| format!("invalid JSON body: {err}"))?;
        let serde_json::Value::Object(object) = value else {
            return Err("the JSON body must be an object".to_owned());
        };
        let mut map = HashMap::new();
        for (name, value) in object {
            let text = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Null => continue,
                _ => return Err(format!("{name} must be a string")),
            };
            map.insert(name, text);
        }
        Ok(Params(map))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn owned(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }
}

/// The token of an `Authorization: Bearer <token>` or `Authorization: token <token>` header
/// (scheme case-insensitive), the two forms Forgejo accepts for OAuth access tokens.
fn access_token_from(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    let accepted = scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token");
    (accepted && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn params_keep_the_first_value_and_drop_empty_ones() {
        let params = Params::from_urlencoded(b"a=1&a=2&b=&c=x%20y&d=%zz");
        assert_eq!(params.get("a"), Some("1"));
        assert_eq!(params.get("b"), None);
        assert_eq!(params.get("c"), Some("x y"));
        assert_eq!(params.get("d"), Some("%zz"));
    }

    #[test]
    fn json_params_accept_objects_of_scalars_only() {
        let params = Params::from_json(br#"{"a":"x","n":3,"z":null}"#).unwrap();
        assert_eq!(params.get("a"), Some("x"));
        assert_eq!(params.get("n"), Some("3"));
        assert_eq!(params.get("z"), None);
        assert!(Params::from_json(b"[1]").is_err());
        assert!(Params::from_json(br#"{"a":{}}"#).is_err());
        assert!(Params::from_json(b"{").is_err());
    }

    #[test]
    fn access_tokens_come_from_bearer_or_token_schemes() {
        let mut headers = HeaderMap::new();
        for (value, expected) in [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("token abc", Some("abc")),
            ("Basic abc", None),
            ("Bearer ", None),
            ("Bearer", None),
        ] {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            assert_eq!(access_token_from(&headers), expected, "{value}");
        }
    }
}
