//! The per-user child pool: one supervised child per Forgejo user, started on
//! demand with a credential that [`crate::credentials`] vouches for, reaped when
//! idle, replaced when the user's credential changes or the child dies.
//!
//! Children are cattle (DESIGN §2): a child is only a cache of "a process
//! running with user U's token, generation N, already initialized". The pool
//! knows how to start, replace and stop children; what token a child gets, and
//! when a token must change, is the credentials module's decision. Every
//! decision about a user's child is single flight behind the user's gate; the
//! map of users is only held for a moment.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{CallError, Child, ChildError, ChildSpec, ResourceLimits, create_private_dir};
use crate::backoff::BackoffPolicy;
use crate::clock::{Clock, seconds};
use crate::credentials::{Credential, CredentialChange, CredentialError, Credentials};
use crate::metrics::{StopReason, metrics};

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
    /// How often live children's credentials are followed (refreshed when due,
    /// replaced when another instance or a sign-in changed them, checked
    /// against Forgejo when the check interval has passed).
    pub rotate_interval: Duration,
    /// A child whose token expires within this margin takes no new request:
    /// the request path (which knows the expiry without asking anyone) starts
    /// its replacement first, in case the sweep has not yet.
    pub expiry_margin: Duration,
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
            expiry_margin: children.refresh_lead / 10,
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
    #[error("temporarily unavailable: {reason}")]
    Unavailable {
        reason: String,
        retry_after: Duration,
    },
}

impl From<CredentialError> for PoolError {
    fn from(error: CredentialError) -> PoolError {
        match error {
            CredentialError::Dead => PoolError::CredentialDead,
            CredentialError::Unavailable {
                reason,
                retry_after,
            } => PoolError::Unavailable {
                reason,
                retry_after,
            },
        }
    }
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
    /// When the child's token expires (unix seconds).
    access_expires_at: i64,
    /// When Forgejo issued that token (unix seconds).
    issued_at: i64,
}

