//! What the operator's `admin` command reads and changes: overviews of users,
//! clients, grants and sessions, revocation by user, client or grant, deleting
//! a client, and the audit trail. Every change is one transaction that first
//! checks what it was asked to change exists, so an unknown id changes nothing.

use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::audit::AuditEvent;
use super::clients::{ClientRecord, client_from_row};
use super::grants::{GrantRecord, grant_from_row, revoke_grant_in, withdraw_consent_in};
use super::users::{UserRecord, user_from_row};
use super::{Store, StoreError, column};

/// A user and what they hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    pub record: UserRecord,
    /// Whether a sealed Forgejo credential is stored (none once it died).
    pub has_credential: bool,
    pub live_grants: i64,
}

/// A client and how many users it acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSummary {
    pub record: ClientRecord,
    pub live_grants: i64,
}

/// A grant with the names an operator recognises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantSummary {
    pub record: GrantRecord,
    /// The user's Forgejo login.
    pub login: String,
    /// The client's self-declared name.
    pub client_name: Option<String>,
    /// When the client last obtained tokens under this grant.
    pub last_used_at: Option<i64>,
}

/// A live 2025-era MCP session (its id is stored only as a hash, so it is
/// shown by its grant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    pub grant_id: String,
    pub user_id: String,
    pub login: String,
    pub client_id: String,
    pub protocol_version: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

/// Which grants to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantFilter {
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    /// Revoked grants too, not only live ones.
    pub include_revoked: bool,
}

/// Which grants to revoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantSelector {
    /// Every live grant of this user id.
    User(String),
    /// Every live grant of this client id.
    Client(String),
    /// This grant.
    Grant(String),
}

/// An audit event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAuditEvent {
    pub id: i64,
    pub at: i64,
    pub event: AuditEvent,
}

impl Store {
    /// Every user, by login.
    pub async fn list_users(&self) -> Result<Vec<UserSummary>, StoreError> {
        sqlx::query(
            "SELECT u.*,
                 (SELECT COUNT(*) FROM grants g WHERE g.user_id = u.id AND g.revoked_at IS NULL) AS live_grants
             FROM users u ORDER BY u.login, u.id",
        )
        .fetch_all(&self.inner.pool)
        .await?
        .iter()
        .map(|row| {
            let sealed: Option<Vec<u8>> = column(row, "sealed_access_token")?;
            Ok(UserSummary {
                record: user_from_row(row)?,
                has_credential: sealed.is_some(),
                live_grants: column(row, "live_grants")?,
            })
        })
        .collect()
    }

    /// The users whose id, or else whose login, is `id_or_login` (a login can
    /// match several rows when a name was freed and taken again in Forgejo).
    pub async fn find_users(&self, id_or_login: &str) -> Result<Vec<UserRecord>, StoreError> {
        for statement in [
            "SELECT * FROM users WHERE id = $1",
            "SELECT * FROM users WHERE login = $1 ORDER BY id",
        ] {
            let rows = sqlx::query(statement)
                .bind(id_or_login)
                .fetch_all(&self.inner.pool)
                .await?;
            if !rows.is_empty() {
                return rows.iter().map(user_from_row).collect();
            }
        }
        Ok(Vec::new())
    }

