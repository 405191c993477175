//! Starting the real `fjmcp-broker` binary for tests.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The broker binary built for this test run.
pub const BINARY: &str = env!("CARGO_BIN_EXE_fjmcp-broker");

/// A `fjmcp-broker` command with a clean environment holding only the required
/// settings, a SQLite store inside `dir`, and text logs.
pub fn command(dir: &Path) -> Command {
    let mut command = Command::new(BINARY);
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
        .env("FJMCP_LISTEN", "127.0.0.1:0")
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
    /// `http://127.0.0.1:PORT`, as it actually listens.
    pub url: String,
    /// Every line the broker wrote to stderr so far.
    pub logs: Arc<Mutex<Vec<String>>>,
    pub dir: PathBuf,
    _tempdir: Option<tempfile::TempDir>,
}

impl Broker {
    /// Starts the broker with the default test environment plus `env`.
    pub async fn start(env: &[(&str, &str)]) -> Broker {
        let tempdir = tempfile::tempdir().unwrap();
        let dir = tempdir.path().to_path_buf();
        let mut broker = Broker::start_in(&dir, env).await;
        broker._tempdir = Some(tempdir);
        broker
    }

    /// Starts the broker on state kept in `dir` (which outlives it).
    pub async fn start_in(dir: &Path, env: &[(&str, &str)]) -> Broker {
        let mut command = command(dir);
        command.arg("serve");
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn fjmcp-broker");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        tokio::spawn(async move {
            let mut addr_tx = Some(addr_tx);
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = listening_address(&line)
                    && let Some(tx) = addr_tx.take()
                {
                    let _ = tx.send(addr);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = tokio::time::timeout(Duration::from_secs(30), addr_rx)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_else(|| {
                panic!(
                    "broker did not start; logs:\n{}",
                    logs.lock().unwrap().join("\n")
                )
            });
        Broker {
            child,
            url: format!("http://{addr}"),
            logs,
            dir: dir.to_path_buf(),
            _tempdir: None,
        }
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

/// The address from the broker's `listening` log line, if this is it.
fn listening_address(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    if value.get("message")?.as_str()? != "listening" {
        return None;
    }
    value.get("addr")?.as_str().map(str::to_string)
}
