//! The user's Forgejo credential: the one home for what the broker does with
//! it — hand a usable token to a new child, check it against Forgejo, refresh
//! it, tell a live child's owner when it changed, declare it dead, and save
//! the one a sign-in brought.
//!
//! Forgejo keeps one grant per (user, application) and rotates refresh tokens:
//! every issuance (a refresh, or a new sign-in of the same user through any MCP
//! client) makes older refresh tokens unusable, while older access tokens stay
//! valid until they expire. So there is one credential per user, with a
//! generation that every change bumps, and every decision about a user is
//! single flight here (a per-user gate) and across instances (the store's row
//! lock and compare-and-set on the generation).
//!
//! A token is checked with `GET /api/v1/user` — what `forgejo-mcp` does at
//! start — before a child gets it, at every session start, and for a live
//! child at most once per check interval. A refusal that a refresh cannot cure
//! means the user revoked the broker in Forgejo: the credential is marked dead,
//! every grant of the user is revoked, and each client's next request is 401.
//! A Forgejo that cannot be reached kills nothing: callers get `Unavailable`
//! with a retry time, backed off per user.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use secrecy::SecretString;
use tokio::sync::broadcast;

use crate::backoff::BackoffPolicy;
use crate::clock::{Clock, seconds};
use crate::forgejo::{ForgejoClient, ForgejoError, TokenResponse};
use crate::metrics::metrics;
use crate::store::{AuditEvent, Store, StoreError};
use crate::upstream::{UpstreamCredential, UserIdentity};

/// How the credential is kept fresh; from the configuration.
#[derive(Debug, Clone)]
pub struct CredentialSettings {
    /// A token handed to a new child stays valid at least this long (else it
    /// is refreshed first).
    pub min_validity: Duration,
    /// A live child's token is refreshed this long before it expires.
    pub refresh_lead: Duration,
    /// A live child's token is checked against Forgejo at most this often.
    pub check_interval: Duration,
}

/// After a refused refresh, how long a newer credential (a sign-in that rotated
/// the refresh token) may take to appear before the credential is declared dead.
const SIGN_IN_LANDS_WITHIN: Duration = Duration::from_secs(3);

/// How often the store is asked while waiting for that sign-in.
const SIGN_IN_POLL: Duration = Duration::from_millis(100);

/// Forgejo could not be reached: the next attempt for this user waits 2 s,
/// 4 s, … up to a minute; meanwhile callers get `Unavailable` at once.
const UNREACHABLE_BACKOFF: BackoffPolicy = BackoffPolicy {
    forgiven: 0,
    first: Duration::from_secs(2),
    max: Duration::from_secs(60),
};

/// A usable credential as handed out: the token stays a secret until a
/// child's environment is assembled.
#[derive(Debug, Clone)]
pub struct Credential {
    /// Bumped on every change; a child holding an older one is stale.
    pub generation: i64,
    pub access_token: SecretString,
    /// Unix seconds.
    pub access_expires_at: i64,
    /// When Forgejo issued it (Unix seconds): with the expiry, its lifetime.
    pub issued_at: i64,
}

impl Credential {
    /// Whether the token must be replaced before it is relied on for `span`
    /// more: it expires within `span` — or within half its lifetime, when
    /// Forgejo issues tokens shorter-lived than `span` (refreshing early could
    /// never satisfy it).
    fn expires_within(&self, span: Duration, now: i64) -> bool {
        let lifetime = (self.access_expires_at - self.issued_at).max(0);
        let span = seconds(span).min(lifetime / 2);
        self.access_expires_at <= now + span
    }
}

/// What changed about a user's credential, for whoever runs their child.
#[derive(Debug, Clone)]
pub enum CredentialChange {
    /// A sign-in or refresh on this instance stored a new credential.
    Renewed {
        user_id: String,
        credential: Credential,
    },
    /// Forgejo no longer accepts the user's authorization.
    Dead { user_id: String },
}

