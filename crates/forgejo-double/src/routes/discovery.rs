//! OpenID Connect discovery, shaped like Forgejo's `oidc_wellknown` template.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::Shared;

/// `GET /.well-known/openid-configuration`. The issuer ends in `/` because Forgejo's issuer
/// is its `ROOT_URL`, which always does; clients comparing issuers must not normalise it away.
pub(super) async fn openid_configuration(State(state): State<Shared>) -> Json<Value> {
    let base = state.base_url();
    Json(json!({
        "issuer": format!("{base}/"),
        "authorization_endpoint": format!("{base}/login/oauth/authorize"),
        "token_endpoint": format!("{base}/login/oauth/access_token"),
        "jwks_uri": format!("{base}/login/oauth/keys"),
        "userinfo_endpoint": format!("{base}/login/oauth/userinfo"),
        "introspection_endpoint": format!("{base}/login/oauth/introspect"),
        "response_types_supported": ["code", "id_token"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "subject_types_supported": ["public"],
        "scopes_supported": ["openid", "profile", "email", "groups"],
        "claims_supported": [
            "aud", "exp", "iat", "iss", "sub", "name", "preferred_username", "profile",
            "picture", "website", "locale", "updated_at", "email", "email_verified", "groups"
        ],
        "code_challenge_methods_supported": ["plain", "S256"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
    }))
}

/// `GET /login/oauth/keys`. The double issues opaque tokens and no ID tokens, so it has no
/// signing keys to publish; the endpoint exists because discovery names it.
pub(super) async fn keys() -> Json<Value> {
    Json(json!({ "keys": [] }))
}
