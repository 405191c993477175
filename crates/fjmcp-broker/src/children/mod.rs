//! Stdio MCP children: one supervised child process and its JSON-RPC connection.
//!
//! A [`Child`] is a cache entry in the sense of DESIGN.md principle 1: "a process running with
//! user U's Forgejo token, already initialized". It may die at any moment; callers with a
//! request in flight get [`CallError::Exited`] and the pool starts a fresh one. This module
//! knows nothing of users, HTTP or protocol eras: it spawns, performs the broker-owned
//! `initialize` handshake (principle 3), multiplexes many callers onto one stdio connection,
//! and stops and reaps.
//!
//! Layout: [`process`] spawns, signals, reaps and logs stderr; [`connection`] frames stdout and
//! stdin and rewrites ids and progress tokens; [`limits`] sets a child's resource limits
//! (`prlimit`, or a `setrlimit` wrapper for a child of another user);
//! [`lines`] reads newline-delimited input with a bounded line length; [`probe`] is
//! `check-config`'s look at the child command.
//!
//! Tasks per child: a writer (owns stdin), a reader (owns stdout), a stderr logger, a reaper
//! (owns the process and waits for it), and during a stop the stop sequence. None of them keeps
//! the [`Child`] handle alive: dropping the last handle stops the child.

mod connection;
pub mod limits;
mod lines;
mod pool;
pub mod probe;
mod process;

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use connection::Connection;
pub use limits::ResourceLimits;
pub use pool::{Lease, Pool, PoolError, PoolSettings, PoolStats};
use process::Process;
pub(crate) use process::create_private_dir;
pub use process::create_work_root;

use crate::config::UnixUser;

/// The protocol revision the broker speaks to its children (a 2025-era revision that
/// forgejo-mcp's mcp-go supports).
const CHILD_PROTOCOL_VERSION: &str = "2025-11-25";

/// Default cap on one stdout line: large tool results fit, a runaway child does not.
const DEFAULT_MAX_LINE_BYTES: usize = 4 * 1024 * 1024;
/// Default time a child gets to answer `initialize` (forgejo-mcp checks its token first).
const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default wait after closing stdin, and again after SIGTERM.
const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(2);

/// How long a reaped child's stdout may still deliver what it wrote before exiting, when the
/// pipe stays open (a leftover grandchild holds it) and so no end of input comes.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(500);
/// How long a failed start waits for the child's last stderr lines.
const STDERR_DRAIN: Duration = Duration::from_secs(1);

/// Everything needed to start one child. The caller (the pool) builds the environment and
/// the working directory; this module only obeys them.
#[derive(Clone)]
pub struct ChildSpec {
    /// Program and arguments, already split (from configuration). Never run through a shell
    /// and never carrying a secret: argv is visible to every local user.
    pub program_and_args: Vec<String>,
    /// Exactly the child's environment, with [`ChildSpec::secret_env`]: the broker's
    /// environment is cleared first. The caller puts in the allow-listed variables
    /// plus `FORGEJO_URL`.
    pub env: Vec<(String, String)>,
    /// Environment variables holding secrets (`FORGEJO_ACCESS_TOKEN`): revealed
    /// only when the process is created, never logged or printed.
    pub secret_env: Vec<(String, SecretString)>,
    /// The child's working directory, its own (see [`create_private_dir`]); it must exist.
    /// Its `home` and `tmp` subdirectories become the child's `HOME` and `TMPDIR`.
    pub work_dir: PathBuf,
    /// Names the child in logs, e.g. `user:42 gen:3`. Never a token.
    pub label: String,
    /// Optional resource limits: set on the child right after it is spawned, or by the
    /// wrapper it is spawned through when it runs as another user.
    pub limits: ResourceLimits,
    /// Run the child as this user (its working directory is handed to it); `None` runs it
    /// as the broker's user.
    pub run_as: Option<UnixUser>,
    /// Longest stdout line accepted; longer ones are logged and dropped.
    pub max_line_bytes: usize,
    /// Time allowed from spawn to the `initialize` result.
    pub handshake_timeout: Duration,
    /// Wait after closing stdin, and again after SIGTERM, before escalating.
    pub stop_grace: Duration,
    /// Owns the child's tasks (its pipes, its reaper, its stop sequence), so the
    /// broker's shutdown can wait for all of them.
    pub tasks: TaskTracker,
}

