//! The load generator: HTTP/1.1 over hyper, one keep-alive connection per worker, each
//! worker sending its next request when the previous answer is in (closed loop), and the
//! measured window's CPU counters read at its two ends.
//!
//! Every answer is checked (status 200, the worker's marker echoed, a JSON-RPC result
//! where one is expected); the first bad answer stops the window and the run, so a number
//! is never reported for requests that failed.

use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::{Duration, Instant};

use crate::procfs::{self, RootClock, Ticks, TreeCpu};

/// The longest any request may take before the run fails: a server that stops
/// answering must fail the run (CI's smoke above all), never hang it.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest a connection attempt or a readiness probe waits: a socket that is
/// bound (the bench binds the broker's) accepts connections before anybody serves
/// them, and a full backlog leaves a connect hanging.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// One HTTP/1.1 connection to a server under test.
#[derive(Debug)]
pub(crate) struct Connection {
    send: SendRequest<Full<Bytes>>,
}

/// An answer, read whole.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    /// The body as text, shortened for an error message.
    pub(crate) fn snippet(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let short: String = text.chars().take(400).collect();
        format!("HTTP {}: {short}", self.status.as_u16())
    }
}

impl Connection {
    pub(crate) async fn open(addr: SocketAddr) -> Result<Connection> {
        let stream = tokio::time::timeout(PROBE_TIMEOUT, TcpStream::connect(addr))
            .await
            .with_context(|| format!("connect {addr}: no answer within {PROBE_TIMEOUT:?}"))?
            .with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        let (send, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP/1.1 handshake")?;
        // The connection's I/O runs as its own task; it ends when `send` is dropped.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Connection { send })
    }

    /// `GET path`; only the status matters (readiness probes).
    pub(crate) async fn get(&mut self, path: &str, host: &str) -> Result<StatusCode> {
        Ok(self.get_body(path, host).await?.0)
    }

    /// `GET path`: the status and the body.
    pub(crate) async fn get_body(&mut self, path: &str, host: &str) -> Result<(StatusCode, Bytes)> {
        let request = Request::get(path)
            .header("host", host)
            .body(Full::new(Bytes::new()))?;
        let exchange = async {
            self.send.ready().await.context("connection closed")?;
            let response = self.send.send_request(request).await.context("request")?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .context("read answer")?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(PROBE_TIMEOUT, exchange)
            .await
            .with_context(|| format!("no answer to GET {path} within {PROBE_TIMEOUT:?}"))?
    }

    /// POSTs `body` to `path` with exactly `headers` (which must include `host`).
    pub(crate) async fn post(
        &mut self,
        path: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Reply> {
        let mut request = Request::post(path).body(Full::new(body))?;
        *request.headers_mut() = headers.clone();
        let exchange = async {
            self.send.ready().await.context("connection closed")?;
            let response = self.send.send_request(request).await.context("request")?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await.context("read answer")?.to_bytes();
            Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(ANSWER_TIMEOUT, exchange)
            .await
            .with_context(|| format!("no answer to POST {path} within {ANSWER_TIMEOUT:?}"))?
    }
}

/// What one worker sends, over and over: `prefix` + a fresh request id + `suffix`.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) path: &'static str,
    pub(crate) headers: HeaderMap,
    pub(crate) prefix: String,
    pub(crate) suffix: String,
    /// Bytes a good answer contains (the echoed text, unique per worker).
    pub(crate) marker: String,
    /// Whether a good answer is a JSON-RPC result (false for the HTTP floor, which
    /// echoes the request body).
    pub(crate) expect_result: bool,
}

impl Call {
    fn body(&self, id: u64) -> Bytes {
        Bytes::from(format!("{}{id}{}", self.prefix, self.suffix))
    }

    fn check(&self, reply: &Reply) -> Result<()> {
        let ok = reply.status == StatusCode::OK
            && contains(&reply.body, self.marker.as_bytes())
            && (!self.expect_result || contains(&reply.body, b"\"result\""));
        if ok {
            Ok(())
        } else {
            bail!("bad answer: {}", reply.snippet())
        }
    }
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Builds a header map from pairs; the names and values are the bench's own constants
/// and tokens, so a bad one is a bug.
pub(crate) fn headers(pairs: &[(&str, &str)]) -> Result<HeaderMap> {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(
            HeaderName::from_bytes(name.as_bytes())?,
            HeaderValue::from_str(value)?,
        );
    }
    Ok(map)
}

/// How long a window warms up and how long it measures.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) warmup: Duration,
    pub(crate) measure: Duration,
}

/// Counters at one end of a measured window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Snapshot {
    at: Instant,
    server: TreeCpu,
    /// CPU seconds of this process.
    client: f64,
    /// Busy clock ticks of the whole machine.
    machine: u64,
}

impl Snapshot {
    /// When the counters were read.
    pub(crate) fn at(&self) -> Instant {
        self.at
    }

