//! Discovery documents: protected-resource metadata (RFC 9728) for the MCP
//! endpoint and authorization-server metadata (RFC 8414).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use serde_json::{Value, json};

use super::OAuthState;
use super::resource::mcp_resource;

/// The one scope the broker issues: access to the MCP endpoint as the user.
pub(crate) const MCP_SCOPE: &str = "mcp";

/// RFC 9728 metadata of the MCP endpoint.
fn protected_resource(state: &OAuthState) -> Value {
    let public = &state.config.public_url;
    json!({
        "resource": mcp_resource(public),
        "authorization_servers": [public.as_str()],
        "bearer_methods_supported": ["header"],
        "scopes_supported": [MCP_SCOPE],
        "resource_name": "Forgejo (via fjmcp-broker)",
    })
}

/// RFC 8414 metadata of the broker's authorization server.
fn authorization_server(state: &OAuthState) -> Value {
    let public = &state.config.public_url;
    json!({
        "issuer": public.as_str(),
        "authorization_endpoint": public.join("/oauth/authorize"),
        "token_endpoint": public.join("/oauth/token"),
        "registration_endpoint": public.join("/oauth/register"),
        "revocation_endpoint": public.join("/oauth/revoke"),
        "scopes_supported": [MCP_SCOPE],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "client_id_metadata_document_supported": true,
        "authorization_response_iss_parameter_supported": true,
    })
}

fn cacheable(document: Value) -> Response {
    let mut response = Json(document).into_response();
    // Short: clients re-read it on every connection anyway, and operators change URLs.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

pub(crate) async fn protected_resource_handler(State(state): State<OAuthState>) -> Response {
    cacheable(protected_resource(&state))
}

pub(crate) async fn authorization_server_handler(State(state): State<OAuthState>) -> Response {
    cacheable(authorization_server(&state))
}