impl ChildSpec {
    /// A spec with the default limits and timeouts.
    pub fn new(
        program_and_args: Vec<String>,
        env: Vec<(String, String)>,
        work_dir: PathBuf,
        label: impl Into<String>,
    ) -> Self {
        Self {
            program_and_args,
            env,
            secret_env: Vec::new(),
            work_dir,
            label: label.into(),
            limits: ResourceLimits::default(),
            run_as: None,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            stop_grace: DEFAULT_STOP_GRACE,
            tasks: TaskTracker::new(),
        }
    }

    /// Whether the limits are set by the wrapper rather than on the running child: for a child
    /// of another user, whose limits the broker may not be allowed to change.
    pub(crate) fn limits_through_wrapper(&self) -> bool {
        self.limits.any() && self.run_as.is_some()
    }
}

/// `Debug` shows environment names only (values can be private to the user).
impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("program_and_args", &self.program_and_args)
            .field(
                "env",
                &self.env.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            )
            .field(
                "secret_env",
                &self
                    .secret_env
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("work_dir", &self.work_dir)
            .field("label", &self.label)
            .field("limits", &self.limits)
            .field("run_as", &self.run_as)
            .field("max_line_bytes", &self.max_line_bytes)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("stop_grace", &self.stop_grace)
            .finish_non_exhaustive()
    }
}

/// Why a child could not be started. The pool answers both with JSON-RPC -32603 "backend
/// failed to start"; the details are for the log.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// The process could not be created (program not found, work dir missing, empty command).
    #[error("cannot spawn the child: {0}")]
    Spawn(#[source] io::Error),
    /// It started but did not complete the handshake (exited, timed out, answered an error).
    /// It has been stopped and reaped.
    #[error("the child failed to start: {reason}")]
    StartFailed {
        reason: String,
        /// Its last stderr lines, oldest first, usually saying why.
        stderr_tail: Vec<String>,
    },
}

/// Why a call or notification got no answer from the child.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The child exited (or closed its stdout) before answering; the pool maps this to
    /// JSON-RPC -32603 "backend exited".
    #[error("backend exited")]
    Exited,
    /// No answer within the call's timeout; the child was sent `notifications/cancelled`.
    #[error("backend did not answer in time")]
    Timeout,
    /// The child is being stopped and takes no new requests (in-flight ones may finish).
    #[error("backend is shutting down")]
    Closed,
    /// The message was not a JSON-RPC request (or notification) this module can forward; the
    /// MCP front validates first, so this is a programming error there.
    #[error("invalid message: {0}")]
    Invalid(&'static str),
}

/// How a child ended. Both `None` if the status could not be read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExitInfo {
    /// The exit status, if it exited.
    pub code: Option<i32>,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => write!(f, "exit status {code}"),
            (None, Some(signal)) => write!(f, "killed by signal {signal}"),
            (None, None) => f.write_str("unknown exit status"),
        }
    }
}

/// A running, initialized child. Cheap to clone (one `Arc`); when the last clone is dropped
/// the child is stopped (in the background) and reaped.
#[derive(Clone)]
pub struct Child {
    inner: Arc<Inner>,
}

