//! Client metadata validation for dynamic client registration (RFC 7591) and,
//! through [`validate_registration`], for client ID metadata documents.
//!
//! Pure: no HTTP, no storage. Decisions:
//!
//! - `application_type` defaults to `web` (the OIDC default), may be `native`;
//!   anything else is `invalid_client_metadata`. It does not narrow the
//!   accepted redirect URIs (see [`super::redirect_uri`]).
//! - `token_endpoint_auth_method` defaults to **`none`**, not RFC 7591's
//!   `client_secret_basic`: an MCP client that leaves it out expects a public
//!   client using PKCE and would not know what to do with a secret. The
//!   effective value is returned in the response, which RFC 7591 §3.2.1 allows
//!   ("the authorization server MAY reject or replace any of the client's
//!   requested metadata values"). `client_secret_basic` and
//!   `client_secret_post` are accepted when asked for; other methods
//!   (`private_key_jwt`, `client_secret_jwt`, `tls_client_auth`, …) are not.
//! - `grant_types` defaults to **`["authorization_code", "refresh_token"]`**,
//!   not RFC 7591's `["authorization_code"]`: MCP clients that leave it out
//!   still expect refresh tokens, and the token endpoint enforces what is
//!   registered (a client that asked for `authorization_code` only gets no
//!   refresh token). It may only hold `authorization_code` and
//!   `refresh_token`, and must hold `authorization_code` (the only response
//!   type is `code`, RFC 7591 §2.1).
//!   `response_types` defaults to `["code"]` and may only hold `code`.
//!   Duplicates are dropped.
//! - A member whose value is JSON `null` counts as absent and is dropped.
//! - Members the server assigns (`client_id`, `client_secret`,
//!   `client_id_issued_at`, `client_secret_expires_at`,
//!   `registration_access_token`, `registration_client_uri`) are dropped from
//!   the request rather than refused.
//! - `client_name`: at most [`MAX_CLIENT_NAME_CHARS`] characters, not blank, no
//!   control characters and no bidirectional-override characters (they could
//!   make a consent page show a name that reads differently from what it is).
//! - `client_uri`, `logo_uri`, `tos_uri`, `policy_uri` and `jwks_uri` must be
//!   absolute `http(s)` URLs with a host and no user information; a consent
//!   page may link to them.
//! - `scope` must follow RFC 6749 §3.3 syntax; which scopes are granted is
//!   decided elsewhere.
//! - Sizes: at most [`MAX_REDIRECT_URIS`] redirect URIs, each at most
//!   [`super::redirect_uri::MAX_REDIRECT_URI_LEN`] characters; at most
//!   [`MAX_MEMBERS`] members and [`MAX_DOCUMENT_BYTES`] bytes of JSON in all;
//!   other strings at most [`MAX_STRING_LEN`] characters.
//! - Unknown members are kept, so they are echoed back and stored.

use serde_json::{Map, Value};

use super::redirect_uri;

/// Most redirect URIs one client may register.
const MAX_REDIRECT_URIS: usize = 20;
/// Longest `client_name`, in characters.
const MAX_CLIENT_NAME_CHARS: usize = 200;
/// Longest URI or other string member, in characters.
const MAX_STRING_LEN: usize = 2000;
/// Most members in a request.
const MAX_MEMBERS: usize = 64;
/// Largest request, serialized as compact JSON: what is stored for a client
/// anybody may register (real clients send well under 2 KiB).
const MAX_DOCUMENT_BYTES: usize = 16 * 1024;
/// Most entries in `contacts`, `grant_types` or `response_types`.
const MAX_LIST_LEN: usize = 20;

/// Members only the authorization server sets; dropped from requests.
const SERVER_ASSIGNED: &[&str] = &[
    "client_id",
    "client_secret",
    "client_id_issued_at",
    "client_secret_expires_at",
    "registration_access_token",
    "registration_client_uri",
];

/// SEP-837 / OIDC `application_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplicationType {
    Web,
    Native,
}