/// Why no usable credential can be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CredentialError {
    /// The user's Forgejo authorization is gone (or never was): sign in again.
    #[error("the user's Forgejo authorization is no longer valid")]
    Dead,
    /// Forgejo or the store cannot be reached now; nothing was decided.
    #[error("{reason}; retry in {retry_after:?}")]
    Unavailable {
        /// Client-facing, without internal detail.
        reason: String,
        retry_after: Duration,
    },
}

/// Checks, refreshes and follows users' Forgejo credentials. Cheap to clone.
#[derive(Clone)]
pub struct Credentials {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

struct Inner {
    store: Store,
    forgejo: ForgejoClient,
    clock: Arc<dyn Clock>,
    settings: CredentialSettings,
    users: Mutex<HashMap<String, Arc<UserState>>>,
    changes: broadcast::Sender<CredentialChange>,
}

/// One user's gate and what this instance knows of their credential.
#[derive(Default)]
struct UserState {
    /// Single flight for everything that reads and may change the credential.
    gate: tokio::sync::Mutex<()>,
    status: Mutex<Status>,
}

#[derive(Default)]
struct Status {
    /// The last time Forgejo accepted the token, and of which generation.
    checked: Option<(i64, i64)>,
    /// Checks against Forgejo completed so far: a session start that waited
    /// for the gate while another completed one shares its result.
    checks_done: u64,
    /// Consecutive failures to reach Forgejo.
    failures: u32,
    /// Unix seconds before which Forgejo is not tried again for this user.
    retry_at: i64,
}

impl Credentials {
    pub fn new(
        store: Store,
        forgejo: ForgejoClient,
        clock: Arc<dyn Clock>,
        settings: CredentialSettings,
    ) -> Self {
        Credentials {
            inner: Arc::new(Inner {
                store,
                forgejo,
                clock,
                settings,
                users: Mutex::new(HashMap::new()),
                changes: broadcast::channel(256).0,
            }),
        }
    }

    /// Changes made by this instance (sign-ins, refreshes, deaths).
    pub fn changes(&self) -> broadcast::Receiver<CredentialChange> {
        self.inner.changes.subscribe()
    }

    /// The credential for a child about to start: valid for at least the
    /// minimum validity (refreshed first if not), and accepted by Forgejo
    /// right now (a child reads its token once and could not recover from a
    /// dead one; newer forgejo-mcp releases do not check it at start).
    pub async fn for_new_child(&self, user_id: &str) -> Result<Credential, CredentialError> {
        let state = self.state(user_id);
        let _gate = state.gate.lock().await;
        let current = self.read(user_id).await?;
        let current = if current.expires_within(self.settings().min_validity, self.now()) {
            self.refresh(&state, user_id, current.generation).await?
        } else {
            current
        };
        self.checked(&state, user_id, current, None).await
    }

    /// At a session start: Forgejo accepts the user's token now, so a user who
    /// revoked the broker is sent to sign in at once. Concurrent starts of one
    /// user share one check. Returns the credential it checked (`None` when it
    /// shared another start's check), which a child started for this session
    /// start takes without asking Forgejo a second time
    /// (see [`crate::children::Pool::admit`]).
    pub async fn check_session_start(
        &self,
        user_id: &str,
    ) -> Result<Option<Credential>, CredentialError> {
        let state = self.state(user_id);
        let done_before = state.status.lock().checks_done;
        let _gate = state.gate.lock().await;
        if state.status.lock().checks_done > done_before {
            // A check completed while this one waited for the gate.
            return Ok(None);
        }
        let current = self.read(user_id).await?;
        let current = if current.expires_within(self.settings().min_validity, self.now()) {
            self.refresh(&state, user_id, current.generation).await?
        } else {
            current
        };
        self.checked(&state, user_id, current, None).await.map(Some)
    }

