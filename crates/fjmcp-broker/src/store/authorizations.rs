//! The authorization-code flow's short-lived state: pending authorizations
//! (between `/oauth/authorize`, Forgejo's callback and the consent form) and the
//! broker's authorization codes.
//!
//! Every single-use step is one conditional `UPDATE … WHERE <step> IS NULL`
//! whose row count decides who won, so a replayed state, ticket or code loses
//! even when two requests race.

use secrecy::{ExposeSecret, SecretString};
use sqlx::any::AnyRow;

use super::grants::{GrantRecord, NewGrant, insert_grant};
use super::{Store, StoreError, column};
use crate::crypto::{SealContext, SecretHash};
use crate::metrics::{OAuthEvent, metrics};
use crate::upstream::{UpstreamCredential, UserIdentity};

/// What `/oauth/authorize` verified, kept until Forgejo calls back.
#[derive(Debug, Clone)]
pub struct NewPendingAuthorization {
    /// Hash of the fresh `state` the broker sent to Forgejo.
    pub state_hash: SecretHash,
    pub client_id: String,
    /// The redirect URI the client presented (the code goes back to exactly this).
    pub redirect_uri: String,
    /// The client's own `state`, returned unchanged.
    pub client_state: Option<String>,
    /// The client's PKCE S256 challenge.
    pub code_challenge: String,
    pub scopes: String,
    pub resource: String,
    /// The broker's own PKCE verifier for Forgejo, sealed at rest.
    pub upstream_verifier: SecretString,
    pub expires_at: i64,
}

/// A pending authorization as read back.
#[derive(Debug, Clone)]
pub struct PendingAuthorization {
    pub request: NewPendingAuthorization,
    /// The Forgejo user, once the callback identified them.
    pub user_id: Option<String>,
    /// The sign-in's identity and Forgejo tokens, when they are held here until
    /// the user approves (they have no stored credential yet).
    pub held: Option<(UserIdentity, UpstreamCredential)>,
    pub created_at: i64,
}

/// An authorization code to issue, together with the grant it creates.
#[derive(Debug, Clone)]
pub struct NewAuthorizationCode {
    pub code_hash: SecretHash,
    pub grant: NewGrant,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub expires_at: i64,
}

/// A code that was just redeemed (marked used by this call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedeemedCode {
    pub grant_id: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub resource: String,
    pub scopes: String,
    pub expires_at: i64,
}

/// What a client presents with a code; all of it must match for the code to
/// be spent.
#[derive(Debug, Clone, Copy)]
pub struct CodeProof<'a> {
    pub client_id: &'a str,
    /// The S256 challenge computed from the presented `code_verifier`.
    pub challenge: &'a str,
    /// The `redirect_uri` presented, if any.
    pub redirect_uri: Option<&'a str>,
}

/// The outcome of presenting a code at the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRedemption {
    /// First use with the right client, verifier and redirect URI: the caller
    /// now owns the code.
    Redeemed(RedeemedCode),
    /// The code was spent before, and is now presented again by its own
    /// client with its verifier: the code and verifier leaked (or the client
    /// replays), so whatever it issued must be revoked.
    Reused { grant_id: String },
    /// Refused without spending the code: a mismatch that proves nothing
    /// about the code's owner, so it must not burn the code or revoke its grant.
    Refused(CodeRefusal),
    /// No such code.
    Unknown,
}

/// Why a code was not redeemed (and was left as it was).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeRefusal {
    /// Presented by another client.
    WrongClient,
    /// The verifier does not match the challenge.
    WrongVerifier,
    /// The redirect URI differs from the authorization request's.
    WrongRedirectUri,
    Expired,
    /// Already spent, and this presentation does not prove to be its client's.
    AlreadyUsed,
}

fn verifier_context(state_hash: &SecretHash) -> SealContext {
    SealContext::new(
        "pending_authorizations",
        state_hash.as_str(),
        "upstream_verifier",
    )
}

fn held_context(state_hash: &SecretHash, column: &str) -> SealContext {
    SealContext::new("pending_authorizations", state_hash.as_str(), column)
}

