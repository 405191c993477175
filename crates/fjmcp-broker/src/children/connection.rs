//! One child's JSON-RPC connection: framing, id and progress-token rewriting, routing.
//!
//! Many callers share one child, and their JSON-RPC ids and progress tokens were chosen by
//! different clients, so they collide. Every forwarded request therefore gets a fresh numeric
//! id (and, if it has one, a fresh progress token) unique on this child; the caller's own values
//! are kept beside the pending entry and put back into what is handed back. Messages are
//! `serde_json::Value`s with `preserve_order`, and only `id` and `params._meta.progressToken`
//! are touched, so fields the broker does not know survive as sent.
//!
//! Concurrency: the pending map is a plain mutex held only for map operations (never across an
//! `.await`). One writer task owns the child's stdin, one reader task its stdout; neither ever
//! waits on a caller (events and replies to the child use `try_send`), so a slow caller cannot
//! stall the others.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::CallError;
use super::lines::{Line, LineReader, Overflow};

/// Messages waiting for the writer. Bounded so a child that stops reading its stdin makes
/// callers wait (under their timeout) instead of growing the queue without limit.
const WRITE_QUEUE: usize = 256;

/// Unsolicited notifications buffered per subscriber; a subscriber that falls further behind
/// misses the oldest (list-changed notifications are idempotent hints).
const NOTIFICATION_BUFFER: usize = 64;

/// JSON-RPC "method not found", the answer to every request a child sends the broker.
const METHOD_NOT_FOUND: i64 = -32601;

/// Where a rewritten progress token's notifications go.
struct ProgressRoute {
    /// The caller's token, exactly as sent (number or string).
    original: Value,
    /// The caller's event channel; `None` drops the notifications (the caller asked for
    /// progress but is not listening).
    events: Option<mpsc::Sender<Value>>,
}

#[derive(Default)]
struct State {
    /// The child can no longer answer (stdout closed or process exited): new calls fail with
    /// `Exited`, and the pending ones have been failed.
    ended: bool,
    /// A stop began: new calls are refused with `Closed`, in-flight ones may still finish.
    refusing: bool,
    /// Waiting callers by child-side id.
    calls: HashMap<u64, oneshot::Sender<Value>>,
    /// Live progress tokens by child-side token.
    progress: HashMap<String, ProgressRoute>,
}

/// The shared half of the connection, used by callers and by the reader task.
pub(crate) struct Connection {
    /// For logs; never a secret.
    label: String,
    state: Mutex<State>,
    /// Child-side ids; 0 is never used, so a stray `"id": 0` from a child matches nothing.
    next_id: AtomicU64,
    /// Lines (each ending in `\n`) for the writer task.
    writer: mpsc::Sender<String>,
    notifications: broadcast::Sender<Value>,
    in_flight: AtomicUsize,
    /// Woken when the last in-flight call ends, for a superseded child draining
    /// before its stop.
    idle: Notify,
}

