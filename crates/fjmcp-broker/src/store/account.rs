//! The "Connected apps" page's state: sign-ins in progress at Forgejo, the
//! browser sessions they end in, and what a signed-in user sees and may end
//! (their own grants only; ownership is part of every statement).
//!
//! None of this creates a grant or a code: an account sign-in only proves who
//! the person in the browser is.

use secrecy::{ExposeSecret, SecretString};

use super::grants::{revoke_grant_in, withdraw_consent_in};
use super::{Store, StoreError, column};
use crate::crypto::{SealContext, SecretHash};

/// A browser signed in to the account page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSession {
    pub user_id: String,
    /// The user's Forgejo login, for the page's header.
    pub login: String,
    pub expires_at: i64,
}

/// One connection of a user's: a live grant and the client it was given to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectedApp {
    pub grant_id: String,
    pub client_id: String,
    /// The name the client gave itself (registration or metadata document):
    /// self-declared, never verified.
    pub client_name: Option<String>,
    pub redirect_uris: Vec<String>,
    /// When the user approved it (the grant's creation).
    pub approved_at: i64,
    /// When the client last obtained tokens, if it ever did.
    pub last_used_at: Option<i64>,
}

/// What revoking one of a user's grants did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserGrantRevocation {
    /// The grant was live and is now revoked; the consent for its client is withdrawn.
    Revoked { client_id: String },
    /// The grant was already revoked; the consent is withdrawn (again) all the same.
    AlreadyRevoked { client_id: String },
    /// No grant of this user has this id (it may be another user's).
    NotFound,
}

fn login_verifier_context(state_hash: &SecretHash) -> SealContext {
    SealContext::new("account_logins", state_hash.as_str(), "upstream_verifier")
}

impl Store {
    /// Remembers an account sign-in sent to Forgejo: its state, the browser
    /// that started it, and the broker's PKCE verifier (sealed).
    pub async fn create_account_login(
        &self,
        state_hash: &SecretHash,
        browser_hash: &SecretHash,
        upstream_verifier: &SecretString,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let sealed = self.inner.sealer.seal(
            upstream_verifier.expose_secret().as_bytes(),
            &login_verifier_context(state_hash),
        );
        sqlx::query(
            "INSERT INTO account_logins (state_hash, browser_hash, sealed_upstream_verifier, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(state_hash.as_str())
        .bind(browser_hash.as_str())
        .bind(sealed)
        .bind(self.now())
        .bind(expires_at)
        .execute(&self.inner.pool)
        .await?;
        Ok(())
    }

    /// Claims the account sign-in Forgejo's callback names, if this browser
    /// started it, it is unexpired and was not claimed before. Returns the
    /// upstream PKCE verifier.
    pub async fn claim_account_login(
        &self,
        state_hash: &SecretHash,
        browser_hash: &SecretHash,
    ) -> Result<Option<SecretString>, StoreError> {
        let now = self.now();
        let row = sqlx::query(
            "UPDATE account_logins SET used_at = $3
             WHERE state_hash = $1 AND browser_hash = $2 AND used_at IS NULL AND expires_at > $3
             RETURNING sealed_upstream_verifier",
        )
        .bind(state_hash.as_str())
        .bind(browser_hash.as_str())
        .bind(now)
        .fetch_optional(&self.inner.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let sealed: Vec<u8> = column(&row, "sealed_upstream_verifier")?;
        let verifier = self
            .inner
            .sealer
            .open(&sealed, &login_verifier_context(state_hash))?;
        String::from_utf8(verifier)
            .map(|v| Some(SecretString::from(v)))
            .map_err(|_| StoreError::Corrupt("upstream verifier is not UTF-8".into()))
    }

    /// Starts an account-page session for a user who exists in the store.
    /// Returns false (and stores nothing) for an unknown user.
    pub async fn create_account_session(
        &self,
        id_hash: &SecretHash,
        user_id: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO account_sessions (id_hash, user_id, created_at, expires_at)
             SELECT $1, id, $3, $4 FROM users WHERE id = $2",
        )
        .bind(id_hash.as_str())
        .bind(user_id)
        .bind(self.now())
        .bind(expires_at)
        .execute(&self.inner.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The unexpired account session a cookie names.
    pub async fn account_session(
        &self,
        id_hash: &SecretHash,
    ) -> Result<Option<AccountSession>, StoreError> {
        let row = sqlx::query(
            "SELECT s.user_id, u.login, s.expires_at
             FROM account_sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id_hash = $1 AND s.expires_at > $2",
        )
        .bind(id_hash.as_str())
        .bind(self.now())
        .fetch_optional(&self.inner.pool)
        .await?;
        row.map(|row| {
            Ok(AccountSession {
                user_id: column(&row, "user_id")?,
                login: column(&row, "login")?,
                expires_at: column(&row, "expires_at")?,
            })
        })
        .transpose()
    }

    /// Ends an account session (signing out of the page).
    pub async fn end_account_session(&self, id_hash: &SecretHash) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM account_sessions WHERE id_hash = $1")
            .bind(id_hash.as_str())
            .execute(&self.inner.pool)
            .await?;
        Ok(())
    }

    /// The user's live grants with their clients, newest first.
    pub async fn connected_apps(&self, user_id: &str) -> Result<Vec<ConnectedApp>, StoreError> {
        sqlx::query(
            "SELECT g.id, g.client_id, g.created_at, g.last_used_at, c.client_name, c.redirect_uris
             FROM grants g JOIN clients c ON c.client_id = g.client_id
             WHERE g.user_id = $1 AND g.revoked_at IS NULL
             ORDER BY g.created_at DESC, g.id",
        )
        .bind(user_id)
        .fetch_all(&self.inner.pool)
        .await?
        .iter()
        .map(|row| {
            let redirect_uris: String = column(row, "redirect_uris")?;
            Ok(ConnectedApp {
                grant_id: column(row, "id")?,
                client_id: column(row, "client_id")?,
                client_name: column(row, "client_name")?,
                redirect_uris: serde_json::from_str(&redirect_uris)
                    .map_err(|e| StoreError::Corrupt(format!("redirect_uris: {e}")))?,
                approved_at: column(row, "created_at")?,
                last_used_at: column(row, "last_used_at")?,
            })
        })
        .collect()
    }

    /// Ends one of the user's grants (tokens, codes, sessions) and withdraws
    /// the user's consent for its client, so the client's next authorization
    /// asks again; in one transaction. A grant of another user is
    /// [`UserGrantRevocation::NotFound`] and nothing changes.
    pub async fn revoke_user_grant(
        &self,
        user_id: &str,
        grant_id: &str,
    ) -> Result<UserGrantRevocation, StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let Some(row) = sqlx::query("SELECT client_id FROM grants WHERE id = $1 AND user_id = $2")
            .bind(grant_id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(UserGrantRevocation::NotFound);
        };
        let client_id: String = column(&row, "client_id")?;
        let revoked = revoke_grant_in(&mut tx, grant_id, now).await?;
        withdraw_consent_in(&mut tx, user_id, &client_id).await?;
        tx.commit().await?;
        if revoked {
            // This instance's caches stop trusting the grant's tokens at once.
            self.revoked_here();
        }
        Ok(if revoked {
            UserGrantRevocation::Revoked { client_id }
        } else {
            UserGrantRevocation::AlreadyRevoked { client_id }
        })
    }
}