impl Store {
    /// Stores a verified authorization request.
    pub async fn create_pending_authorization(
        &self,
        pending: &NewPendingAuthorization,
    ) -> Result<(), StoreError> {
        let sealed = self.inner.sealer.seal(
            pending.upstream_verifier.expose_secret().as_bytes(),
            &verifier_context(&pending.state_hash),
        );
        sqlx::query(
            "INSERT INTO pending_authorizations (state_hash, client_id, redirect_uri, client_state,
                 code_challenge, scopes, resource, sealed_upstream_verifier, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(pending.state_hash.as_str())
        .bind(&pending.client_id)
        .bind(&pending.redirect_uri)
        .bind(pending.client_state.as_deref())
        .bind(&pending.code_challenge)
        .bind(&pending.scopes)
        .bind(&pending.resource)
        .bind(sealed)
        .bind(self.now())
        .bind(pending.expires_at)
        .execute(&self.inner.pool)
        .await?;
        metrics().oauth_event(OAuthEvent::AuthorizationStarted);
        Ok(())
    }

    /// Claims the pending authorization Forgejo's callback names. `None` when the
    /// state is unknown, expired, or was already used (a replay).
    pub async fn claim_pending_for_callback(
        &self,
        state_hash: &SecretHash,
    ) -> Result<Option<PendingAuthorization>, StoreError> {
        let now = self.now();
        let row = sqlx::query(
            "UPDATE pending_authorizations SET callback_at = $2
             WHERE state_hash = $1 AND callback_at IS NULL AND expires_at > $2
             RETURNING *",
        )
        .bind(state_hash.as_str())
        .bind(now)
        .fetch_optional(&self.inner.pool)
        .await?;
        row.map(|row| self.pending_from_row(&row)).transpose()
    }

    /// Parks a claimed authorization on the consent page for `user`, holding
    /// their sign-in's tokens (sealed) when given, to be stored only if they
    /// approve.
    pub async fn await_consent(
        &self,
        state_hash: &SecretHash,
        user: &UserIdentity,
        held: Option<&UpstreamCredential>,
        ticket_hash: &SecretHash,
        csrf_hash: &SecretHash,
    ) -> Result<(), StoreError> {
        let seal = |secret: &SecretString, column: &str| {
            self.inner.sealer.seal(
                secret.expose_secret().as_bytes(),
                &held_context(state_hash, column),
            )
        };
        let access = held.map(|c| seal(&c.access_token, "sealed_upstream_access"));
        let refresh = held
            .and_then(|c| c.refresh_token.as_ref())
            .map(|t| seal(t, "sealed_upstream_refresh"));
        sqlx::query(
            "UPDATE pending_authorizations
             SET user_id = $2, user_login = $3, consent_ticket_hash = $4, consent_csrf_hash = $5,
                 sealed_upstream_access = $6, sealed_upstream_refresh = $7,
                 upstream_access_expires_at = $8
             WHERE state_hash = $1 AND used_at IS NULL",
        )
        .bind(state_hash.as_str())
        .bind(&user.id)
        .bind(&user.login)
        .bind(ticket_hash.as_str())
        .bind(csrf_hash.as_str())
        .bind(access)
        .bind(refresh)
        .bind(held.map(|c| c.access_expires_at))
        .execute(&self.inner.pool)
        .await?;
        Ok(())
    }

    /// Claims the authorization a consent form names, if its CSRF value matches,
    /// it is unexpired and nobody answered it yet. Returns it with its state hash.
    pub async fn claim_pending_for_consent(
        &self,
        ticket_hash: &SecretHash,
        csrf_hash: &SecretHash,
    ) -> Result<Option<PendingAuthorization>, StoreError> {
        let now = self.now();
        let row = sqlx::query(
            "UPDATE pending_authorizations SET used_at = $3
             WHERE consent_ticket_hash = $1 AND consent_csrf_hash = $2
                 AND used_at IS NULL AND expires_at > $3 AND user_id IS NOT NULL
             RETURNING *",
        )
        .bind(ticket_hash.as_str())
        .bind(csrf_hash.as_str())
        .bind(now)
        .fetch_optional(&self.inner.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let pending = self.pending_from_row(&row)?;
        // The held tokens are the caller's now; none stay at rest.
        sqlx::query(
            "UPDATE pending_authorizations
             SET sealed_upstream_access = NULL, sealed_upstream_refresh = NULL
             WHERE state_hash = $1",
        )
        .bind(pending.request.state_hash.as_str())
        .execute(&self.inner.pool)
        .await?;
        Ok(Some(pending))
    }

    /// Marks a claimed authorization finished without consent (already approved,
    /// or failed upstream), so its state can never be used again.
    pub(crate) async fn finish_pending(&self, state_hash: &SecretHash) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE pending_authorizations SET used_at = $2 WHERE state_hash = $1 AND used_at IS NULL",
        )
        .bind(state_hash.as_str())
        .bind(self.now())
        .execute(&self.inner.pool)
        .await?;
        Ok(())
    }