impl ApplicationType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ApplicationType::Web => "web",
            ApplicationType::Native => "native",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "web" => Some(ApplicationType::Web),
            "native" => Some(ApplicationType::Native),
            _ => None,
        }
    }
}

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenEndpointAuthMethod {
    /// A public client (PKCE only).
    None,
    ClientSecretBasic,
    ClientSecretPost,
}

impl TokenEndpointAuthMethod {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TokenEndpointAuthMethod::None => "none",
            TokenEndpointAuthMethod::ClientSecretBasic => "client_secret_basic",
            TokenEndpointAuthMethod::ClientSecretPost => "client_secret_post",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "none" => Some(TokenEndpointAuthMethod::None),
            "client_secret_basic" => Some(TokenEndpointAuthMethod::ClientSecretBasic),
            "client_secret_post" => Some(TokenEndpointAuthMethod::ClientSecretPost),
            _ => None,
        }
    }
}

/// Validated client metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientMetadata {
    pub client_name: Option<String>,
    pub redirect_uris: Vec<String>,
    pub application_type: ApplicationType,
    pub token_endpoint_auth_method: TokenEndpointAuthMethod,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    pub scope: Option<String>,
    pub client_uri: Option<String>,
    pub logo_uri: Option<String>,
    /// Every member of the request as received (unknown ones included), to
    /// echo back in the 201 response and store; except that `null` members and
    /// server-assigned members are dropped, and `application_type`,
    /// `token_endpoint_auth_method`, `grant_types` and `response_types` hold
    /// their effective values (defaults made explicit).
    pub document: Map<String, Value>,
}

/// Why a registration request was refused; [`Self::error_code`] is the
/// RFC 7591 §3.2.2 `error`, the message its `error_description`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RegistrationError {
    #[error("{0}")]
    InvalidRedirectUri(String),
    #[error("{0}")]
    InvalidClientMetadata(String),
}

impl RegistrationError {
    pub(crate) fn error_code(&self) -> &'static str {
        match self {
            RegistrationError::InvalidRedirectUri(_) => "invalid_redirect_uri",
            RegistrationError::InvalidClientMetadata(_) => "invalid_client_metadata",
        }
    }
}

fn invalid(message: impl Into<String>) -> RegistrationError {
    RegistrationError::InvalidClientMetadata(message.into())
}