/// Restarting a child that keeps dying right after start is refused for a while.
#[derive(Debug, Default)]
struct Backoff {
    consecutive_failures: u32,
    /// Unix seconds before which no new child is started.
    blocked_until: i64,
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

/// The longest shutdown waits for superseded children to finish draining.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

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
    credentials: Credentials,
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
    /// A pool whose children get their tokens from `credentials` and whose
    /// tasks belong to `tasks`.
    pub fn new(
        settings: PoolSettings,
        credentials: Credentials,
        clock: Arc<dyn Clock>,
        tasks: TaskTracker,
    ) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                settings,
                credentials,
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
    /// flight) if there is none, with room under the in-flight cap. `checked`
    /// is a credential Forgejo accepted during this very request (a session
    /// start checks one): a child started now takes it instead of asking
    /// Forgejo again, one round trip less on a new user's first response.
    pub async fn admit(
        &self,
        user_id: &str,
        checked: Option<Credential>,
    ) -> Result<Lease, PoolError> {
        let slot = self.slot(user_id);
        let live = self.ensure_child(&slot, checked).await?;
        let max = self.inner.settings.max_in_flight_per_child;
        let already = slot.admitted.fetch_add(1, Ordering::AcqRel);
        metrics().child_admitted(already);
        if already >= max {
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

    /// The user's current child if it takes new requests: running, and its
    /// token not about to expire (a check in memory, no store read).
    fn usable_current(&self, slot: &UserSlot) -> Option<Live> {
        let now = self.inner.clock.now();
        slot.current.lock().clone().filter(|live| {
            // A quarter of the token's lifetime when Forgejo issues short-lived
            // ones, so the margin never swallows the whole token.
            let lifetime = (live.access_expires_at - live.issued_at).max(0);
            let margin = seconds(self.inner.settings.expiry_margin).min(lifetime / 4);
            live.child.accepts_calls() && live.access_expires_at > now + margin
        })
    }

    /// The user's usable child, started (single flight) if there is none —
    /// replacing one whose token is about to expire.
    async fn ensure_child(
        &self,
        slot: &Arc<UserSlot>,
        checked: Option<Credential>,
    ) -> Result<Live, PoolError> {
        if let Some(live) = self.usable_current(slot) {
            return Ok(live);
        }
        let _gate = slot.gate.lock().await;
        if let Some(live) = self.usable_current(slot) {
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
        // A replacement of a running child is allowed past the cap for its overlap.
        let replacing = slot.current.lock().is_some();
        if !replacing && self.live_children() >= self.inner.settings.max_children {
            return Err(PoolError::AtCapacity {
                retry_after: self.inner.settings.reap_interval,
            });
        }
        let credential = match checked {
            Some(checked) => checked,
            None => self.inner.credentials.for_new_child(&slot.user_id).await?,
        };
        self.start_child(slot, credential).await
    }

    /// Spawns and initializes a child with `credential`, makes it the user's
    /// current one (the one it replaces finishes its in-flight requests, then
    /// stops: make before break), and watches its exit. Caller holds the
    /// user's gate.
    async fn start_child(
        &self,
        slot: &Arc<UserSlot>,
        credential: Credential,
    ) -> Result<Live, PoolError> {
        let inner = &self.inner;
        let serial = inner.next_serial.fetch_add(1, Ordering::Relaxed);
        let generation = credential.generation;
        let spec = self.spec(&slot.user_id, serial, &credential)?;
        let work_dir = spec.work_dir.clone();
        inner.live_children.send_modify(|n| {
            *n += 1;
            metrics().set_children(*n);
        });
        let started_at = inner.clock.now();
        let spawned = tokio::time::Instant::now();
        let child = match Child::spawn(spec).await {
            Ok(child) => child,
            Err(e) => {
                inner.live_children.send_modify(|n| {
                    *n -= 1;
                    metrics().set_children(*n);
                });
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
        metrics().child_started(spawned.elapsed());
        let live = Live {
            child: child.clone(),
            generation,
            serial,
            access_expires_at: credential.access_expires_at,
            issued_at: credential.issued_at,
        };
        let replaced = slot.current.lock().replace(live.clone());
        slot.last_used.store(started_at, Ordering::Relaxed);
        if let Some(old) = replaced {
            self.retire(old);
        }

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
            pool.inner.live_children.send_modify(|n| {
                *n -= 1;
                metrics().set_children(*n);
            });
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
                metrics().child_stopped(StopReason::Crash);
                if pool.inner.clock.now() - started_at < QUICK_DEATH_SECONDS {
                    pool.note_failure(&watched);
                }
            }
        });
        tracing::info!(user_id = %slot.user_id, generation, pid = live.child.pid().unwrap_or(0), "child started");
        Ok(live)
    }

    /// Lets a superseded child finish its in-flight requests (bounded by the
    /// request timeout they run under anyway), then stops it.
    fn retire(&self, old: Live) {
        let drain = self.inner.settings.request_timeout;
        metrics().child_stopped(StopReason::Rotation);
        self.inner.tasks.spawn(async move {
            let _ = tokio::time::timeout(drain, old.child.until_idle()).await;
            old.child.stop().await;
        });
    }

    /// Replaces the user's live child (if any, and if it holds an older
    /// generation) with one holding `credential`. Caller holds the user's gate.
    async fn replace_with(&self, slot: &Arc<UserSlot>, credential: Credential) {
        let stale = slot
            .current
            .lock()
            .as_ref()
            .is_some_and(|live| live.generation < credential.generation);
        if !stale {
            return;
        }
        let generation = credential.generation;
        if let Err(e) = self.start_child(slot, credential).await {
            // The old child keeps serving while its token lasts; the next sweep
            // or request tries again.
            tracing::warn!(user_id = %slot.user_id, generation, error = %e, "could not start the child with the new credential; keeping the old one");
        }
    }

    /// Stops the user's child: their Forgejo authorization ended.
    async fn stop_for_dead_credential(&self, slot: &UserSlot) {
        let taken = slot.current.lock().take();
        if let Some(live) = taken {
            tracing::info!(user_id = %slot.user_id, "stopping the child: the user's Forgejo authorization ended");
            metrics().child_stopped(StopReason::CredentialDead);
            live.child.stop().await;
        }
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
        serial: u64,
        credential: &Credential,
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
        let mut spec = ChildSpec::new(
            settings.command.clone(),
            env,
            work_dir,
            format!("user:{user_id} gen:{}", credential.generation),
        );
        spec.secret_env.push((
            "FORGEJO_ACCESS_TOKEN".into(),
            credential.access_token.clone(),
        ));
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
                metrics().child_stopped(StopReason::Idle);
                live.child.stop().await;
            }
        }
    }

