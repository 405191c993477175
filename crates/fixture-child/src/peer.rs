//! The client on the other end of stdio, as the handlers see it.
//!
//! Handlers never touch stdout: they send notifications and server→client requests through a
//! [`Peer`], which queues messages for the single writer task (so lines never interleave) and
//! matches the client's answers to the requests it sent. A [`RequestContext`] adds what belongs
//! to one incoming request: its `_meta` (progress token, per-request capabilities, log level).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::Options;
use crate::protocol::{self, RpcError};
use crate::seal::StateSealer;

/// `_meta` key under which 2026-07-28 clients declare their capabilities per request. Read so
/// that a broker which forwards it lets per-request capabilities win over the handshake's.
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key under which 2026-07-28 clients ask for log notifications on one request.
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
/// The `logger` name on every log notification this server sends.
pub const LOGGER_NAME: &str = "fjmcp-fixture-child";

/// Syslog-style levels of `logging/setLevel` and `notifications/message`, least severe first so
/// that the derived order is the filter order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
    Alert,
    Emergency,
}

impl LogLevel {
    /// Every level, least severe first.
    pub const ALL: [LogLevel; 8] = [
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Notice,
        LogLevel::Warning,
        LogLevel::Error,
        LogLevel::Critical,
        LogLevel::Alert,
        LogLevel::Emergency,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Notice => "notice",
            LogLevel::Warning => "warning",
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
            LogLevel::Alert => "alert",
            LogLevel::Emergency => "emergency",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|level| level.as_str() == name)
    }
}

/// What the handshake told us about the client.
#[derive(Debug)]
struct Session {
    /// Capabilities from `initialize` (an object; empty until then).
    client_capabilities: Value,
    /// The least severe level the client wants to see (`logging/setLevel`); everything by
    /// default, since the spec leaves the initial level to the server.
    log_level: LogLevel,
}

/// Why a request this server sent to the client produced no result.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientRequestError {
    /// The client answered with a JSON-RPC error.
    Rejected(RpcError),
    /// No answer within the timeout.
    TimedOut(Duration),
    /// The connection is shutting down.
    Closed,
}

impl std::fmt::Display for ClientRequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientRequestError::Rejected(e) => {
                write!(f, "client returned error {}: {}", e.code, e.message)
            }
            ClientRequestError::TimedOut(d) => {
                write!(f, "client did not answer within {} ms", d.as_millis())
            }
            ClientRequestError::Closed => write!(f, "connection closed"),
        }
    }
}

/// The client, shared by every request task.
#[derive(Debug)]
pub struct Peer {
    /// Queue to the writer task that owns stdout.
    out: mpsc::UnboundedSender<Value>,
    /// Handshake results.
    session: Mutex<Session>,
    /// Requests sent to the client and not yet answered, by id key.
    pending: Mutex<HashMap<String, oneshot::Sender<Result<Value, RpcError>>>>,
    /// Source of ids for server→client requests.
    next_request_id: AtomicU64,
    /// Process-wide settings.
    options: Options,
    /// Signs MRTR `requestState` so a tampered state is detected.
    sealer: StateSealer,
}

impl Peer {
    /// A peer writing to `out`.
    pub fn new(out: mpsc::UnboundedSender<Value>, options: Options, sealer: StateSealer) -> Self {
        Self {
            out,
            session: Mutex::new(Session {
                client_capabilities: json!({}),
                log_level: LogLevel::Debug,
            }),
            pending: Mutex::new(HashMap::new()),
            next_request_id: AtomicU64::new(1),
            options,
            sealer,
        }
    }

    /// Process-wide settings.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The MRTR state sealer.
    pub fn sealer(&self) -> &StateSealer {
        &self.sealer
    }

    /// Queues a message for stdout. A closed queue means we are shutting down, so the message
    /// is dropped on purpose.
    pub fn send(&self, message: Value) {
        let _ = self.out.send(message);
    }

    /// Sends a notification.
    pub fn notify(&self, method: &str, params: Value) {
        self.send(protocol::notification(method, params));
    }

