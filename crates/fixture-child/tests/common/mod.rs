//! Test harness: the real `fixture-child` binary over pipes, and a tiny fake Forgejo.
//!
//! The child is always started with a cleared environment plus exactly the variables a test
//! names, so tests see what a broker with an allow-list would give it.

// Shared by several test binaries, each using a part: `pub` marks what they
// may use, not what leaves the crate.
#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, Command};
use tokio::sync::mpsc;

/// How long any single expected message may take.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A running fixture child.
pub struct Child {
    process: tokio::process::Child,
    stdin: Option<ChildStdin>,
    /// Raw stdout lines, in order.
    stdout: mpsc::UnboundedReceiver<String>,
    /// Messages read from stdout but not yet consumed by a test.
    backlog: VecDeque<Value>,
    /// Everything written to stderr so far.
    stderr: Arc<Mutex<String>>,
    next_id: i64,
}

impl Child {
    /// A child with an empty environment and no flags.
    pub fn spawn() -> Child {
        Child::spawn_with(&[], &[])
    }

    /// A child with exactly `env` as its environment and `args` as its flags.
    pub fn spawn_with(env: &[(&str, &str)], args: &[&str]) -> Child {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fixture-child"));
        command
            .args(args)
            .env_clear()
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut process = command.spawn().expect("spawn fixture-child");
        let stdin = process.stdin.take();
        let (tx, stdout) = mpsc::unbounded_channel();
        let mut out = BufReader::new(process.stdout.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let mut err = process.stderr.take().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Child {
            process,
            stdin,
            stdout,
            backlog: VecDeque::new(),
            stderr,
            next_id: 1,
        }
    }

    /// Writes one raw line.
    pub async fn send_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line.as_bytes()).await.unwrap();
        stdin.write_all(b"\n").await.unwrap();
        stdin.flush().await.unwrap();
    }

    /// Writes one message.
    pub async fn send(&mut self, message: Value) {
        self.send_raw(&message.to_string()).await;
    }

    /// Sends a request with the next numeric id and returns that id.
    pub async fn send_request(&mut self, method: &str, params: Value) -> Value {
        let id = json!(self.next_id);
        self.next_id += 1;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }))
            .await;
        id
    }

    /// Sends a notification.
    pub async fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({ "jsonrpc": "2.0", "method": method, "params": params }))
            .await;
    }

    /// Sends a request and returns its whole response message; anything that arrives first
    /// stays in the backlog.
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params).await;
        self.response_to(&id).await
    }

    /// Sends a request and returns its `result`, failing the test on an error response.
    pub async fn result(&mut self, method: &str, params: Value) -> Value {
        let response = self.request(method, params).await;
        assert!(
            response.get("error").is_none(),
            "{method} failed: {response}"
        );
        response["result"].clone()
    }

    /// Sends a request and returns its `error` object, failing the test on success.
    pub async fn error(&mut self, method: &str, params: Value) -> Value {
        let response = self.request(method, params).await;
        assert!(
            response.get("result").is_none(),
            "{method} succeeded: {response}"
        );
        response["error"].clone()
    }

    /// `tools/call` and its result.
    pub async fn call_tool(&mut self, name: &str, arguments: Value) -> Value {
        self.result(
            "tools/call",
            json!({ "name": name, "arguments": arguments }),
        )
        .await
    }

    /// The initialize handshake with `capabilities`; returns the InitializeResult.
    pub async fn initialize(&mut self, capabilities: Value) -> Value {
        let result = self
            .result(
                "initialize",
                json!({
                    "protocolVersion": "2025-11-25",
                    "capabilities": capabilities,
                    "clientInfo": { "name": "fixture-child-tests", "version": "0" }
                }),
            )
            .await;
        self.notify("notifications/initialized", json!({})).await;
        result
    }

    /// The response with `id`, waiting for it.
    pub async fn response_to(&mut self, id: &Value) -> Value {
        let id = id.clone();
        self.wait_for(move |m| m.get("method").is_none() && m["id"] == id)
            .await
    }

    /// The first message (already received or still to come) matching `wanted`.
    pub async fn wait_for(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        if let Some(pos) = self.backlog.iter().position(&wanted) {
            return self.backlog.remove(pos).unwrap();
        }
        loop {
            let message = self.read_message(PATIENCE).await.unwrap_or_else(|| {
                panic!(
                    "no matching message within {PATIENCE:?}; backlog: {:?}; stderr: {}",
                    self.backlog,
                    self.stderr()
                )
            });
            if wanted(&message) {
                return message;
            }
            self.backlog.push_back(message);
        }
    }

    /// Reads messages for `window` and returns everything received (backlog included).
    pub async fn collect_for(&mut self, window: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + window;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            match self.read_message(left).await {
                Some(message) => self.backlog.push_back(message),
                None => break,
            }
        }
        self.backlog.drain(..).collect()
    }

    /// Removes and returns the backlog's notifications with `method`.
    pub fn take_notifications(&mut self, method: &str) -> Vec<Value> {
        let (taken, kept) = self
            .backlog
            .drain(..)
            .partition(|m| m["method"] == method && m.get("id").is_none());
        self.backlog = kept;
        taken.into_iter().collect()
    }

    /// The next raw stdout line.
    pub async fn raw_line(&mut self) -> String {
        tokio::time::timeout(PATIENCE, self.stdout.recv())
            .await
            .expect("a stdout line in time")
            .expect("stdout open")
    }

    /// One parsed message, or `None` after `patience` or at end of output.
    async fn read_message(&mut self, patience: Duration) -> Option<Value> {
        let line = tokio::time::timeout(patience, self.stdout.recv())
            .await
            .ok()??;
        Some(
            serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("child wrote a non-JSON line to stdout ({e}): {line}")),
        )
    }

    /// Closes stdin (end of input for the child).
    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.process.id().expect("child still running")
    }

    /// Waits for the child to exit.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        tokio::time::timeout(PATIENCE, self.process.wait())
            .await
            .expect("child exits in time")
            .expect("wait for child")
    }

    /// Everything the child wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr has been fully read (after exit) and returns it.
    pub async fn final_stderr(&self) -> String {
        // The reader task finishes shortly after the process exits.
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.stderr()
    }
}

/// The text of the first content block of a tool result.
pub fn first_text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_else(|| {
        panic!("no text content in {result}");
    })
}

/// A fake Forgejo that knows one token.
pub struct FakeForgejo {
    /// Base URL, e.g. `http://127.0.0.1:12345`.
    pub url: String,
}

/// The token [`FakeForgejo`] accepts.
pub const GOOD_TOKEN: &str = "good-token-for-alice";
/// The login of [`GOOD_TOKEN`]'s user.
pub const LOGIN: &str = "alice";

impl FakeForgejo {
    /// Starts the fake on a free loopback port.
    pub async fn start() -> FakeForgejo {
        use axum::http::{HeaderMap, StatusCode};
        use axum::routing::get;

        async fn user(headers: HeaderMap) -> (StatusCode, axum::Json<Value>) {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if auth == format!("token {GOOD_TOKEN}") {
                (
                    StatusCode::OK,
                    axum::Json(json!({ "id": 1, "login": LOGIN })),
                )
            } else {
                (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(json!({ "message": "user does not exist" })),
                )
            }
        }

        let app = axum::Router::new().route("/api/v1/user", get(user));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeForgejo { url }
    }
}
