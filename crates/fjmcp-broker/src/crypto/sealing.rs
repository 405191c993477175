//! Authenticated encryption of secrets at rest (the users' Forgejo tokens).
//!
//! Format of a sealed value: `0x01 ‖ key id (8) ‖ nonce (24) ‖ ciphertext ‖ tag (16)`,
//! XChaCha20-Poly1305. The key id lets a broker hold an old key next to the
//! current one while values are re-sealed; the associated data names the row
//! and column a value belongs to, so a ciphertext copied into another user's row
//! does not open.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use chacha20poly1305::aead::Aead;
use chacha20poly1305::aead::Payload;
use chacha20poly1305::{Key, KeyInit, XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretBox};
use sha2::{Digest, Sha256};

const FORMAT_VERSION: u8 = 1;
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;
const TAG_LEN: usize = 16;

/// Why a key file could not be used. Each names the file; none prints key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("sealing key file {path}: cannot read it: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "sealing key file {path}: must hold 32 bytes, as 64 hex characters or raw bytes (create one with `openssl rand -hex 32`)"
    )]
    Malformed { path: String },
    #[error(
        "sealing key file {path}: mode {mode:o} lets group or others read it; run `chmod 600 {path}`"
    )]
    TooOpen { path: String, mode: u32 },
    #[error("sealing key file {path}: cannot create it: {source}")]
    Create {
        path: String,
        source: std::io::Error,
    },
}

/// A 32-byte sealing key and its public id.
pub struct SealingKey {
    id: [u8; KEY_ID_LEN],
    cipher: XChaCha20Poly1305,
    // Kept only so `Debug` can prove it prints nothing; the cipher holds the key.
    _material: SecretBox<[u8; 32]>,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealingKey(id={})", hex::encode(self.id))
    }
}

impl SealingKey {
    /// Builds a key from raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"fjmcp-broker sealing key id v1\0")
            .chain_update(bytes)
            .finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        let cipher = XChaCha20Poly1305::new(&Key::from(bytes));
        Self {
            id,
            cipher,
            _material: SecretBox::new(Box::new(bytes)),
        }
    }

    /// The key id written into every value sealed with this key, hex encoded.
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }

    /// Reads a key file, refusing one that group or others can read.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        let meta = fs::metadata(path).map_err(|source| KeyError::Unreadable {
            path: shown.clone(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::TooOpen { path: shown, mode });
        }
        let content = fs::read(path).map_err(|source| KeyError::Unreadable {
            path: shown.clone(),
            source,
        })?;
        let content = SecretBox::new(Box::new(content));
        parse_key_material(content.expose_secret())
            .map(Self::from_bytes)
            .ok_or(KeyError::Malformed { path: shown })
    }

    /// Creates a fresh random key file with mode 0600, failing if the file exists
    /// (two brokers racing to create it must not overwrite each other's key).
    pub fn generate(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| KeyError::Create {
                path: shown.clone(),
                source,
            })?;
        let text = SecretBox::new(Box::new(format!("{}\n", hex::encode(bytes))));
        file.write_all(text.expose_secret().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|source| KeyError::Create {
                path: shown,
                source,
            })?;
        Ok(Self::from_bytes(bytes))
    }

    /// Loads the key file, generating it first if it does not exist yet.
    pub fn load_or_generate(path: &Path) -> Result<Self, KeyError> {
        match Self::generate(path) {
            Ok(key) => Ok(key),
            Err(KeyError::Create { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                Self::load(path)
            }
            Err(other) => Err(other),
        }
    }
}

/// Accepts 64 hex characters (surrounding whitespace allowed) or exactly 32 raw bytes.
fn parse_key_material(content: &[u8]) -> Option<[u8; 32]> {
    let mut key = [0u8; 32];
    if let Ok(text) = std::str::from_utf8(content) {
        let text = text.trim();
        if text.len() == 64 && hex::decode_to_slice(text, &mut key).is_ok() {
            return Some(key);
        }
    }
    if content.len() == 32 {
        key.copy_from_slice(content);
        return Some(key);
    }
    None
}