    /// Records the capabilities the client declared in `initialize`.
    pub fn set_client_capabilities(&self, capabilities: Value) {
        let capabilities = if capabilities.is_object() {
            capabilities
        } else {
            json!({})
        };
        self.session
            .lock()
            .expect("session lock")
            .client_capabilities = capabilities;
    }

    /// The capabilities the client declared in `initialize`.
    pub fn handshake_capabilities(&self) -> Value {
        self.session
            .lock()
            .expect("session lock")
            .client_capabilities
            .clone()
    }

    /// Sets the log filter (`logging/setLevel`).
    pub fn set_log_level(&self, level: LogLevel) {
        self.session.lock().expect("session lock").log_level = level;
    }

    /// Sends `notifications/message` if `level` passes the client's filter.
    pub fn log(&self, level: LogLevel, data: Value) {
        let threshold = self.session.lock().expect("session lock").log_level;
        if level >= threshold {
            self.notify(
                "notifications/message",
                json!({ "level": level.as_str(), "logger": LOGGER_NAME, "data": data }),
            );
        }
    }

    /// Hands the client's answer to whoever sent the request; answers to unknown ids (late,
    /// after a timeout or cancellation) are dropped.
    pub fn complete_client_request(&self, id: &Value, outcome: Result<Value, RpcError>) {
        let waiter = self
            .pending
            .lock()
            .expect("pending lock")
            .remove(&protocol::id_key(id));
        match waiter {
            Some(tx) => {
                let _ = tx.send(outcome);
            }
            None => tracing::warn!(%id, "response to an unknown request id ignored"),
        }
    }

    /// Sends a request to the client and waits for its answer. If the caller is dropped first
    /// (the tool call was cancelled), the request is withdrawn with `notifications/cancelled`.
    pub async fn request_client(
        &self,
        method: &str,
        params: Value,
    ) -> Result<Value, ClientRequestError> {
        let id = Value::from(self.next_request_id.fetch_add(1, Ordering::Relaxed));
        let key = protocol::id_key(&id);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .expect("pending lock")
            .insert(key.clone(), tx);
        let mut guard = PendingGuard {
            peer: self,
            id: id.clone(),
            key,
            armed: true,
        };
        self.send(protocol::request(&id, method, params));
        let timeout = self.options.client_request_timeout;
        let outcome = tokio::time::timeout(timeout, rx).await;
        match outcome {
            Ok(Ok(answer)) => {
                guard.armed = false;
                answer.map_err(ClientRequestError::Rejected)
            }
            Ok(Err(_)) => Err(ClientRequestError::Closed),
            Err(_) => Err(ClientRequestError::TimedOut(timeout)),
        }
    }
}

/// Withdraws a server→client request that will never be awaited: removes the waiter and tells
/// the client it may stop working on it.
struct PendingGuard<'a> {
    peer: &'a Peer,
    id: Value,
    key: String,
    armed: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let was_pending = self
            .peer
            .pending
            .lock()
            .map(|mut pending| pending.remove(&self.key).is_some())
            .unwrap_or(false);
        if was_pending {
            self.peer.notify(
                "notifications/cancelled",
                json!({ "requestId": self.id, "reason": "the request that needed it ended" }),
            );
        }
    }
}

/// One incoming request as its handler sees it.
#[derive(Debug)]
pub struct RequestContext {
    /// The client.
    peer: std::sync::Arc<Peer>,
    /// `params._meta` of the request, if any.
    meta: Option<Map<String, Value>>,
}

impl RequestContext {
    /// The context of a request with `params`.
    pub fn new(peer: std::sync::Arc<Peer>, params: &Value) -> Self {
        let meta = params.get("_meta").and_then(Value::as_object).cloned();
        Self { peer, meta }
    }

    /// The client.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// `_meta.progressToken` (a string or a number), if the caller asked for progress.
    pub fn progress_token(&self) -> Option<&Value> {
        self.meta
            .as_ref()?
            .get("progressToken")
            .filter(|t| t.is_string() || t.is_number())
    }

    /// A `_meta` entry of the request.
    pub fn meta(&self, key: &str) -> Option<&Value> {
        self.meta.as_ref()?.get(key)
    }