    /// Reads the counters now; `server` is the root pid of the server under test.
    pub(crate) fn take(server: u32, clock: RootClock, ticks: Ticks) -> Result<Snapshot> {
        Ok(Snapshot {
            server: procfs::tree_cpu(server, clock, ticks)?,
            client: procfs::self_cpu(ticks),
            machine: procfs::machine_cpu().busy,
            at: Instant::now(),
        })
    }
}

/// What a measured window saw.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    /// Calls answered inside the window.
    pub(crate) calls: u64,
    pub(crate) seconds: f64,
    /// Latencies of those calls, sorted, in nanoseconds.
    pub(crate) latencies: Vec<u64>,
    /// CPU seconds of the server's root process (reaped children included).
    pub(crate) server_root_cpu: f64,
    /// CPU seconds of the server's live descendants (its children).
    pub(crate) server_children_cpu: f64,
    /// Processes in the server's tree besides the root, at the window's end.
    pub(crate) server_processes: usize,
    /// CPU seconds of this process: the load generator (and the in-process Forgejo double).
    pub(crate) client_cpu: f64,
    /// CPU seconds the machine spent on everything else (other users' builds).
    pub(crate) other_cpu: f64,
}

impl Window {
    pub(crate) fn from_snapshots(
        start: Snapshot,
        end: Snapshot,
        mut latencies: Vec<u64>,
        ticks: Ticks,
    ) -> Window {
        latencies.sort_unstable();
        let server_root_cpu = end.server.root - start.server.root;
        let server_children_cpu = end.server.descendants - start.server.descendants;
        let client_cpu = end.client - start.client;
        let machine = ticks.seconds(end.machine.saturating_sub(start.machine));
        Window {
            calls: latencies.len() as u64,
            seconds: (end.at - start.at).as_secs_f64(),
            latencies,
            server_root_cpu,
            server_children_cpu,
            server_processes: end.server.processes,
            client_cpu,
            other_cpu: (machine - server_root_cpu - server_children_cpu - client_cpu).max(0.0),
        }
    }

    pub(crate) fn rps(&self) -> f64 {
        self.calls as f64 / self.seconds
    }

    /// Nearest-rank percentile, in milliseconds.
    pub(crate) fn percentile_ms(&self, p: f64) -> f64 {
        percentile(&self.latencies, p) as f64 / 1e6
    }

    /// CPU microseconds per call of the server's whole tree.
    pub(crate) fn cpu_per_call_us(&self) -> f64 {
        self.per_call_us(self.server_root_cpu + self.server_children_cpu)
    }

    pub(crate) fn per_call_us(&self, seconds: f64) -> f64 {
        if self.calls == 0 {
            f64::NAN
        } else {
            seconds * 1e6 / self.calls as f64
        }
    }

    /// Cores' worth of CPU other processes used during the window.
    pub(crate) fn other_cores(&self) -> f64 {
        self.other_cpu / self.seconds
    }
}

/// Nearest-rank percentile of sorted values.
pub(crate) fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs one closed-loop window: each `(connection, call)` pair is a worker. Workers
/// run through the warm-up and the measured part; only calls answered between the two
/// counter snapshots count. `server` is the root pid whose tree's CPU is measured.
pub(crate) async fn run_window(
    workers: Vec<(Connection, Call)>,
    timing: Timing,
    server: u32,
    ticks: Ticks,
) -> Result<Window> {
    let begin = Instant::now();
    let end = begin + timing.warmup + timing.measure;
    let mut set = JoinSet::new();
    for (mut connection, call) in workers {
        set.spawn(async move {
            let mut done: Vec<(Instant, u64)> = Vec::new();
            let mut id: u64 = 1;
            while Instant::now() < end {
                let body = call.body(id);
                id += 1;
                let sent = Instant::now();
                let reply = connection.post(call.path, &call.headers, body).await?;
                let answered = Instant::now();
                call.check(&reply)?;
                done.push((answered, (answered - sent).as_nanos() as u64));
            }
            Ok::<_, anyhow::Error>(done)
        });
    }
    tokio::time::sleep_until(begin + timing.warmup).await;
    let start = Snapshot::take(server, RootClock::Stat, ticks)?;
    tokio::time::sleep_until(end).await;
    let stop = Snapshot::take(server, RootClock::Stat, ticks)?;
    let mut latencies = Vec::new();
    while let Some(joined) = set.join_next().await {
        let done = joined.context("worker panicked")??;
        latencies.extend(
            done.into_iter()
                .filter(|(at, _)| *at >= start.at && *at <= stop.at)
                .map(|(_, nanos)| nanos),
        );
    }
    Ok(Window::from_snapshots(start, stop, latencies, ticks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50.0), 50);
        assert_eq!(percentile(&values, 99.0), 99);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn finds_markers() {
        assert!(contains(b"{\"text\":\"w-17\"}", b"w-17"));
        assert!(!contains(b"{\"text\":\"w-1\"}", b"w-17"));
    }
}
