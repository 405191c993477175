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
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::backoff::BackoffPolicy;
use super::{CallError, Child, ChildError, ChildSpec, ResourceLimits, create_private_dir};
use crate::clock::{Clock, seconds};
use crate::forgejo::ForgejoClient;
use crate::store::{AuditEvent, Store, StoreError};
use crate::upstream::UpstreamCredential;

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
    /// The Unix user children run as (`None`: the broker's own).
    pub run_as: Option<crate::config::UnixUser>,
}

impl PoolSettings {
    /// The pool's settings from the broker's configuration.
    pub(crate) fn from_config(config: &crate::config::Config) -> PoolSettings {
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
                processes: children.limit_processes,
                // The running broker binary is the wrapper.
                wrapper: None,
            },
            work_root: children.work_root.clone(),
            run_as: children.run_as,
        }
    }
}

/// Why a request could not be admitted to the user's child. The MCP front maps
/// each to an HTTP answer before it chooses between JSON and a stream; what can
/// go wrong once the request is on its way is a [`CallError`].
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
    /// The user's Forgejo credential is gone (refused refresh, or never stored):
    /// the user must sign in again, so the client gets 401.
    #[error("the user's Forgejo authorization is no longer valid")]
    CredentialDead,
    /// Forgejo or the store is unreachable right now: 503 with `Retry-After`.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
}

/// What the pool has done, counted (for metrics and tests).
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Children started (handshake completed).
    pub started: AtomicU64,
    /// Children that could not be started.
    pub start_failures: AtomicU64,
    /// Children stopped because they were idle.
    pub stopped_idle: AtomicU64,
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

/// Restarting a child that keeps dying right after start is refused for a while,
/// and so is retrying a rotation Forgejo could not serve.
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
/// One crash is replaced at once; a second in a row starts the backoff (2 s,
/// 4 s, … up to a minute) during which requests fail fast.
const CRASH_BACKOFF: BackoffPolicy = BackoffPolicy {
    forgiven: 1,
    first: Duration::from_secs(2),
    max: Duration::from_secs(60),
};
/// A rotation that failed for a transient reason waits 10 s, 20 s, … up to 5 min
/// (the child keeps serving on its current, still valid token meanwhile).
const ROTATION_BACKOFF: BackoffPolicy = BackoffPolicy {
    forgiven: 0,
    first: Duration::from_secs(10),
    max: Duration::from_secs(300),
};
/// The longest shutdown waits for superseded children to finish draining.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);
/// An access token this close to expiry is refreshed before a child is started with it.
const SPAWN_MIN_VALIDITY_SECONDS: i64 = 60;

struct UserSlot {
    user_id: String,
    /// Single flight for spawning, refreshing and rotating this user's child.
    gate: tokio::sync::Mutex<()>,
    current: Mutex<Option<Live>>,
    /// Unix seconds of the last request start or end.
    last_used: AtomicI64,
    /// Requests admitted and not finished: the per-child cap counts these, so
    /// the check and the reservation are one step.
    admitted: AtomicUsize,
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
    /// How many children are alive (started and not yet reaped); shutdown waits
    /// for it to reach zero.
    live_children: watch::Sender<usize>,
    next_serial: AtomicU64,
    /// Owns every task the pool starts (child pipes, drains, fan-outs).
    tasks: TaskTracker,
    stats: PoolStats,
}

/// The pool; cheap to clone.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("live_children", &self.live_children())
            .finish_non_exhaustive()
    }
}

/// A request admitted to a user's live child: the child is running and
/// initialized, and the request counts against the child's in-flight cap until
/// the lease is dropped.
#[derive(Debug)]
pub struct Lease {
    child: Child,
    slot: Arc<UserSlot>,
    pool: Pool,
}

impl std::fmt::Debug for UserSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserSlot")
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

impl Lease {
    /// The child's InitializeResult, for answering `initialize` and `server/discover`.
    pub fn initialize_result(&self) -> &Value {
        self.child.initialize_result()
    }

