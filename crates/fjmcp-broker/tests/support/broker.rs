//! Starting the real `fjmcp-broker` binary for tests.
//!
//! The test binds the listening socket on port 0 and hands it to the broker as
//! standard input (`FJMCP_LISTEN=stdin`, as systemd socket activation does), so
//! the port is known before the broker starts and no other process can take
//! it. A restarted broker gets the same socket again.

use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The broker binary built for this test run.
pub const BINARY: &str = env!("CARGO_BIN_EXE_fjmcp-broker");

/// A listening socket on 127.0.0.1 with a port chosen by the system.
pub fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0")
}

/// A copy of the broker binary that another user can execute, in a directory
/// every user may enter, for tests that run it as that user: the checkout may
/// sit under a directory only its owner can traverse (a `mktemp -d` clone).
/// Keep the directory while the copy is used.
pub fn copy_for_another_user() -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let reachable = tempfile::tempdir().unwrap();
    std::fs::set_permissions(reachable.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = reachable.path().join("fjmcp-broker");
    std::fs::copy(BINARY, &copy).unwrap();
    (reachable, copy)
}

/// A `fjmcp-broker` command with a clean environment holding only the required
/// settings, a SQLite store inside `dir`, and JSON logs.
pub fn command(dir: &Path) -> Command {
    command_of(Path::new(BINARY), dir)
}

/// [`command`] for another copy of the broker binary.
pub fn command_of(binary: &Path, dir: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("FJMCP_PUBLIC_URL", "http://127.0.0.1:8080")
        .env("FJMCP_FORGEJO_URL", "http://127.0.0.1:9")
        .env("FJMCP_FORGEJO_CLIENT_ID", "broker-client")
        .env("FJMCP_FORGEJO_CLIENT_SECRET", "forgejo-client-secret-value")
        .env(
            "FJMCP_STORE",
            format!("sqlite:{}", dir.join("broker.db").display()),
        )
        .env("FJMCP_LISTEN", "stdin")
        .env("FJMCP_LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// A running broker process.
pub struct Broker {
    pub child: Child,
    /// `http://127.0.0.1:PORT`, where it accepts.
    pub url: String,
    /// Every line the broker wrote to stderr so far.
    pub logs: Arc<Mutex<Vec<String>>>,
    pub dir: PathBuf,
    /// The test's copy of the listening socket, for a restart.
    listener: TcpListener,
    /// The settings it was started with (besides the defaults of [`command`]).
    env: Vec<(String, String)>,
    _tempdir: Option<tempfile::TempDir>,
}

impl Broker {
    /// Starts the broker with the default test environment plus `env`, on a
    /// state directory of its own.
    pub async fn start(env: &[(&str, &str)]) -> Broker {
        let tempdir = tempfile::tempdir().unwrap();
        let mut broker = Broker::start_on(listener(), tempdir.path(), env).await;
        broker._tempdir = Some(tempdir);
        broker
    }

    /// Starts the broker on state kept in `dir` (which outlives it).
    pub async fn start_in(dir: &Path, env: &[(&str, &str)]) -> Broker {
        Broker::start_on(listener(), dir, env).await
    }

    /// Starts the broker accepting on `listener`, with state in `dir`.
    pub async fn start_on(listener: TcpListener, dir: &Path, env: &[(&str, &str)]) -> Broker {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mut command = command(dir);
        command.arg("serve");
        // The broker checks the Host of every request against its public URL:
        // by default, the address it is reached at (a test's env may override it).
        command.env("FJMCP_PUBLIC_URL", &url);
        let handed: OwnedFd = listener.try_clone().unwrap().into();
        command.stdin(Stdio::from(handed));
        for (key, value) in &env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn fjmcp-broker");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        tokio::spawn(async move {
            let mut ready_tx = Some(ready_tx);
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if is_listening(&line)
                    && let Some(tx) = ready_tx.take()
                {
                    let _ = tx.send(());
                }
                sink.lock().unwrap().push(line);
            }
        });
        if tokio::time::timeout(Duration::from_secs(30), ready_rx)
            .await
            .ok()
            .and_then(Result::ok)
            .is_none()
        {
            panic!(
                "broker did not start; logs:\n{}",
                logs.lock().unwrap().join("\n")
            );
        }
        Broker {
            child,
            url,
            logs,
            dir: dir.to_path_buf(),
            listener,
            env,
            _tempdir: None,
        }
    }

    /// Stops this broker (SIGTERM) and starts a new one on the same socket,
    /// state and settings. Returns the stopped one, which may own the state
    /// directory: keep it until the test ends.
    pub async fn restart(&mut self) -> Broker {
        self.restart_with(&[]).await
    }

    /// As [`Broker::restart`], with some settings changed (or added).
    pub async fn restart_with(&mut self, changed: &[(&str, &str)]) -> Broker {
        for (key, value) in changed {
            self.env.retain(|(k, _)| k != key);
            self.env.push((key.to_string(), value.to_string()));
        }
        self.terminate();
        self.child.wait().await.unwrap();
        self.restart_after_exit().await
    }

    /// Starts a new broker on the same socket, state and settings after this
    /// one exited (however it ended); returns the exited one.
    pub async fn restart_after_exit(&mut self) -> Broker {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let listener = self.listener.try_clone().unwrap();
        let restarted = Broker::start_on(listener, &self.dir.clone(), &env).await;
        std::mem::replace(self, restarted)
    }

    /// All stderr lines so far, joined.
    pub fn log_text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.id().expect("broker still running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

/// Whether this is the broker's `listening` log line.
fn is_listening(line: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(|m| m == "listening"))
        .unwrap_or(false)
}
