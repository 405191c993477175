//! Logging to stderr: JSON lines for collectors, or text for humans.
//!
//! Lines are written by a thread of their own, so a request's log line costs
//! its formatting, not a write to stderr on the request's path; under a burst
//! the writer batches what queued up. Nothing is dropped: when the queue is
//! full, logging waits.

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Keeps the log writer running; dropping it writes what is queued and stops
/// the writer (hold it until the process exits).
#[derive(Debug)]
pub struct LogGuard(#[allow(dead_code)] Option<WorkerGuard>);

/// Installs the global subscriber. `filter` was validated with the configuration.
pub fn init(format: LogFormat, filter: &str) -> LogGuard {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // A second init (tests) keeps the first subscriber; nothing to report.
    LogGuard(result.is_ok().then_some(guard))
}
