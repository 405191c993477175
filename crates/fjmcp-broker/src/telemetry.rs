//! Logging to stderr: JSON lines for collectors, or text for humans.
//!
//! Lines are written by a thread of their own, in batches, so a request's log
//! line costs its formatting and a copy, not a write to stderr on the request's
//! path, and not a wake-up of the writer for every line: the writer sleeps until
//! the first line of a batch arrives, lets the batch fill for
//! [`BATCH_WINDOW`], then writes it in one go. At most one batch window of lines
//! waits in memory. Nothing is dropped: past [`MAX_PENDING_BYTES`], logging
//! waits for the writer.

use std::io::Write;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// How long the writer lets a batch gather after its first line: short enough
/// that a line reaches the journal while it is news, long enough that a busy
/// broker's writer wakes a few hundred times a second at most.
const BATCH_WINDOW: Duration = Duration::from_millis(5);

/// Lines waiting beyond this make the logging thread wait for the writer.
const MAX_PENDING_BYTES: usize = 1 << 20;

/// Keeps the log writer running; dropping it writes what is pending and stops
/// the writer (hold it until the process exits).
#[derive(Debug)]
pub struct LogGuard(Option<BatchWriter>);

/// Installs the global subscriber. `filter` was validated with the configuration.
pub fn init(format: LogFormat, filter: &str) -> LogGuard {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let writer = BatchWriter::start(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer.clone());
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            // The request span is the only span; its list would repeat it
            // on every line and cost a second serialization of it.
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // A second init (tests) keeps the first subscriber; this writer just stops.
    LogGuard(result.is_ok().then_some(writer))
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some(writer) = self.0.take() {
            writer.stop();
        }
    }
}

/// Lines from every thread, handed to one writer thread in batches. Cheap to
/// clone; [`BatchWriter::stop`] writes what is pending and ends the thread.
#[derive(Debug, Clone)]
struct BatchWriter {
    shared: Arc<Shared>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<Pending>,
    /// The writer waits here for a first line (or the stop).
    arrived: Condvar,
    /// Loggers wait here when too much is pending.
    drained: Condvar,
}

#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    stopping: bool,
}

impl BatchWriter {
    fn start<W: Write + Send + 'static>(sink: W) -> BatchWriter {
        let shared = Arc::new(Shared::default());
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn({
                let shared = shared.clone();
                move || write_batches(&shared, sink)
            })
            .expect("cannot start the log writer thread");
        BatchWriter {
            shared,
            thread: Arc::new(Mutex::new(Some(thread))),
        }
    }

    /// Queues `line` for the writer; `false` once the writer has stopped.
    fn push(&self, line: &[u8]) -> bool {
        let mut pending = self.shared.pending.lock();
        while pending.bytes.len() >= MAX_PENDING_BYTES && !pending.stopping {
            self.shared.drained.wait(&mut pending);
        }
        if pending.stopping {
            return false;
        }
        let first = pending.bytes.is_empty();
        pending.bytes.extend_from_slice(line);
        drop(pending);
        if first {
            self.shared.arrived.notify_one();
        }
        true
    }

    /// Writes what is pending and ends the writer thread; later lines are
    /// written by the thread that logs them.
    fn stop(&self) {
        self.shared.pending.lock().stopping = true;
        self.shared.arrived.notify_one();
        self.shared.drained.notify_all();
        if let Some(thread) = self.thread.lock().take() {
            // A panicking writer has nothing left to flush.
            let _ = thread.join();
        }
    }
}

fn write_batches<W: Write>(shared: &Shared, mut sink: W) {
    let mut batch = Vec::new();
    loop {
        let mut pending = shared.pending.lock();
        while pending.bytes.is_empty() && !pending.stopping {
            shared.arrived.wait(&mut pending);
        }
        if !pending.stopping {
            // Let the batch gather; loggers keep appending meanwhile.
            drop(pending);
            std::thread::sleep(BATCH_WINDOW);
            pending = shared.pending.lock();
        }
        let stopping = pending.stopping;
        std::mem::swap(&mut batch, &mut pending.bytes);
        drop(pending);
        shared.drained.notify_all();
        // Stderr is where errors would go; there is nowhere to report this one.
        let _ = sink.write_all(&batch).and_then(|()| sink.flush());
        batch.clear();
        if stopping {
            return;
        }
    }
}

/// One event's output. The formatter writes a whole line per event; a line
/// logged after [`BatchWriter::stop`] goes straight to stderr.
#[derive(Debug)]
struct EventWriter<'a>(&'a BatchWriter);

impl Write for EventWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.push(buf) {
            Ok(buf.len())
        } else {
            std::io::stderr().write(buf)
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = EventWriter<'a>;

    fn make_writer(&'a self) -> EventWriter<'a> {
        EventWriter(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink the test can read after the writer stopped, and that announces
    /// every write.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>, Option<std::sync::mpsc::Sender<()>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(buf);
            if let Some(written) = &self.1 {
                let _ = written.send(());
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_from_every_thread_arrives_whole_and_in_order_per_thread() {
        let sink = Sink::default();
        let writer = BatchWriter::start(sink.clone());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000 {
                        let line = format!("thread {t} line {i} {}\n", "x".repeat(i % 300));
                        writer.make_writer().write_all(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        writer.stop();
        let written = String::from_utf8(sink.0.lock().clone()).unwrap();
        let mut next = [0usize; 4];
        for line in written.lines() {
            let mut words = line.split(' ');
            let t: usize = words.nth(1).unwrap().parse().unwrap();
            let i: usize = words.nth(1).unwrap().parse().unwrap();
            assert_eq!(i, next[t], "thread {t} out of order");
            assert_eq!(words.next().unwrap_or("").len(), i % 300, "a torn line");
            next[t] += 1;
        }
        assert_eq!(next, [5_000; 4]);
    }

    #[test]
    fn a_lone_line_is_written_without_waiting_for_more() {
        let (written, was_written) = std::sync::mpsc::channel();
        let sink = Sink(Arc::default(), Some(written));
        let writer = BatchWriter::start(sink.clone());
        writer.make_writer().write_all(b"only\n").unwrap();
        // The writer wakes for the first line of a batch: no stop needed.
        was_written
            .recv_timeout(Duration::from_secs(10))
            .expect("the line was never written");
        assert_eq!(&*sink.0.lock(), b"only\n");
        writer.stop();
    }

    #[test]
    fn lines_after_the_stop_are_not_lost_in_the_buffer() {
        let sink = Sink::default();
        let writer = BatchWriter::start(sink.clone());
        writer.make_writer().write_all(b"before\n").unwrap();
        writer.stop();
        assert_eq!(&*sink.0.lock(), b"before\n");
        // Goes to the real stderr now; what matters is that it neither blocks
        // nor piles up in a buffer nobody writes.
        writer.make_writer().write_all(b"after\n").unwrap();
        assert!(writer.shared.pending.lock().bytes.is_empty());
    }
}