    /// Every client, oldest first.
    pub async fn list_clients(&self) -> Result<Vec<ClientSummary>, StoreError> {
        sqlx::query(
            "SELECT c.*,
                 (SELECT COUNT(*) FROM grants g WHERE g.client_id = c.client_id AND g.revoked_at IS NULL) AS live_grants
             FROM clients c ORDER BY c.created_at, c.client_id",
        )
        .fetch_all(&self.inner.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(ClientSummary {
                record: client_from_row(row)?,
                live_grants: column(row, "live_grants")?,
            })
        })
        .collect()
    }

    /// Grants matching `filter`, oldest first.
    pub async fn list_grants(&self, filter: &GrantFilter) -> Result<Vec<GrantSummary>, StoreError> {
        sqlx::query(
            "SELECT g.*, u.login, c.client_name
             FROM grants g JOIN users u ON u.id = g.user_id JOIN clients c ON c.client_id = g.client_id
             WHERE ($1 IS NULL OR g.user_id = $1) AND ($2 IS NULL OR g.client_id = $2)
                 AND ($3 = 1 OR g.revoked_at IS NULL)
             ORDER BY g.created_at, g.id",
        )
        .bind(filter.user_id.as_deref())
        .bind(filter.client_id.as_deref())
        .bind(i64::from(filter.include_revoked))
        .fetch_all(&self.inner.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(GrantSummary {
                record: grant_from_row(row)?,
                login: column(row, "login")?,
                client_name: column(row, "client_name")?,
                last_used_at: column(row, "last_used_at")?,
            })
        })
        .collect()
    }

    /// Live 2025-era sessions (not ended, not expired, grant not revoked), oldest first.
    pub async fn list_sessions(&self) -> Result<Vec<SessionSummary>, StoreError> {
        sqlx::query(
            "SELECT s.grant_id, s.user_id, u.login, g.client_id, s.protocol_version,
                 s.created_at, s.last_seen_at, s.expires_at
             FROM sessions s JOIN grants g ON g.id = s.grant_id JOIN users u ON u.id = s.user_id
             WHERE s.deleted_at IS NULL AND s.expires_at > $1 AND g.revoked_at IS NULL
             ORDER BY s.created_at, s.grant_id",
        )
        .bind(self.now())
        .fetch_all(&self.inner.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(SessionSummary {
                grant_id: column(row, "grant_id")?,
                user_id: column(row, "user_id")?,
                login: column(row, "login")?,
                client_id: column(row, "client_id")?,
                protocol_version: column(row, "protocol_version")?,
                created_at: column(row, "created_at")?,
                last_seen_at: column(row, "last_seen_at")?,
                expires_at: column(row, "expires_at")?,
            })
        })
        .collect()
    }

    /// Revokes the selected grants (with their tokens, codes and sessions) and
    /// withdraws the consents of their (user, client) pairs, so each client has
    /// to be approved again; in one transaction. `None` when the user, client
    /// or grant does not exist (nothing changed); otherwise the grants revoked
    /// now (empty when all were revoked already).
    pub async fn revoke_grants(
        &self,
        selector: &GrantSelector,
    ) -> Result<Option<Vec<GrantRecord>>, StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let (exists, grants) = match selector {
            GrantSelector::User(_) => (
                "SELECT 1 AS found FROM users WHERE id = $1",
                "SELECT * FROM grants WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at, id",
            ),
            GrantSelector::Client(_) => (
                "SELECT 1 AS found FROM clients WHERE client_id = $1",
                "SELECT * FROM grants WHERE client_id = $1 AND revoked_at IS NULL ORDER BY created_at, id",
            ),
            GrantSelector::Grant(_) => (
                "SELECT 1 AS found FROM grants WHERE id = $1",
                "SELECT * FROM grants WHERE id = $1 AND revoked_at IS NULL",
            ),
        };
        let key = selector.key();
        if sqlx::query(exists)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        let grants: Vec<GrantRecord> = sqlx::query(grants)
            .bind(key)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(grant_from_row)
            .collect::<Result<_, _>>()?;
        let revoked = revoke_and_withdraw_in(&mut tx, grants, now).await?;
        tx.commit().await?;
        if !revoked.is_empty() {
            self.revoked_here();
        }
        Ok(Some(revoked))
    }

    /// Deletes a client: its live grants are revoked first (so every instance
    /// sees them end the same way as any revocation), then the client row and,
    /// with it, its grants, consents, tokens, codes, sessions and pending
    /// authorizations. `None` when there is no such client.
    pub async fn delete_client(&self, client_id: &str) -> Result<Option<u64>, StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        if sqlx::query("SELECT 1 AS found FROM clients WHERE client_id = $1")
            .bind(client_id)
            .fetch_optional(&mut *tx)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        let grants: Vec<GrantRecord> =
            sqlx::query("SELECT * FROM grants WHERE client_id = $1 AND revoked_at IS NULL")
                .bind(client_id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(grant_from_row)
                .collect::<Result<_, _>>()?;
        let revoked = revoke_and_withdraw_in(&mut tx, grants, now).await?.len() as u64;
        // Tokens and codes name the client without a foreign key of their own;
        // they go with their grants (ON DELETE CASCADE).
        sqlx::query("DELETE FROM clients WHERE client_id = $1")
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if revoked > 0 {
            self.revoked_here();
        }
        Ok(Some(revoked))
    }

    /// Audit events at or after `since` (Unix seconds), of `user_id` if given;
    /// the newest `limit` of them, oldest first.
    pub async fn audit_events(
        &self,
        since: Option<i64>,
        user_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<StoredAuditEvent>, StoreError> {
        let mut events = sqlx::query(
            "SELECT * FROM audit_events
             WHERE at >= $1 AND ($2 IS NULL OR user_id = $2)
             ORDER BY at DESC, id DESC LIMIT $3",
        )
        .bind(since.unwrap_or(i64::MIN))
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.inner.pool)
        .await?
        .iter()
        .map(stored_audit_event)
        .collect::<Result<Vec<_>, _>>()?;
        events.reverse();
        Ok(events)
    }
}

impl GrantSelector {
    /// The id the selector names.
    fn key(&self) -> &str {
        match self {
            GrantSelector::User(id) | GrantSelector::Client(id) | GrantSelector::Grant(id) => id,
        }
    }
}

/// Revokes each grant and withdraws the consent of its (user, client) pair;
/// returns the grants this call revoked.
async fn revoke_and_withdraw_in(
    conn: &mut AnyConnection,
    grants: Vec<GrantRecord>,
    now: i64,
) -> Result<Vec<GrantRecord>, StoreError> {
    let mut revoked = Vec::new();
    for grant in grants {
        if revoke_grant_in(conn, &grant.id, now).await? {
            withdraw_consent_in(conn, &grant.grant.user_id, &grant.grant.client_id).await?;
            revoked.push(GrantRecord {
                revoked_at: Some(now),
                ..grant
            });
        }
    }
    Ok(revoked)
}

fn stored_audit_event(row: &AnyRow) -> Result<StoredAuditEvent, StoreError> {
    let detail: String = column(row, "detail")?;
    Ok(StoredAuditEvent {
        id: column(row, "id")?,
        at: column(row, "at")?,
        event: AuditEvent {
            kind: column(row, "kind")?,
            user_id: column(row, "user_id")?,
            client_id: column(row, "client_id")?,
            detail: serde_json::from_str(&detail)
                .map_err(|e| StoreError::Corrupt(format!("audit detail: {e}")))?,
        },
    })
}
