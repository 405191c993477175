//! PKCE (RFC 7636) verification, as Forgejo does it at the token endpoint.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// A code challenge recorded with an authorization code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// `code_challenge_method=plain`: the verifier must equal the challenge.
    Plain(String),
    /// `code_challenge_method=S256`: base64url(SHA-256(verifier)) must equal the challenge.
    S256(String),
}

impl Challenge {
    /// Whether `verifier` answers this challenge. A missing verifier never does.
    pub(crate) fn verify(&self, verifier: Option<&str>) -> bool {
        let Some(verifier) = verifier else {
            return false;
        };
        match self {
            Challenge::Plain(challenge) => verifier == challenge,
            Challenge::S256(challenge) => {
                URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == *challenge
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_example() {
        let challenge = Challenge::S256("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned());
        assert!(challenge.verify(Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")));
        assert!(!challenge.verify(Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK")));
        assert!(!challenge.verify(None));
    }

    #[test]
    fn plain_compares_verbatim() {
        let challenge = Challenge::Plain("abc".to_owned());
        assert!(challenge.verify(Some("abc")));
        assert!(!challenge.verify(Some("abd")));
    }
}
