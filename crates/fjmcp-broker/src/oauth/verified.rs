//! Access tokens this instance has verified, kept in memory so the bearer
//! check of a tool call does not wait on the store.
//!
//! An entry is trusted only while the store's revocation epoch has not moved
//! since the store was asked (see `store/epoch.rs`): a revocation on this
//! instance is seen at once, on another within the epoch's polling period.
//! Entries are keyed by the token's hash (the plaintext is never kept), expire
//! with the token, and the map is bounded; unknown tokens are never cached, so
//! a flood of random bearer tokens costs store reads, not memory.

use std::collections::HashMap;

use parking_lot::Mutex;

use super::principal::Principal;
use crate::crypto::SecretHash;

/// The most tokens kept: far more than the live clients of a team's instance.
const CAPACITY: usize = 10_000;

#[derive(Debug)]
struct Verified {
    principal: Principal,
    /// When the token expires (Unix seconds).
    expires_at: i64,
    /// The revocation epoch read before the store vouched for the token.
    epoch: u64,
}

/// The verified tokens of this instance.
#[derive(Debug, Default)]
pub(crate) struct VerifiedTokens {
    entries: Mutex<HashMap<String, Verified>>,
}

impl VerifiedTokens {
    /// The principal of a token verified at the current `epoch` and not
    /// expired at `now`.
    pub(crate) fn get(&self, hash: &SecretHash, now: i64, epoch: u64) -> Option<Principal> {
        let entries = self.entries.lock();
        let entry = entries.get(hash.as_str())?;
        (entry.epoch == epoch && entry.expires_at > now).then(|| entry.principal.clone())
    }

    /// Remembers a token the store vouched for; `epoch` is the one read before
    /// the store was asked.
    pub(crate) fn insert(
        &self,
        hash: &SecretHash,
        principal: Principal,
        expires_at: i64,
        epoch: u64,
        now: i64,
    ) {
        let mut entries = self.entries.lock();
        if entries.len() >= CAPACITY {
            entries.retain(|_, e| e.epoch == epoch && e.expires_at > now);
            if entries.len() >= CAPACITY {
                // Still full of live tokens: start over rather than grow.
                entries.clear();
            }
        }
        entries.insert(
            hash.as_str().to_string(),
            Verified {
                principal,
                expires_at,
                epoch,
            },
        );
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hash_secret;

    fn principal(user: &str) -> Principal {
        Principal {
            grant_id: "g".into(),
            client_id: "c".into(),
            user_id: user.into(),
        }
    }

    #[test]
    fn an_entry_lives_until_the_token_expires_or_the_epoch_moves() {
        let cache = VerifiedTokens::default();
        let token = hash_secret("fjat_x");
        cache.insert(&token, principal("1"), 100, 7, 50);
        assert_eq!(cache.get(&token, 99, 7), Some(principal("1")));
        assert_eq!(cache.get(&token, 100, 7), None, "expired");
        assert_eq!(cache.get(&token, 50, 8), None, "revoked somewhere");
        assert_eq!(cache.get(&hash_secret("fjat_other"), 50, 7), None);
    }

    #[test]
    fn the_cache_never_grows_past_its_capacity() {
        let cache = VerifiedTokens::default();
        for n in 0..CAPACITY + 10 {
            cache.insert(&hash_secret(&format!("t{n}")), principal("1"), 1_000, 1, 0);
        }
        assert!(cache.len() <= CAPACITY);
        // Stale entries are the first to go.
        for n in 0..CAPACITY {
            cache.insert(&hash_secret(&format!("u{n}")), principal("1"), 1_000, 2, 0);
        }
        assert!(cache.len() <= CAPACITY);
        assert!(cache.get(&hash_secret("u1"), 0, 2).is_some());
    }
}
