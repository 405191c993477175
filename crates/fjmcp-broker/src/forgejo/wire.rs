//! Forgejo's wire formats as pure functions: from an HTTP status and a body to
//! a result, and from parameters to URLs and headers. Kept apart from the HTTP
//! client so every classification rule is unit-tested without a server.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use url::Url;

use super::error::scrub;
use super::{EndpointOverrides, ForgejoEndpoints, ForgejoError, TokenResponse};
use crate::upstream::UserIdentity;

/// The Forgejo endpoints this module calls, for messages and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Call {
    Discovery,
    Token,
    Userinfo,
    ApiUser,
}

impl Call {
    pub(super) fn name(self) -> &'static str {
        match self {
            Call::Discovery => "discovery",
            Call::Token => "token",
            Call::Userinfo => "userinfo",
            Call::ApiUser => "API user",
        }
    }
}

/// OAuth error codes that mean "this grant or token is dead": the user must
/// sign in again. Forgejo uses `unauthorized_client` for bad codes, PKCE
/// failures and reused refresh tokens, so it belongs here despite its name.
const REFUSAL_CODES: [&str; 2] = ["invalid_grant", "unauthorized_client"];

/// Statuses that say "not now" rather than "not ever": server errors, rate
/// limiting, and a request timeout reported by Forgejo or a proxy.
pub(super) fn is_transient_status(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
}

fn transient_status(call: Call, status: StatusCode) -> ForgejoError {
    ForgejoError::Transient(format!("the {} endpoint answered {status}", call.name()))
}

/// The error for a status the endpoint never sends on purpose. Redirects are
/// called out because the usual cause is a base URL with the wrong scheme or
/// path, and the broker deliberately does not follow them (a redirect would
/// carry the client credentials to wherever it points).
fn unexpected_status(call: Call, status: StatusCode) -> ForgejoError {
    let hint = if status.is_redirection() {
        " (redirects are not followed; check the configured Forgejo URL)"
    } else {
        ""
    };
    ForgejoError::Protocol(format!(
        "the {} endpoint answered unexpected status {status}{hint}",
        call.name()
    ))
}

/// A JSON parse failure, described by position only: serde's own messages may
/// quote the offending value, which could be a token.
fn not_json(call: Call, err: &serde_json::Error) -> ForgejoError {
    ForgejoError::Protocol(format!(
        "the {} endpoint's answer is not valid JSON ({:?} error at line {}, column {})",
        call.name(),
        err.classify(),
        err.line(),
        err.column()
    ))
}

fn json_object(call: Call, body: &[u8]) -> Result<Map<String, Value>, ForgejoError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ForgejoError::Protocol(format!(
            "the {} endpoint's answer is not a JSON object",
            call.name()
        ))),
        Err(err) => Err(not_json(call, &err)),
    }
}

/// What the discovery document says, before overrides are applied. Entries
/// that are absent or not strings are `None`; whether that matters depends on
/// which endpoints are overridden.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Discovered {
    pub(super) authorize: Option<String>,
    pub(super) token: Option<String>,
    pub(super) userinfo: Option<String>,
}

/// Interprets the answer of `/.well-known/openid-configuration`.
pub(super) fn discovery_outcome(
    status: StatusCode,
    body: &[u8],
) -> Result<Discovered, ForgejoError> {
    if is_transient_status(status) {
        return Err(transient_status(Call::Discovery, status));
    }
    if status != StatusCode::OK {
        return Err(unexpected_status(Call::Discovery, status));
    }
    let document = json_object(Call::Discovery, body)?;
    let text = |name: &str| {
        document
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Ok(Discovered {
        authorize: text("authorization_endpoint"),
        token: text("token_endpoint"),
        userinfo: text("userinfo_endpoint"),
    })
}

/// The endpoints to use: each override wins, discovery fills the rest, and
/// every URL must be absolute http(s) so a typo fails here, once, with a
/// message naming the entry rather than as a confusing request error later.
pub(super) fn merge_endpoints(
    overrides: &EndpointOverrides,
    discovered: Option<&Discovered>,
) -> Result<ForgejoEndpoints, ForgejoError> {
    let pick = |overridden: &Option<String>,
                found: Option<&Option<String>>,
                key: &str|
     -> Result<String, ForgejoError> {
        let (value, source) = match (overridden, found) {
            (Some(value), _) => (value, "the configured override"),
            (None, Some(Some(value))) => (value, "the discovery document"),
            (None, _) => {
                return Err(ForgejoError::Protocol(format!(
                    "the discovery document has no usable {key}"
                )));
            }
        };
        // The URL itself is left out of the message: a URL with embedded
        // credentials is the one kind of configuration value that is secret.
        match Url::parse(value) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {
                Ok(value.clone())
            }
            _ => Err(ForgejoError::Protocol(format!(
                "{key} from {source} is not an absolute http(s) URL"
            ))),
        }
    };
    Ok(ForgejoEndpoints {
        authorize: pick(
            &overrides.authorize,
            discovered.map(|d| &d.authorize),
            "authorization_endpoint",
        )?,
        token: pick(
            &overrides.token,
            discovered.map(|d| &d.token),
            "token_endpoint",
        )?,
        userinfo: pick(
            &overrides.userinfo,
            discovered.map(|d| &d.userinfo),
            "userinfo_endpoint",
        )?,
    })
}

