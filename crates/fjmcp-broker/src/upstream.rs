//! A Forgejo user's identity and the tokens Forgejo issued them, as plain
//! values: what the `forgejo` client produces, the `store` seals and the
//! `credentials` module manages. A leaf, so those three never need to know
//! each other to name them.

use secrecy::SecretString;

/// Who a Forgejo user is, as userinfo reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserIdentity {
    /// Forgejo's `sub`: the numeric user id, as text. Stable across renames.
    pub id: String,
    /// The login name at the time of the last sign-in.
    pub login: String,
}

/// A user's Forgejo tokens, in plaintext only while in memory.
#[derive(Debug, Clone)]
pub struct UpstreamCredential {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    /// When Forgejo said the access token expires.
    pub access_expires_at: i64,
}
