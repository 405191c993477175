//! The per-user child pool: one supervised child per Forgejo user, started on
//! demand with that user's current Forgejo token, reaped when idle, replaced
//! when its token rotates or it dies.
//!
//! Children are cattle (DESIGN §2): a child is only a cache of "a process
//! running with user U's token, generation N, already initialized". Every
//! decision about a user (spawn, refresh, rotate) is single-flight behind the
//! user's gate; the map of users is only held for a moment.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::{CallError, Child, ChildError, ChildSpec, ResourceLimits, create_private_dir};
use crate::clock::Clock;
use crate::forgejo::ForgejoClient;
use crate::store::{AuditEvent, Store, StoreError, UpstreamCredential};

/// How the pool runs children; built from the configuration.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Program and arguments of every child.
    pub command: Vec<String>,
    /// Broker variables children inherit (the allow-list, resolved at start).
    pub inherited_env: Vec<(String, String)>,
    /// `FORGEJO_URL` for children.
    pub forgejo_url: String,
    pub idle_timeout: Duration,
    pub reap_interval: Duration,
    pub rotate_interval: Duration,
    pub refresh_lead: Duration,
    pub max_children: usize,
    pub max_in_flight_per_child: usize,
    /// Longest a forwarded request may take; also bounds how long a superseded
    /// child may drain its in-flight requests after a rotation.
    pub request_timeout: Duration,
    pub limits: ResourceLimits,
    /// Each child gets a private directory below this one.
    pub work_root: PathBuf,
}

impl PoolSettings {
    /// The pool's settings from the broker's configuration.
    pub fn from_config(config: &crate::config::Config) -> PoolSettings {
        let children = &config.children;
        PoolSettings {
            command: children.command.clone(),
            inherited_env: children.inherited_env.clone(),
            forgejo_url: config.forgejo.url.clone(),
            idle_timeout: children.idle_timeout,
            reap_interval: children.reap_interval,
            rotate_interval: children.rotate_interval,
            refresh_lead: children.refresh_lead,
            max_children: children.max_children,
            max_in_flight_per_child: children.max_in_flight_per_child,
            request_timeout: config.http.request_timeout,
            limits: ResourceLimits {
                address_space_bytes: children.limit_address_space_bytes,
                open_files: children.limit_open_files,
                cpu_seconds: children.limit_cpu_seconds,
                // The running broker binary is the wrapper.
                wrapper: None,
            },
            // Private per process, so two brokers on one machine never share it.
            work_root: std::env::temp_dir().join(format!("fjmcp-broker-{}", std::process::id())),
        }
    }
}

/// Why a call could not be served. The MCP front maps each to the wire.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The global cap on children is reached: 503 with `Retry-After`.
    #[error("too many users are active; retry in {retry_after:?}")]
    AtCapacity { retry_after: Duration },
    /// This user's child has too many requests in flight: 503 with `Retry-After`.
    #[error("too many requests in flight for this user; retry in {retry_after:?}")]
    Busy { retry_after: Duration },
    /// The child could not be started (or is in crash-loop backoff): JSON-RPC -32603.
    #[error("backend failed to start: {0}")]
    BackendFailedToStart(String),
    /// The child exited while the request was in flight: JSON-RPC -32603.
    #[error("backend exited")]
    BackendExited,
    /// The message cannot be forwarded (no method, or an id that is neither a
    /// number nor a string): JSON-RPC -32600.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// The request took longer than the request timeout: JSON-RPC -32603.
    #[error("backend did not answer in time")]
    Timeout,
    /// The user's Forgejo credential is gone (refused refresh, or never stored):
    /// the user must sign in again, so the client gets 401.
    #[error("the user's Forgejo authorization is no longer valid")]
    CredentialDead,
    /// Forgejo or the store is unreachable right now: 503 with `Retry-After`.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
}

