//! Broker-issued access and refresh tokens (stored as hashes only).
//!
//! Refresh tokens rotate on every use. A token presented again shortly after its
//! first use (two concurrent refreshes of one client) still succeeds while no
//! successor of it is used, and gets a *sibling* successor; any other reuse
//! means a copy is in the wrong hands, and the whole grant is revoked (RFC 9700
//! §4.14.2). A real client keeps only one of the siblings, so once a second
//! sibling is used the family was split between two holders (a thief who
//! replayed the token inside the grace window, and the client): that too
//! revokes the grant.

use sqlx::AnyConnection;

use super::grants::{GrantRecord, revoke_grant_in};
use super::{Backend, Store, StoreError, column};
use crate::crypto::{SecretHash, random_id};
use crate::metrics::{OAuthEvent, metrics};

/// A fresh access token, and optionally a refresh token, to store.
#[derive(Debug, Clone)]
pub struct NewTokenPair {
    pub access_hash: SecretHash,
    pub access_expires_at: i64,
    /// Hash and expiry of the refresh token, if one is issued.
    pub refresh: Option<(SecretHash, i64)>,
}

/// What a valid access token stands for: the bearer check's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenGrant {
    pub grant_id: String,
    pub client_id: String,
    /// The Forgejo user the grant belongs to.
    pub user_id: String,
    pub scopes: String,
    /// The resource the token is bound to (its audience).
    pub resource: String,
    pub expires_at: i64,
}

/// Why a refresh token was not exchanged, or the grant it rotated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// A new pair was stored under this grant.
    Rotated(GrantRecord),
    Unknown,
    Expired,
    /// The token or its grant was revoked.
    Revoked,
    /// The token belongs to another client; nothing was changed.
    WrongClient,
    /// Reuse outside the grace window: the grant has just been revoked.
    ReuseDetected {
        grant_id: String,
    },
}

impl Store {
    /// Stores the tokens issued for a grant (after a code exchange). The refresh
    /// token starts a new rotation family.
    pub async fn issue_tokens(
        &self,
        grant: &GrantRecord,
        pair: &NewTokenPair,
    ) -> Result<(), StoreError> {
        let mut tx = self.inner.pool.begin().await?;
        insert_pair(&mut tx, grant, pair, &random_id(), None, self.now()).await?;
        tx.commit().await?;
        metrics().oauth_event(OAuthEvent::TokensIssued);
        Ok(())
    }

    /// The grant behind a presented access token, if the token is unexpired and
    /// neither it nor its grant was revoked.
    pub async fn authenticate_access_token(
        &self,
        token_hash: &SecretHash,
    ) -> Result<Option<AccessTokenGrant>, StoreError> {
        let row = sqlx::query(
            "SELECT t.grant_id, t.client_id, g.user_id, t.scopes, t.resource, t.expires_at
             FROM access_tokens t JOIN grants g ON g.id = t.grant_id
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND g.revoked_at IS NULL
                 AND t.expires_at > $2",
        )
        .bind(token_hash.as_str())
        .bind(self.now())
        .fetch_optional(&self.inner.pool)
        .await?;
        row.map(|row| {
            Ok(AccessTokenGrant {
                grant_id: column(&row, "grant_id")?,
                client_id: column(&row, "client_id")?,
                user_id: column(&row, "user_id")?,
                scopes: column(&row, "scopes")?,
                resource: column(&row, "resource")?,
                expires_at: column(&row, "expires_at")?,
            })
        })
        .transpose()
    }