impl Connection {
    /// A connection and the receiving end of its write queue (for [`write_loop`]).
    pub(crate) fn new(label: String) -> (Self, mpsc::Receiver<String>) {
        let (writer, queue) = mpsc::channel(WRITE_QUEUE);
        let (notifications, _) = broadcast::channel(NOTIFICATION_BUFFER);
        let connection = Self {
            label,
            state: Mutex::default(),
            next_id: AtomicU64::new(1),
            writer,
            notifications,
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
        };
        (connection, queue)
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Resolves once no call is in flight (at once if none is).
    pub(crate) async fn until_idle(&self) {
        loop {
            let woken = self.idle.notified();
            if self.in_flight() == 0 {
                return;
            }
            woken.await;
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Value> {
        self.notifications.subscribe()
    }

    /// New calls and notifications are refused from now on; in-flight calls go on.
    /// False once the child's output ended or a stop began.
    pub(crate) fn accepts_calls(&self) -> bool {
        let state = self.state.lock();
        !state.ended && !state.refusing
    }

    pub(crate) fn refuse_new(&self) {
        self.state.lock().refusing = true;
    }

    /// The child can no longer answer: every pending call fails with `Exited` (their reply
    /// senders are dropped), and so does every later one. Idempotent.
    pub(crate) fn end(&self) {
        let (calls, progress) = {
            let mut state = self.state.lock();
            state.ended = true;
            (
                std::mem::take(&mut state.calls),
                std::mem::take(&mut state.progress),
            )
        };
        if !calls.is_empty() {
            tracing::info!(child = %self.label, failed = calls.len(), "child gone; failing its in-flight requests");
        }
        drop((calls, progress));
    }

    /// Why a call or notification is not accepted now, if it is not.
    fn refusal(&self) -> Option<CallError> {
        let state = self.state.lock();
        if state.ended {
            Some(CallError::Exited)
        } else if state.refusing {
            Some(CallError::Closed)
        } else {
            None
        }
    }

    /// The error for a write queue whose writer is gone: the stop closed stdin (`Closed`), or
    /// the pipe broke because the child went away (`Exited`).
    fn write_failure(&self) -> CallError {
        self.refusal().unwrap_or(CallError::Exited)
    }

    /// Forwards one request and waits for its response; see [`super::Child::call`].
    /// `cancel_on_abandon` is false only for `initialize`, which must not be cancelled.
    pub(crate) async fn call(
        &self,
        mut request: Value,
        events: Option<mpsc::Sender<Value>>,
        timeout: Duration,
        cancel_on_abandon: bool,
    ) -> Result<Value, CallError> {
        let Some(object) = request.as_object_mut() else {
            return Err(CallError::Invalid("a request must be a JSON object"));
        };
        if !object.get("method").is_some_and(Value::is_string) {
            return Err(CallError::Invalid("a request needs a string method"));
        }
        let original_id = match object.get("id") {
            Some(id @ (Value::Number(_) | Value::String(_))) => id.clone(),
            _ => return Err(CallError::Invalid("a request needs a number or string id")),
        };
        let child_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        object.insert("id".into(), Value::from(child_id));
        let progress = object
            .get_mut("params")
            .and_then(Value::as_object_mut)
            .and_then(|params| params.get_mut("_meta"))
            .and_then(Value::as_object_mut)
            .and_then(|meta| meta.get_mut("progressToken"))
            .map(|slot| {
                let token = format!("fjmcp-progress-{child_id}");
                let original = std::mem::replace(slot, Value::String(token.clone()));
                (token, ProgressRoute { original, events })
            });
        let mut line = serde_json::to_string(&request)
            .map_err(|_| CallError::Invalid("the request cannot be serialized"))?;
        line.push('\n');

        let (reply_tx, reply_rx) = oneshot::channel();
        let token = progress.as_ref().map(|(token, _)| token.clone());
        {
            let mut state = self.state.lock();
            if state.ended {
                return Err(CallError::Exited);
            }
            if state.refusing {
                return Err(CallError::Closed);
            }
            state.calls.insert(child_id, reply_tx);
            if let Some((token, route)) = progress {
                state.progress.insert(token, route);
            }
        }
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let mut guard = CallGuard {
            connection: self,
            child_id,
            token,
            reason: "the caller went away",
            cancel: cancel_on_abandon,
        };

        let exchange = async {
            self.writer
                .send(line)
                .await
                .map_err(|_| self.write_failure())?;
            // The reply sender is dropped only by `end`: the child is gone.
            reply_rx.await.map_err(|_| CallError::Exited)
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(mut response)) => {
                if let Some(object) = response.as_object_mut() {
                    object.insert("id".into(), original_id);
                }
                Ok(response)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => {
                guard.reason = "request timed out";
                Err(CallError::Timeout)
            }
        }
    }

    /// Sends a notification to the child as is.
    pub(crate) async fn notify(&self, notification: Value) -> Result<(), CallError> {
        let Some(object) = notification.as_object() else {
            return Err(CallError::Invalid("a notification must be a JSON object"));
        };
        if !object.get("method").is_some_and(Value::is_string) || object.contains_key("id") {
            return Err(CallError::Invalid(
                "a notification needs a string method and no id",
            ));
        }
        if let Some(refusal) = self.refusal() {
            return Err(refusal);
        }
        let mut line = serde_json::to_string(&notification)
            .map_err(|_| CallError::Invalid("the notification cannot be serialized"))?;
        line.push('\n');
        self.writer
            .send(line)
            .await
            .map_err(|_| self.write_failure())
    }

    /// Queues a line without waiting (for the reader task and `Drop`, which must not block).
    fn send_now(&self, message: Value, what: &'static str) {
        let mut line = message.to_string();
        line.push('\n');
        if let Err(e) = self.writer.try_send(line) {
            tracing::debug!(child = %self.label, what, error = %e, "could not queue a message for the child");
        }
    }

    /// Handles one line of the child's stdout.
    fn dispatch(&self, line: &[u8]) {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let object = match serde_json::from_slice::<Value>(line) {
            Ok(Value::Object(object)) => object,
            Ok(_) => {
                tracing::warn!(child = %self.label, len = line.len(), "dropped a line from the child's stdout that is not a JSON-RPC object");
                return;
            }
            Err(e) => {
                // The error says where, not what: the line might hold user data.
                tracing::warn!(child = %self.label, len = line.len(), error = %e, "dropped a malformed line from the child's stdout");
                return;
            }
        };
        let method = object
            .get("method")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match method {
            Some(method) if object.contains_key("id") => self.reject_request(&object, &method),
            Some(method) if method == "notifications/progress" => self.route_progress(object),
            Some(_) => {
                // No subscribers is normal (nobody listening right now).
                let _ = self.notifications.send(Value::Object(object));
            }
            None if object.contains_key("result") || object.contains_key("error") => {
                self.route_response(object);
            }
            None => {
                tracing::warn!(child = %self.label, "dropped a message from the child that is neither request, notification nor response");
            }
        }
    }

    fn route_response(&self, object: Map<String, Value>) {
        let Some(id) = object.get("id").and_then(Value::as_u64) else {
            // e.g. a parse error (`"id": null`) about something the broker sent.
            let error = object
                .get("error")
                .map(Value::to_string)
                .unwrap_or_default();
            tracing::warn!(child = %self.label, %error, "dropped a response without one of the broker's ids");
            return;
        };
        let reply = self.state.lock().calls.remove(&id);
        match reply {
            // The caller may have just gone away; then the answer is simply dropped.
            Some(reply) => drop(reply.send(Value::Object(object))),
            None => {
                tracing::debug!(child = %self.label, id, "dropped a late or unknown response");
            }
        }
    }

    fn route_progress(&self, mut object: Map<String, Value>) {
        let token = object
            .get("params")
            .and_then(|params| params.get("progressToken"))
            .and_then(Value::as_str);
        let route = token.and_then(|token| {
            self.state
                .lock()
                .progress
                .get(token)
                .map(|route| (route.original.clone(), route.events.clone()))
        });
        let Some((original, events)) = route else {
            tracing::debug!(child = %self.label, "dropped a progress notification for no live request");
            return;
        };
        if let Some(params) = object.get_mut("params").and_then(Value::as_object_mut) {
            params.insert("progressToken".into(), original);
        }
        let Some(events) = events else { return };
        match events.try_send(Value::Object(object)) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(child = %self.label, "dropped a progress notification: the caller's event channel is full");
            }
        }
    }

    fn reject_request(&self, object: &Map<String, Value>, method: &str) {
        tracing::info!(child = %self.label, method, "the child sent a request; answering -32601 (the broker accepts none)");
        let id = object.get("id").cloned().unwrap_or(Value::Null);
        self.send_now(
            json!({
                "jsonrpc": "2.0",
                "id": id,
                "error": {
                    "code": METHOD_NOT_FOUND,
                    "message": format!("Method not found: {method} (the broker does not accept requests from its backend)"),
                },
            }),
            "a -32601 answer",
        );
    }
}

/// Cleans up after one call however it ends. If it ends without the child's answer (the
/// caller's future was dropped, or it timed out), the child is told to stop working on it.
struct CallGuard<'a> {
    connection: &'a Connection,
    child_id: u64,
    token: Option<String>,
    reason: &'static str,
    cancel: bool,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        let abandoned = {
            let mut state = self.connection.state.lock();
            if let Some(token) = &self.token {
                state.progress.remove(token);
            }
            // Still pending means no answer came and the child is still there.
            state.calls.remove(&self.child_id).is_some()
        };
        if self.connection.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.connection.idle.notify_waiters();
        }
        if abandoned && self.cancel {
            self.connection.send_now(
                json!({
                    "jsonrpc": "2.0",
                    "method": "notifications/cancelled",
                    "params": {"requestId": self.child_id, "reason": self.reason},
                }),
                "notifications/cancelled",
            );
        }
    }
}