/// Validates an RFC 7591 registration request body.
pub(crate) fn validate_registration(body: &Value) -> Result<ClientMetadata, RegistrationError> {
    let Value::Object(members) = body else {
        return Err(invalid("the registration request must be a JSON object"));
    };
    if members.len() > MAX_MEMBERS {
        return Err(invalid(format!(
            "the registration request has more than {MAX_MEMBERS} members"
        )));
    }
    let size = serde_json::to_vec(body)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_DOCUMENT_BYTES {
        return Err(invalid(format!(
            "the registration request is larger than {MAX_DOCUMENT_BYTES} bytes"
        )));
    }

    let mut document: Map<String, Value> = members
        .iter()
        .filter(|(k, v)| !v.is_null() && !SERVER_ASSIGNED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();

    let application_type = match optional_string(&document, "application_type", 20)? {
        None => ApplicationType::Web,
        Some(text) => ApplicationType::parse(text).ok_or_else(|| {
            invalid(format!(
                "application_type {text:?} is not supported; use \"web\" or \"native\""
            ))
        })?,
    };

    let redirect_uris = redirect_uris(&document)?;

    let token_endpoint_auth_method =
        match optional_string(&document, "token_endpoint_auth_method", 100)? {
            None => TokenEndpointAuthMethod::None,
            Some(text) => TokenEndpointAuthMethod::parse(text).ok_or_else(|| {
                invalid(format!(
                    "token_endpoint_auth_method {text:?} is not supported; use \"none\", \
                     \"client_secret_basic\" or \"client_secret_post\""
                ))
            })?,
        };

    let grant_types = match optional_string_list(&document, "grant_types")? {
        None => vec![
            "authorization_code".to_string(),
            "refresh_token".to_string(),
        ],
        Some(list) => {
            if let Some(bad) = list
                .iter()
                .find(|g| !matches!(g.as_str(), "authorization_code" | "refresh_token"))
            {
                return Err(invalid(format!(
                    "grant type {bad:?} is not supported; use authorization_code and refresh_token"
                )));
            }
            if !list.iter().any(|g| g == "authorization_code") {
                return Err(invalid(
                    "grant_types must include authorization_code (the only response type is code)",
                ));
            }
            list
        }
    };

    let response_types = match optional_string_list(&document, "response_types")? {
        None => vec!["code".to_string()],
        Some(list) => {
            if let Some(bad) = list.iter().find(|r| r.as_str() != "code") {
                return Err(invalid(format!(
                    "response type {bad:?} is not supported; only \"code\" is"
                )));
            }
            list
        }
    };

    let client_name = match optional_string(&document, "client_name", usize::MAX)? {
        None => None,
        Some(name) => Some(check_client_name(name)?.to_string()),
    };

    let scope = match optional_string(&document, "scope", MAX_STRING_LEN)? {
        None => None,
        Some(text) => check_scope(text)?,
    };

    let client_uri = optional_web_url(&document, "client_uri")?;
    let logo_uri = optional_web_url(&document, "logo_uri")?;
    optional_web_url(&document, "tos_uri")?;
    optional_web_url(&document, "policy_uri")?;
    optional_web_url(&document, "jwks_uri")?;
    for name in ["software_id", "software_version", "software_statement"] {
        optional_string(&document, name, MAX_STRING_LEN)?;
    }
    if let Some(contacts) = optional_string_list(&document, "contacts")?
        && let Some(long) = contacts.iter().find(|c| c.chars().count() > 320)
    {
        return Err(invalid(format!(
            "contact {:?}… is too long",
            long.chars().take(40).collect::<String>()
        )));
    }
    if let Some(jwks) = document.get("jwks")
        && !jwks.is_object()
    {
        return Err(invalid("jwks must be a JSON object"));
    }

    document.insert("application_type".into(), application_type.as_str().into());
    document.insert(
        "token_endpoint_auth_method".into(),
        token_endpoint_auth_method.as_str().into(),
    );
    document.insert("grant_types".into(), grant_types.clone().into());
    document.insert("response_types".into(), response_types.clone().into());

    Ok(ClientMetadata {
        client_name,
        redirect_uris,
        application_type,
        token_endpoint_auth_method,
        grant_types,
        response_types,
        scope,
        client_uri,
        logo_uri,
        document,
    })
}

/// The RFC 7591 §3.2.1 response body: the registered metadata plus
/// `client_id`, `client_id_issued_at` and, for a confidential client,
/// `client_secret` with `client_secret_expires_at: 0` (never expires).
pub(crate) fn registration_response(
    metadata: &ClientMetadata,
    client_id: &str,
    issued_at: i64,
    client_secret: Option<&str>,
) -> Value {
    let mut body = metadata.document.clone();
    for name in SERVER_ASSIGNED {
        body.remove(*name);
    }
    body.insert("client_id".into(), client_id.into());
    body.insert("client_id_issued_at".into(), issued_at.into());
    if let Some(secret) = client_secret {
        body.insert("client_secret".into(), secret.into());
        body.insert("client_secret_expires_at".into(), 0.into());
    }
    Value::Object(body)
}

fn redirect_uris(document: &Map<String, Value>) -> Result<Vec<String>, RegistrationError> {
    let Some(value) = document.get("redirect_uris") else {
        return Err(RegistrationError::InvalidRedirectUri(
            "redirect_uris is required".into(),
        ));
    };
    let Value::Array(items) = value else {
        return Err(RegistrationError::InvalidRedirectUri(
            "redirect_uris must be an array of strings".into(),
        ));
    };
    if items.is_empty() {
        return Err(RegistrationError::InvalidRedirectUri(
            "redirect_uris must not be empty".into(),
        ));
    }
    if items.len() > MAX_REDIRECT_URIS {
        return Err(RegistrationError::InvalidRedirectUri(format!(
            "at most {MAX_REDIRECT_URIS} redirect URIs may be registered"
        )));
    }
    items
        .iter()
        .map(|item| {
            let Value::String(uri) = item else {
                return Err(RegistrationError::InvalidRedirectUri(
                    "redirect_uris must be an array of strings".into(),
                ));
            };
            redirect_uri::check_registrable(uri).map_err(RegistrationError::InvalidRedirectUri)?;
            Ok(uri.clone())
        })
        .collect()
}

/// A string member, if present; wrong type or longer than `max_chars` is
/// `invalid_client_metadata`.
fn optional_string<'a>(
    document: &'a Map<String, Value>,
    name: &str,
    max_chars: usize,
) -> Result<Option<&'a str>, RegistrationError> {
    match document.get(name) {
        None => Ok(None),
        Some(Value::String(text)) => {
            if text.len() > max_chars && text.chars().count() > max_chars {
                return Err(invalid(format!(
                    "{name} is longer than {max_chars} characters"
                )));
            }
            Ok(Some(text))
        }
        Some(_) => Err(invalid(format!("{name} must be a string"))),
    }
}