/// The authorization request URL (RFC 6749 §4.1.1 with RFC 7636 S256). Query
/// parameters already in the endpoint are kept, as RFC 6749 §3.1 requires, and
/// a fragment is dropped, which it forbids. An empty `scopes` sends no `scope`
/// (Forgejo then grants its default).
pub(super) fn authorize_url(
    endpoint: &str,
    client_id: &str,
    redirect_uri: &str,
    scopes: &str,
    state: &str,
    code_challenge: &str,
) -> Result<String, ForgejoError> {
    let mut url = Url::parse(endpoint).map_err(|_| {
        ForgejoError::Protocol("authorization_endpoint is not an absolute URL".to_owned())
    })?;
    url.set_fragment(None);
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri);
        if !scopes.is_empty() {
            query.append_pair("scope", scopes);
        }
        query
            .append_pair("state", state)
            .append_pair("code_challenge", code_challenge)
            .append_pair("code_challenge_method", "S256");
    }
    Ok(url.into())
}

/// `Authorization: Basic …` for client_secret_basic, RFC 6749 §2.3.1: id and
/// secret are form-urlencoded before they are joined and base64-encoded.
/// Forgejo does not decode them again, which is harmless in practice: its
/// client ids are UUIDs and its secrets `gto_` plus lowercase base32, which
/// form-encoding leaves untouched.
pub(super) fn basic_credentials(client_id: &str, client_secret: &str) -> String {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let joined = format!("{}:{}", encode(client_id), encode(client_secret));
    format!("Basic {}", STANDARD.encode(joined))
}

/// Interprets the token endpoint's answer to a code exchange or a refresh.
/// `secrets` are the values sent in the request; they are scrubbed from any
/// text of Forgejo's that ends up in an error.
pub(super) fn token_outcome(
    status: StatusCode,
    body: &[u8],
    secrets: &[&str],
) -> Result<TokenResponse, ForgejoError> {
    if is_transient_status(status) {
        return Err(transient_status(Call::Token, status));
    }
    if status == StatusCode::OK {
        return token_success(body, secrets);
    }
    if !status.is_client_error() {
        return Err(unexpected_status(Call::Token, status));
    }
    // RFC 6749 §5.2: 400 (401 for invalid_client) with {error, error_description}.
    let Some((code, description)) = oauth_error(body, secrets) else {
        return Err(ForgejoError::Protocol(format!(
            "the token endpoint answered {status} without an OAuth error"
        )));
    };
    if REFUSAL_CODES.contains(&code.as_str()) {
        return Err(ForgejoError::Refused {
            error: code,
            description,
        });
    }
    Err(ForgejoError::Protocol(format!(
        "the token endpoint answered {status} with {code}{}",
        description.map(|d| format!(" ({d})")).unwrap_or_default()
    )))
}

/// `{error, error_description}` from an error body, both scrubbed; `None` when
/// the body is not such an object (an HTML error page, say).
fn oauth_error(body: &[u8], secrets: &[&str]) -> Option<(String, Option<String>)> {
    let object = json_object(Call::Token, body).ok()?;
    let code = object.get("error")?.as_str()?;
    let code = scrub(code, secrets);
    if code.is_empty() {
        return None;
    }
    let description = object
        .get("error_description")
        .and_then(Value::as_str)
        .map(|d| scrub(d, secrets))
        .filter(|d| !d.is_empty());
    Some((code, description))
}

