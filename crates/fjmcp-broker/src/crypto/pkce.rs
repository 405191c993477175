//! PKCE (RFC 7636) with the S256 method, used on both sides of the broker:
//! as a client of Forgejo (the broker makes a verifier for every sign-in it
//! starts) and as an authorization server (it checks the verifiers its own MCP
//! clients present against the challenges they sent).
//!
//! Only S256 exists here: `plain` would let anyone who saw the authorization
//! request redeem the code, which is exactly what PKCE is meant to prevent.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use sha2::{Digest, Sha256};

use super::mint_secret;

/// Shortest verifier RFC 7636 §4.1 allows.
const MIN_VERIFIER_LEN: usize = 43;
/// Longest verifier RFC 7636 §4.1 allows.
const MAX_VERIFIER_LEN: usize = 128;

/// A fresh code verifier and its S256 challenge.
///
/// The verifier is 32 random bytes in base64url without padding: 43
/// characters, all from the unreserved alphabet, so it needs no escaping
/// anywhere and carries the full 256 bits RFC 7636 §7.1 recommends. It is a
/// [`SecretString`] because whoever holds it can redeem the code; the
/// challenge is public by design and travels in the browser's URL.
pub fn pkce_pair() -> (SecretString, String) {
    let verifier = mint_secret("");
    let challenge = s256_challenge(&verifier);
    (SecretString::from(verifier), challenge)
}

/// `BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))`, RFC 7636 §4.2.
///
/// Callers checking a client's verifier compare this against the stored
/// challenge with [`super::constant_time_eq`] and should first reject
/// malformed verifiers with [`verifier_is_well_formed`].
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `verifier` has the shape RFC 7636 §4.1 demands: 43 to 128
/// characters from `[A-Za-z0-9-._~]`. An authorization server must refuse
/// anything else rather than hash it, or a client could weaken PKCE with a
/// one-character verifier.
pub fn verifier_is_well_formed(verifier: &str) -> bool {
    (MIN_VERIFIER_LEN..=MAX_VERIFIER_LEN).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn pairs_are_fresh_well_formed_and_consistent() {
        let (verifier, challenge) = pkce_pair();
        let (other, _) = pkce_pair();
        let verifier = verifier.expose_secret();
        assert_eq!(verifier.len(), 43);
        assert!(verifier_is_well_formed(verifier));
        assert_ne!(verifier, other.expose_secret());
        assert_eq!(challenge, s256_challenge(verifier));
        assert_eq!(challenge.len(), 43);
    }

    #[test]
    fn malformed_verifiers_are_recognised() {
        assert!(verifier_is_well_formed(&"a".repeat(43)));
        assert!(verifier_is_well_formed(&"-._~Az09".repeat(16)));
        assert!(!verifier_is_well_formed(&"a".repeat(42)));
        assert!(!verifier_is_well_formed(&"a".repeat(129)));
        assert!(!verifier_is_well_formed(&format!("{}+", "a".repeat(43))));
        assert!(!verifier_is_well_formed(&format!("{} ", "a".repeat(43))));
        assert!(!verifier_is_well_formed(&"é".repeat(30)));
    }
}
