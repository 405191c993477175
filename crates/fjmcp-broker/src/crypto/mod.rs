//! Secrets at rest and on the wire: sealing of upstream credentials, minting of
//! broker-issued opaque values, the one-way hashes the store keeps of them, and
//! PKCE (S256) for both the broker's own sign-ins at Forgejo and its clients'.
//!
//! Invariant: nothing outside this module chooses a random source, a hash or a
//! cipher. Callers get typed values whose `Debug` never prints the secret.

mod pkce;
mod sealing;
mod tokens;

pub use pkce::{pkce_pair, s256_challenge, verifier_is_well_formed};
pub use sealing::{KeyError, OpenError, SealContext, Sealer, SealingKey};
pub use tokens::{
    SecretHash, constant_time_eq, csrf_token_for, hash_secret, mint_secret, random_id,
};
