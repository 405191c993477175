//! The stdio floor: the echo child driven directly over its pipes, as a bridge would
//! with nothing in between. Also the direct spawn + `initialize` the broker's new-user
//! first response is compared with.

use std::collections::VecDeque;
use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::{Duration, Instant};

use crate::load::{Snapshot, Timing, Window};
use crate::mcp;
use crate::procfs::{RootClock, Ticks};

/// A running echo child and its pipes.
#[derive(Debug)]
pub(crate) struct DirectChild {
    child: Child,
    pid: u32,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl DirectChild {
    /// Spawns `program` with piped stdio (stderr discarded).
    pub(crate) fn spawn(program: &Path) -> Result<DirectChild> {
        let mut child = Command::new(program)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawn {}", program.display()))?;
        let pid = child.id().context("child has no pid")?;
        let stdin = child.stdin.take().context("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("no stdout")?).lines();
        Ok(DirectChild {
            child,
            pid,
            stdin,
            stdout,
        })
    }

    async fn send(&mut self, line: &str) -> Result<()> {
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.write_all(b"\n").await?;
        self.stdin.flush().await?;
        Ok(())
    }

    async fn receive(&mut self) -> Result<String> {
        tokio::time::timeout(Duration::from_secs(30), self.stdout.next_line())
            .await
            .context("the echo child did not answer within 30 s")??
            .context("the echo child closed its stdout")
    }

    /// `initialize`, its answer, then `notifications/initialized`, as a client does.
    pub(crate) async fn initialize(&mut self) -> Result<()> {
        self.send(&mcp::child_initialize()).await?;
        let answer = self.receive().await?;
        if !answer.contains("\"result\"") {
            bail!("echo child refused initialize: {answer}");
        }
        self.send(mcp::INITIALIZED).await
    }

    /// One `tools/call` of `echo`, answered.
    async fn call(&mut self, id: u64, marker: &str) -> Result<()> {
        self.send(&mcp::echo_call_2025(id, marker)).await?;
        let answer = self.receive().await?;
        check(&answer, marker)
    }

    /// Closes stdin and waits for the child to exit.
    pub(crate) async fn close(mut self) -> Result<()> {
        drop(self.stdin);
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .context("echo child did not exit on stdin EOF")??;
        Ok(())
    }
}

fn check(answer: &str, marker: &str) -> Result<()> {
    if answer.contains("\"result\"") && answer.contains(marker) {
        Ok(())
    } else {
        bail!("bad answer from the echo child: {answer}")
    }
}

/// Drives one initialized child with `depth` calls outstanding (1: one call at a time)
/// through a warm-up and a measured window; the CPU measured is the child's alone.
pub(crate) async fn window(
    program: &Path,
    depth: usize,
    timing: Timing,
    ticks: Ticks,
) -> Result<Window> {
    let mut child = DirectChild::spawn(program)?;
    child.initialize().await?;
    let marker = "direct-stdio";
    let begin = Instant::now();
    let measure_from = begin + timing.warmup;
    let end = measure_from + timing.measure;
    let mut in_flight: VecDeque<Instant> = VecDeque::with_capacity(depth);
    let mut done: Vec<(Instant, u64)> = Vec::new();
    let mut id = 1;
    let mut start: Option<Snapshot> = None;
    let mut stop: Option<Snapshot> = None;
    // The child answers in order, so the oldest send time belongs to the next answer.
    // Its pipe buffers hold `depth` short lines, so writing ahead cannot deadlock.
    loop {
        let now = Instant::now();
        if start.is_none() && now >= measure_from {
            start = Some(Snapshot::take(child.pid, RootClock::Schedstat, ticks)?);
        }
        if stop.is_none() && now >= end {
            stop = Some(Snapshot::take(child.pid, RootClock::Schedstat, ticks)?);
        }
        if stop.is_none() {
            while in_flight.len() < depth {
                in_flight.push_back(Instant::now());
                child.send(&mcp::echo_call_2025(id, marker)).await?;
                id += 1;
            }
        }
        if in_flight.is_empty() {
            break;
        }
        let answer = child.receive().await?;
        let answered = Instant::now();
        check(&answer, marker)?;
        let sent = in_flight
            .pop_front()
            .context("an answer nobody asked for")?;
        done.push((answered, (answered - sent).as_nanos() as u64));
    }
    let start = start.context("window ended before it began")?;
    let stop = stop.context("window never ended")?;
    let latencies = done
        .into_iter()
        .filter(|(at, _)| *at >= start.at() && *at <= stop.at())
        .map(|(_, nanos)| nanos)
        .collect();
    child.close().await?;
    Ok(Window::from_snapshots(start, stop, latencies, ticks))
}

/// Times for one direct start of the echo child: spawn → `initialize` answered, and
/// spawn → `initialize`, `notifications/initialized`, one `tools/call` answered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DirectStart {
    pub(crate) initialize: Duration,
    pub(crate) first_call: Duration,
}

pub(crate) async fn direct_start(program: &Path) -> Result<DirectStart> {
    let began = Instant::now();
    let mut child = DirectChild::spawn(program)?;
    child.send(&mcp::child_initialize()).await?;
    let answer = child.receive().await?;
    let initialize = began.elapsed();
    if !answer.contains("\"result\"") {
        bail!("echo child refused initialize: {answer}");
    }
    child.send(mcp::INITIALIZED).await?;
    child.call(1, "direct-start").await?;
    let first_call = began.elapsed();
    child.close().await?;
    Ok(DirectStart {
        initialize,
        first_call,
    })
}
