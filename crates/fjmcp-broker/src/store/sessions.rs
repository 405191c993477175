//! 2025-era MCP sessions (`Mcp-Session-Id`): rows bound to the grant that
//! created them, so they survive broker restarts and child respawns, and end
//! with the grant.

use super::{Backend, Store, StoreError, column};
use crate::crypto::SecretHash;

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub grant_id: String,
    pub user_id: String,
    /// The protocol version negotiated at `initialize`.
    pub protocol_version: String,
    pub expires_at: i64,
}

impl Store {
    /// Stores a new session that expires after `idle_seconds` without use.
    pub async fn create_session(
        &self,
        id_hash: &SecretHash,
        grant_id: &str,
        user_id: &str,
        protocol_version: &str,
        idle_seconds: i64,
    ) -> Result<(), StoreError> {
        let now = self.now();
        sqlx::query(
            "INSERT INTO sessions (id_hash, grant_id, user_id, protocol_version, created_at, last_seen_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $5, $6)",
        )
        .bind(id_hash.as_str())
        .bind(grant_id)
        .bind(user_id)
        .bind(protocol_version)
        .bind(now)
        .bind(now + idle_seconds)
        .execute(&self.inner.pool)
        .await?;
        Ok(())
    }

    /// Stores a new session unless the user already has `cap` live ones;
    /// false when at the cap. Count and insert are one step: concurrent
    /// `initialize` requests (on any instance) cannot overshoot the cap.
    pub async fn create_session_capped(
        &self,
        id_hash: &SecretHash,
        grant_id: &str,
        user_id: &str,
        protocol_version: &str,
        idle_seconds: i64,
        cap: i64,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        // SQLite: the IMMEDIATE transaction holds the database's write lock.
        let mut tx = self.begin_write().await?;
        if self.inner.backend == Backend::Postgres {
            // Serializes the user's session creations across instances.
            sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        let inserted = sqlx::query(
            "INSERT INTO sessions (id_hash, grant_id, user_id, protocol_version, created_at, last_seen_at, expires_at)
             SELECT $1, $2, $3, $4, $5, $5, $6
             WHERE (SELECT COUNT(*) FROM sessions
                    WHERE user_id = $3 AND deleted_at IS NULL AND expires_at > $5) < $7",
        )
        .bind(id_hash.as_str())
        .bind(grant_id)
        .bind(user_id)
        .bind(protocol_version)
        .bind(now)
        .bind(now + idle_seconds)
        .bind(cap)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(inserted == 1)
    }

    /// The live session (not deleted, not expired, its grant not revoked), and
    /// its idle expiry pushed forward by `idle_seconds`.
    pub async fn touch_session(
        &self,
        id_hash: &SecretHash,
        idle_seconds: i64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let now = self.now();
        let row = sqlx::query(
            "UPDATE sessions SET last_seen_at = $2, expires_at = $3
             WHERE id_hash = $1 AND deleted_at IS NULL AND expires_at > $2
                 AND grant_id IN (SELECT id FROM grants WHERE revoked_at IS NULL)
             RETURNING grant_id, user_id, protocol_version, expires_at",
        )
        .bind(id_hash.as_str())
        .bind(now)
        .bind(now + idle_seconds)
        .fetch_optional(&self.inner.pool)
        .await?;
        row.map(|row| {
            Ok(SessionRecord {
                grant_id: column(&row, "grant_id")?,
                user_id: column(&row, "user_id")?,
                protocol_version: column(&row, "protocol_version")?,
                expires_at: column(&row, "expires_at")?,
            })
        })
        .transpose()
    }

    /// Whether the session is still live for `grant_id`, without touching it.
    pub(crate) async fn session_is_live(
        &self,
        id_hash: &SecretHash,
        grant_id: &str,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 AS live FROM sessions s JOIN grants g ON g.id = s.grant_id
             WHERE s.id_hash = $1 AND s.grant_id = $2 AND s.deleted_at IS NULL
                 AND s.expires_at > $3 AND g.revoked_at IS NULL",
        )
        .bind(id_hash.as_str())
        .bind(grant_id)
        .bind(self.now())
        .fetch_optional(&self.inner.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Ends a session of `grant_id`; false if there was no such live session.
    pub async fn delete_session(
        &self,
        id_hash: &SecretHash,
        grant_id: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE sessions SET deleted_at = $3 WHERE id_hash = $1 AND grant_id = $2 AND deleted_at IS NULL",
        )
        .bind(id_hash.as_str())
        .bind(grant_id)
        .bind(self.now())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        super::epoch::advance_in(&mut tx).await?;
        tx.commit().await?;
        self.revoked_here();
        Ok(true)
    }

    /// Records when sessions were last used (kept in memory by the instances
    /// serving them, written behind in batches): each session's last use and
    /// idle expiry move forward, never back.
    pub async fn record_session_use(
        &self,
        uses: &[(SecretHash, i64)],
        idle_seconds: i64,
    ) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for (id_hash, last_used) in uses {
            sqlx::query(
                "UPDATE sessions SET last_seen_at = $2, expires_at = $3
                 WHERE id_hash = $1 AND deleted_at IS NULL AND last_seen_at < $2",
            )
            .bind(id_hash.as_str())
            .bind(last_used)
            .bind(last_used + idle_seconds)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// How many live sessions there are (all users, all instances).
    pub(crate) async fn count_live_sessions(&self) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM sessions WHERE deleted_at IS NULL AND expires_at > $1",
        )
        .bind(self.now())
        .fetch_one(&self.inner.pool)
        .await?;
        column(&row, "n")
    }

    /// How many live sessions the user has (for the per-user cap).
    pub async fn live_sessions_of_user(&self, user_id: &str) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM sessions WHERE user_id = $1 AND deleted_at IS NULL AND expires_at > $2",
        )
        .bind(user_id)
        .bind(self.now())
        .fetch_one(&self.inner.pool)
        .await?;
        column(&row, "n")
    }

    /// Deletes sessions that expired or ended (called by the sweeper).
    pub(crate) async fn sweep_sessions(&self) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR deleted_at IS NOT NULL")
                .bind(self.now())
                .execute(&self.inner.pool)
                .await?;
        Ok(done.rows_affected())
    }
}