/// What a sealed value belongs to: bound into the ciphertext as associated data.
#[derive(Debug, Clone)]
pub struct SealContext(Vec<u8>);

impl SealContext {
    /// `table`, the row's identity and the column, e.g. `("users", "42", "access_token")`.
    pub fn new(table: &str, row: &str, column: &str) -> Self {
        let mut aad = b"fjmcp-broker/sealed/v1\0".to_vec();
        for part in [table, row, column] {
            // Length-prefixed so ("a/b", "c") and ("a", "b/c") cannot collide.
            aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        Self(aad)
    }
}

/// Why a sealed value did not open. Deliberately coarse: the caller treats
/// every case as "this credential is unusable".
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error("sealed value is truncated or of an unknown format")]
    Malformed,
    #[error("sealed value was made with key {0}, which this broker does not hold")]
    UnknownKey(String),
    #[error("sealed value failed authentication (tampered, or sealed for another row)")]
    Inauthentic,
}

/// The key id a sealed value names, if it is of the known format.
fn sealed_key_id(sealed: &[u8]) -> Option<&[u8]> {
    (sealed.len() >= HEADER_LEN + TAG_LEN && sealed[0] == FORMAT_VERSION)
        .then(|| &sealed[1..1 + KEY_ID_LEN])
}

/// Seals with the current key; opens with any key it holds.
#[derive(Debug)]
pub struct Sealer {
    current: SealingKey,
    previous: Vec<SealingKey>,
}

impl Sealer {
    /// A sealer with one key.
    pub fn new(current: SealingKey) -> Self {
        Self {
            current,
            previous: Vec::new(),
        }
    }

    /// Adds a retired key that can still open older values (while a key
    /// rotation re-seals them, see `admin seal-key rotate`). A key equal to
    /// the current one or already held is ignored.
    pub fn with_previous(mut self, key: SealingKey) -> Self {
        if key.id != self.current.id && !self.previous.iter().any(|k| k.id == key.id) {
            self.previous.push(key);
        }
        self
    }

    /// The id of the key new values are sealed with, hex encoded.
    pub fn current_key_id(&self) -> String {
        self.current.id_hex()
    }

    /// The ids of the retired keys this sealer can still open with.
    pub fn previous_key_ids(&self) -> Vec<String> {
        self.previous.iter().map(SealingKey::id_hex).collect()
    }

    /// Whether `sealed` was sealed with the current key (a malformed value is
    /// not: re-sealing it then fails with [`OpenError::Malformed`]).
    pub(crate) fn is_current(&self, sealed: &[u8]) -> bool {
        sealed_key_id(sealed) == Some(&self.current.id[..])
    }

