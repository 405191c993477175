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

/// The child's `HOME`, inside its private directory.
const HOME_DIR: &str = "home";
/// The child's `TMPDIR`, inside its private directory.
const TMP_DIR: &str = "tmp";

/// Builds the command for `spec`: directly, or through the limits wrapper when a resource limit
/// is set and the child runs as another user (see `limits.rs`). Never through a shell; the environment is `spec.env` plus `HOME` and `TMPDIR`, which
/// are always the child's own directories ([`prepare_work_dir`]), never the broker's: children
/// must not share a place to leave files for each other or read the broker's.
pub(crate) fn command(spec: &ChildSpec) -> io::Result<Command> {
    let Some((program, args)) = spec.program_and_args.split_first() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the child command is empty",
        ));
    };
    let mut command = if spec.limits_through_wrapper() {
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
        .env("HOME", spec.work_dir.join(HOME_DIR))
        .env("TMPDIR", spec.work_dir.join(TMP_DIR))
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
    if let Some(user) = spec.run_as {
        // std drops the supplementary groups too when the broker is root.
        command.uid(user.uid).gid(user.gid);
    }
    Ok(command)
}

/// Makes the child's `HOME` and `TMPDIR` inside its working directory (private, 0700) and, when
/// the child runs as another user, hands the working directory and both to that user.
pub(crate) fn prepare_work_dir(spec: &ChildSpec) -> io::Result<()> {
    let dirs = [
        spec.work_dir.clone(),
        spec.work_dir.join(HOME_DIR),
        spec.work_dir.join(TMP_DIR),
    ];
    for dir in &dirs[1..] {
        match mkdir_private(dir) {
            Ok(()) => {}
            // A directory reused for another start (tests do): fine if it is a real directory,
            // never a symlink planted in its place.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let meta = std::fs::symlink_metadata(dir)?;
                if !meta.file_type().is_dir() {
                    return Err(io::Error::other(format!(
                        "{} exists and is not a directory",
                        dir.display()
                    )));
                }
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(user) = spec.run_as {
        for dir in &dirs {
            // lchown: never through a symlink.
            std::os::unix::fs::lchown(dir, Some(user.uid), Some(user.gid))?;
        }
    }
    Ok(())
}

/// `mkdir` with mode 0700: fails if anything (a directory, a file, a symlink) is already there.
fn mkdir_private(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(path)
}

/// Checks, without following symlinks, that `path` is a directory owned by the broker's user
/// that nobody else may use.
fn check_private_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path)?;
    let why = if !meta.file_type().is_dir() {
        Some("is not a directory (or is a symlink)".to_string())
    } else if meta.uid() != rustix::process::geteuid().as_raw() {
        Some(format!("belongs to uid {}, not the broker's", meta.uid()))
    } else if meta.mode() & 0o077 != 0 {
        Some(format!(
            "is open to group or others (mode {:o})",
            meta.mode() & 0o7777
        ))
    } else {
        None
    };
    match why {
        Some(why) => Err(io::Error::other(format!("{} {why}", path.display()))),
        None => Ok(()),
    }
}

/// Creates a child's working directory `path`, private (0700) and new: an existing directory
/// or a symlink at `path` is refused, never reused. Its parent is made too if missing (one
/// level) and must pass the same checks, so nobody else can rename or replace it.
pub(crate) fn create_private_dir(path: &Path) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        match mkdir_private(parent) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        check_private_dir(parent)?;
    }
    mkdir_private(path)?;
    check_private_dir(path)
}

/// Creates the broker's directory for its children's working directories at start, with
/// `mkdtemp` semantics: the name (random, from configuration) must not exist yet, the
/// directory is made exclusively with mode 0700 and checked without following symlinks. Its
/// parent must exist and, if others may write to it, be sticky (like `/tmp`), so nobody else
/// can move the directory away and put their own in its place.
pub fn create_work_root(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let parent = path
        .parent()
        .ok_or_else(|| io::Error::other(format!("{} has no parent", path.display())))?;
    let meta = std::fs::metadata(parent)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", parent.display())))?;
    if !meta.is_dir() {
        return Err(io::Error::other(format!(
            "{} is not a directory",
            parent.display()
        )));
    }
    if meta.mode() & 0o002 != 0 && meta.mode() & 0o1000 == 0 {
        return Err(io::Error::other(format!(
            "{} is writable by everyone but not sticky",
            parent.display()
        )));
    }
    mkdir_private(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    check_private_dir(path)
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    #[test]
    fn a_child_directory_is_new_private_and_never_a_symlink() {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("root");
        let child = root.join("user-1-0");
        create_private_dir(&child).unwrap();
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&child), 0o700);

        // What exists already is refused, not tightened and reused.
        let existing = root.join("user-1-1");
        std::fs::create_dir(&existing).unwrap();
        std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(create_private_dir(&existing).is_err());
        assert_eq!(mode(&existing), 0o755, "nothing was changed through it");

        // A symlink to somebody else's directory is neither followed nor chmod-ed.
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::set_permissions(elsewhere.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let planted = root.join("user-1-2");
        symlink(elsewhere.path(), &planted).unwrap();
        assert!(create_private_dir(&planted).is_err());
        assert_eq!(mode(elsewhere.path()), 0o755);

        // A parent others may use is refused.
        let open = base.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(create_private_dir(&open.join("user-1-0")).is_err());
    }

    #[test]
    fn the_work_root_is_made_exclusively_in_a_safe_parent() {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("fjmcp-broker-abc");
        create_work_root(&root).unwrap();
        assert_eq!(mode(&root), 0o700);
        assert!(
            create_work_root(&root).is_err(),
            "an existing one is not reused"
        );

        let target = tempfile::tempdir().unwrap();
        let link = base.path().join("fjmcp-broker-link");
        symlink(target.path(), &link).unwrap();
        assert!(
            create_work_root(&link).is_err(),
            "a symlink is not followed"
        );

        // A world-writable parent without the sticky bit lets others swap the directory.
        let open = base.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(create_work_root(&open.join("fjmcp-broker-x")).is_err());
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        create_work_root(&open.join("fjmcp-broker-x")).unwrap();
        assert!(create_work_root(&base.path().join("missing/fjmcp-broker-y")).is_err());
    }
}