    /// The capabilities that apply to this request: those in the request's own `_meta` if it
    /// carries them (a 2026-07-28 style request is authoritative about itself), else every
    /// capability if the operator said to assume them (a broker that initializes us with empty
    /// capabilities but relays server→client requests), else the handshake's.
    pub fn client_capabilities(&self) -> Value {
        if let Some(caps) = self
            .meta(META_CLIENT_CAPABILITIES)
            .filter(|c| c.is_object())
        {
            return caps.clone();
        }
        if self.peer.options().assume_client_capabilities {
            return json!({ "sampling": {}, "elicitation": {}, "roots": { "listChanged": true } });
        }
        self.peer.handshake_capabilities()
    }

    /// Whether the client declared `capability` (e.g. `"sampling"`) for this request.
    pub fn client_declares(&self, capability: &str) -> bool {
        self.client_capabilities()
            .get(capability)
            .is_some_and(|c| !c.is_null())
    }

    /// Sends `notifications/progress` for this request, if it has a progress token.
    pub fn progress(&self, progress: u64, total: u64, message: &str) {
        if let Some(token) = self.progress_token() {
            self.peer.notify(
                "notifications/progress",
                json!({
                    "progressToken": token,
                    "progress": progress,
                    "total": total,
                    "message": message,
                }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(assume: bool) -> (std::sync::Arc<Peer>, mpsc::UnboundedReceiver<Value>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let options = Options {
            assume_client_capabilities: assume,
            ..Options::default()
        };
        (
            std::sync::Arc::new(Peer::new(tx, options, StateSealer::from_key([7; 32]))),
            rx,
        )
    }

    #[test]
    fn log_levels_order_and_parse() {
        assert!(LogLevel::Emergency > LogLevel::Debug);
        for level in LogLevel::ALL {
            assert_eq!(LogLevel::parse(level.as_str()), Some(level));
        }
        assert_eq!(LogLevel::parse("verbose"), None);
    }

    #[test]
    fn log_filter_drops_less_severe_messages() {
        let (peer, mut rx) = peer(false);
        peer.set_log_level(LogLevel::Warning);
        peer.log(LogLevel::Info, json!("quiet"));
        peer.log(LogLevel::Error, json!("loud"));
        let sent = rx.try_recv().unwrap();
        assert_eq!(sent["params"]["data"], "loud");
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn per_request_capabilities_win_over_handshake_and_assumption() {
        let (peer, _rx) = peer(true);
        peer.set_client_capabilities(json!({ "elicitation": {} }));
        let plain = RequestContext::new(peer.clone(), &json!({}));
        assert!(plain.client_declares("sampling"), "assumed");
        let explicit =
            RequestContext::new(peer, &json!({ "_meta": { META_CLIENT_CAPABILITIES: {} } }));
        assert!(!explicit.client_declares("sampling"));

        let (strict, _rx) = self::peer(false);
        strict.set_client_capabilities(json!({ "elicitation": {} }));
        let ctx = RequestContext::new(strict, &json!({}));
        assert!(ctx.client_declares("elicitation"));
        assert!(!ctx.client_declares("sampling"));
    }

    #[tokio::test]
    async fn dropped_client_request_is_withdrawn() {
        let (peer, mut rx) = peer(false);
        let call = peer.request_client("sampling/createMessage", json!({}));
        // Poll once so the request goes out, then drop it as a cancelled tool call would.
        let _ = tokio::time::timeout(Duration::from_millis(10), call).await;
        let request = rx.recv().await.unwrap();
        assert_eq!(request["method"], "sampling/createMessage");
        let cancel = rx.recv().await.unwrap();
        assert_eq!(cancel["method"], "notifications/cancelled");
        assert_eq!(cancel["params"]["requestId"], request["id"]);
    }

    #[tokio::test]
    async fn client_answers_are_routed_by_id() {
        let (peer, mut rx) = peer(false);
        let waiter = {
            let peer = peer.clone();
            tokio::spawn(async move { peer.request_client("elicitation/create", json!({})).await })
        };
        let request = rx.recv().await.unwrap();
        peer.complete_client_request(&request["id"], Ok(json!({ "action": "decline" })));
        assert_eq!(waiter.await.unwrap(), Ok(json!({ "action": "decline" })));
    }
}