/// A successful token response, RFC 6749 §5.1. The token values are moved out
/// of the parsed document rather than copied, and no message below quotes one.
fn token_success(body: &[u8], secrets: &[&str]) -> Result<TokenResponse, ForgejoError> {
    let protocol = |what: &str| ForgejoError::Protocol(format!("the token response {what}"));
    let mut object = json_object(Call::Token, body)?;
    let access_token = match object.remove("access_token") {
        Some(Value::String(token)) if !token.is_empty() => SecretString::from(token),
        Some(_) => {
            return Err(protocol(
                "has an access_token that is not a non-empty string",
            ));
        }
        None => return Err(protocol("has no access_token")),
    };
    match object.get("token_type") {
        Some(Value::String(kind)) if kind.eq_ignore_ascii_case("bearer") => {}
        Some(Value::String(kind)) => {
            let mut secrets = secrets.to_vec();
            secrets.push(access_token.expose_secret());
            return Err(protocol(&format!(
                "has token_type {:?}, not bearer",
                scrub(kind, &secrets)
            )));
        }
        Some(_) => return Err(protocol("has a token_type that is not a string")),
        None => return Err(protocol("has no token_type")),
    }
    let refresh_token = match object.remove("refresh_token") {
        None | Some(Value::Null) => None,
        Some(Value::String(token)) if token.is_empty() => None,
        Some(Value::String(token)) => Some(SecretString::from(token)),
        Some(_) => return Err(protocol("has a refresh_token that is not a string")),
    };
    let expires_in = match object.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .ok_or_else(|| protocol("has an expires_in that is not a whole number ≥ 0"))?,
        ),
        // Some servers send the number as text; accept it when it is one.
        Some(Value::String(s)) => Some(
            s.parse::<u64>()
                .map_err(|_| protocol("has an expires_in that is not a whole number ≥ 0"))?,
        ),
        Some(_) => return Err(protocol("has an expires_in that is not a number")),
    };
    Ok(TokenResponse {
        access_token,
        refresh_token,
        expires_in,
    })
}

/// Interprets `GET /api/v1/user`'s answer to a token check: 200 means Forgejo
/// accepts the token for its API; 401 (and 403, which Forgejo answers for a
/// token without the scope) is a refusal reported as `invalid_token`, as for
/// userinfo.
pub(super) fn api_user_outcome(status: StatusCode) -> Result<(), ForgejoError> {
    if is_transient_status(status) {
        return Err(transient_status(Call::ApiUser, status));
    }
    match status {
        StatusCode::OK => Ok(()),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(ForgejoError::Refused {
            error: "invalid_token".to_owned(),
            description: Some(format!("the API answered {status} to the access token")),
        }),
        other => Err(unexpected_status(Call::ApiUser, other)),
    }
}

