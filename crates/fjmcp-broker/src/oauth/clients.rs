//! Finding and authenticating OAuth clients: registered ones from the store,
//! and client ID metadata documents fetched (safely) and cached in the store.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, header};

use super::OAuthState;
use super::client_metadata::FetchedClient;
use super::errors::OAuthError;
use super::params::Params;
use super::registration::TokenEndpointAuthMethod;
use crate::clock::seconds;
use crate::crypto::{constant_time_eq, hash_secret};
use crate::store::{ClientKind, ClientRecord, NewClient, StoreError};

/// The outcome of looking a client up for an authorization request.
pub(crate) enum Lookup {
    Found(ClientRecord),
    Unknown,
    /// A metadata-document client whose document could not be used; the text
    /// says why in terms fit for an anonymous caller (details are logged).
    Unusable(&'static str),
}

/// The client for `/oauth/authorize`: a metadata document is fetched when it is
/// not cached or its cache lifetime has passed.
pub(crate) async fn for_authorization(
    state: &OAuthState,
    client_id: &str,
) -> Result<Lookup, StoreError> {
    let stored = state.store.client(client_id).await?;
    if !state.client_metadata.handles(client_id) {
        return Ok(stored.map_or(Lookup::Unknown, Lookup::Found));
    }
    let now = state.clock.now();
    if let Some(record) = stored
        && record.client.metadata_expires_at.is_some_and(|at| at > now)
    {
        return Ok(Lookup::Found(record));
    }
    match state.client_metadata.fetch(client_id).await {
        Ok(fetched) => {
            let client = cimd_client(client_id, &fetched, now);
            state.store.put_client(&client).await?;
            Ok(state
                .store
                .client(client_id)
                .await?
                .map_or(Lookup::Unknown, Lookup::Found))
        }
        Err(e) => {
            tracing::warn!(client_id, error = %e, "client metadata document unusable");
            Ok(Lookup::Unusable(e.public_message()))
        }
    }
}

fn cimd_client(client_id: &str, fetched: &FetchedClient, now: i64) -> NewClient {
    let metadata = &fetched.metadata;
    NewClient {
        client_id: client_id.to_string(),
        kind: ClientKind::MetadataDocument,
        client_name: metadata.client_name.clone(),
        redirect_uris: metadata.redirect_uris.clone(),
        application_type: metadata.application_type.as_str().to_string(),
        token_endpoint_auth_method: "none".to_string(),
        client_secret_hash: None,
        metadata: serde_json::Value::Object(metadata.document.clone()).to_string(),
        metadata_expires_at: Some(now + seconds(fetched.cache_for)),
    }
}

/// Authenticates the client of a token or revocation request: HTTP Basic,
/// `client_secret` in the body, or a public client's bare `client_id`.
/// Returns the client and whether Basic was used (for the error challenge).
pub(crate) async fn authenticate(
    state: &OAuthState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<ClientRecord, OAuthError> {
    let basic = basic_credentials(headers)?;
    let used_basic = basic.is_some();
    let (client_id, secret) = match basic {
        Some((id, secret)) => {
            if params.get("client_id").is_some_and(|body_id| body_id != id) {
                return Err(OAuthError::invalid_request(
                    "client_id in the body differs from the Authorization header",
                ));
            }
            (id, Some(secret))
        }
        None => match params.get("client_id") {
            Some(id) => (
                id.to_string(),
                params.get("client_secret").map(str::to_string),
            ),
            None => {
                return Err(OAuthError::invalid_client(
                    "client authentication is required (client_id)",
                    false,
                ));
            }
        },
    };
    let Some(client) = state.store.client(&client_id).await? else {
        return Err(OAuthError::invalid_client("unknown client", used_basic));
    };
    let method = TokenEndpointAuthMethod::parse(&client.client.token_endpoint_auth_method);
    match (method, client.client.client_secret_hash.as_ref(), secret) {
        // A public client proves nothing here; PKCE and the refresh token's binding do.
        (Some(TokenEndpointAuthMethod::None), _, _) => Ok(client),
        (Some(_), Some(expected), Some(secret)) => {
            if constant_time_eq(
                hash_secret(&secret).as_str().as_bytes(),
                expected.as_str().as_bytes(),
            ) {
                Ok(client)
            } else {
                Err(OAuthError::invalid_client(
                    "client authentication failed",
                    used_basic,
                ))
            }
        }
        _ => Err(OAuthError::invalid_client(
            "client authentication failed",
            used_basic,
        )),
    }
}

/// Whether the client registered `grant_type` (its `grant_types` metadata, as
/// stored with the defaults made explicit; see [`super::registration`]).
pub(crate) fn allows_grant_type(client: &ClientRecord, grant_type: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(&client.client.metadata)
        .ok()
        .and_then(|metadata| {
            metadata
                .get("grant_types")?
                .as_array()
                .map(|types| types.iter().any(|t| t.as_str() == Some(grant_type)))
        })
        // Without the member: the registration default, both grant types.
        .unwrap_or(true)
}

/// `Authorization: Basic` credentials, form-urldecoded (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || OAuthError::invalid_client("malformed Basic credentials", true);
    let value = value.to_str().map_err(|_| malformed())?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err(malformed());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(malformed());
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.to_string())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret))))
}
