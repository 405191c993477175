//! The child process itself: building the command, signalling its process group, reaping it,
//! logging its stderr, and the stop sequence.
//!
//! The process runs in a process group of its own (its pid is the group id), so a stop reaches
//! whatever it forked too. Signals go through `rustix` (a safe `kill(2)` wrapper); the crate
//! forbids `unsafe`.

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rustix::process::{Pid, Signal, kill_process_group};
use secrecy::ExposeSecret;
use tokio::process::{ChildStderr, Command};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::lines::{Line, LineReader, Overflow};
use super::{ChildSpec, ExitInfo};

/// Longest stderr line logged; the rest of a longer line is cut (logs are for people).
const STDERR_MAX_LINE: usize = 8 * 1024;

/// stderr lines kept for the start-failure message.
const STDERR_TAIL_LINES: usize = 20;

/// Builds the command for `spec`: directly, or through the limits wrapper when a resource limit
/// is set. Never through a shell; the environment is exactly `spec.env`.
pub(crate) fn command(spec: &ChildSpec) -> io::Result<Command> {
    let Some((program, args)) = spec.program_and_args.split_first() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the child command is empty",
        ));
    };
    let mut command = if spec.limits.any() {
        let wrapper = match &spec.limits.wrapper {
            Some(wrapper) => wrapper.clone(),
            None => std::env::current_exe()?,
        };
        let mut command = Command::new(wrapper);
        command.args(spec.limits.wrapper_args(&spec.program_and_args));
        command
    } else {
        let mut command = Command::new(program);
        command.args(args);
        command
    };
    command
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        // The one place a child's secret leaves its secrecy type: into the
        // environment of the process being created.
        .envs(spec.secret_env.iter().map(|(k, v)| (k, v.expose_secret())))
        .current_dir(&spec.work_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so signals reach its descendants and a Ctrl-C at the broker's
        // terminal does not hit the children directly (the broker stops them in order).
        .process_group(0)
        // Last resort only: the reaper task owns the process and normally waits for it; this
        // fires if that task is dropped with the runtime.
        .kill_on_drop(true);
    Ok(command)
}

/// Creates `path` (and missing parents) as a directory only its owner can use (0700), for a
/// child's working directory, or tightens an existing one to 0700.
pub(crate) fn create_private_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

impl From<io::Result<ExitStatus>> for ExitInfo {
    fn from(status: io::Result<ExitStatus>) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match status {
            Ok(status) => ExitInfo {
                code: status.code(),
                signal: status.signal(),
            },
            Err(_) => ExitInfo::default(),
        }
    }
}

/// The process side of one child, shared by the handle and its tasks.
pub(crate) struct Process {
    /// For logs; never a secret.
    pub(crate) label: String,
    pub(crate) pid: u32,
    /// `Some` once the process has been reaped. The sender lives in the reaper task.
    exit: watch::Receiver<Option<ExitInfo>>,
    /// Fired to make the writer task drop the child's stdin.
    close_stdin: CancellationToken,
    /// Set by the first stop, so the sequence runs once however many ask.
    stopping: AtomicBool,
    stop_grace: Duration,
    stderr_tail: Mutex<VecDeque<String>>,
    /// Fired when stderr reached end of input (every line has been logged and kept).
    pub(crate) stderr_done: CancellationToken,
    /// Where the stop sequence runs, so shutdown waits for it.
    tasks: TaskTracker,
}

impl Process {
    pub(crate) fn new(
        label: String,
        pid: u32,
        stop_grace: Duration,
        close_stdin: CancellationToken,
        tasks: TaskTracker,
    ) -> (Self, watch::Sender<Option<ExitInfo>>) {
        let (exit_tx, exit) = watch::channel(None);
        let process = Self {
            label,
            pid,
            exit,
            close_stdin,
            stopping: AtomicBool::new(false),
            stop_grace,
            stderr_tail: Mutex::new(VecDeque::with_capacity(STDERR_TAIL_LINES)),
            stderr_done: CancellationToken::new(),
            tasks,
        };
        (process, exit_tx)
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.exit.borrow().is_none()
    }

    pub(crate) fn exit_info(&self) -> Option<ExitInfo> {
        *self.exit.borrow()
    }