    /// One sweep over the live children: each follows its user's credential
    /// (refreshed ahead of expiry, replaced when another instance or a sign-in
    /// changed it, checked against Forgejo once per check interval), and stops
    /// when the user's Forgejo authorization has ended. A Forgejo that cannot
    /// be reached changes nothing: the child keeps its still valid token.
    pub async fn follow_credentials(&self) {
        let slots: Vec<_> = self.inner.users.lock().values().cloned().collect();
        for slot in slots {
            self.follow(&slot).await;
        }
    }

    async fn follow(&self, slot: &Arc<UserSlot>) {
        let _gate = slot.gate.lock().await;
        let Some(live) = slot.current.lock().clone() else {
            return;
        };
        if !live.child.accepts_calls() {
            return;
        }
        let followed = self
            .inner
            .credentials
            .follow(&slot.user_id, live.generation, live.access_expires_at)
            .await;
        match followed {
            Ok(None) => {}
            Ok(Some(credential)) => self.replace_with(slot, credential).await,
            Err(CredentialError::Dead) => self.stop_for_dead_credential(slot).await,
            Err(e) => {
                tracing::warn!(user_id = %slot.user_id, error = %e, "could not follow the user's credential; keeping the child");
            }
        }
    }

    /// Acts on a change this instance made to a credential (a sign-in, a
    /// refresh on a request's behalf, a death) at once, without waiting for
    /// the sweep.
    async fn on_credential_change(&self, change: CredentialChange) {
        let user_id = match &change {
            CredentialChange::Renewed { user_id, .. } | CredentialChange::Dead { user_id } => {
                user_id.clone()
            }
        };
        let Some(slot) = self.inner.users.lock().get(&user_id).cloned() else {
            return;
        };
        let _gate = slot.gate.lock().await;
        match change {
            CredentialChange::Renewed { credential, .. } => {
                self.replace_with(&slot, credential).await;
            }
            CredentialChange::Dead { .. } => self.stop_for_dead_credential(&slot).await,
        }
    }

    /// Runs the reaper and the credential sweeps, and follows this instance's
    /// credential changes, until `shutdown`.
    pub(crate) async fn run_background(self, shutdown: CancellationToken) {
        let mut reap = tokio::time::interval(self.inner.settings.reap_interval);
        let mut follow = tokio::time::interval(self.inner.settings.rotate_interval);
        reap.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        follow.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut changes = self.inner.credentials.changes();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = reap.tick() => self.reap_idle().await,
                _ = follow.tick() => self.follow_credentials().await,
                change = changes.recv() => match change {
                    Ok(change) => {
                        let pool = self.clone();
                        self.inner.tasks.spawn(async move { pool.on_credential_change(change).await });
                    }
                    // Missed changes are caught by the next sweep.
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
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
                metrics().child_stopped(StopReason::Shutdown);
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

/// User ids are Forgejo's numeric ids; anything else is made path-safe.
fn sanitize(user_id: &str) -> String {
    user_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}