impl PoolError {
    /// When a refused call is worth retrying (the `Retry-After` of a 503):
    /// `None` for failures a retry would not cure.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            PoolError::AtCapacity { retry_after } | PoolError::Busy { retry_after } => {
                Some(*retry_after)
            }
            PoolError::Unavailable(_) => Some(Duration::from_secs(5)),
            _ => None,
        }
    }
}

/// Counters for metrics and tests.
#[derive(Debug, Default)]
pub struct PoolStats {
    pub started: AtomicU64,
    pub stopped_idle: AtomicU64,
    pub stopped_rotated: AtomicU64,
    pub stopped_credential_dead: AtomicU64,
    pub stopped_shutdown: AtomicU64,
    pub exited_unexpectedly: AtomicU64,
    pub start_failures: AtomicU64,
    pub rotations: AtomicU64,
    pub refresh_failures: AtomicU64,
}

/// A child that is serving a user.
#[derive(Clone)]
struct Live {
    child: Child,
    /// The credential generation whose token the child holds.
    generation: i64,
    /// Unique per spawn, so an old child's exit never evicts its successor.
    serial: u64,
    /// When the child holds a token that expires (unix seconds).
    access_expires_at: i64,
}

/// Restarting a child that keeps dying right after start is refused for a while.
#[derive(Debug, Default)]
struct Backoff {
    consecutive_failures: u32,
    /// Unix seconds before which no new child is started.
    blocked_until: i64,
    /// Unix seconds before which a failed rotation is not retried.
    rotation_retry_at: i64,
    rotation_failures: u32,
}

/// A child that lives shorter than this counts as a start failure for backoff.
const QUICK_DEATH_SECONDS: i64 = 10;
const MAX_BACKOFF_SECONDS: i64 = 60;
/// An access token this close to expiry is refreshed before a child is started with it.
const SPAWN_MIN_VALIDITY_SECONDS: i64 = 60;

struct UserSlot {
    user_id: String,
    /// Single flight for spawning, refreshing and rotating this user's child.
    gate: tokio::sync::Mutex<()>,
    current: Mutex<Option<Live>>,
    /// Unix seconds of the last request start or end.
    last_used: AtomicI64,
    backoff: Mutex<Backoff>,
    /// Unsolicited notifications (list changes) of whichever child serves the
    /// user; outlives respawns so subscribers do not have to resubscribe.
    events: broadcast::Sender<Value>,
}

struct Inner {
    settings: PoolSettings,
    store: Store,
    forgejo: ForgejoClient,
    clock: Arc<dyn Clock>,
    users: Mutex<HashMap<String, Arc<UserSlot>>>,
    live_children: AtomicUsize,
    next_serial: AtomicU64,
    stats: PoolStats,
}

/// The pool; cheap to clone.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX / 4)
}