    /// Waits until the process has been reaped.
    pub(crate) async fn exited(&self) -> ExitInfo {
        let mut exit = self.exit.clone();
        if let Ok(info) = exit.wait_for(Option::is_some).await {
            return (*info).unwrap_or_default();
        }
        // The reaper task is gone (runtime shutting down); kill_on_drop has the process.
        (*exit.borrow()).unwrap_or_default()
    }

    /// The last stderr lines, oldest first.
    pub(crate) fn stderr_tail(&self) -> Vec<String> {
        let tail = self.stderr_tail.lock();
        tail.iter().cloned().collect()
    }

    /// Sends `signal` to the process group, but only while the leader is unreaped: until then
    /// its pid (the group id) cannot be reused, so the signal cannot hit a stranger.
    fn signal_group(&self, signal: Signal) {
        if self.is_alive() {
            self.signal_group_unchecked(signal);
        }
    }

    fn signal_group_unchecked(&self, signal: Signal) {
        // Group 1 or 0 would mean "everything we may signal": never.
        let Some(pid) = i32::try_from(self.pid)
            .ok()
            .filter(|pid| *pid > 1)
            .and_then(Pid::from_raw)
        else {
            return;
        };
        match kill_process_group(pid, signal) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => {}
            Err(e) => {
                tracing::warn!(child = %self.label, ?signal, error = %e, "cannot signal the child's process group");
            }
        }
    }

    /// Starts the stop sequence once (later calls do nothing): close stdin, wait `stop_grace`,
    /// SIGTERM to the group, wait `stop_grace`, SIGKILL to the group. The sequence runs in a
    /// task of its own, so it completes even if whoever asked goes away.
    pub(crate) fn begin_stop(self: &std::sync::Arc<Self>) {
        if self.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        self.close_stdin.cancel();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                self.tasks.spawn_on(self.clone().stop_sequence(), &runtime);
            }
            // No runtime (dropped during shutdown): no time to be gentle.
            Err(_) => self.signal_group(Signal::KILL),
        }
    }

    async fn stop_sequence(self: std::sync::Arc<Self>) {
        if tokio::time::timeout(self.stop_grace, self.exited())
            .await
            .is_ok()
        {
            return;
        }
        tracing::info!(child = %self.label, "child still running after its stdin closed; sending SIGTERM to its process group");
        self.signal_group(Signal::TERM);
        if tokio::time::timeout(self.stop_grace, self.exited())
            .await
            .is_ok()
        {
            return;
        }
        tracing::warn!(child = %self.label, "child ignored SIGTERM; sending SIGKILL to its process group");
        self.signal_group(Signal::KILL);
    }

    /// Makes the writer task drop the child's stdin (after the exit: the pipe is useless).
    pub(crate) fn release_stdin(&self) {
        self.close_stdin.cancel();
    }

    /// After the leader was reaped: kill whatever it left behind in its group (a grandchild
    /// that kept running, perhaps holding the stdout pipe open). The group id can be reused
    /// only once the group is empty, so the race is limited to the moment between the reap
    /// and this call with an empty group.
    pub(crate) fn sweep_group(&self) {
        self.signal_group_unchecked(Signal::KILL);
    }

    fn keep_stderr_line(&self, line: String) {
        let mut tail = self.stderr_tail.lock();
        if tail.len() == STDERR_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

/// Logs each stderr line at info with the child's label (stderr is free-form logging, never an
/// error signal) and keeps the last few for start failures.
pub(crate) async fn log_stderr(stderr: ChildStderr, process: &Process) {
    let mut lines = LineReader::new(stderr, STDERR_MAX_LINE, Overflow::Truncate);
    loop {
        let text = match lines.next_line().await {
            Ok(Some(Line::Complete(line))) => String::from_utf8_lossy(&line).into_owned(),
            Ok(Some(Line::Truncated { prefix, len })) => format!(
                "{}… ({len} bytes, truncated)",
                String::from_utf8_lossy(&prefix)
            ),
            Ok(Some(Line::TooLong { len })) => format!("({len} bytes, dropped)"),
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(child = %process.label, error = %e, "cannot read the child's stderr");
                break;
            }
        };
        if text.trim().is_empty() {
            continue;
        }
        tracing::info!(child = %process.label, line = %text, "child stderr");
        process.keep_stderr_line(text);
    }
    process.stderr_done.cancel();
}