/// An array-of-strings member, if present, without duplicates (first
/// occurrence kept); must not be empty.
fn optional_string_list(
    document: &Map<String, Value>,
    name: &str,
) -> Result<Option<Vec<String>>, RegistrationError> {
    let Some(value) = document.get(name) else {
        return Ok(None);
    };
    let Value::Array(items) = value else {
        return Err(invalid(format!("{name} must be an array of strings")));
    };
    if items.is_empty() {
        return Err(invalid(format!("{name} must not be empty")));
    }
    if items.len() > MAX_LIST_LEN {
        return Err(invalid(format!(
            "{name} has more than {MAX_LIST_LEN} entries"
        )));
    }
    let mut list: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let Value::String(text) = item else {
            return Err(invalid(format!("{name} must be an array of strings")));
        };
        if !list.contains(text) {
            list.push(text.clone());
        }
    }
    Ok(Some(list))
}

fn check_client_name(name: &str) -> Result<&str, RegistrationError> {
    if name.chars().count() > MAX_CLIENT_NAME_CHARS {
        return Err(invalid(format!(
            "client_name is longer than {MAX_CLIENT_NAME_CHARS} characters"
        )));
    }
    if name.trim().is_empty() {
        return Err(invalid("client_name must not be blank"));
    }
    if name.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return Err(invalid(
            "client_name must not contain control or bidirectional formatting characters",
        ));
    }
    Ok(name)
}

/// Unicode bidirectional formatting characters (embeddings, overrides,
/// isolates, marks).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// RFC 6749 §3.3: space-separated scope tokens of `%x21 / %x23-5B / %x5D-7E`.
/// Returns the scope with single spaces, or `None` when it holds no token.
fn check_scope(text: &str) -> Result<Option<String>, RegistrationError> {
    let tokens: Vec<&str> = text.split(' ').filter(|t| !t.is_empty()).collect();
    for token in &tokens {
        if !token
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
        {
            return Err(invalid(format!(
                "scope token {:?} contains characters RFC 6749 does not allow",
                token.chars().take(40).collect::<String>()
            )));
        }
    }
    Ok((!tokens.is_empty()).then(|| tokens.join(" ")))
}