    /// For a live child holding generation `held` whose token expires at
    /// `held_expires_at`: the credential it should be replaced with, if any —
    /// a newer one (a sign-in, or another instance's refresh), or a refreshed
    /// one when the held token expires within the refresh lead. Checks the
    /// token against Forgejo when the check interval has passed.
    pub async fn follow(
        &self,
        user_id: &str,
        held: i64,
        held_expires_at: i64,
    ) -> Result<Option<Credential>, CredentialError> {
        let state = self.state(user_id);
        let _gate = state.gate.lock().await;
        let mut current = self.read(user_id).await?;
        if current.generation == held {
            current.access_expires_at = held_expires_at;
        }
        if current.expires_within(self.settings().refresh_lead, self.now()) {
            current = self.refresh(&state, user_id, current.generation).await?;
        }
        let current = self
            .checked(
                &state,
                user_id,
                current,
                Some(self.settings().check_interval),
            )
            .await?;
        Ok((current.generation != held).then_some(current))
    }

    /// Stores the credential a sign-in brought (Forgejo's userinfo has just
    /// accepted its token) and tells the user's child to follow it.
    pub async fn save_sign_in(
        &self,
        identity: &UserIdentity,
        credential: &UpstreamCredential,
    ) -> Result<i64, StoreError> {
        let state = self.state(&identity.id);
        let generation = self
            .inner
            .store
            .save_upstream_credential(identity, credential)
            .await?;
        {
            let mut status = state.status.lock();
            status.checked = Some((generation, self.now()));
            status.failures = 0;
            status.retry_at = 0;
        }
        self.announce(CredentialChange::Renewed {
            user_id: identity.id.clone(),
            credential: Credential {
                generation,
                access_token: credential.access_token.clone(),
                access_expires_at: credential.access_expires_at,
                issued_at: self.now(),
            },
        });
        Ok(generation)
    }

    fn settings(&self) -> &CredentialSettings {
        &self.inner.settings
    }

    fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    fn state(&self, user_id: &str) -> Arc<UserState> {
        self.inner
            .users
            .lock()
            .entry(user_id.to_string())
            .or_default()
            .clone()
    }

    fn announce(&self, change: CredentialChange) {
        // Nobody listening (no pool in a test) is fine.
        let _ = self.inner.changes.send(change);
    }

    /// The stored credential; `Dead` when there is none.
    async fn read(&self, user_id: &str) -> Result<Credential, CredentialError> {
        match self.inner.store.upstream_credential(user_id).await {
            Ok(Some((record, credential))) => Ok(Credential {
                generation: record.generation,
                access_token: credential.access_token,
                access_expires_at: credential.access_expires_at,
                issued_at: record.updated_at,
            }),
            Ok(None) => Err(CredentialError::Dead),
            Err(e) => Err(store_failed(&e)),
        }
    }

    /// `credential` if Forgejo accepted it within `max_age` (`None`: check
    /// whatever the last check), else after checking it now. A refused token
    /// is refreshed (the refresh decides whether the grant is gone); an
    /// unreachable Forgejo backs off.
    async fn checked(
        &self,
        state: &UserState,
        user_id: &str,
        credential: Credential,
        max_age: Option<Duration>,
    ) -> Result<Credential, CredentialError> {
        let now = self.now();
        if let Some(max_age) = max_age {
            let status = state.status.lock();
            if status.checked.is_some_and(|(generation, at)| {
                generation == credential.generation && now - at <= seconds(max_age)
            }) {
                return Ok(credential);
            }
        }
        self.reachable(state)?;
        match self.check_at_forgejo(&credential.access_token).await {
            Ok(()) => {
                self.accepted(state, credential.generation);
                Ok(credential)
            }
            Err(e) if e.is_refusal() => {
                tracing::info!(user_id, error = %e, "Forgejo refused the user's access token; refreshing");
                let fresh = self.refresh(state, user_id, credential.generation).await?;
                match self.check_at_forgejo(&fresh.access_token).await {
                    Ok(()) => {
                        self.accepted(state, fresh.generation);
                        Ok(fresh)
                    }
                    Err(e) if e.is_refusal() => {
                        tracing::warn!(user_id, error = %e, "Forgejo refused a token it has just issued");
                        self.declare_dead(state, user_id, fresh.generation).await
                    }
                    Err(e) => Err(self.unreachable(state, user_id, &e)),
                }
            }
            Err(e) => Err(self.unreachable(state, user_id, &e)),
        }
    }

