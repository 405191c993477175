//! Opaque broker-issued values (tokens, codes, session ids, state) and their hashes.
//!
//! The store only ever sees [`SecretHash`]es: a database dump must not let
//! anyone replay a token, so the plaintext exists only in the response that
//! hands it out.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// 32 random bytes, base64url without padding (43 visible ASCII characters,
/// valid as an OAuth token and as an `Mcp-Session-Id`), with a short prefix
/// that tells an operator reading a leaked value what it was.
pub fn mint_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    // The OS random source failing is not something a request can recover from;
    // issuing a predictable token would be far worse than stopping.
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A random identifier for rows that are not secrets themselves (grants,
/// refresh-token families): 16 random bytes, hex.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    hex::encode(bytes)
}

/// SHA-256 of a broker-issued secret, hex encoded: the only form the store keeps.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SecretHash(String);

impl SecretHash {
    /// The hex digest, as stored in the database.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// Rebuilds a hash read back from the store.
    pub(crate) fn from_stored(hex_digest: String) -> Self {
        Self(hex_digest)
    }
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A prefix is enough to correlate log lines; the full hash is not needed.
        write!(f, "SecretHash({}…)", &self.0[..8.min(self.0.len())])
    }
}

/// Hashes a secret presented by a client so it can be looked up in the store.
pub fn hash_secret(secret: &str) -> SecretHash {
    SecretHash(hex::encode(Sha256::digest(secret.as_bytes())))
}

/// The CSRF token of the forms of a browser session: derived from the
/// session's secret (which only the browser's HttpOnly cookie holds), so it
/// needs no storage and a page that cannot read the cookie cannot know it.
/// A distinct label keeps it unrelated to the hash the store keeps.
pub fn csrf_token_for(session_secret: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"fjmcp-broker form csrf v1\0")
        .chain_update(session_secret.as_bytes())
        .finalize();
    URL_SAFE_NO_PAD.encode(digest)
}

/// Compares two byte strings in time independent of where they differ
/// (client secrets, CSRF tokens, PKCE verifiers' digests).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_secrets_are_unique_prefixed_and_header_safe() {
        let a = mint_secret("fjat_");
        let b = mint_secret("fjat_");
        assert_ne!(a, b);
        assert!(a.starts_with("fjat_"));
        assert_eq!(a.len(), "fjat_".len() + 43);
        assert!(a.bytes().all(|c| (0x21..=0x7e).contains(&c)));
    }

    #[test]
    fn csrf_tokens_are_per_session_and_not_the_stored_hash() {
        let a = csrf_token_for("session-a");
        assert_eq!(a, csrf_token_for("session-a"));
        assert_ne!(a, csrf_token_for("session-b"));
        assert_ne!(a, hash_secret("session-a").as_str());
        assert_eq!(a.len(), 43);
    }

    #[test]
    fn hash_is_sha256_hex_and_debug_hides_it() {
        let h = hash_secret("abc");
        assert_eq!(
            h.as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(format!("{h:?}"), "SecretHash(ba7816bf…)");
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"same", b"same"));
        assert!(!constant_time_eq(b"same", b"sane"));
        assert!(!constant_time_eq(b"same", b"same-but-longer"));
    }
}
