//! Deleting what has expired, and telling the sweeper when the next thing will.

use super::{Store, StoreError, column};

/// How many rows one sweep removed, per kind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepCounts {
    pub pending_authorizations: u64,
    pub auth_codes: u64,
    pub access_tokens: u64,
    pub refresh_tokens: u64,
    pub sessions: u64,
    /// Account-page sign-ins that were never finished, and expired account-page sessions.
    pub account_logins: u64,
    pub account_sessions: u64,
}

const TABLES: [&str; 6] = [
    "pending_authorizations",
    "auth_codes",
    "access_tokens",
    "refresh_tokens",
    "account_logins",
    "account_sessions",
];

impl Store {
    /// Deletes every pending authorization, code, token, 2025-era session and
    /// account-page sign-in or session whose expiry has passed.
    pub async fn sweep_expired(&self) -> Result<SweepCounts, StoreError> {
        let now = self.now();
        let mut counts = [0u64; TABLES.len()];
        for (table, count) in TABLES.iter().zip(counts.iter_mut()) {
            *count = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE expires_at <= $1"
            )))
            .bind(now)
            .execute(&self.inner.pool)
            .await?
            .rows_affected();
        }
        Ok(SweepCounts {
            pending_authorizations: counts[0],
            auth_codes: counts[1],
            access_tokens: counts[2],
            refresh_tokens: counts[3],
            account_logins: counts[4],
            account_sessions: counts[5],
            sessions: self.sweep_sessions().await?,
        })
    }

    /// Deletes clients created at or before `created_before` that never
    /// obtained a grant and have no sign-in under way: anonymous
    /// registrations (and fetched metadata documents) nobody used.
    pub async fn sweep_unused_clients(&self, created_before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM clients WHERE created_at <= $1
                 AND NOT EXISTS (SELECT 1 FROM grants g WHERE g.client_id = clients.client_id)
                 AND NOT EXISTS (SELECT 1 FROM pending_authorizations p
                                 WHERE p.client_id = clients.client_id AND p.expires_at > $2)",
        )
        .bind(created_before)
        .bind(self.now())
        .execute(&self.inner.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Deletes audit events that happened before `before`.
    pub async fn sweep_audit(&self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM audit_events WHERE at < $1")
            .bind(before)
            .execute(&self.inner.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// The earliest expiry among the rows [`Store::sweep_expired`] removes.
    pub async fn next_expiry(&self) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "SELECT MIN(e) AS next FROM (
                 SELECT MIN(expires_at) AS e FROM pending_authorizations
                 UNION ALL SELECT MIN(expires_at) FROM auth_codes
                 UNION ALL SELECT MIN(expires_at) FROM access_tokens
                 UNION ALL SELECT MIN(expires_at) FROM refresh_tokens
                 UNION ALL SELECT MIN(expires_at) FROM sessions WHERE deleted_at IS NULL
                 UNION ALL SELECT MIN(expires_at) FROM account_logins
                 UNION ALL SELECT MIN(expires_at) FROM account_sessions
             ) AS expiries",
        )
        .fetch_one(&self.inner.pool)
        .await?;
        column(&row, "next")
    }
}