    /// Refreshes the credential known at generation `known` (row lock across
    /// instances; if another instance or a sign-in replaced it meanwhile, that
    /// one is used and Forgejo is not asked).
    async fn refresh(
        &self,
        state: &UserState,
        user_id: &str,
        known: i64,
    ) -> Result<Credential, CredentialError> {
        let store = &self.inner.store;
        let mut lock = store
            .lock_credential(user_id)
            .await
            .map_err(|e| store_failed(&e))?;
        let Some((record, current)) = lock.current().await.map_err(|e| store_failed(&e))? else {
            return Err(CredentialError::Dead);
        };
        if record.generation > known && current.access_expires_at > self.now() {
            // Refreshed (or signed in) meanwhile: refreshing again would not
            // make it last longer.
            return Ok(Credential {
                generation: record.generation,
                access_token: current.access_token,
                access_expires_at: current.access_expires_at,
                issued_at: record.updated_at,
            });
        }
        self.reachable(state)?;
        let Some(refresh_token) = current.refresh_token.clone() else {
            drop(lock);
            tracing::warn!(
                user_id,
                "the user's Forgejo credential has no refresh token"
            );
            return self.declare_dead(state, user_id, record.generation).await;
        };
        match self.refresh_at_forgejo(&refresh_token).await {
            Ok(tokens) => {
                let fresh = tokens.into_credential(self.now());
                let replaced = lock
                    .replace(record.generation, &record.identity.login, &fresh)
                    .await
                    .map_err(|e| store_failed(&e))?;
                let Some(generation) = replaced else {
                    // A sign-in won the race; its credential is the newest.
                    return self.read(user_id).await;
                };
                tracing::info!(user_id, generation, "refreshed the user's Forgejo token");
                self.accepted(state, generation);
                let credential = Credential {
                    generation,
                    access_token: fresh.access_token,
                    access_expires_at: fresh.access_expires_at,
                    issued_at: self.now(),
                };
                self.announce(CredentialChange::Renewed {
                    user_id: user_id.to_string(),
                    credential: credential.clone(),
                });
                Ok(credential)
            }
            Err(e) if e.is_refusal() => {
                drop(lock);
                tracing::info!(user_id, error = %e, "Forgejo refused the refresh");
                self.after_refused_refresh(state, user_id, record.generation, current)
                    .await
            }
            Err(e) => Err(self.unreachable(state, user_id, &e)),
        }
    }

    /// Forgejo refused the refresh token of generation `refused`. Either the
    /// grant is gone — the user revoked the broker, and its access tokens died
    /// with it — or a sign-in elsewhere has just rotated the refresh token:
    /// then the older access token still works and the sign-in's credential
    /// lands in the store in a moment. Only the first is a death.
    async fn after_refused_refresh(
        &self,
        state: &UserState,
        user_id: &str,
        refused: i64,
        credential: UpstreamCredential,
    ) -> Result<Credential, CredentialError> {
        let unexpired = credential.access_expires_at > self.now();
        let superseded = if unexpired {
            match self.check_at_forgejo(&credential.access_token).await {
                Ok(()) => true,
                // A refused unexpired access token: the grant is gone.
                Err(e) if e.is_refusal() => {
                    return self.declare_dead(state, user_id, refused).await;
                }
                Err(e) => return Err(self.unreachable(state, user_id, &e)),
            }
        } else {
            // Cannot tell: give a sign-in the time to land.
            false
        };
        let waited = tokio::time::timeout(SIGN_IN_LANDS_WITHIN, async {
            loop {
                match self.inner.store.credential_generation(user_id).await {
                    Ok(Some((generation, false))) if generation > refused => return,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(user_id, error = %e, "store failed while waiting for a sign-in"),
                }
                tokio::time::sleep(SIGN_IN_POLL).await;
            }
        })
        .await;
        if waited.is_ok() {
            tracing::info!(user_id, "a sign-in replaced the refused credential");
            return self.read(user_id).await;
        }
        if superseded {
            return Err(CredentialError::Unavailable {
                reason: "the user's Forgejo sign-in is being renewed".into(),
                retry_after: Duration::from_secs(1),
            });
        }
        self.declare_dead(state, user_id, refused).await
    }

