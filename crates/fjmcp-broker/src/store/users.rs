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
    /// Creates the user or replaces their credential; returns the new generation.
    pub async fn save_upstream_credential(
        &self,
        user: &UserIdentity,
        credential: &UpstreamCredential,
    ) -> Result<i64, StoreError> {
        let mut conn = self.pool.acquire().await?;
        self.write_credential_in(&mut conn, user, credential).await
    }

    /// [`Store::save_upstream_credential`] on a given connection or transaction.
    pub(super) async fn write_credential_in(
        &self,
        conn: &mut AnyConnection,
        user: &UserIdentity,
        credential: &UpstreamCredential,
    ) -> Result<i64, StoreError> {
        let sealed_access = self.sealer.seal(
            credential.access_token.expose_secret().as_bytes(),
            &access_context(&user.id),
        );
        let sealed_refresh = credential.refresh_token.as_ref().map(|token| {
            self.sealer
                .seal(token.expose_secret().as_bytes(), &refresh_context(&user.id))
        });
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
            .fetch_optional(&self.pool)
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
            .fetch_optional(&self.pool)
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
            let plain = self.sealer.open(sealed, &context)?;
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

    /// Records that Forgejo refused the user's refresh token and forgets the
    /// credential; returns false if the user is unknown.
    pub async fn mark_credential_dead(&self, user_id: &str) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await?;
        mark_dead_in(&mut conn, user_id, self.now()).await
    }
}

/// [`Store::mark_credential_dead`] on a given connection or transaction.
pub(super) async fn mark_dead_in(
    conn: &mut AnyConnection,
    user_id: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE users SET credential_dead_at = $2, sealed_access_token = NULL,
             sealed_refresh_token = NULL, updated_at = $2
         WHERE id = $1",
    )
    .bind(user_id)
    .bind(now)
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