struct Inner {
    connection: Arc<Connection>,
    process: Arc<Process>,
    /// Set once, by the handshake, before the `Child` is handed out.
    initialize_result: OnceLock<Value>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Nobody can reach the child any more: never leave it running.
        self.connection.refuse_new();
        self.process.begin_stop();
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("label", &self.inner.process.label)
            .field("pid", &self.inner.process.pid)
            .field("alive", &self.is_alive())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

/// Why the handshake failed, before the child's exit status is known.
enum HandshakeFailure {
    Call(CallError),
    ErrorResult(String),
    NoResult,
}

impl Child {
    /// Spawns the child in its own process group and performs the broker-owned handshake:
    /// `initialize` with protocol [`CHILD_PROTOCOL_VERSION`], empty capabilities and the
    /// broker's clientInfo, then `notifications/initialized`. If the child exits, times out or
    /// answers an error, it is stopped, its last stderr lines are logged, and
    /// [`ChildError::StartFailed`] is returned. Dropping the returned future mid-handshake
    /// stops the child too.
    pub async fn spawn(spec: ChildSpec) -> Result<Child, ChildError> {
        process::prepare_work_dir(&spec).map_err(ChildError::Spawn)?;
        let mut command = process::command(&spec).map_err(ChildError::Spawn)?;
        let mut os_child = command.spawn().map_err(ChildError::Spawn)?;
        let (Some(pid), Some(stdin), Some(stdout), Some(stderr)) = (
            os_child.id(),
            os_child.stdin.take(),
            os_child.stdout.take(),
            os_child.stderr.take(),
        ) else {
            // Cannot happen with piped stdio; kill_on_drop ends it, the runtime reaps it.
            return Err(ChildError::Spawn(io::Error::other(
                "the child's pipes are missing",
            )));
        };
        if !spec.limits_through_wrapper() {
            // Before the child is sent anything; on failure kill_on_drop ends it.
            spec.limits.apply_to(pid).map_err(ChildError::Spawn)?;
        }
        let label = spec.label.clone();
        let close_stdin = CancellationToken::new();
        let tasks = spec.tasks.clone();
        let (process, exit_tx) = Process::new(
            label.clone(),
            pid,
            spec.stop_grace,
            close_stdin.clone(),
            tasks.clone(),
        );
        let process = Arc::new(process);
        let (connection, queue) = Connection::new(label.clone());
        let connection = Arc::new(connection);
        let stdout_done = CancellationToken::new();

        tasks.spawn({
            let label = label.clone();
            async move { connection::write_loop(stdin, queue, close_stdin, &label).await }
        });
        tasks.spawn({
            let connection = connection.clone();
            let process = process.clone();
            let stdout_done = stdout_done.clone();
            let max_line_bytes = spec.max_line_bytes;
            async move {
                connection::read_loop(stdout, &connection, max_line_bytes).await;
                connection.end();
                stdout_done.cancel();
                // A child without stdout is useless; make sure it goes.
                process.begin_stop();
            }
        });
        tasks.spawn({
            let process = process.clone();
            async move { process::log_stderr(stderr, &process).await }
        });
        tasks.spawn({
            let connection = connection.clone();
            let process = process.clone();
            async move {
                let info = ExitInfo::from(os_child.wait().await);
                process.sweep_group();
                exit_tx.send_replace(Some(info));
                // Nothing reads the pipe any more; let the writer release it now rather than
                // when the last handle goes.
                process.release_stdin();
                tracing::info!(child = %process.label, pid = process.pid, %info, "child exited");
                // Let the reader deliver answers written just before the exit, then fail the
                // rest.
                let _ = tokio::time::timeout(DRAIN_AFTER_EXIT, stdout_done.cancelled()).await;
                connection.end();
            }
        });

        let child = Child {
            inner: Arc::new(Inner {
                connection,
                process,
                initialize_result: OnceLock::new(),
            }),
        };
        match child.handshake(spec.handshake_timeout).await {
            Ok(result) => {
                let _ = child.inner.initialize_result.set(result);
                tracing::info!(child = %label, pid, "child started");
                Ok(child)
            }
            Err(failure) => {
                child.stop().await;
                let process = &child.inner.process;
                let _ = tokio::time::timeout(STDERR_DRAIN, process.stderr_done.cancelled()).await;
                let exit = process.exit_info().unwrap_or_default();
                let reason = match failure {
                    HandshakeFailure::Call(CallError::Timeout) => format!(
                        "no answer to initialize within {:?}",
                        spec.handshake_timeout
                    ),
                    HandshakeFailure::Call(CallError::Exited) => {
                        format!("exited during the handshake ({exit})")
                    }
                    HandshakeFailure::Call(e) => format!("handshake failed: {e}"),
                    HandshakeFailure::ErrorResult(error) => {
                        format!("initialize answered an error: {error}")
                    }
                    HandshakeFailure::NoResult => "initialize answered without a result".into(),
                };
                let stderr_tail = process.stderr_tail();
                tracing::warn!(child = %label, %reason, ?stderr_tail, "child failed to start");
                Err(ChildError::StartFailed {
                    reason,
                    stderr_tail,
                })
            }
        }
    }

