//! The serving loop: read lines, run each request as its own task, write answers.
//!
//! Requests run concurrently (a slow `sleep` must not hold up `tools/list`), and one writer task
//! owns the output so messages never interleave. A request can be cancelled with
//! `notifications/cancelled`: its task is aborted and no response is sent. Whoever removes the
//! request's entry from the in-flight map first, the finishing task or the cancellation, decides
//! whether a response goes out, so a cancelled request is never answered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::peer::{Peer, RequestContext};
use crate::protocol::{self, Incoming, RpcError, codes};
use crate::seal::StateSealer;
use crate::{Options, completion, lifecycle, prompts, resources, tools};

/// Serves MCP over `input`/`output` until `input` ends or `output` breaks.
pub async fn serve<R, W>(input: R, output: W, options: Options) -> anyhow::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let mut writer = tokio::spawn(write_loop(output, rx));
    let dispatcher = Dispatcher {
        peer: Arc::new(Peer::new(tx, options, StateSealer::random()?)),
        in_flight: Arc::new(Mutex::new(HashMap::new())),
    };
    let outcome = tokio::select! {
        read = read_loop(input, &dispatcher) => read,
        written = &mut writer => match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(anyhow::Error::new(e).context("writing to stdout")),
            Err(e) => Err(anyhow::Error::new(e).context("writer task")),
        },
    };
    // Input is over (or output is gone): nobody will read answers to the remaining requests.
    dispatcher.abort_all();
    outcome
}

/// Reads lines until end of input, handing each to the dispatcher.
async fn read_loop<R: AsyncRead + Unpin>(input: R, dispatcher: &Dispatcher) -> anyhow::Result<()> {
    let mut reader = BufReader::new(input);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            tracing::info!("stdin closed; exiting");
            return Ok(());
        }
        match std::str::from_utf8(&line) {
            Ok(text) if text.trim().is_empty() => {}
            Ok(text) => dispatcher.handle_line(text.trim()),
            Err(_) => dispatcher.peer.send(protocol::error_response(
                &Value::Null,
                &RpcError::new(codes::PARSE_ERROR, "Parse error: input is not UTF-8"),
            )),
        }
    }
}

/// Writes each queued message as one line, flushing so the client sees it at once.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut output: W,
    mut rx: mpsc::UnboundedReceiver<Value>,
) -> std::io::Result<()> {
    while let Some(message) = rx.recv().await {
        let mut line = serde_json::to_vec(&message)?;
        line.push(b'\n');
        output.write_all(&line).await?;
        output.flush().await?;
    }
    Ok(())
}

/// Routes incoming messages and tracks requests in progress.
struct Dispatcher {
    /// The client.
    peer: Arc<Peer>,
    /// Requests being worked on, by id key, so they can be cancelled.
    in_flight: Arc<Mutex<HashMap<String, AbortHandle>>>,
}

impl Dispatcher {
    /// Handles one line of input.
    fn handle_line(&self, line: &str) {
        match protocol::parse_line(line) {
            Err(rejected) => {
                tracing::warn!(
                    code = rejected.error.code,
                    "rejected input: {}",
                    rejected.error.message
                );
                self.peer
                    .send(protocol::error_response(&rejected.id, &rejected.error));
            }
            Ok(Incoming::Response { id, outcome }) => {
                self.peer.complete_client_request(&id, outcome);
            }
            Ok(Incoming::Notification { method, params }) => self.on_notification(&method, params),
            Ok(Incoming::Request { id, method, params }) => self.on_request(id, method, params),
        }
    }

    /// Handles a notification; unknown ones are ignored, as JSON-RPC requires.
    fn on_notification(&self, method: &str, params: Option<Value>) {
        match method {
            "notifications/initialized" => tracing::debug!("client initialized"),
            "notifications/cancelled" => {
                let Some(id) = params.as_ref().and_then(|p| p.get("requestId")) else {
                    tracing::warn!("notifications/cancelled without requestId ignored");
                    return;
                };
                let handle = self
                    .in_flight
                    .lock()
                    .expect("in-flight lock")
                    .remove(&protocol::id_key(id));
                match handle {
                    Some(handle) => {
                        tracing::info!(%id, "request cancelled by the client");
                        handle.abort();
                    }
                    None => tracing::debug!(%id, "cancellation for a request not in progress"),
                }
            }
            other => tracing::debug!(method = other, "notification ignored"),
        }
    }

    /// Starts a task for a request.
    fn on_request(&self, id: Value, method: String, params: Option<Value>) {
        if method == "initialize" && self.peer.options().ignore_initialize {
            tracing::warn!("--ignore-initialize: leaving initialize unanswered");
            return;
        }
        let key = protocol::id_key(&id);
        // Held while spawning, so the task cannot finish (and look itself up) before it is
        // registered.
        let mut in_flight = self.in_flight.lock().expect("in-flight lock");
        if in_flight.contains_key(&key) {
            drop(in_flight);
            self.peer.send(protocol::error_response(
                &id,
                &RpcError::new(codes::INVALID_REQUEST, "Request id is already in use"),
            ));
            return;
        }
        let peer = self.peer.clone();
        let registry = self.in_flight.clone();
        let task_key = key.clone();
        let task = tokio::spawn(async move {
            let params = params.unwrap_or_else(|| json!({}));
            let ctx = RequestContext::new(peer.clone(), &params);
            let outcome = dispatch(&method, &params, &ctx).await;
            let still_wanted = registry
                .lock()
                .expect("in-flight lock")
                .remove(&task_key)
                .is_some();
            if still_wanted {
                peer.send(match outcome {
                    Ok(result) => protocol::response(&id, result),
                    Err(error) => protocol::error_response(&id, &error),
                });
            }
        });
        in_flight.insert(key, task.abort_handle());
    }

    /// Aborts every request in progress.
    fn abort_all(&self) {
        for (_, handle) in self.in_flight.lock().expect("in-flight lock").drain() {
            handle.abort();
        }
    }
}

/// Runs one request. Requests before `initialize` are answered too: the fixture is lenient, so
/// a broker that probes first (e.g. with `ping`) is not punished.
async fn dispatch(method: &str, params: &Value, ctx: &RequestContext) -> Result<Value, RpcError> {
    match method {
        "initialize" => Ok(lifecycle::initialize(params, ctx.peer())),
        "ping" => Ok(json!({})),
        "logging/setLevel" => lifecycle::set_level(params, ctx.peer()),
        "tools/list" => Ok(tools::list()),
        "tools/call" => tools::call(params, ctx).await,
        "resources/list" => Ok(resources::list()),
        "resources/templates/list" => Ok(resources::list_templates()),
        "resources/read" => resources::read(params),
        "resources/subscribe" | "resources/unsubscribe" => resources::subscription(params, method),
        "prompts/list" => Ok(prompts::list()),
        "prompts/get" => prompts::get(params),
        "completion/complete" => completion::complete(params),
        other => Err(RpcError::method_not_found(other)),
    }
}