    /// Marks the credential of generation `expected` dead and revokes the
    /// user's grants — unless it changed meanwhile, in which case the newer
    /// credential is returned.
    async fn declare_dead(
        &self,
        state: &UserState,
        user_id: &str,
        expected: i64,
    ) -> Result<Credential, CredentialError> {
        let store = &self.inner.store;
        let lock = store
            .lock_credential(user_id)
            .await
            .map_err(|e| store_failed(&e))?;
        let Some(revoked) = lock
            .mark_dead(expected)
            .await
            .map_err(|e| store_failed(&e))?
        else {
            return self.read(user_id).await;
        };
        state.status.lock().checked = None;
        tracing::warn!(
            user_id,
            revoked,
            "the user's Forgejo authorization ended: credential dead, grants revoked"
        );
        if let Err(e) = store
            .append_audit(&AuditEvent {
                kind: "credential.dead".into(),
                user_id: Some(user_id.to_string()),
                client_id: None,
                detail: serde_json::json!({ "revoked_grants": revoked }),
            })
            .await
        {
            tracing::warn!(user_id, error = %e, "could not record the audit event");
        }
        self.announce(CredentialChange::Dead {
            user_id: user_id.to_string(),
        });
        Err(CredentialError::Dead)
    }

    /// `GET /api/v1/user` with `token`, timed and counted.
    async fn check_at_forgejo(&self, token: &SecretString) -> Result<(), ForgejoError> {
        let started = tokio::time::Instant::now();
        let result = self.inner.forgejo.check_token(token).await;
        metrics().upstream_request("check", outcome(&result), started.elapsed());
        result
    }

    /// A refresh at Forgejo, timed and counted.
    async fn refresh_at_forgejo(
        &self,
        refresh_token: &SecretString,
    ) -> Result<TokenResponse, ForgejoError> {
        let started = tokio::time::Instant::now();
        let result = self.inner.forgejo.refresh(refresh_token).await;
        metrics().upstream_request("refresh", outcome(&result), started.elapsed());
        result
    }

    fn accepted(&self, state: &UserState, generation: i64) {
        let mut status = state.status.lock();
        status.checked = Some((generation, self.now()));
        status.checks_done += 1;
        status.failures = 0;
        status.retry_at = 0;
    }

    /// `Unavailable` while the backoff after an unreachable Forgejo lasts.
    fn reachable(&self, state: &UserState) -> Result<(), CredentialError> {
        let retry_at = state.status.lock().retry_at;
        let now = self.now();
        if retry_at > now {
            return Err(CredentialError::Unavailable {
                reason: "Forgejo cannot be reached".into(),
                retry_after: Duration::from_secs(u64::try_from(retry_at - now).unwrap_or(1)),
            });
        }
        Ok(())
    }

    /// Records a failure to reach Forgejo and starts (or extends) the backoff.
    fn unreachable(
        &self,
        state: &UserState,
        user_id: &str,
        error: &ForgejoError,
    ) -> CredentialError {
        let mut status = state.status.lock();
        status.failures += 1;
        let wait = UNREACHABLE_BACKOFF
            .delay(status.failures)
            .max(Duration::from_secs(1));
        status.retry_at = self.now() + seconds(wait);
        tracing::warn!(user_id, error = %error, retry_in = ?wait, "Forgejo could not check or refresh the user's token");
        CredentialError::Unavailable {
            reason: "Forgejo cannot be reached".into(),
            retry_after: wait,
        }
    }
}

/// The metrics' name for how a call to Forgejo ended.
fn outcome<T>(result: &Result<T, ForgejoError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) if e.is_refusal() => "refused",
        Err(ForgejoError::Transient(_)) => "unavailable",
        Err(_) => "failed",
    }
}

fn store_failed(error: &StoreError) -> CredentialError {
    tracing::error!(error = %error, "credentials: store failed");
    CredentialError::Unavailable {
        reason: "the broker's store is unavailable".into(),
        retry_after: Duration::from_secs(5),
    }
}
