//! Grants (a user's authorization of one client for the MCP resource) and the
//! consents that let later logins of the same (user, client) skip the consent page.

use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::{Store, StoreError, column};
use crate::crypto::random_id;
use crate::metrics::{OAuthEvent, metrics};

/// A grant to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGrant {
    pub user_id: String,
    pub client_id: String,
    /// Space-separated scopes, as in OAuth.
    pub scopes: String,
    /// The resource (the MCP endpoint URL) the grant's tokens are bound to.
    pub resource: String,
}

/// A stored grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    pub id: String,
    pub grant: NewGrant,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl GrantRecord {
    /// True until the grant is revoked.
    pub fn is_live(&self) -> bool {
        self.revoked_at.is_none()
    }
}

impl Store {
    /// Creates a grant with a fresh id.
    pub async fn create_grant(&self, grant: &NewGrant) -> Result<GrantRecord, StoreError> {
        let mut conn = self.inner.pool.acquire().await?;
        insert_grant(&mut conn, grant, self.now()).await
    }

    /// Looks a grant up by id, revoked or not.
    pub async fn grant(&self, grant_id: &str) -> Result<Option<GrantRecord>, StoreError> {
        sqlx::query("SELECT * FROM grants WHERE id = $1")
            .bind(grant_id)
            .fetch_optional(&self.inner.pool)
            .await?
            .map(|row| grant_from_row(&row))
            .transpose()
    }

    /// The user's grants that are not revoked.
    pub async fn live_grants_of_user(&self, user_id: &str) -> Result<Vec<GrantRecord>, StoreError> {
        sqlx::query(
            "SELECT * FROM grants WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at, id",
        )
        .bind(user_id)
        .fetch_all(&self.inner.pool)
        .await?
        .iter()
        .map(grant_from_row)
        .collect()
    }

    /// Revokes a grant and, in the same transaction, everything issued under it:
    /// access and refresh tokens, unused codes and 2025-era sessions. Returns
    /// false if the grant was unknown or already revoked.
    pub async fn revoke_grant(&self, grant_id: &str) -> Result<bool, StoreError> {
        let mut tx = self.inner.pool.begin().await?;
        let revoked = revoke_grant_in(&mut tx, grant_id, self.now()).await?;
        tx.commit().await?;
        if revoked {
            self.revoked_here();
        }
        Ok(revoked)
    }

    /// Records that the user approved the client (replacing an earlier approval).
    pub async fn record_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scopes: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO consents (user_id, client_id, scopes, granted_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, client_id) DO UPDATE SET
                 scopes = excluded.scopes, granted_at = excluded.granted_at",
        )
        .bind(user_id)
        .bind(client_id)
        .bind(scopes)
        .bind(self.now())
        .execute(&self.inner.pool)
        .await?;
        metrics().oauth_event(OAuthEvent::ConsentGiven);
        Ok(())
    }

    /// Whether any user ever approved the client (and did not withdraw it).
    pub async fn client_has_consent(&self, client_id: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("SELECT 1 AS approved FROM consents WHERE client_id = $1 LIMIT 1")
                .bind(client_id)
                .fetch_optional(&self.inner.pool)
                .await?
                .is_some(),
        )
    }

    /// Forgets that the user approved the client, so the client's next
    /// authorization shows the consent page again. Returns false if there was
    /// no approval to forget. Grants already issued are not touched.
    pub async fn withdraw_consent(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<bool, StoreError> {
        let mut conn = self.inner.pool.acquire().await?;
        withdraw_consent_in(&mut conn, user_id, client_id).await
    }

    /// The scopes the user approved for the client, if they ever did.
    pub async fn consent(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<Option<String>, StoreError> {
        sqlx::query("SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2")
            .bind(user_id)
            .bind(client_id)
            .fetch_optional(&self.inner.pool)
            .await?
            .map(|row| column(&row, "scopes"))
            .transpose()
    }
}

pub(super) fn grant_from_row(row: &AnyRow) -> Result<GrantRecord, StoreError> {
    Ok(GrantRecord {
        id: column(row, "id")?,
        grant: NewGrant {
            user_id: column(row, "user_id")?,
            client_id: column(row, "client_id")?,
            scopes: column(row, "scopes")?,
            resource: column(row, "resource")?,
        },
        created_at: column(row, "created_at")?,
        revoked_at: column(row, "revoked_at")?,
    })
}

/// Inserts a grant on `conn` (a pooled connection or an open transaction).
pub(super) async fn insert_grant(
    conn: &mut AnyConnection,
    grant: &NewGrant,
    now: i64,
) -> Result<GrantRecord, StoreError> {
    let id = random_id();
    sqlx::query(
        "INSERT INTO grants (id, user_id, client_id, scopes, resource, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(&grant.user_id)
    .bind(&grant.client_id)
    .bind(&grant.scopes)
    .bind(&grant.resource)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(GrantRecord {
        id,
        grant: grant.clone(),
        created_at: now,
        revoked_at: None,
    })
}

/// The body of [`Store::withdraw_consent`], for callers that hold a transaction.
pub(super) async fn withdraw_consent_in(
    conn: &mut AnyConnection,
    user_id: &str,
    client_id: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM consents WHERE user_id = $1 AND client_id = $2")
        .bind(user_id)
        .bind(client_id)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The body of [`Store::revoke_grant`], for callers that already hold a transaction.
pub(super) async fn revoke_grant_in(
    conn: &mut AnyConnection,
    grant_id: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let done =
        sqlx::query("UPDATE grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(grant_id)
            .bind(now)
            .execute(&mut *conn)
            .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    super::epoch::advance_in(conn).await?;
    metrics().oauth_event(OAuthEvent::GrantRevoked);
    for statement in [
        "UPDATE access_tokens SET revoked_at = $2 WHERE grant_id = $1 AND revoked_at IS NULL",
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE grant_id = $1 AND revoked_at IS NULL",
        "UPDATE auth_codes SET used_at = $2 WHERE grant_id = $1 AND used_at IS NULL",
        "UPDATE sessions SET deleted_at = $2 WHERE grant_id = $1 AND deleted_at IS NULL",
    ] {
        sqlx::query(statement)
            .bind(grant_id)
            .bind(now)
            .execute(&mut *conn)
            .await?;
    }
    Ok(true)
}