    /// Exchanges a refresh token of `client_id` for `pair`, applying rotation,
    /// the reuse grace window (`grace_seconds`) and reuse detection atomically.
    pub async fn rotate_refresh_token(
        &self,
        presented: &SecretHash,
        client_id: &str,
        pair: &NewTokenPair,
        grace_seconds: i64,
    ) -> Result<RefreshOutcome, StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let select = match self.inner.backend {
            // Serializes concurrent rotations of one token across instances.
            Backend::Postgres => {
                "SELECT t.*, g.user_id, g.scopes AS grant_scopes, g.resource, g.created_at AS grant_created_at,
                     g.revoked_at AS grant_revoked_at
                 FROM refresh_tokens t JOIN grants g ON g.id = t.grant_id
                 WHERE t.token_hash = $1 FOR UPDATE OF t"
            }
            // SQLite: the IMMEDIATE transaction already holds the write lock.
            Backend::Sqlite => {
                "SELECT t.*, g.user_id, g.scopes AS grant_scopes, g.resource, g.created_at AS grant_created_at,
                     g.revoked_at AS grant_revoked_at
                 FROM refresh_tokens t JOIN grants g ON g.id = t.grant_id
                 WHERE t.token_hash = $1"
            }
        };
        let Some(row) = sqlx::query(select)
            .bind(presented.as_str())
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(RefreshOutcome::Unknown);
        };
        let grant = GrantRecord {
            id: column(&row, "grant_id")?,
            grant: super::NewGrant {
                user_id: column(&row, "user_id")?,
                client_id: column(&row, "client_id")?,
                scopes: column(&row, "grant_scopes")?,
                resource: column(&row, "resource")?,
            },
            created_at: column(&row, "grant_created_at")?,
            revoked_at: column(&row, "grant_revoked_at")?,
        };
        if grant.grant.client_id != client_id {
            return Ok(RefreshOutcome::WrongClient);
        }
        let revoked_at: Option<i64> = column(&row, "revoked_at")?;
        if revoked_at.is_some() || grant.revoked_at.is_some() {
            return Ok(RefreshOutcome::Revoked);
        }
        let expires_at: i64 = column(&row, "expires_at")?;
        if expires_at <= now {
            return Ok(RefreshOutcome::Expired);
        }
        let family: String = column(&row, "family_id")?;
        let used_at: Option<i64> = column(&row, "used_at")?;
        let new_refresh_hash = pair
            .refresh
            .as_ref()
            .map(|(hash, _)| hash.as_str().to_string());
        match used_at {
            None => {
                let parent: Option<String> = column(&row, "parent_hash")?;
                if let Some(parent) = parent
                    && sibling_used(&mut tx, &parent, presented.as_str()).await?
                {
                    revoke_grant_in(&mut tx, &grant.id, now).await?;
                    tx.commit().await?;
                    return Ok(RefreshOutcome::ReuseDetected { grant_id: grant.id });
                }
                sqlx::query(
                    "UPDATE refresh_tokens SET used_at = $2, replaced_by_hash = $3 WHERE token_hash = $1",
                )
                .bind(presented.as_str())
                .bind(now)
                .bind(new_refresh_hash)
                .execute(&mut *tx)
                .await?;
            }
            Some(used_at) => {
                let successor: Option<String> = column(&row, "replaced_by_hash")?;
                // Any successor (the first, or a sibling issued in the grace window) used.
                let successor_used = sqlx::query(
                    "SELECT 1 AS used FROM refresh_tokens
                     WHERE (token_hash = $1 OR parent_hash = $2) AND used_at IS NOT NULL",
                )
                .bind(successor.unwrap_or_default())
                .bind(presented.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
                if now - used_at > grace_seconds || successor_used {
                    revoke_grant_in(&mut tx, &grant.id, now).await?;
                    tx.commit().await?;
                    self.revoked_here();
                    metrics().oauth_event(OAuthEvent::RefreshReuseDetected);
                    return Ok(RefreshOutcome::ReuseDetected { grant_id: grant.id });
                }
            }
        }
        insert_pair(
            &mut tx,
            &grant,
            pair,
            &family,
            Some(presented.as_str()),
            now,
        )
        .await?;
        tx.commit().await?;
        metrics().oauth_event(OAuthEvent::Refreshed);
        metrics().oauth_event(OAuthEvent::TokensIssued);
        Ok(RefreshOutcome::Rotated(grant))
    }

    /// The grant and client a presented access or refresh token belongs to
    /// (revoked or expired tokens included), for revocation.
    pub async fn grant_of_token(
        &self,
        token_hash: &SecretHash,
    ) -> Result<Option<(String, String)>, StoreError> {
        for statement in [
            "SELECT grant_id, client_id FROM access_tokens WHERE token_hash = $1",
            "SELECT grant_id, client_id FROM refresh_tokens WHERE token_hash = $1",
        ] {
            if let Some(row) = sqlx::query(statement)
                .bind(token_hash.as_str())
                .fetch_optional(&self.inner.pool)
                .await?
            {
                return Ok(Some((
                    column(&row, "grant_id")?,
                    column(&row, "client_id")?,
                )));
            }
        }
        Ok(None)
    }
}

/// Whether another successor of `parent` than `except` has been used.
async fn sibling_used(
    conn: &mut AnyConnection,
    parent: &str,
    except: &str,
) -> Result<bool, StoreError> {
    Ok(sqlx::query(
        "SELECT 1 AS used FROM refresh_tokens
         WHERE parent_hash = $1 AND token_hash <> $2 AND used_at IS NOT NULL",
    )
    .bind(parent)
    .bind(except)
    .fetch_optional(&mut *conn)
    .await?
    .is_some())
}

/// Stores an access token and, if the pair has one, a refresh token of
/// `family` that replaces `parent` (none for the first of a family).
async fn insert_pair(
    conn: &mut AnyConnection,
    grant: &GrantRecord,
    pair: &NewTokenPair,
    family: &str,
    parent: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO access_tokens (token_hash, grant_id, client_id, resource, scopes, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(pair.access_hash.as_str())
    .bind(&grant.id)
    .bind(&grant.grant.client_id)
    .bind(&grant.grant.resource)
    .bind(&grant.grant.scopes)
    .bind(now)
    .bind(pair.access_expires_at)
    .execute(&mut *conn)
    .await?;
    // What the "Connected apps" page and `admin grants list` show as "last used":
    // a client in use gets tokens at least once per access-token lifetime.
    sqlx::query("UPDATE grants SET last_used_at = $2 WHERE id = $1")
        .bind(&grant.id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    if let Some((refresh_hash, expires_at)) = &pair.refresh {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, grant_id, family_id, client_id, created_at, expires_at, parent_hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(refresh_hash.as_str())
        .bind(&grant.id)
        .bind(family)
        .bind(&grant.grant.client_id)
        .bind(now)
        .bind(expires_at)
        .bind(parent)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