    /// Creates the grant and its authorization code in one transaction.
    pub async fn issue_authorization_code(
        &self,
        code: &NewAuthorizationCode,
    ) -> Result<GrantRecord, StoreError> {
        let now = self.now();
        let mut tx = self.inner.pool.begin().await?;
        let grant = insert_grant(&mut tx, &code.grant, now).await?;
        sqlx::query(
            "INSERT INTO auth_codes (code_hash, grant_id, client_id, redirect_uri, code_challenge,
                 resource, scopes, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(code.code_hash.as_str())
        .bind(&grant.id)
        .bind(&code.grant.client_id)
        .bind(&code.redirect_uri)
        .bind(&code.code_challenge)
        .bind(&code.grant.resource)
        .bind(&code.grant.scopes)
        .bind(now)
        .bind(code.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        metrics().oauth_event(OAuthEvent::AuthorizationCompleted);
        Ok(grant)
    }

    /// Spends a code, in one conditional update that also checks the client,
    /// the PKCE challenge, the redirect URI and the expiry, so that someone who
    /// only holds the code cannot burn it. Tells the other outcomes apart.
    pub async fn redeem_authorization_code(
        &self,
        code_hash: &SecretHash,
        proof: CodeProof<'_>,
    ) -> Result<CodeRedemption, StoreError> {
        let now = self.now();
        let row = sqlx::query(
            "UPDATE auth_codes SET used_at = $2
             WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2
                 AND client_id = $3 AND code_challenge = $4
                 AND redirect_uri = COALESCE($5, redirect_uri)
             RETURNING *",
        )
        .bind(code_hash.as_str())
        .bind(now)
        .bind(proof.client_id)
        .bind(proof.challenge)
        .bind(proof.redirect_uri)
        .fetch_optional(&self.inner.pool)
        .await?;
        if let Some(row) = row {
            return Ok(CodeRedemption::Redeemed(RedeemedCode {
                grant_id: column(&row, "grant_id")?,
                client_id: column(&row, "client_id")?,
                redirect_uri: column(&row, "redirect_uri")?,
                code_challenge: column(&row, "code_challenge")?,
                resource: column(&row, "resource")?,
                scopes: column(&row, "scopes")?,
                expires_at: column(&row, "expires_at")?,
            }));
        }
        let Some(row) = sqlx::query("SELECT * FROM auth_codes WHERE code_hash = $1")
            .bind(code_hash.as_str())
            .fetch_optional(&self.inner.pool)
            .await?
        else {
            return Ok(CodeRedemption::Unknown);
        };
        let client_id: String = column(&row, "client_id")?;
        let challenge: String = column(&row, "code_challenge")?;
        let used_at: Option<i64> = column(&row, "used_at")?;
        let expires_at: i64 = column(&row, "expires_at")?;
        let proven = client_id == proof.client_id && challenge == proof.challenge;
        Ok(CodeRedemption::Refused(match used_at {
            Some(_) if proven => {
                return Ok(CodeRedemption::Reused {
                    grant_id: column(&row, "grant_id")?,
                });
            }
            Some(_) => CodeRefusal::AlreadyUsed,
            None if client_id != proof.client_id => CodeRefusal::WrongClient,
            None if challenge != proof.challenge => CodeRefusal::WrongVerifier,
            None if expires_at <= now => CodeRefusal::Expired,
            None => CodeRefusal::WrongRedirectUri,
        }))
    }

    fn pending_from_row(&self, row: &AnyRow) -> Result<PendingAuthorization, StoreError> {
        let state_hash = SecretHash::from_stored(column(row, "state_hash")?);
        let held = self.held_from_row(row, &state_hash)?;
        let sealed: Vec<u8> = column(row, "sealed_upstream_verifier")?;
        let verifier = self
            .inner
            .sealer
            .open(&sealed, &verifier_context(&state_hash))?;
        let verifier = String::from_utf8(verifier)
            .map_err(|_| StoreError::Corrupt("upstream verifier is not UTF-8".into()))?;
        Ok(PendingAuthorization {
            request: NewPendingAuthorization {
                state_hash,
                client_id: column(row, "client_id")?,
                redirect_uri: column(row, "redirect_uri")?,
                client_state: column(row, "client_state")?,
                code_challenge: column(row, "code_challenge")?,
                scopes: column(row, "scopes")?,
                resource: column(row, "resource")?,
                upstream_verifier: SecretString::from(verifier),
                expires_at: column(row, "expires_at")?,
            },
            user_id: column(row, "user_id")?,
            held,
            created_at: column(row, "created_at")?,
        })
    }

    fn held_from_row(
        &self,
        row: &AnyRow,
        state_hash: &SecretHash,
    ) -> Result<Option<(UserIdentity, UpstreamCredential)>, StoreError> {
        let (Some(user_id), Some(login), Some(access)) = (
            column::<Option<String>>(row, "user_id")?,
            column::<Option<String>>(row, "user_login")?,
            column::<Option<Vec<u8>>>(row, "sealed_upstream_access")?,
        ) else {
            return Ok(None);
        };
        let open = |sealed: &[u8], column: &str| -> Result<SecretString, StoreError> {
            let plain = self
                .inner
                .sealer
                .open(sealed, &held_context(state_hash, column))?;
            String::from_utf8(plain)
                .map(SecretString::from)
                .map_err(|_| StoreError::Corrupt("held token is not UTF-8".into()))
        };
        let refresh: Option<Vec<u8>> = column(row, "sealed_upstream_refresh")?;
        let credential = UpstreamCredential {
            access_token: open(&access, "sealed_upstream_access")?,
            refresh_token: refresh
                .map(|sealed| open(&sealed, "sealed_upstream_refresh"))
                .transpose()?,
            access_expires_at: column::<Option<i64>>(row, "upstream_access_expires_at")?
                .unwrap_or(0),
        };
        Ok(Some((UserIdentity { id: user_id, login }, credential)))
    }
}