/// An optional absolute `http(s)` URL member (for links on a consent page).
fn optional_web_url(
    document: &Map<String, Value>,
    name: &str,
) -> Result<Option<String>, RegistrationError> {
    let Some(text) = optional_string(document, name, MAX_STRING_LEN)? else {
        return Ok(None);
    };
    let url = url::Url::parse(text)
        .map_err(|_| invalid(format!("{name} must be an absolute http or https URL")))?;
    let ok = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some_and(|h| !h.is_empty())
        && url.username().is_empty()
        && url.password().is_none()
        && !text.chars().any(|c| c.is_control() || c == ' ');
    if !ok {
        return Err(invalid(format!(
            "{name} must be an absolute http or https URL with a host and no user information"
        )));
    }
    Ok(Some(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code(result: Result<ClientMetadata, RegistrationError>) -> &'static str {
        result.expect_err("should be refused").error_code()
    }

    #[test]
    fn minimal_request_gets_defaults() {
        let m = validate_registration(&json!({
            "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"]
        }))
        .unwrap();
        assert_eq!(m.redirect_uris, ["https://claude.ai/api/mcp/auth_callback"]);
        assert_eq!(m.application_type, ApplicationType::Web);
        assert_eq!(m.token_endpoint_auth_method, TokenEndpointAuthMethod::None);
        assert_eq!(m.grant_types, ["authorization_code", "refresh_token"]);
        assert_eq!(m.response_types, ["code"]);
        assert_eq!(m.client_name, None);
        assert_eq!(m.scope, None);
        assert_eq!(
            Value::Object(m.document),
            json!({
                "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
                "application_type": "web",
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
            })
        );
    }

    #[test]
    fn typical_mcp_client_request() {
        // What the MCP Inspector / TypeScript SDK sends.
        let body = json!({
            "redirect_uris": ["http://localhost:6274/oauth/callback"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "client_name": "MCP Inspector",
            "client_uri": "https://github.com/modelcontextprotocol/inspector",
            "scope": "read  write",
            "software_id": "inspector",
            "x_vendor_extension": {"anything": [1, 2, 3]},
            "logo_uri": null,
        });
        let m = validate_registration(&body).unwrap();
        assert_eq!(m.client_name.as_deref(), Some("MCP Inspector"));
        assert_eq!(m.grant_types, ["authorization_code", "refresh_token"]);
        assert_eq!(m.scope.as_deref(), Some("read write"));
        assert_eq!(
            m.client_uri.as_deref(),
            Some("https://github.com/modelcontextprotocol/inspector")
        );
        assert_eq!(m.logo_uri, None);
        assert_eq!(
            m.document["x_vendor_extension"],
            json!({"anything": [1, 2, 3]})
        );
        assert!(!m.document.contains_key("logo_uri"));
        assert_eq!(m.document["scope"], "read  write");
    }

    #[test]
    fn native_and_confidential_clients() {
        let m = validate_registration(&json!({
            "redirect_uris": ["http://127.0.0.1/callback", "com.example.app:/cb"],
            "application_type": "native",
            "token_endpoint_auth_method": "client_secret_post",
        }))
        .unwrap();
        assert_eq!(m.application_type, ApplicationType::Native);
        assert_eq!(
            m.token_endpoint_auth_method,
            TokenEndpointAuthMethod::ClientSecretPost
        );
        let m = validate_registration(&json!({
            "redirect_uris": ["https://example.com/cb"],
            "token_endpoint_auth_method": "client_secret_basic",
        }))
        .unwrap();
        assert_eq!(
            m.token_endpoint_auth_method,
            TokenEndpointAuthMethod::ClientSecretBasic
        );
    }

    #[test]
    fn web_clients_may_use_loopback_and_app_schemes() {
        // Cursor's real registration, without application_type.
        let m = validate_registration(&json!({
            "redirect_uris": [
                "cursor://anysphere.cursor-mcp/oauth/callback",
                "https://www.cursor.com/agents/mcp/oauth/callback",
                "http://localhost:8787/callback"
            ],
            "client_name": "Cursor",
        }))
        .unwrap();
        assert_eq!(m.application_type, ApplicationType::Web);
        assert_eq!(m.redirect_uris.len(), 3);
    }

    #[test]
    fn body_must_be_an_object() {
        for body in [json!(null), json!([]), json!("x"), json!(1)] {
            assert_eq!(
                code(validate_registration(&body)),
                "invalid_client_metadata"
            );
        }
    }

    #[test]
    fn redirect_uri_errors() {
        for body in [
            json!({}),
            json!({"redirect_uris": null}),
            json!({"redirect_uris": []}),
            json!({"redirect_uris": "https://example.com/cb"}),
            json!({"redirect_uris": [1]}),
            json!({"redirect_uris": ["https://example.com/cb", null]}),
            json!({"redirect_uris": ["https://example.com/cb", "http://evil.example/cb"]}),
            json!({"redirect_uris": ["javascript:alert(1)"]}),
        ] {
            assert_eq!(
                code(validate_registration(&body)),
                "invalid_redirect_uri",
                "{body}"
            );
        }
        let err = validate_registration(&json!({
            "redirect_uris": ["https://example.com/cb", "http://evil.example/cb"]
        }))
        .unwrap_err();
        assert!(err.to_string().contains("http://evil.example/cb"), "{err}");

        let many: Vec<String> = (0..=MAX_REDIRECT_URIS)
            .map(|i| format!("https://example.com/{i}"))
            .collect();
        let err = validate_registration(&json!({ "redirect_uris": many })).unwrap_err();
        assert_eq!(err.error_code(), "invalid_redirect_uri");
        let enough = &many[..MAX_REDIRECT_URIS];
        assert!(validate_registration(&json!({ "redirect_uris": enough })).is_ok());
    }

    fn with(member: &str, value: Value) -> Value {
        let mut body = json!({"redirect_uris": ["https://example.com/cb"]});
        body[member] = value;
        body
    }

    #[test]
    fn metadata_errors() {
        let cases = [
            ("application_type", json!("service")),
            ("application_type", json!("Web")),
            ("application_type", json!(1)),
            ("token_endpoint_auth_method", json!("private_key_jwt")),
            ("token_endpoint_auth_method", json!("client_secret_jwt")),
            ("token_endpoint_auth_method", json!("NONE")),
            ("token_endpoint_auth_method", json!(["none"])),
            ("grant_types", json!(["client_credentials"])),
            ("grant_types", json!(["authorization_code", "implicit"])),
            ("grant_types", json!(["authorization_code", "password"])),
            (
                "grant_types",
                json!([
                    "authorization_code",
                    "urn:ietf:params:oauth:grant-type:device_code"
                ]),
            ),
            ("grant_types", json!(["refresh_token"])),
            ("grant_types", json!([])),
            ("grant_types", json!("authorization_code")),
            ("grant_types", json!([1])),
            ("response_types", json!(["token"])),
            ("response_types", json!(["code", "id_token"])),
            ("response_types", json!(["code id_token"])),
            ("response_types", json!([])),
            ("response_types", json!("code")),
            ("client_name", json!(42)),
            ("client_name", json!(["name"])),
            ("client_name", json!("")),
            ("client_name", json!("   ")),
            ("client_name", json!("evil\u{0000}name")),
            ("client_name", json!("line\nbreak")),
            ("client_name", json!("good\u{202E}lagel")),
            ("client_name", json!("x".repeat(MAX_CLIENT_NAME_CHARS + 1))),
            ("scope", json!(["read"])),
            ("scope", json!("read \"write\"")),
            ("scope", json!("read\\write")),
            ("scope", json!("read\twrite")),
            ("scope", json!("lecture écriture")),
            ("client_uri", json!("javascript:alert(1)")),
            ("client_uri", json!("data:text/html,x")),
            ("client_uri", json!("/relative")),
            ("client_uri", json!("https://user:pw@example.com/")),
            ("client_uri", json!(7)),
            ("logo_uri", json!("file:///etc/passwd")),
            ("tos_uri", json!("ftp://example.com/tos")),
            ("policy_uri", json!("vbscript:x")),
            ("jwks_uri", json!(true)),
            ("jwks", json!("keys")),
            ("contacts", json!("admin@example.com")),
            ("contacts", json!([1])),
            ("software_id", json!(1)),
            ("software_statement", json!({"jwt": "x"})),
        ];
        for (member, value) in cases {
            let body = with(member, value.clone());
            assert_eq!(
                code(validate_registration(&body)),
                "invalid_client_metadata",
                "{member}: {value}"
            );
        }
    }

    #[test]
    fn client_name_limits_count_characters() {
        let name = "é".repeat(MAX_CLIENT_NAME_CHARS);
        let m = validate_registration(&with("client_name", json!(name))).unwrap();
        assert_eq!(m.client_name.as_deref(), Some(name.as_str()));
        let m = validate_registration(&with("client_name", json!("Claude Code 🤖"))).unwrap();
        assert_eq!(m.client_name.as_deref(), Some("Claude Code 🤖"));
    }

    #[test]
    fn duplicates_are_dropped_and_defaults_explicit() {
        let mut body = with(
            "grant_types",
            json!(["refresh_token", "authorization_code", "refresh_token"]),
        );
        body["response_types"] = json!(["code", "code"]);
        let m = validate_registration(&body).unwrap();
        assert_eq!(m.grant_types, ["refresh_token", "authorization_code"]);
        assert_eq!(m.response_types, ["code"]);
        assert_eq!(m.document["response_types"], json!(["code"]));
        let m = validate_registration(&with("scope", json!("  "))).unwrap();
        assert_eq!(m.scope, None);
    }

    #[test]
    fn server_assigned_members_are_dropped() {
        let mut body = with("client_id", json!("chosen-by-client"));
        body["client_secret"] = json!("hunter2");
        body["client_secret_expires_at"] = json!(5);
        body["registration_access_token"] = json!("t");
        let m = validate_registration(&body).unwrap();
        for name in SERVER_ASSIGNED {
            assert!(!m.document.contains_key(*name), "{name}");
        }
    }

    #[test]
    fn size_limits() {
        let mut body = with("client_name", json!("ok"));
        for i in 0..MAX_MEMBERS {
            body[format!("x{i}")] = json!(i);
        }
        assert_eq!(
            code(validate_registration(&body)),
            "invalid_client_metadata"
        );

        let body = with("x_big", json!("a".repeat(MAX_DOCUMENT_BYTES)));
        assert_eq!(
            code(validate_registration(&body)),
            "invalid_client_metadata"
        );
        let body = with("software_version", json!("a".repeat(MAX_STRING_LEN + 1)));
        assert_eq!(
            code(validate_registration(&body)),
            "invalid_client_metadata"
        );
        let contacts: Vec<String> = (0..=MAX_LIST_LEN)
            .map(|i| format!("{i}@example.com"))
            .collect();
        let body = with("contacts", json!(contacts));
        assert_eq!(
            code(validate_registration(&body)),
            "invalid_client_metadata"
        );
    }

    #[test]
    fn response_for_public_client() {
        let m = validate_registration(&json!({
            "redirect_uris": ["http://localhost/callback"],
            "client_name": "Claude Code",
            "client_id": "ignored",
            "x_extra": 1,
        }))
        .unwrap();
        let response = registration_response(&m, "c_123", 1_700_000_000, None);
        assert_eq!(
            response,
            json!({
                "client_id": "c_123",
                "client_id_issued_at": 1_700_000_000,
                "redirect_uris": ["http://localhost/callback"],
                "client_name": "Claude Code",
                "x_extra": 1,
                "application_type": "web",
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
            })
        );
    }

    #[test]
    fn response_for_confidential_client() {
        let m = validate_registration(&json!({
            "redirect_uris": ["https://example.com/cb"],
            "token_endpoint_auth_method": "client_secret_basic",
        }))
        .unwrap();
        let response = registration_response(&m, "c_9", 5, Some("s3cret"));
        assert_eq!(response["client_id"], "c_9");
        assert_eq!(response["client_id_issued_at"], 5);
        assert_eq!(response["client_secret"], "s3cret");
        assert_eq!(response["client_secret_expires_at"], 0);
        assert_eq!(
            response["token_endpoint_auth_method"],
            "client_secret_basic"
        );
    }

    #[test]
    fn error_codes() {
        assert_eq!(
            RegistrationError::InvalidRedirectUri("x".into()).error_code(),
            "invalid_redirect_uri"
        );
        assert_eq!(
            RegistrationError::InvalidClientMetadata("x".into()).error_code(),
            "invalid_client_metadata"
        );
        assert_eq!(
            RegistrationError::InvalidClientMetadata("the message".into()).to_string(),
            "the message"
        );
    }
}