    async fn handshake(&self, timeout: Duration) -> Result<Value, HandshakeFailure> {
        let request = json!({
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": CHILD_PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "fjmcp-broker", "version": crate::version::VERSION},
            },
        });
        // `initialize` must not be cancelled (lifecycle rules); a timeout stops the child.
        let mut response = self
            .inner
            .connection
            .call(request, None, timeout, false)
            .await
            .map_err(HandshakeFailure::Call)?;
        if let Some(error) = response.get("error") {
            return Err(HandshakeFailure::ErrorResult(error.to_string()));
        }
        let result = match response.get_mut("result").map(Value::take) {
            Some(result @ Value::Object(_)) => result,
            _ => return Err(HandshakeFailure::NoResult),
        };
        self.inner
            .connection
            .notify(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await
            .map_err(HandshakeFailure::Call)?;
        Ok(result)
    }

    /// The child's InitializeResult as it sent it (unknown fields preserved), for answering
    /// `initialize` and `server/discover` without asking the child again.
    pub fn initialize_result(&self) -> &Value {
        static EMPTY: Value = Value::Null;
        self.inner.initialize_result.get().unwrap_or(&EMPTY)
    }

    /// Forwards one JSON-RPC request (a raw JSON object whose `id` is a number or string) and
    /// returns the child's response (result or error object) with the caller's `id` restored
    /// exactly. On the way the `id` becomes a child-unique number and
    /// `params._meta.progressToken`, if present, a child-unique token; every
    /// `notifications/progress` for that token is sent to `events` with the caller's token
    /// restored (with `try_send`: size the channel for the notifications you expect; without
    /// `events` they are dropped). If `timeout` passes, or the returned future is dropped
    /// before the answer (the caller went away), the child is sent
    /// `notifications/cancelled {requestId, reason}` and its late answer is dropped.
    pub async fn call(
        &self,
        request: Value,
        events: Option<mpsc::Sender<Value>>,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        self.inner
            .connection
            .call(request, events, timeout, true)
            .await
    }

    /// Sends a notification (a raw JSON object with a `method` and no `id`) to the child as is.
    pub async fn notify(&self, notification: Value) -> Result<(), CallError> {
        self.inner.connection.notify(notification).await
    }

    /// Notifications the child sends unprompted (list-changed, log messages, …), for the MCP
    /// front to fan out. Progress notifications are not here: they go to their caller.
    pub fn notifications(&self) -> broadcast::Receiver<Value> {
        self.inner.connection.subscribe()
    }

    /// Calls currently waiting for the child, for the per-child cap and the idle reaper.
    pub fn in_flight(&self) -> usize {
        self.inner.connection.in_flight()
    }

    /// Resolves once no call is in flight: a superseded child drains before it stops.
    pub(crate) async fn until_idle(&self) {
        self.inner.connection.until_idle().await;
    }

    /// Whether a new call would be sent: the process is running, its output has
    /// not ended and no stop has begun. A child that fails this is replaced.
    pub(crate) fn accepts_calls(&self) -> bool {
        self.is_alive() && self.inner.connection.accepts_calls()
    }

    /// Whether the process has not been reaped yet (it may already be stopping).
    pub fn is_alive(&self) -> bool {
        self.inner.process.is_alive()
    }

    /// Resolves once the process has exited and been reaped, with how it ended. Any number of
    /// waiters may wait; after the exit it resolves at once.
    pub async fn exited(&self) -> ExitInfo {
        self.inner.process.exited().await
    }

    /// Stops the child: no new calls, stdin closed, `stop_grace` to exit, SIGTERM to its
    /// process group, `stop_grace` again, SIGKILL to the group; returns once it is reaped.
    /// Idempotent and safe to call concurrently; the sequence finishes even if this future is
    /// dropped. Whatever the child left in its group is killed once it has exited.
    pub async fn stop(&self) -> ExitInfo {
        self.inner.connection.refuse_new();
        self.inner.process.begin_stop();
        self.exited().await
    }

    /// The process id while the process is unreaped (it is also its process group id).
    pub fn pid(&self) -> Option<u32> {
        self.is_alive().then_some(self.inner.process.pid)
    }
}
