//! Serializing changes to one user's Forgejo credential.
//!
//! Forgejo rotates refresh tokens: if two brokers refreshed the same token at
//! once, one would be refused and could strand the user. On PostgreSQL the
//! user's row is locked (`FOR UPDATE`) for the whole refresh, so instances take
//! turns and the second sees the first one's result. SQLite serves a single
//! instance, whose own single flight already serializes refreshes; holding
//! SQLite's database-wide write lock across a network call would block every
//! other write, so no lock is taken there.
//!
//! Every write is a compare-and-set on the credential's generation: a sign-in
//! (which replaces the credential whatever its generation) that lands between
//! a refresher's read and its write wins, and the refresher's replacement or
//! its verdict "dead" is dropped.

use sqlx::{Any, Transaction};

use super::grants::revoke_grant_in;
use super::users::{UserRecord, mark_dead_in, replace_in};
use super::{Backend, Store, StoreError, column};
use crate::upstream::{UpstreamCredential, UserIdentity};

/// A user's credential, held for a refresh until committed or dropped.
#[derive(Debug)]
pub struct CredentialLock {
    store: Store,
    user_id: String,
    /// The open transaction holding the row lock (PostgreSQL only).
    tx: Option<Transaction<'static, Any>>,
}

impl Store {
    /// Locks the user's credential for a refresh (see the module comment).
    pub async fn lock_credential(&self, user_id: &str) -> Result<CredentialLock, StoreError> {
        let tx = match self.inner.backend {
            Backend::Postgres => {
                let mut tx = self.inner.pool.begin().await?;
                sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                Some(tx)
            }
            Backend::Sqlite => None,
        };
        Ok(CredentialLock {
            store: self.clone(),
            user_id: user_id.to_string(),
            tx,
        })
    }
}

async fn revoke_all_in(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
    now: i64,
) -> Result<u64, StoreError> {
    let ids: Vec<String> =
        sqlx::query("SELECT id FROM grants WHERE user_id = $1 AND revoked_at IS NULL")
            .bind(user_id)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| column(row, "id"))
            .collect::<Result<_, _>>()?;
    let mut count = 0;
    for id in ids {
        if revoke_grant_in(conn, &id, now).await? {
            count += 1;
        }
    }
    Ok(count)
}

impl CredentialLock {
    /// The credential as it is now (another instance may just have refreshed it).
    /// `&mut`: the lock holds a transaction, which is not `Sync`, so a shared
    /// borrow across this await would make callers' futures not `Send`.
    pub async fn current(
        &mut self,
    ) -> Result<Option<(UserRecord, UpstreamCredential)>, StoreError> {
        // Reads through the pool are fine: the lock only orders writers, and on
        // PostgreSQL a committed refresh by the previous lock holder is visible.
        self.store.upstream_credential(&self.user_id).await
    }

    /// Stores the refreshed credential if the user's credential is still at
    /// generation `expected`, and releases the lock; returns the new
    /// generation, or `None` if it moved on (nothing was written).
    pub async fn replace(
        mut self,
        expected: i64,
        login: &str,
        credential: &UpstreamCredential,
    ) -> Result<Option<i64>, StoreError> {
        let identity = UserIdentity {
            id: self.user_id.clone(),
            login: login.to_string(),
        };
        match self.tx.take() {
            Some(mut tx) => {
                let generation =
                    replace_in(&self.store, &mut tx, &identity, credential, expected).await?;
                tx.commit().await?;
                Ok(generation)
            }
            None => {
                let mut conn = self.store.inner.pool.acquire().await?;
                replace_in(&self.store, &mut conn, &identity, credential, expected).await
            }
        }
    }

    /// If the credential is still at generation `expected`: marks it dead and
    /// revokes every live grant of the user, atomically, returning how many
    /// grants were revoked. `None` if it moved on (nothing changed).
    pub async fn mark_dead(mut self, expected: i64) -> Result<Option<u64>, StoreError> {
        let now = self.store.now();
        let mut tx = match self.tx.take() {
            Some(tx) => tx,
            None => self.store.begin_write().await?,
        };
        if !mark_dead_in(&mut tx, &self.user_id, expected, now).await? {
            return Ok(None);
        }
        let count = revoke_all_in(&mut tx, &self.user_id, now).await?;
        tx.commit().await?;
        self.store.revoked_here();
        Ok(Some(count))
    }
}
