//! An append-only trail of security-relevant events (logins, consents,
//! revocations, refused refreshes) for operators. Never holds secrets.

use super::{Store, StoreError, column};

/// One audit event.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// What happened, e.g. `grant.revoked`.
    pub kind: String,
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    /// Extra facts as JSON; must not contain tokens or secrets.
    pub detail: serde_json::Value,
}

impl Store {
    /// Appends an event stamped with the store's clock.
    pub async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events (at, kind, user_id, client_id, detail) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(self.now())
        .bind(&event.kind)
        .bind(event.user_id.as_deref())
        .bind(event.client_id.as_deref())
        .bind(event.detail.to_string())
        .execute(&self.inner.pool)
        .await?;
        Ok(())
    }

    /// The newest `limit` events, newest first, with their times.
    pub async fn recent_audit(&self, limit: i64) -> Result<Vec<(i64, AuditEvent)>, StoreError> {
        sqlx::query("SELECT * FROM audit_events ORDER BY id DESC LIMIT $1")
            .bind(limit)
            .fetch_all(&self.inner.pool)
            .await?
            .iter()
            .map(|row| {
                let detail: String = column(row, "detail")?;
                Ok((
                    column(row, "at")?,
                    AuditEvent {
                        kind: column(row, "kind")?,
                        user_id: column(row, "user_id")?,
                        client_id: column(row, "client_id")?,
                        detail: serde_json::from_str(&detail)
                            .map_err(|e| StoreError::Corrupt(format!("audit detail: {e}")))?,
                    },
                ))
            })
            .collect()
    }
}