/// Interprets userinfo's answer. A 401 means Forgejo does not accept the access
/// token (expired, revoked, or the grant is gone): reported as a refusal with
/// RFC 6750's `invalid_token`, because the caller's remedy is the same as for a
/// refused grant — refresh, or failing that, sign in again.
pub(super) fn userinfo_outcome(
    status: StatusCode,
    body: &[u8],
) -> Result<UserIdentity, ForgejoError> {
    if is_transient_status(status) {
        return Err(transient_status(Call::Userinfo, status));
    }
    if status == StatusCode::UNAUTHORIZED {
        return Err(ForgejoError::Refused {
            error: "invalid_token".to_owned(),
            description: Some("userinfo did not accept the access token".to_owned()),
        });
    }
    if status != StatusCode::OK {
        return Err(unexpected_status(Call::Userinfo, status));
    }
    let claims = json_object(Call::Userinfo, body)?;
    // Forgejo sends `sub` as a string; a number is accepted too, as the same id.
    let id = match claims.get("sub") {
        Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
        Some(Value::Number(sub)) => sub.to_string(),
        _ => {
            return Err(ForgejoError::Protocol(
                "the userinfo answer has no usable sub".to_owned(),
            ));
        }
    };
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let login = text("preferred_username")
        .or_else(|| text("name"))
        .ok_or_else(|| {
            ForgejoError::Protocol(
                "the userinfo answer has neither preferred_username nor name".to_owned(),
            )
        })?
        .to_owned();
    Ok(UserIdentity { id, login })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(result: Result<TokenResponse, ForgejoError>) -> (String, Option<String>) {
        match result {
            Err(ForgejoError::Refused { error, description }) => (error, description),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn protocol<T: std::fmt::Debug>(result: Result<T, ForgejoError>) -> String {
        match result {
            Err(ForgejoError::Protocol(message)) => message,
            other => panic!("expected a protocol error, got {other:?}"),
        }
    }

    #[test]
    fn token_success_is_parsed() {
        let body = br#"{"access_token":"at","token_type":"Bearer","expires_in":3600,"refresh_token":"rt","id_token":"x"}"#;
        let tokens = token_outcome(StatusCode::OK, body, &[]).unwrap();
        assert_eq!(tokens.access_token.expose_secret(), "at");
        assert_eq!(tokens.refresh_token.unwrap().expose_secret(), "rt");
        assert_eq!(tokens.expires_in, Some(3600));

        let body =
            br#"{"access_token":"at","token_type":"bearer","expires_in":"60","refresh_token":""}"#;
        let tokens = token_outcome(StatusCode::OK, body, &[]).unwrap();
        assert!(tokens.refresh_token.is_none());
        assert_eq!(tokens.expires_in, Some(60));

        let body = br#"{"access_token":"at","token_type":"bearer"}"#;
        let tokens = token_outcome(StatusCode::OK, body, &[]).unwrap();
        assert_eq!(tokens.expires_in, None);
    }

    #[test]
    fn unusable_token_successes_are_protocol_errors() {
        for (body, expected) in [
            (&br#"{"token_type":"bearer"}"#[..], "no access_token"),
            (
                br#"{"access_token":"","token_type":"bearer"}"#,
                "access_token",
            ),
            (br#"{"access_token":"at"}"#, "no token_type"),
            (
                br#"{"access_token":"at","token_type":"mac"}"#,
                "\"mac\", not bearer",
            ),
            (
                br#"{"access_token":"at","token_type":"bearer","expires_in":-1}"#,
                "expires_in",
            ),
            (
                br#"{"access_token":"at","token_type":"bearer","refresh_token":5}"#,
                "refresh_token",
            ),
            (br#"["at"]"#, "not a JSON object"),
            (b"<html>", "not valid JSON"),
        ] {
            let message = protocol(token_outcome(StatusCode::OK, body, &[]));
            assert!(message.contains(expected), "{message} lacks {expected}");
        }
    }

    #[test]
    fn serde_messages_never_quote_values() {
        // A well-formed JSON value in the wrong place must not be echoed.
        let body =
            br#"{"access_token":"at-secret","token_type":"bearer","expires_in":"at-secret"}"#;
        let message = protocol(token_outcome(StatusCode::OK, body, &[]));
        assert!(!message.contains("at-secret"), "{message}");
        let message = protocol(token_outcome(StatusCode::OK, b"{\"at-secret", &[]));
        assert!(!message.contains("at-secret"), "{message}");
    }

    #[test]
    fn token_errors_are_classified() {
        let body =
            br#"{"error":"unauthorized_client","error_description":"token was already used"}"#;
        assert_eq!(
            refused(token_outcome(StatusCode::BAD_REQUEST, body, &[])),
            (
                "unauthorized_client".to_owned(),
                Some("token was already used".to_owned())
            )
        );
        let body = br#"{"error":"invalid_grant"}"#;
        assert_eq!(
            refused(token_outcome(StatusCode::BAD_REQUEST, body, &[])),
            ("invalid_grant".to_owned(), None)
        );

        let body = br#"{"error":"invalid_client","error_description":"bad secret"}"#;
        let message = protocol(token_outcome(StatusCode::UNAUTHORIZED, body, &[]));
        assert!(message.contains("invalid_client (bad secret)"), "{message}");
        let body = br#"{"error":"invalid_request"}"#;
        protocol(token_outcome(StatusCode::BAD_REQUEST, body, &[]));
        protocol(token_outcome(StatusCode::BAD_REQUEST, b"<html>", &[]));
        protocol(token_outcome(StatusCode::NOT_FOUND, b"Not found.", &[]));
        let message = protocol(token_outcome(StatusCode::FOUND, b"", &[]));
        assert!(message.contains("redirects are not followed"), "{message}");
        protocol(token_outcome(StatusCode::CREATED, b"{}", &[]));

        for status in [
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::BAD_GATEWAY,
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::REQUEST_TIMEOUT,
        ] {
            let err = token_outcome(status, br#"{"error":"invalid_grant"}"#, &[]).unwrap_err();
            assert!(
                matches!(err, ForgejoError::Transient(_)),
                "{status}: {err:?}"
            );
        }
    }

    #[test]
    fn echoed_secrets_are_scrubbed_from_descriptions() {
        let body = br#"{"error":"invalid_grant","error_description":"code the-code with verifier the-verifier"}"#;
        let (_, description) = refused(token_outcome(
            StatusCode::BAD_REQUEST,
            body,
            &["the-code", "the-verifier"],
        ));
        assert_eq!(
            description.as_deref(),
            Some("code [redacted] with verifier [redacted]")
        );
    }

    #[test]
    fn userinfo_is_parsed_and_classified() {
        let body = br#"{"sub":"1","name":"Alice A.","preferred_username":"alice"}"#;
        assert_eq!(
            userinfo_outcome(StatusCode::OK, body).unwrap(),
            UserIdentity {
                id: "1".into(),
                login: "alice".into()
            }
        );
        let body = br#"{"sub":7,"name":"bob","preferred_username":""}"#;
        assert_eq!(
            userinfo_outcome(StatusCode::OK, body).unwrap(),
            UserIdentity {
                id: "7".into(),
                login: "bob".into()
            }
        );
        protocol(userinfo_outcome(StatusCode::OK, br#"{"name":"bob"}"#));
        protocol(userinfo_outcome(StatusCode::OK, br#"{"sub":"1"}"#));
        protocol(userinfo_outcome(StatusCode::OK, b"nope"));
        protocol(userinfo_outcome(StatusCode::FORBIDDEN, b""));
        assert!(
            userinfo_outcome(StatusCode::UNAUTHORIZED, b"no valid authorization")
                .unwrap_err()
                .is_refusal()
        );
        assert!(matches!(
            userinfo_outcome(StatusCode::BAD_GATEWAY, b""),
            Err(ForgejoError::Transient(_))
        ));
    }

    #[test]
    fn discovery_and_overrides_merge() {
        let body = br#"{"authorization_endpoint":"https://f.example/login/oauth/authorize",
                        "token_endpoint":"https://f.example/login/oauth/access_token",
                        "userinfo_endpoint":7}"#;
        let found = discovery_outcome(StatusCode::OK, body).unwrap();
        assert_eq!(found.userinfo, None);
        let message = protocol(merge_endpoints(&EndpointOverrides::default(), Some(&found)));
        assert!(message.contains("userinfo_endpoint"), "{message}");

        let overrides = EndpointOverrides {
            token: Some("http://forgejo:3000/login/oauth/access_token".into()),
            userinfo: Some("http://forgejo:3000/login/oauth/userinfo".into()),
            ..EndpointOverrides::default()
        };
        assert_eq!(
            merge_endpoints(&overrides, Some(&found)).unwrap(),
            ForgejoEndpoints {
                authorize: "https://f.example/login/oauth/authorize".into(),
                token: "http://forgejo:3000/login/oauth/access_token".into(),
                userinfo: "http://forgejo:3000/login/oauth/userinfo".into(),
            }
        );

        let bad = EndpointOverrides {
            authorize: Some("/login/oauth/authorize".into()),
            ..overrides.clone()
        };
        let message = protocol(merge_endpoints(&bad, Some(&found)));
        assert!(message.contains("configured override"), "{message}");
        let bad = EndpointOverrides {
            authorize: Some("ftp://f.example/x".into()),
            ..overrides
        };
        protocol(merge_endpoints(&bad, None));

        assert!(matches!(
            discovery_outcome(StatusCode::SERVICE_UNAVAILABLE, b""),
            Err(ForgejoError::Transient(_))
        ));
        protocol(discovery_outcome(StatusCode::NOT_FOUND, b""));
        protocol(discovery_outcome(StatusCode::OK, b"[]"));
    }

    #[test]
    fn authorize_url_is_encoded_and_keeps_an_existing_query() {
        let url = authorize_url(
            "https://f.example/login/oauth/authorize?tenant=a%20b#frag",
            "client id",
            "http://127.0.0.1:8080/oauth/callback?x=1&y=2",
            "openid profile",
            "st&te=",
            "challenge",
        )
        .unwrap();
        assert_eq!(
            url,
            "https://f.example/login/oauth/authorize?tenant=a%20b\
             &response_type=code&client_id=client+id\
             &redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Foauth%2Fcallback%3Fx%3D1%26y%3D2\
             &scope=openid+profile&state=st%26te%3D&code_challenge=challenge\
             &code_challenge_method=S256"
        );
        let parsed = Url::parse(&url).unwrap();
        let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
        assert!(pairs.contains(&("state".into(), "st&te=".into())));
        assert!(pairs.contains(&(
            "redirect_uri".into(),
            "http://127.0.0.1:8080/oauth/callback?x=1&y=2".into()
        )));

        let url = authorize_url("https://f.example/authorize", "c", "r", "", "s", "ch").unwrap();
        assert!(!url.contains("scope="), "{url}");
        protocol(authorize_url("not a url", "c", "r", "", "s", "ch"));
    }

    #[test]
    fn basic_credentials_form_encode_before_base64() {
        assert_eq!(
            basic_credentials("broker", "secret"),
            format!("Basic {}", STANDARD.encode("broker:secret"))
        );
        // RFC 6749 §2.3.1: a colon in the id must not split it.
        assert_eq!(
            basic_credentials("a:b", "s p+%"),
            format!("Basic {}", STANDARD.encode("a%3Ab:s+p%2B%25"))
        );
    }
}