    /// Encrypts `plaintext` for the place `context` names.
    pub(crate) fn seal(&self, plaintext: &[u8], context: &SealContext) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the operating system's random source failed");
        let ciphertext = self
            .current
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &context.0,
                },
            )
            .expect("XChaCha20-Poly1305 accepts any message a database row can hold");
        let mut out = Vec::with_capacity(HEADER_LEN + ciphertext.len());
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.current.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Decrypts a value sealed for the same `context`.
    pub(crate) fn open(&self, sealed: &[u8], context: &SealContext) -> Result<Vec<u8>, OpenError> {
        let Some(key_id) = sealed_key_id(sealed) else {
            return Err(OpenError::Malformed);
        };
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == key_id)
            .ok_or_else(|| OpenError::UnknownKey(hex::encode(key_id)))?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[1 + KEY_ID_LEN..HEADER_LEN]);
        key.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &sealed[HEADER_LEN..],
                    aad: &context.0,
                },
            )
            .map_err(|_| OpenError::Inauthentic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sealer(seed: u8) -> Sealer {
        Sealer::new(SealingKey::from_bytes([seed; 32]))
    }

    proptest! {
        #[test]
        fn round_trip(plain in proptest::collection::vec(any::<u8>(), 0..512), row in "[a-z0-9]{1,12}") {
            let s = sealer(7);
            let ctx = SealContext::new("users", &row, "access_token");
            let sealed = s.seal(&plain, &ctx);
            prop_assert_eq!(s.open(&sealed, &ctx).unwrap(), plain);
        }

        #[test]
        fn another_rows_context_fails(plain in proptest::collection::vec(any::<u8>(), 0..128),
                                      row in "[a-z0-9]{1,12}", other in "[a-z0-9]{1,12}") {
            prop_assume!(row != other);
            let s = sealer(7);
            let sealed = s.seal(&plain, &SealContext::new("users", &row, "access_token"));
            prop_assert_eq!(
                s.open(&sealed, &SealContext::new("users", &other, "access_token")),
                Err(OpenError::Inauthentic)
            );
            // Same row, other column: also refused.
            prop_assert_eq!(
                s.open(&sealed, &SealContext::new("users", &row, "refresh_token")),
                Err(OpenError::Inauthentic)
            );
        }

        #[test]
        fn any_flipped_byte_fails(plain in proptest::collection::vec(any::<u8>(), 1..128),
                                  index in any::<prop::sample::Index>(), bit in 0u8..8) {
            let s = sealer(7);
            let ctx = SealContext::new("users", "1", "access_token");
            let mut sealed = s.seal(&plain, &ctx);
            let i = index.index(sealed.len());
            sealed[i] ^= 1 << bit;
            prop_assert!(s.open(&sealed, &ctx).is_err());
        }
    }

    #[test]
    fn a_retired_key_still_opens_and_unknown_keys_are_named() {
        let old = sealer(1);
        let ctx = SealContext::new("users", "1", "refresh_token");
        let sealed = old.seal(b"secret", &ctx);
        let rotated = sealer(2).with_previous(SealingKey::from_bytes([1; 32]));
        assert_eq!(rotated.open(&sealed, &ctx).unwrap(), b"secret");
        assert_eq!(
            sealer(3).open(&sealed, &ctx),
            Err(OpenError::UnknownKey(old.current.id_hex()))
        );
        assert_eq!(
            sealer(3).open(&sealed[..10], &ctx),
            Err(OpenError::Malformed)
        );
    }

    #[test]
    fn values_of_a_retired_key_are_told_apart_from_current_ones() {
        let old = sealer(1);
        let ctx = SealContext::new("users", "1", "access_token");
        let sealed_old = old.seal(b"secret", &ctx);
        let rotated = sealer(2)
            .with_previous(SealingKey::from_bytes([1; 32]))
            // The current key and a repeated one are not added twice.
            .with_previous(SealingKey::from_bytes([2; 32]))
            .with_previous(SealingKey::from_bytes([1; 32]));
        assert_eq!(rotated.previous_key_ids(), vec![old.current_key_id()]);
        assert!(!rotated.is_current(&sealed_old));
        assert!(old.is_current(&sealed_old));
        let resealed = rotated.seal(&rotated.open(&sealed_old, &ctx).unwrap(), &ctx);
        assert!(rotated.is_current(&resealed));
        assert!(
            !rotated.is_current(&resealed[..10]),
            "malformed is never current"
        );
    }

    #[test]
    fn key_files_are_generated_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seal.key");
        let made = SealingKey::load_or_generate(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = SealingKey::load_or_generate(&path).unwrap();
        assert_eq!(made.id_hex(), again.id_hex());
        assert!(!format!("{made:?}").contains(&fs::read_to_string(&path).unwrap().trim()[..16]));
    }

    #[test]
    fn key_files_that_are_open_or_malformed_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open.key");
        fs::write(&open, "00".repeat(32)).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            SealingKey::load(&open),
            Err(KeyError::TooOpen { mode: 0o644, .. })
        ));

        let short = dir.path().join("short.key");
        fs::write(&short, "abcd").unwrap();
        fs::set_permissions(&short, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            SealingKey::load(&short),
            Err(KeyError::Malformed { .. })
        ));

        let raw = dir.path().join("raw.key");
        fs::write(&raw, [9u8; 32]).unwrap();
        fs::set_permissions(&raw, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            SealingKey::load(&raw).unwrap().id_hex(),
            SealingKey::from_bytes([9; 32]).id_hex()
        );

        assert!(matches!(
            SealingKey::load(&dir.path().join("missing.key")),
            Err(KeyError::Unreadable { .. })
        ));
    }
}
