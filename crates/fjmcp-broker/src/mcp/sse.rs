//! Server-sent event responses: the stream of one request (progress, then the
//! response), a `subscriptions/listen` stream, or a 2025-era standalone stream.
//! No event ids are sent: the broker offers no resumability.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use http::{HeaderValue, header};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

/// How often an idle stream gets a comment, so proxies keep it open.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One SSE event carrying a JSON-RPC message.
pub(crate) fn event(message: &Value) -> Bytes {
    Bytes::from(format!("event: message\ndata: {message}\n\n"))
}

/// An SSE comment, ignored by clients.
pub(crate) fn comment() -> Bytes {
    Bytes::from_static(b": keep-alive\n\n")
}

/// The body of an SSE response: events sent by `producer` into the channel.
/// Dropping the body (the client went away) aborts the producer, which is
/// how closing the stream cancels the work behind it.
struct EventStream {
    events: mpsc::Receiver<Bytes>,
    producer: JoinHandle<()>,
}

impl futures::Stream for EventStream {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.poll_recv(cx).map(|item| item.map(Ok))
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.producer.abort();
    }
}

/// Starts `produce` (owned by `tasks`, so shutdown waits for it) and answers
/// with the events it sends.
pub(crate) fn respond<F, Fut>(tasks: &TaskTracker, produce: F) -> Response
where
    F: FnOnce(mpsc::Sender<Bytes>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(32);
    let producer = tasks.spawn(produce(tx));
    let mut response = Response::new(Body::from_stream(EventStream {
        events: rx,
        producer,
    }));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Reverse proxies (nginx) must not buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// What the client's `Accept` header allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Accepts {
    pub json: bool,
    pub sse: bool,
}

impl Accepts {
    pub(crate) fn of(headers: &http::HeaderMap) -> Accepts {
        let mut accepts = Accepts {
            json: false,
            sse: false,
        };
        let values: Vec<&str> = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            return Accepts {
                json: true,
                sse: false,
            };
        }
        for item in values.iter().flat_map(|v| v.split(',')) {
            let media = item
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            match media.as_str() {
                "application/json" | "application/*" => accepts.json = true,
                "text/event-stream" | "text/*" => accepts.sse = true,
                "*/*" => {
                    accepts.json = true;
                    accepts.sse = true;
                }
                _ => {}
            }
        }
        if !accepts.json && !accepts.sse {
            // Nothing usable listed: JSON, the simplest form every client parses.
            accepts.json = true;
        }
        accepts
    }

    /// Stream when the client only takes streams, or when there is something to
    /// stream before the answer (progress) and the client takes streams.
    pub(crate) fn stream(self, has_progress: bool) -> bool {
        self.sse && (!self.json || has_progress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(value: Option<&str>) -> Accepts {
        let mut headers = http::HeaderMap::new();
        if let Some(v) = value {
            headers.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        }
        Accepts::of(&headers)
    }

    #[test]
    fn negotiation_never_refuses_a_client_that_lists_one_type() {
        assert!(!accepts(Some("application/json")).stream(true));
        assert!(accepts(Some("text/event-stream")).stream(false));
        assert!(!accepts(Some("application/json, text/event-stream")).stream(false));
        assert!(accepts(Some("application/json, text/event-stream")).stream(true));
        assert!(!accepts(None).stream(true));
        assert!(!accepts(Some("image/png")).stream(false));
    }

    #[test]
    fn events_are_single_data_lines() {
        let e = event(&serde_json::json!({"jsonrpc": "2.0", "method": "x"}));
        assert_eq!(
            &e[..],
            b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n\n"
        );
    }
}