    /// Forwards one request to the child and returns its response with the
    /// caller's id; progress notifications go to `events`. Dropping the future
    /// cancels the request at the child.
    pub async fn call(
        &self,
        request: Value,
        events: Option<mpsc::Sender<Value>>,
    ) -> Result<Value, CallError> {
        let result = self
            .child
            .call(request, events, self.pool.inner.settings.request_timeout)
            .await;
        if result.is_ok() {
            // A child that answers is healthy: forget earlier quick deaths.
            self.slot.backoff.lock().consecutive_failures = 0;
        }
        result
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.slot.admitted.fetch_sub(1, Ordering::AcqRel);
        self.slot
            .last_used
            .store(self.pool.inner.clock.now(), Ordering::Relaxed);
    }
}

impl Pool {
    /// A pool whose children's tasks belong to `tasks`.
    pub fn new(
        settings: PoolSettings,
        store: Store,
        forgejo: ForgejoClient,
        clock: Arc<dyn Clock>,
        tasks: TaskTracker,
    ) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                settings,
                store,
                forgejo,
                clock,
                users: Mutex::new(HashMap::new()),
                live_children: watch::channel(0).0,
                next_serial: AtomicU64::new(1),
                tasks,
                stats: PoolStats::default(),
            }),
        }
    }

    /// What the pool has done so far.
    pub fn stats(&self) -> &PoolStats {
        &self.inner.stats
    }

    /// How many children are alive (started and not yet exited).
    pub fn live_children(&self) -> usize {
        *self.inner.live_children.borrow()
    }

    /// The process id of the user's current child, if any (for tests and diagnostics).
    pub fn child_pid(&self, user_id: &str) -> Option<u32> {
        let slot = self.inner.users.lock().get(user_id).cloned()?;
        let live = slot.current.lock().clone()?;
        live.child.pid()
    }

    /// Admits one request of `user_id`: their live child, started (single
    /// flight) if there is none, with room under the in-flight cap.
    pub async fn admit(&self, user_id: &str) -> Result<Lease, PoolError> {
        let slot = self.slot(user_id);
        let live = self.ensure_child(&slot).await?;
        let max = self.inner.settings.max_in_flight_per_child;
        if slot.admitted.fetch_add(1, Ordering::AcqRel) >= max {
            slot.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(PoolError::Busy {
                retry_after: Duration::from_secs(1),
            });
        }
        slot.last_used
            .store(self.inner.clock.now(), Ordering::Relaxed);
        Ok(Lease {
            child: live.child,
            slot,
            pool: self.clone(),
        })
    }

    /// Unsolicited notifications of the user's child (list changes), across respawns.
    pub(crate) fn subscribe(&self, user_id: &str) -> broadcast::Receiver<Value> {
        self.slot(user_id).events.subscribe()
    }

    fn slot(&self, user_id: &str) -> Arc<UserSlot> {
        let mut users = self.inner.users.lock();
        users
            .entry(user_id.to_string())
            .or_insert_with(|| {
                Arc::new(UserSlot {
                    user_id: user_id.to_string(),
                    gate: tokio::sync::Mutex::new(()),
                    current: Mutex::new(None),
                    last_used: AtomicI64::new(self.inner.clock.now()),
                    admitted: AtomicUsize::new(0),
                    backoff: Mutex::new(Backoff::default()),
                    events: broadcast::channel(64).0,
                })
            })
            .clone()
    }

    fn current_alive(slot: &UserSlot) -> Option<Live> {
        slot.current
            .lock()
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
            let backoff = slot.backoff.lock();
            if backoff.blocked_until > now {
                return Err(PoolError::BackendFailedToStart(format!(
                    "the backend failed repeatedly; next attempt in {} s",
                    backoff.blocked_until - now
                )));
            }
        }
        if self.live_children() >= self.inner.settings.max_children {
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
                tracing::info!(user_id = %slot.user_id, generation, "refreshed the user's Forgejo token");
                Ok((generation, fresh))
            }
            Err(e) if e.is_refusal() => {
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
        let serial = inner.next_serial.fetch_add(1, Ordering::Relaxed);
        let spec = self.spec(&slot.user_id, generation, serial, &credential.access_token)?;
        let work_dir = spec.work_dir.clone();
        inner.live_children.send_modify(|n| *n += 1);
        let started_at = inner.clock.now();
        let child = match Child::spawn(spec).await {
            Ok(child) => child,
            Err(e) => {
                inner.live_children.send_modify(|n| *n -= 1);
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
        *slot.current.lock() = Some(live.clone());
        slot.last_used.store(started_at, Ordering::Relaxed);

        // Fan the child's unsolicited notifications out to the user's subscribers.
        let mut notifications = child.notifications();
        let events = slot.events.clone();
        inner.tasks.spawn(async move {
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
        inner.tasks.spawn(async move {
            let exit = child.exited().await;
            pool.inner.live_children.send_modify(|n| *n -= 1);
            let _ = std::fs::remove_dir_all(&work_dir);
            let was_current = {
                let mut current = watched.current.lock();
                if current.as_ref().is_some_and(|l| l.serial == serial) {
                    *current = None;
                    true
                } else {
                    false
                }
            };
            if was_current {
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
        let mut backoff = slot.backoff.lock();
        backoff.consecutive_failures += 1;
        backoff.blocked_until = now + seconds(CRASH_BACKOFF.delay(backoff.consecutive_failures));
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
        spec.run_as = settings.run_as;
        spec.tasks = self.inner.tasks.clone();
        Ok(spec)
    }

    /// One idle sweep: stops children unused for the idle timeout with nothing in flight.
    pub async fn reap_idle(&self) {
        let now = self.inner.clock.now();
        let idle = seconds(self.inner.settings.idle_timeout);
        let slots: Vec<_> = self.inner.users.lock().values().cloned().collect();
        for slot in slots {
            let Ok(_gate) = slot.gate.try_lock() else {
                continue; // busy spawning or rotating: not idle
            };
            let victim = {
                let mut current = slot.current.lock();
                let idle_now = current.as_ref().is_some_and(|live| {
                    live.child.in_flight() == 0
                        && now - slot.last_used.load(Ordering::Relaxed) >= idle
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
        let slots: Vec<_> = self.inner.users.lock().values().cloned().collect();
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
        if slot.backoff.lock().rotation_retry_at > now {
            return;
        }
        let _gate = slot.gate.lock().await;
        let Some(old) = Self::current_alive(slot).filter(due) else {
            return;
        };
        let (generation, credential) = match self.refresh(slot, old.generation).await {
            Ok(fresh) => fresh,
            Err(PoolError::CredentialDead) => {
                slot.current.lock().take();
                old.child.stop().await;
                return;
            }
            Err(e) => {
                let mut backoff = slot.backoff.lock();
                backoff.rotation_failures += 1;
                let delay = seconds(ROTATION_BACKOFF.delay(backoff.rotation_failures));
                backoff.rotation_retry_at = now + delay;
                tracing::warn!(user_id = %slot.user_id, error = %e, retry_in = delay, "rotation postponed");
                return;
            }
        };
        slot.backoff.lock().rotation_failures = 0;
        match self.start_child(slot, generation, &credential).await {
            Ok(_) => {
                let drain = inner.settings.request_timeout;
                inner.tasks.spawn(async move {
                    // In-flight requests finish on the old child (bounded by the
                    // request timeout they run under anyway), then it goes.
                    let _ = tokio::time::timeout(drain, old.child.until_idle()).await;
                    old.child.stop().await;
                });
            }
            Err(e) => {
                // Keep serving on the old child (its token is still valid for now);
                // the next sweep tries again.
                *slot.current.lock() = Some(old);
                tracing::warn!(user_id = %slot.user_id, error = %e, "could not start the rotated child; keeping the old one");
            }
        }
    }

    /// Runs the reaper and the rotation sweeps until `shutdown`.
    pub(crate) async fn run_background(self, shutdown: CancellationToken) {
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
    pub(crate) fn remove_work_root(&self) {
        let _ = std::fs::remove_dir_all(&self.inner.settings.work_root);
    }

    /// Stops every child and waits until all have exited.
    pub async fn shutdown(&self) {
        let slots: Vec<_> = self.inner.users.lock().values().cloned().collect();
        let mut stopping = Vec::new();
        for slot in slots {
            if let Some(live) = slot.current.lock().take() {
                stopping.push(
                    self.inner
                        .tasks
                        .spawn(async move { live.child.stop().await }),
                );
            }
        }
        for task in stopping {
            let _ = task.await;
        }
        // Superseded children still draining are stopped by their own tasks; wait
        // (bounded) for the count of live children to reach zero.
        let mut live = self.inner.live_children.subscribe();
        let all_gone = live.wait_for(|n| *n == 0);
        if tokio::time::timeout(SHUTDOWN_WAIT, all_gone).await.is_err() {
            tracing::warn!(
                live = self.live_children(),
                "children still running after shutdown; their tasks will kill them"
            );
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
