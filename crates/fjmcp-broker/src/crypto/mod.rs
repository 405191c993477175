//! Secrets at rest and on the wire: sealing of upstream credentials, minting of
//! broker-issued opaque values, and the one-way hashes the store keeps of them.
//!
//! Invariant: nothing outside this module chooses a random source, a hash or a
//! cipher. Callers get typed values whose `Debug` never prints the secret.

mod sealing;
mod tokens;

pub use sealing::{KeyError, OpenError, SealContext, Sealer, SealingKey};
pub use tokens::{SecretHash, constant_time_eq, hash_secret, mint_secret, random_id};
