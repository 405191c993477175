//! Integrity protection for MRTR `requestState` (SEP-2322).
//!
//! The 2026-07-28 spec makes `requestState` attacker-controlled input that the server "MUST
//! protect". The conformance suite checks this by appending `-TAMPERED` to a state and expecting
//! an error, so every state this server hands out is `base64url(json) "." hex(hmac)` under a key
//! drawn at start-up. HMAC-SHA-256 is written out here (RFC 2104) to avoid a dependency for ten
//! lines of code.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// SHA-256 block size, the HMAC padding width.
const BLOCK: usize = 64;

/// Signs and verifies request states with one secret key.
pub struct StateSealer {
    /// The HMAC key; never leaves the process.
    key: [u8; 32],
}

/// The key is secret: `Debug` shows none of it.
impl std::fmt::Debug for StateSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateSealer").finish_non_exhaustive()
    }
}

impl StateSealer {
    /// A sealer with a fresh random key, so states from another process never verify.
    pub fn random() -> std::io::Result<Self> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Self { key })
    }

    /// A sealer with a fixed key (tests).
    pub fn from_key(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// The sealed form of `payload`.
    pub fn seal(&self, payload: &Value) -> String {
        let body = URL_SAFE_NO_PAD.encode(payload.to_string());
        let tag = hex::encode(self.mac(body.as_bytes()));
        format!("{body}.{tag}")
    }

    /// The payload of a state this sealer produced, or `None` if it was altered or forged.
    pub fn open(&self, state: &str) -> Option<Value> {
        let (body, tag) = state.rsplit_once('.')?;
        let tag = hex::decode(tag).ok()?;
        if !constant_time_eq(&tag, &self.mac(body.as_bytes())) {
            return None;
        }
        let json = URL_SAFE_NO_PAD.decode(body).ok()?;
        serde_json::from_slice(&json).ok()
    }

    /// HMAC-SHA-256(key, message).
    fn mac(&self, message: &[u8]) -> [u8; 32] {
        let mut inner_pad = [0x36u8; BLOCK];
        let mut outer_pad = [0x5cu8; BLOCK];
        for (i, byte) in self.key.iter().enumerate() {
            inner_pad[i] ^= byte;
            outer_pad[i] ^= byte;
        }
        let inner = Sha256::new()
            .chain_update(inner_pad)
            .chain_update(message)
            .finalize();
        Sha256::new()
            .chain_update(outer_pad)
            .chain_update(inner)
            .finalize()
            .into()
    }
}

/// Compares without an early exit, so timing does not reveal how much of a forged tag matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        // RFC 4231 §4.3: key "Jefe" (zero-padded to our 32-byte key, which HMAC pads anyway).
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let sealer = StateSealer::from_key(key);
        assert_eq!(
            hex::encode(sealer.mac(b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn sealed_state_round_trips() {
        let sealer = StateSealer::from_key([1; 32]);
        let payload = json!({ "kind": "tamper-test", "round": 2 });
        assert_eq!(sealer.open(&sealer.seal(&payload)), Some(payload));
    }

    #[test]
    fn altered_or_foreign_states_are_refused() {
        let sealer = StateSealer::from_key([1; 32]);
        let state = sealer.seal(&json!({ "kind": "x" }));
        assert_eq!(sealer.open(&format!("{state}-TAMPERED")), None);
        assert_eq!(sealer.open(&state.replacen('e', "f", 1)), None);
        assert_eq!(sealer.open("no-dot-here"), None);
        let other = StateSealer::from_key([2; 32]);
        assert_eq!(other.open(&state), None);
    }
}