/// Writes queued lines to the child's stdin until `close` fires, the queue ends or a write
/// fails; then drops stdin, which the child sees as end of input.
pub(crate) async fn write_loop<W: AsyncWrite + Unpin>(
    mut stdin: W,
    mut queue: mpsc::Receiver<String>,
    close: CancellationToken,
    label: &str,
) {
    loop {
        let line = tokio::select! {
            biased;
            () = close.cancelled() => break,
            line = queue.recv() => match line {
                Some(line) => line,
                None => break,
            },
        };
        let write = async {
            stdin.write_all(line.as_bytes()).await?;
            stdin.flush().await
        };
        tokio::select! {
            biased;
            () = close.cancelled() => break,
            written = write => if let Err(e) = written {
                // Usually a broken pipe: the child is gone or closed its stdin.
                tracing::debug!(child = %label, error = %e, "cannot write to the child; closing its stdin");
                break;
            },
        }
    }
}

/// Reads the child's stdout until end of input, handing each line to `dispatch`. Over-long
/// and malformed lines are logged and dropped; nothing here can end the loop but EOF or a
/// read error.
pub(crate) async fn read_loop<R: AsyncRead + Unpin>(
    stdout: R,
    connection: &Connection,
    max_line_bytes: usize,
) {
    let mut lines = LineReader::new(stdout, max_line_bytes, Overflow::Drop);
    loop {
        match lines.next_line().await {
            Ok(Some(Line::Complete(line))) => connection.dispatch(&line),
            Ok(Some(Line::TooLong { len } | Line::Truncated { len, .. })) => {
                tracing::warn!(child = %connection.label, len, max = max_line_bytes, "dropped an over-long line from the child's stdout");
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(child = %connection.label, error = %e, "cannot read the child's stdout");
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(queue: &mut mpsc::Receiver<String>) -> Value {
        serde_json::from_str(queue.try_recv().expect("a queued line").trim_end()).unwrap()
    }

    #[tokio::test]
    async fn ids_and_tokens_are_rewritten_and_restored() {
        let (connection, mut queue) = Connection::new("test".into());
        let (events_tx, mut events) = mpsc::channel(8);
        let request = json!({
            "jsonrpc": "2.0", "id": "abc", "method": "tools/call",
            "params": {"name": "x", "_meta": {"progressToken": 7, "other": true}, "z": 1},
            "unknown": {"kept": [1, 2]},
        });
        let call = connection.call(request, Some(events_tx), Duration::from_secs(5), true);
        tokio::pin!(call);
        assert!(futures_poll_once(&mut call).await.is_none());
        let sent = written(&mut queue);
        assert_eq!(sent["id"], json!(1));
        assert_eq!(
            sent["params"]["_meta"]["progressToken"],
            json!("fjmcp-progress-1")
        );
        assert_eq!(sent["params"]["_meta"]["other"], json!(true));
        assert_eq!(sent["unknown"], json!({"kept": [1, 2]}));
        // Order of fields survives (preserve_order).
        let keys: Vec<_> = sent["params"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, ["name", "_meta", "z"]);

        connection.dispatch(
            br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"fjmcp-progress-1","progress":1,"extra":"x"}}"#,
        );
        connection.dispatch(
            br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"fjmcp-progress-99","progress":1}}"#,
        );
        connection.dispatch(br#"{"jsonrpc":"2.0","id":1,"result":{"b":1,"a":2},"x-extra":3}"#);
        let response = call.await.unwrap();
        assert_eq!(
            response,
            json!({"jsonrpc":"2.0","id":"abc","result":{"b":1,"a":2},"x-extra":3})
        );
        let keys: Vec<_> = response["result"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, ["b", "a"]);
        let event = events.try_recv().unwrap();
        assert_eq!(event["params"]["progressToken"], json!(7));
        assert_eq!(event["params"]["extra"], json!("x"));
        assert!(events.try_recv().is_err(), "the unknown token was dropped");
        assert_eq!(connection.in_flight(), 0);
    }

    #[tokio::test]
    async fn child_requests_get_method_not_found_and_garbage_is_dropped() {
        let (connection, mut queue) = Connection::new("test".into());
        let mut notifications = connection.subscribe();
        connection.dispatch(b"not json");
        connection.dispatch(b"[1,2]");
        connection.dispatch(b"{\"jsonrpc\":\"2.0\"}");
        connection.dispatch(br#"{"jsonrpc":"2.0","id":42,"result":{}}"#);
        connection.dispatch(br#"{"jsonrpc":"2.0","id":"s1","method":"roots/list"}"#);
        connection.dispatch(br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#);
        let answer = written(&mut queue);
        assert_eq!(answer["id"], json!("s1"));
        assert_eq!(answer["error"]["code"], json!(-32601));
        assert!(queue.try_recv().is_err());
        assert_eq!(
            notifications.try_recv().unwrap()["method"],
            json!("notifications/tools/list_changed")
        );
    }

    #[tokio::test]
    async fn invalid_requests_are_refused_and_ended_connections_fail_fast() {
        let (connection, _queue) = Connection::new("test".into());
        let t = Duration::from_secs(1);
        for bad in [
            json!([1]),
            json!({"id": 1}),
            json!({"method": "x"}),
            json!({"method": "x", "id": null}),
            json!({"method": "x", "id": [1]}),
        ] {
            assert!(matches!(
                connection.call(bad, None, t, true).await,
                Err(CallError::Invalid(_))
            ));
        }
        connection.refuse_new();
        let ok = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
        assert_eq!(
            connection.call(ok.clone(), None, t, true).await,
            Err(CallError::Closed)
        );
        connection.end();
        assert_eq!(
            connection.call(ok, None, t, true).await,
            Err(CallError::Exited)
        );
        assert_eq!(
            connection
                .notify(json!({"jsonrpc": "2.0", "method": "notifications/x"}))
                .await,
            Err(CallError::Exited)
        );
    }

    #[tokio::test]
    async fn an_abandoned_call_is_cancelled_and_its_late_answer_dropped() {
        let (connection, mut queue) = Connection::new("test".into());
        let request = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call"});
        let result = connection
            .call(request, None, Duration::from_millis(10), true)
            .await;
        assert_eq!(result, Err(CallError::Timeout));
        assert_eq!(written(&mut queue)["id"], json!(1));
        let cancel = written(&mut queue);
        assert_eq!(cancel["method"], json!("notifications/cancelled"));
        assert_eq!(cancel["params"]["requestId"], json!(1));
        assert_eq!(cancel["params"]["reason"], json!("request timed out"));
        connection.dispatch(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
        assert_eq!(connection.in_flight(), 0);
    }

    /// Polls a future once; `Some` if it finished.
    async fn futures_poll_once<F: std::future::Future + Unpin>(
        future: &mut F,
    ) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut *future).poll(cx) {
                std::task::Poll::Ready(output) => Some(output),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
