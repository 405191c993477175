//! Forgejo users and their one upstream credential.
//!
//! Forgejo keeps one grant per (user, application) and invalidates older
//! refresh tokens whenever it issues a new token, so the credential belongs to
//! the user, not to an MCP client: every login and refresh replaces it and bumps
//! the generation that children are keyed on.

use secrecy::{ExposeSecret, SecretString};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::{Store, StoreError, column};
use crate::crypto::SealContext;
use crate::upstream::{UpstreamCredential, UserIdentity};

/// A user row, without the secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub identity: UserIdentity,
    /// Bumped on every new credential; a child started with an older one is stale.
    pub generation: i64,
    pub access_expires_at: Option<i64>,
    /// Set when Forgejo refused the refresh token: the user must sign in again.
    pub credential_dead_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

fn access_context(user_id: &str) -> SealContext {
    SealContext::new("users", user_id, "access_token")
}

fn refresh_context(user_id: &str) -> SealContext {
    SealContext::new("users", user_id, "refresh_token")
}

impl Store {
    /// The user's tokens sealed for their row (access, refresh).
    fn seal_credential(
        &self,
        user_id: &str,
        credential: &UpstreamCredential,
    ) -> (Vec<u8>, Option<Vec<u8>>) {
        let access = self.inner.sealer.seal(
            credential.access_token.expose_secret().as_bytes(),
            &access_context(user_id),
        );
        let refresh = credential.refresh_token.as_ref().map(|token| {
            self.inner
                .sealer
                .seal(token.expose_secret().as_bytes(), &refresh_context(user_id))
        });
        (access, refresh)
    }

    /// Creates the user or replaces their credential whatever its generation
    /// (a sign-in: Forgejo has just made every older refresh token of the user
    /// unusable); returns the new generation.
    pub async fn save_upstream_credential(
        &self,
        user: &UserIdentity,
        credential: &UpstreamCredential,
    ) -> Result<i64, StoreError> {
        let mut conn = self.inner.pool.acquire().await?;
        self.write_credential_in(&mut conn, user, credential).await
    }

    /// [`Store::save_upstream_credential`] on a given connection or transaction.
    async fn write_credential_in(
        &self,
        conn: &mut AnyConnection,
        user: &UserIdentity,
        credential: &UpstreamCredential,
    ) -> Result<i64, StoreError> {
        let (sealed_access, sealed_refresh) = self.seal_credential(&user.id, credential);
        let now = self.now();
        let row = sqlx::query(
            "INSERT INTO users (id, login, sealed_access_token, sealed_refresh_token,
                 access_expires_at, generation, credential_dead_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 1, NULL, $6, $6)
             ON CONFLICT (id) DO UPDATE SET
                 login = excluded.login,
                 sealed_access_token = excluded.sealed_access_token,
                 sealed_refresh_token = excluded.sealed_refresh_token,
                 access_expires_at = excluded.access_expires_at,
                 generation = users.generation + 1,
                 credential_dead_at = NULL,
                 updated_at = excluded.updated_at
             RETURNING generation",
        )
        .bind(&user.id)
        .bind(&user.login)
        .bind(sealed_access)
        .bind(sealed_refresh)
        .bind(credential.access_expires_at)
        .bind(now)
        .fetch_one(&mut *conn)
        .await?;
        column(&row, "generation")
    }

    /// The user row, if the user has ever signed in.
    pub async fn user(&self, user_id: &str) -> Result<Option<UserRecord>, StoreError> {
        sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&self.inner.pool)
            .await?
            .map(|row| user_from_row(&row))
            .transpose()
    }

    /// The user and their opened credential; `None` if unknown or the credential is dead.
    pub async fn upstream_credential(
        &self,
        user_id: &str,
    ) -> Result<Option<(UserRecord, UpstreamCredential)>, StoreError> {
        let Some(row) = sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&self.inner.pool)
            .await?
        else {
            return Ok(None);
        };
        let record = user_from_row(&row)?;
        let sealed_access: Option<Vec<u8>> = column(&row, "sealed_access_token")?;
        let (Some(sealed_access), None) = (sealed_access, record.credential_dead_at) else {
            return Ok(None);
        };
        let sealed_refresh: Option<Vec<u8>> = column(&row, "sealed_refresh_token")?;
        let open = |sealed: &[u8], context| -> Result<SecretString, StoreError> {
            let plain = self.inner.sealer.open(sealed, &context)?;
            String::from_utf8(plain)
                .map(SecretString::from)
                .map_err(|_| StoreError::Corrupt("sealed token is not UTF-8".into()))
        };
        let credential = UpstreamCredential {
            access_token: open(&sealed_access, access_context(user_id))?,
            refresh_token: sealed_refresh
                .map(|sealed| open(&sealed, refresh_context(user_id)))
                .transpose()?,
            access_expires_at: record.access_expires_at.unwrap_or(0),
        };
        Ok(Some((record, credential)))
    }

    /// The generation of the user's credential and whether it is dead, without
    /// opening it (for noticing another instance's refresh cheaply).
    pub async fn credential_generation(
        &self,
        user_id: &str,
    ) -> Result<Option<(i64, bool)>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT generation, credential_dead_at, sealed_access_token FROM users WHERE id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.inner.pool)
        .await?
        else {
            return Ok(None);
        };
        let dead: Option<i64> = column(&row, "credential_dead_at")?;
        let sealed: Option<Vec<u8>> = column(&row, "sealed_access_token")?;
        Ok(Some((
            column(&row, "generation")?,
            dead.is_some() || sealed.is_none(),
        )))
    }
}

/// Replaces the credential of the user at generation `expected` (compare and
/// set); `None` when the generation moved on meanwhile (another sign-in or
/// refresh), and nothing changed.
pub(super) async fn replace_in(
    store: &Store,
    conn: &mut AnyConnection,
    user: &UserIdentity,
    credential: &UpstreamCredential,
    expected: i64,
) -> Result<Option<i64>, StoreError> {
    let (sealed_access, sealed_refresh) = store.seal_credential(&user.id, credential);
    let row = sqlx::query(
        "UPDATE users SET login = $2, sealed_access_token = $3, sealed_refresh_token = $4,
             access_expires_at = $5, generation = generation + 1, credential_dead_at = NULL,
             updated_at = $6
         WHERE id = $1 AND generation = $7
         RETURNING generation",
    )
    .bind(&user.id)
    .bind(&user.login)
    .bind(sealed_access)
    .bind(sealed_refresh)
    .bind(credential.access_expires_at)
    .bind(store.now())
    .bind(expected)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| column(&row, "generation")).transpose()
}

/// Marks the credential at generation `expected` dead and forgets its tokens
/// (compare and set; the generation moves on so no stale writer can revive
/// it); false when the generation moved on meanwhile, and nothing changed.
pub(super) async fn mark_dead_in(
    conn: &mut AnyConnection,
    user_id: &str,
    expected: i64,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE users SET credential_dead_at = $2, sealed_access_token = NULL,
             sealed_refresh_token = NULL, generation = generation + 1, updated_at = $2
         WHERE id = $1 AND generation = $3 AND credential_dead_at IS NULL",
    )
    .bind(user_id)
    .bind(now)
    .bind(expected)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) fn user_from_row(row: &AnyRow) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        identity: UserIdentity {
            id: column(row, "id")?,
            login: column(row, "login")?,
        },
        generation: column(row, "generation")?,
        access_expires_at: column(row, "access_expires_at")?,
        credential_dead_at: column(row, "credential_dead_at")?,
        created_at: column(row, "created_at")?,
        updated_at: column(row, "updated_at")?,
    })
}