impl Pool {
    pub fn new(
        settings: PoolSettings,
        store: Store,
        forgejo: ForgejoClient,
        clock: Arc<dyn Clock>,
    ) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                settings,
                store,
                forgejo,
                clock,
                users: Mutex::new(HashMap::new()),
                live_children: AtomicUsize::new(0),
                next_serial: AtomicU64::new(1),
                stats: PoolStats::default(),
            }),
        }
    }

    /// Counters for metrics.
    pub fn stats(&self) -> &PoolStats {
        &self.inner.stats
    }

    /// How many children are alive (started and not yet exited).
    pub fn live_children(&self) -> usize {
        self.inner.live_children.load(Ordering::SeqCst)
    }

    /// The process id of the user's current child, if any (for tests and diagnostics).
    pub fn child_pid(&self, user_id: &str) -> Option<u32> {
        let slot = self.inner.users.lock().unwrap().get(user_id).cloned()?;
        let live = slot.current.lock().unwrap().clone()?;
        live.child.pid()
    }

    /// The user's child's InitializeResult, starting the child if needed.
    pub async fn initialize_result(&self, user_id: &str) -> Result<Value, PoolError> {
        let slot = self.slot(user_id);
        let live = self.ensure_child(&slot).await?;
        Ok(live.child.initialize_result().clone())
    }

    /// Forwards one request to the user's child (started if needed) and returns
    /// its response with the caller's id. Progress notifications go to `events`.
    pub async fn call(
        &self,
        user_id: &str,
        request: Value,
        events: Option<mpsc::Sender<Value>>,
    ) -> Result<Value, PoolError> {
        let slot = self.slot(user_id);
        let live = self.ensure_child(&slot).await?;
        if live.child.in_flight() >= self.inner.settings.max_in_flight_per_child {
            return Err(PoolError::Busy {
                retry_after: Duration::from_secs(1),
            });
        }
        slot.last_used
            .store(self.inner.clock.now(), Ordering::SeqCst);
        let result = live
            .child
            .call(request, events, self.inner.settings.request_timeout)
            .await;
        slot.last_used
            .store(self.inner.clock.now(), Ordering::SeqCst);
        if result.is_ok() {
            // A child that answers is healthy: forget earlier quick deaths.
            slot.backoff.lock().unwrap().consecutive_failures = 0;
        }
        result.map_err(|e| match e {
            CallError::Timeout => PoolError::Timeout,
            CallError::Exited | CallError::Closed => PoolError::BackendExited,
            CallError::Invalid(why) => PoolError::InvalidRequest(why),
        })
    }

    /// Unsolicited notifications of the user's child (list changes), across respawns.
    pub fn subscribe(&self, user_id: &str) -> broadcast::Receiver<Value> {
        self.slot(user_id).events.subscribe()
    }

    fn slot(&self, user_id: &str) -> Arc<UserSlot> {
        let mut users = self.inner.users.lock().unwrap();
        users
            .entry(user_id.to_string())
            .or_insert_with(|| {
                Arc::new(UserSlot {
                    user_id: user_id.to_string(),
                    gate: tokio::sync::Mutex::new(()),
                    current: Mutex::new(None),
                    last_used: AtomicI64::new(self.inner.clock.now()),
                    backoff: Mutex::new(Backoff::default()),
                    events: broadcast::channel(64).0,
                })
            })
            .clone()
    }

    fn current_alive(slot: &UserSlot) -> Option<Live> {
        slot.current
            .lock()
            .unwrap()
            .clone()
            .filter(|live| live.child.accepts_calls())
    }

    /// The user's live child, started (single flight) if there is none.
    async fn ensure_child(&self, slot: &Arc<UserSlot>) -> Result<Live, PoolError> {
        if let Some(live) = Self::current_alive(slot) {
            return Ok(live);
        }
        let _gate = slot.gate.lock().await;
        if let Some(live) = Self::current_alive(slot) {
            return Ok(live);
        }
        let now = self.inner.clock.now();
        {
            let backoff = slot.backoff.lock().unwrap();
            if backoff.blocked_until > now {
                return Err(PoolError::BackendFailedToStart(format!(
                    "the backend failed repeatedly; next attempt in {} s",
                    backoff.blocked_until - now
                )));
            }
        }
        if self.inner.live_children.load(Ordering::SeqCst) >= self.inner.settings.max_children {
            return Err(PoolError::AtCapacity {
                retry_after: self.inner.settings.reap_interval,
            });
        }
        let (generation, credential) = self.usable_credential(slot).await?;
        self.start_child(slot, generation, &credential).await
    }

    /// The user's credential, refreshed first if it has (nearly) expired.
    /// Caller holds the user's gate.
    async fn usable_credential(
        &self,
        slot: &UserSlot,
    ) -> Result<(i64, UpstreamCredential), PoolError> {
        let (record, credential) = self
            .inner
            .store
            .upstream_credential(&slot.user_id)
            .await
            .map_err(unavailable)?
            .ok_or(PoolError::CredentialDead)?;
        if credential.access_expires_at > self.inner.clock.now() + SPAWN_MIN_VALIDITY_SECONDS {
            return Ok((record.generation, credential));
        }
        self.refresh(slot, record.generation).await
    }

    /// Refreshes the user's Forgejo token (single flight here, row lock across
    /// instances). If another instance refreshed meanwhile, its result is used.
    /// Caller holds the user's gate.
    async fn refresh(
        &self,
        slot: &UserSlot,
        known_generation: i64,
    ) -> Result<(i64, UpstreamCredential), PoolError> {
        let inner = &self.inner;
        let mut lock = inner
            .store
            .lock_credential(&slot.user_id)
            .await
            .map_err(unavailable)?;
        let (record, credential) = lock
            .current()
            .await
            .map_err(unavailable)?
            .ok_or(PoolError::CredentialDead)?;
        let lead = seconds(inner.settings.refresh_lead);
        if record.generation > known_generation
            && credential.access_expires_at > inner.clock.now() + lead
        {
            return Ok((record.generation, credential));
        }
        let Some(refresh_token) = credential.refresh_token.clone() else {
            return Err(PoolError::CredentialDead);
        };
        match inner.forgejo.refresh(&refresh_token).await {
            Ok(tokens) => {
                let fresh = tokens.into_credential(inner.clock.now());
                let generation = lock
                    .replace(&record.identity.login, &fresh)
                    .await
                    .map_err(unavailable)?;
                inner.stats.rotations.fetch_add(1, Ordering::Relaxed);
                tracing::info!(user_id = %slot.user_id, generation, "refreshed the user's Forgejo token");
                Ok((generation, fresh))
            }
            Err(e) if e.is_refusal() => {
                inner.stats.refresh_failures.fetch_add(1, Ordering::Relaxed);
                let revoked = lock.mark_dead().await.map_err(unavailable)?;
                tracing::warn!(user_id = %slot.user_id, error = %e, revoked, "Forgejo refused the refresh: credential dead, grants revoked");
                let _ = inner
                    .store
                    .append_audit(&AuditEvent {
                        kind: "credential.dead".into(),
                        user_id: Some(slot.user_id.clone()),
                        client_id: None,
                        detail: serde_json::json!({ "revoked_grants": revoked }),
                    })
                    .await;
                Err(PoolError::CredentialDead)
            }
            Err(e) => {
                inner.stats.refresh_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(user_id = %slot.user_id, error = %e, "refreshing the user's Forgejo token failed; will retry");
                Err(PoolError::Unavailable(
                    "Forgejo could not be reached to refresh the token".into(),
                ))
            }
        }
    }

    /// Spawns and initializes a child with `credential`, makes it the user's
    /// current one, and watches its exit. Caller holds the user's gate.
    async fn start_child(
        &self,
        slot: &Arc<UserSlot>,
        generation: i64,
        credential: &UpstreamCredential,
    ) -> Result<Live, PoolError> {
        let inner = &self.inner;
        let serial = inner.next_serial.fetch_add(1, Ordering::SeqCst);
        let spec = self.spec(&slot.user_id, generation, serial, &credential.access_token)?;
        let work_dir = spec.work_dir.clone();
        inner.live_children.fetch_add(1, Ordering::SeqCst);
        let started_at = inner.clock.now();
        let child = match Child::spawn(spec).await {
            Ok(child) => child,
            Err(e) => {
                inner.live_children.fetch_sub(1, Ordering::SeqCst);
                inner.stats.start_failures.fetch_add(1, Ordering::Relaxed);
                let _ = std::fs::remove_dir_all(&work_dir);
                self.note_failure(slot);
                let reason = match &e {
                    ChildError::Spawn(io) => format!("cannot run the child command: {io}"),
                    ChildError::StartFailed { reason, .. } => reason.clone(),
                };
                tracing::warn!(user_id = %slot.user_id, error = %reason, "child failed to start");
                return Err(PoolError::BackendFailedToStart(reason));
            }
        };
        inner.stats.started.fetch_add(1, Ordering::Relaxed);
        let live = Live {
            child: child.clone(),
            generation,
            serial,
            access_expires_at: credential.access_expires_at,
        };
        *slot.current.lock().unwrap() = Some(live.clone());
        slot.last_used.store(started_at, Ordering::SeqCst);

        // Fan the child's unsolicited notifications out to the user's subscribers.
        let mut notifications = child.notifications();
        let events = slot.events.clone();
        tokio::spawn(async move {
            loop {
                match notifications.recv().await {
                    Ok(message) => {
                        let _ = events.send(message);
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });

        // When the child exits, forget it (unless it was already superseded) and
        // count a quick death towards the crash-loop backoff.
        let pool = self.clone();
        let watched = slot.clone();
        tokio::spawn(async move {
            let exit = child.exited().await;
            pool.inner.live_children.fetch_sub(1, Ordering::SeqCst);
            let _ = std::fs::remove_dir_all(&work_dir);
            let was_current = {
                let mut current = watched.current.lock().unwrap();
                if current.as_ref().is_some_and(|l| l.serial == serial) {
                    *current = None;
                    true
                } else {
                    false
                }
            };
            if was_current {
                pool.inner
                    .stats
                    .exited_unexpectedly
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(user_id = %watched.user_id, ?exit, "child exited unexpectedly");
                if pool.inner.clock.now() - started_at < QUICK_DEATH_SECONDS {
                    pool.note_failure(&watched);
                }
            }
        });
        tracing::info!(user_id = %slot.user_id, generation, pid = live.child.pid().unwrap_or(0), "child started");
        Ok(live)
    }

    fn note_failure(&self, slot: &UserSlot) {
        let now = self.inner.clock.now();
        let mut backoff = slot.backoff.lock().unwrap();
        backoff.consecutive_failures += 1;
        // One crash is replaced at once; a second in a row starts the backoff
        // (2 s, 4 s, … up to a minute) during which requests fail fast.
        let delay = match backoff.consecutive_failures {
            0 | 1 => 0,
            n => (1i64 << (n - 1).min(6)).min(MAX_BACKOFF_SECONDS),
        };
        backoff.blocked_until = now + delay;
    }

    fn spec(
        &self,
        user_id: &str,
        generation: i64,
        serial: u64,
        token: &SecretString,
    ) -> Result<ChildSpec, PoolError> {
        let settings = &self.inner.settings;
        let work_dir = settings
            .work_root
            .join(format!("user-{}-{serial}", sanitize(user_id)));
        create_private_dir(&work_dir).map_err(|e| {
            PoolError::BackendFailedToStart(format!("cannot create the child's directory: {e}"))
        })?;
        let mut env = settings.inherited_env.clone();
        env.push(("FORGEJO_URL".into(), settings.forgejo_url.clone()));
        env.push((
            "FORGEJO_ACCESS_TOKEN".into(),
            token.expose_secret().to_string(),
        ));
        let mut spec = ChildSpec::new(
            settings.command.clone(),
            env,
            work_dir,
            format!("user:{user_id} gen:{generation}"),
        );
        spec.limits = settings.limits.clone();
        Ok(spec)
    }

    /// One idle sweep: stops children unused for the idle timeout with nothing in flight.
    pub async fn reap_idle(&self) {
        let now = self.inner.clock.now();
        let idle = seconds(self.inner.settings.idle_timeout);
        let slots: Vec<_> = self.inner.users.lock().unwrap().values().cloned().collect();
        for slot in slots {
            let Ok(_gate) = slot.gate.try_lock() else {
                continue; // busy spawning or rotating: not idle
            };
            let victim = {
                let mut current = slot.current.lock().unwrap();
                let idle_now = current.as_ref().is_some_and(|live| {
                    live.child.in_flight() == 0
                        && now - slot.last_used.load(Ordering::SeqCst) >= idle
                });
                if idle_now { current.take() } else { None }
            };
            if let Some(live) = victim {
                tracing::info!(user_id = %slot.user_id, "stopping idle child");
                self.inner
                    .stats
                    .stopped_idle
                    .fetch_add(1, Ordering::Relaxed);
                live.child.stop().await;
            }
        }
    }

    /// One rotation sweep: refreshes the token of every user whose live child's
    /// token expires within the refresh lead, then replaces the child without
    /// failing a request (start the new one, switch, drain and stop the old one).
    pub async fn rotate_due(&self) {
        let slots: Vec<_> = self.inner.users.lock().unwrap().values().cloned().collect();
        for slot in slots {
            self.rotate_if_due(&slot).await;
        }
    }

    async fn rotate_if_due(&self, slot: &Arc<UserSlot>) {
        let inner = &self.inner;
        let now = inner.clock.now();
        let due =
            |live: &Live| live.access_expires_at <= now + seconds(inner.settings.refresh_lead);
        match Self::current_alive(slot) {
            Some(live) if due(&live) => {}
            _ => return,
        }
        if slot.backoff.lock().unwrap().rotation_retry_at > now {
            return;
        }
        let _gate = slot.gate.lock().await;
        let Some(old) = Self::current_alive(slot).filter(due) else {
            return;
        };
        let (generation, credential) = match self.refresh(slot, old.generation).await {
            Ok(fresh) => fresh,
            Err(PoolError::CredentialDead) => {
                slot.current.lock().unwrap().take();
                inner
                    .stats
                    .stopped_credential_dead
                    .fetch_add(1, Ordering::Relaxed);
                old.child.stop().await;
                return;
            }
            Err(e) => {
                let mut backoff = slot.backoff.lock().unwrap();
                backoff.rotation_failures += 1;
                let delay = (5i64 << backoff.rotation_failures.min(6)).min(300);
                backoff.rotation_retry_at = now + delay;
                tracing::warn!(user_id = %slot.user_id, error = %e, retry_in = delay, "rotation postponed");
                return;
            }
        };
        slot.backoff.lock().unwrap().rotation_failures = 0;
        match self.start_child(slot, generation, &credential).await {
            Ok(_) => {
                inner.stats.stopped_rotated.fetch_add(1, Ordering::Relaxed);
                let drain = inner.settings.request_timeout;
                tokio::spawn(async move {
                    let deadline = tokio::time::Instant::now() + drain;
                    while old.child.in_flight() > 0 && tokio::time::Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    old.child.stop().await;
                });
            }
            Err(e) => {
                // Keep serving on the old child (its token is still valid for now);
                // the next sweep tries again.
                *slot.current.lock().unwrap() = Some(old);
                tracing::warn!(user_id = %slot.user_id, error = %e, "could not start the rotated child; keeping the old one");
            }
        }
    }

    /// Runs the reaper and the rotation sweeps until `shutdown`.
    pub async fn run_background(self, shutdown: CancellationToken) {
        let mut reap = tokio::time::interval(self.inner.settings.reap_interval);
        let mut rotate = tokio::time::interval(self.inner.settings.rotate_interval);
        reap.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        rotate.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = reap.tick() => self.reap_idle().await,
                _ = rotate.tick() => self.rotate_due().await,
            }
        }
    }

    /// Removes the directory the children's working directories live in (after shutdown).
    pub fn remove_work_root(&self) {
        let _ = std::fs::remove_dir_all(&self.inner.settings.work_root);
    }

    /// Stops every child and waits until all have exited.
    pub async fn shutdown(&self) {
        let slots: Vec<_> = self.inner.users.lock().unwrap().values().cloned().collect();
        let mut stopping = Vec::new();
        for slot in slots {
            if let Some(live) = slot.current.lock().unwrap().take() {
                self.inner
                    .stats
                    .stopped_shutdown
                    .fetch_add(1, Ordering::Relaxed);
                stopping.push(tokio::spawn(async move { live.child.stop().await }));
            }
        }
        for task in stopping {
            let _ = task.await;
        }
        // Superseded children still draining are stopped by their own tasks; wait
        // (bounded) for the count of live children to reach zero.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.live_children() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn unavailable(e: StoreError) -> PoolError {
    tracing::error!(error = %e, "child pool: store failed");
    PoolError::Unavailable("the broker's store is unavailable".into())
}

/// User ids are Forgejo's numeric ids; anything else is made path-safe.
fn sanitize(user_id: &str) -> String {
    user_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}
