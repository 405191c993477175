//! The results of a run, the targets of issue 11 judged against them, and the two
//! renderings: `BENCHMARKS.md` and the summary on stdout. Nothing here asserts: a
//! missed target is reported as missed.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use tokio::time::Duration;

use crate::inside::Means;
use crate::load::{self, Window};
use crate::options::{HEADLINE_LEVEL, Options, QUIET_LEVEL};
use crate::procfs;
use crate::stdio::DirectStart;

/// The two protocol eras the broker serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Era {
    /// A 2025-11-25 session (`initialize`, `Mcp-Session-Id`).
    Session2025,
    /// Stateless 2026-07-28 requests.
    Stateless2026,
}

impl Era {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Era::Session2025 => "2025 session",
            Era::Stateless2026 => "2026 stateless",
        }
    }

    pub(crate) fn slug(self) -> &'static str {
        match self {
            Era::Session2025 => "2025",
            Era::Stateless2026 => "2026",
        }
    }
}

/// One measured window at one concurrency.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) concurrency: usize,
    pub(crate) window: Window,
}

impl Row {
    pub(crate) fn new(concurrency: usize, window: Window) -> Row {
        Row {
            concurrency,
            window,
        }
    }
}

/// The broker's windows in one era at one log level.
#[derive(Debug)]
pub(crate) struct Series {
    pub(crate) level: String,
    pub(crate) era: Era,
    pub(crate) rows: Vec<Row>,
}

/// Where a new user's first response goes, by the broker's own metrics.
fn inside_the_broker(out: &mut String, inside: &Means) {
    let ms = |d: Option<Duration>| {
        d.map_or("not measured".into(), |d| {
            format!("{} ms", f(d.as_secs_f64() * 1e3, 2))
        })
    };
    let _ = writeln!(
        out,
        "\nInside the broker, by its own metrics (means over the same first responses): Forgejo \
         answered the token check the broker makes before it starts a child in {} (a round trip to \
         the Forgejo test double here; a real Forgejo's is slower and a direct start of the child \
         makes none), and the child took {} from spawn to its `initialize` result. The rest is the \
         broker's own work: the bearer check, reading and opening the user's stored credential, \
         and the session's row, written while the child starts.",
        ms(inside.forgejo_check),
        ms(inside.child_start),
    );
}

/// New users' first responses and the direct starts they are compared with.
#[derive(Debug, Default)]
pub(crate) struct NewUsers {
    pub(crate) direct: Vec<DirectStart>,
    /// A new user's 2025-era `initialize` (the broker spawns and initializes their child).
    pub(crate) broker_2025: Vec<Duration>,
    /// A new user's first 2026-07-28 `tools/call`.
    pub(crate) broker_2026: Vec<Duration>,
    /// The broker's own timings over the same first responses.
    pub(crate) inside: Means,
}

/// The broker's memory with live children and idle sessions.
#[derive(Debug)]
pub(crate) struct Memory {
    pub(crate) live_children_wanted: usize,
    pub(crate) live_children_seen: usize,
    pub(crate) sessions: usize,
    pub(crate) rss_fresh: u64,
    pub(crate) rss: u64,
    pub(crate) hwm: u64,
    pub(crate) children_rss: u64,
}

/// Where and how the run happened.
#[derive(Debug)]
pub(crate) struct Meta {
    pub(crate) smoke: bool,
    pub(crate) cores: usize,
    cpu_model: String,
    memory: String,
    kernel: String,
    date: String,
    command: String,
    revision: String,
    broker_version: String,
    broker_bin: String,
    node: String,
    supergateway_version: String,
    windows: String,
    broker_env: String,
    pub(crate) load_start: String,
    load_end: String,
    duration: Duration,
}

/// The trimmed stdout of a command, or `?`.
fn output_of(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "?".into())
}

fn cpuinfo_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
                .map(|(_, model)| model.trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

fn supergateway_version(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("node_modules/supergateway/package.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|v| v["version"].as_str().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

impl Meta {
    pub(crate) fn collect(options: &Options) -> Result<Meta> {
        let head = output_of("git", &["rev-parse", "--short=12", "HEAD"]);
        // The report itself is left out: rewriting it must not make the tree "dirty".
        let dirty = output_of(
            "git",
            &[
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":(exclude)BENCHMARKS.md",
            ],
        );
        let revision = if head == "?" {
            "? (not a git checkout)".to_string()
        } else if dirty == "?" {
            head
        } else {
            format!("{head} with uncommitted changes")
        };
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| {
                let kb = t.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
                kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok()
            })
            .map_or_else(
                || "?".into(),
                |kb| format!("{:.0} GiB", kb as f64 / 1048576.0),
            );
        let (supergateway_version, node) = match &options.supergateway {
            Ok(dir) => (supergateway_version(dir), output_of("node", &["--version"])),
            Err(_) => ("—".into(), "—".into()),
        };
        Ok(Meta {
            smoke: options.smoke,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model: cpuinfo_model(),
            memory,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "?".into(), |s| s.trim().to_string()),
            date: output_of("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            command: options.invoked_as.clone(),
            revision,
            broker_version: output_of(&options.broker_bin.display().to_string(), &["--version"]),
            broker_bin: options.broker_bin.display().to_string(),
            node,
            supergateway_version,
            windows: format!(
                "{:.1} s warm-up, then {:.1} s measured",
                options.timing.warmup.as_secs_f64(),
                options.timing.measure.as_secs_f64()
            ),
            broker_env: if options.broker_env.is_empty() {
                "none".into()
            } else {
                options
                    .broker_env
                    .iter()
                    .map(|(k, v)| format!("`{k}={v}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            load_start: procfs::loadavg(),
            load_end: String::new(),
            duration: Duration::ZERO,
        })
    }

    pub(crate) fn finish(&mut self, duration: Duration) {
        self.load_end = procfs::loadavg();
        self.duration = duration;
    }
}

/// Everything one run measured.
#[derive(Debug)]
pub(crate) struct Results {
    pub(crate) meta: Meta,
    /// The echo child driven directly: one call at a time, then many outstanding.
    pub(crate) direct: Vec<Row>,
    pub(crate) http_floor: Vec<Row>,
    pub(crate) series: Vec<Series>,
    /// At the highest concurrency, or why it was not measured.
    pub(crate) supergateway: Result<Row, String>,
    pub(crate) new_users: NewUsers,
    pub(crate) memory: Memory,
}

impl Results {
    fn series(&self, level: &str, era: Era) -> Option<&Series> {
        self.series
            .iter()
            .find(|s| s.level == level && s.era == era)
    }

    fn broker(&self, level: &str, era: Era, c: usize) -> Option<&Window> {
        row_at(&self.series(level, era)?.rows, c)
    }

    fn max_c(&self) -> usize {
        self.http_floor
            .iter()
            .map(|r| r.concurrency)
            .max()
            .unwrap_or(1)
    }
}

fn row_at(rows: &[Row], c: usize) -> Option<&Window> {
    rows.iter().find(|r| r.concurrency == c).map(|r| &r.window)
}

fn median_ms(values: impl Iterator<Item = Duration>) -> f64 {
    let mut nanos: Vec<u64> = values.map(|d| d.as_nanos() as u64).collect();
    nanos.sort_unstable();
    load::percentile(&nanos, 50.0) as f64 / 1e6
}

fn min_max_ms(values: impl Iterator<Item = Duration>) -> (f64, f64) {
    let ms: Vec<f64> = values.map(|d| d.as_secs_f64() * 1e3).collect();
    (
        ms.iter().copied().fold(f64::INFINITY, f64::min),
        ms.iter().copied().fold(0.0, f64::max),
    )
}

const MIB: f64 = 1024.0 * 1024.0;

/// Whether a target was met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Met,
    Missed,
    NotMeasured,
}

impl Verdict {
    fn of(met: bool) -> Verdict {
        if met { Verdict::Met } else { Verdict::Missed }
    }

    fn word(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "**missed**",
            Verdict::NotMeasured => "not measured",
        }
    }
}

/// One target of issue 11, judged.
#[derive(Debug)]
struct Judged {
    target: String,
    measured: String,
    goal: String,
    verdict: Verdict,
}

fn judge(results: &Results) -> Vec<Judged> {
    let c = results.max_c();
    let level = HEADLINE_LEVEL;
    let mut out = Vec::new();
    for era in [Era::Session2025, Era::Stateless2026] {
        if let Some(w) = results.broker(level, era, c) {
            let cpu = w.cpu_per_call_us();
            out.push(Judged {
                target: format!("CPU per call at C={c}, {}", era.label()),
                measured: format!("{cpu:.1} µs"),
                goal: "≤ 50 µs".into(),
                verdict: Verdict::of(cpu <= 50.0),
            });
        }
    }
    for era in [Era::Session2025, Era::Stateless2026] {
        let Some(w) = results.broker(level, era, c) else {
            continue;
        };
        out.push(match &results.supergateway {
            Ok(sg) => {
                let ratio = w.rps() / sg.window.rps();
                Judged {
                    target: format!("throughput at C={c} vs supergateway, {}", era.label()),
                    measured: format!(
                        "{:.0} / {:.0} req/s = {ratio:.2}×",
                        w.rps(),
                        sg.window.rps()
                    ),
                    goal: "≥ 10×".into(),
                    verdict: Verdict::of(ratio >= 10.0),
                }
            }
            Err(reason) => Judged {
                target: format!("throughput at C={c} vs supergateway, {}", era.label()),
                measured: format!("supergateway {reason}"),
                goal: "≥ 10×".into(),
                verdict: Verdict::NotMeasured,
            },
        });
    }
    if let Some(floor) = row_at(&results.http_floor, c) {
        for era in [Era::Session2025, Era::Stateless2026] {
            if let Some(w) = results.broker(level, era, c) {
                let ratio = w.rps() / floor.rps();
                out.push(Judged {
                    target: format!("throughput at C={c} vs HTTP floor, {}", era.label()),
                    measured: format!("{:.0} / {:.0} req/s = {ratio:.3}", w.rps(), floor.rps()),
                    goal: "≥ 1/3".into(),
                    verdict: Verdict::of(ratio >= 1.0 / 3.0),
                });
            }
        }
    }
    if let Some(floor) = row_at(&results.http_floor, 1) {
        for era in [Era::Session2025, Era::Stateless2026] {
            if let Some(w) = results.broker(level, era, 1) {
                let added = w.percentile_ms(50.0) - floor.percentile_ms(50.0);
                out.push(Judged {
                    target: format!("added sequential p50 over HTTP floor, {}", era.label()),
                    measured: format!(
                        "{:.3} − {:.3} = {added:.3} ms",
                        w.percentile_ms(50.0),
                        floor.percentile_ms(50.0)
                    ),
                    goal: "≤ 0.1 ms".into(),
                    verdict: Verdict::of(added <= 0.1),
                });
            }
        }
    }
    let n = &results.new_users;
    if !n.direct.is_empty() {
        let direct_init: Vec<Duration> = n.direct.iter().map(|d| d.initialize).collect();
        let direct_call: Vec<Duration> = n.direct.iter().map(|d| d.first_call).collect();
        let pairs = [
            (
                "new-user first response (2025 `initialize`) vs direct spawn + initialize",
                &n.broker_2025,
                &direct_init,
            ),
            (
                "new-user first response (2026 `tools/call`) vs direct spawn + initialize + call",
                &n.broker_2026,
                &direct_call,
            ),
        ];
        for (target, broker, direct) in pairs {
            let ratio = median_ms(broker.iter().copied()) / median_ms(direct.iter().copied());
            let min_ratio =
                min_max_ms(broker.iter().copied()).0 / min_max_ms(direct.iter().copied()).0;
            out.push(Judged {
                target: target.into(),
                measured: format!(
                    "{:.2} / {:.2} ms = {ratio:.2}× (medians; minimums {min_ratio:.2}×)",
                    median_ms(broker.iter().copied()),
                    median_ms(direct.iter().copied())
                ),
                goal: "≤ 1.5×".into(),
                verdict: Verdict::of(ratio <= 1.5),
            });
        }
    }
    let m = &results.memory;
    out.push(Judged {
        target: format!(
            "broker RSS with {} live children and {} idle sessions",
            m.live_children_seen, m.sessions
        ),
        measured: format!("{:.1} MiB", m.rss as f64 / MIB),
        goal: "≤ 30 MiB".into(),
        verdict: Verdict::of((m.rss as f64) <= 30.0 * MIB),
    });
    out
}

fn f(value: f64, decimals: usize) -> String {
    if value.is_finite() {
        format!("{value:.decimals$}")
    } else {
        "—".into()
    }
}

/// A throughput table row: server, C, child processes, req/s, p50, p99, CPU/call (total, root,
/// children), generator CPU/call, other load.
fn throughput_row(out: &mut String, server: &str, row: &Row) {
    let w = &row.window;
    let _ = writeln!(
        out,
        "| {server} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        row.concurrency,
        w.server_processes,
        f(w.rps(), 0),
        f(w.percentile_ms(50.0), 3),
        f(w.percentile_ms(99.0), 3),
        f(w.cpu_per_call_us(), 1),
        f(w.per_call_us(w.server_root_cpu), 1),
        f(w.per_call_us(w.server_children_cpu), 1),
        f(w.per_call_us(w.client_cpu), 1),
        f(w.other_cores(), 2),
    );
}

/// Rows of every measured server, in a stable order.
fn all_rows(results: &Results) -> Vec<(String, &Row)> {
    let mut rows = Vec::new();
    for row in &results.direct {
        rows.push(("stdio floor (child direct)".to_string(), row));
    }
    for row in &results.http_floor {
        rows.push(("HTTP floor (hyper echo)".to_string(), row));
    }
    for level in [HEADLINE_LEVEL, QUIET_LEVEL] {
        for era in [Era::Session2025, Era::Stateless2026] {
            if let Some(series) = results.series(level, era) {
                for row in &series.rows {
                    rows.push((format!("broker {}, log {level}", era.label()), row));
                }
            }
        }
    }
    if let Ok(row) = &results.supergateway {
        rows.push(("supergateway (stateful)".to_string(), row));
    }
    rows
}

/// `BENCHMARKS.md`.
pub(crate) fn markdown(results: &Results) -> String {
    let m = &results.meta;
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "Written by `fjmcp-bench` (`crates/fjmcp-bench`); do not edit by hand, run `./scripts/bench` \
         again. These are the measurements of one run on the machine below, side by side with two \
         floors and supergateway in the same run; nothing asserts them. Targets are those of issue 11."
    );
    if m.smoke {
        let _ = writeln!(
            out,
            "\n**Smoke run**: tiny windows and a handful of users; it proves the harness works and \
             its numbers mean nothing."
        );
    }
    let _ = writeln!(out, "\n## Run\n");
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| date | {} |", m.date);
    let _ = writeln!(out, "| command | `{}` |", m.command);
    let _ = writeln!(out, "| revision | {} |", m.revision);
    let _ = writeln!(
        out,
        "| broker | `{}` ({}) |",
        m.broker_version, m.broker_bin
    );
    let _ = writeln!(
        out,
        "| broker settings | its defaults, except the bench's own (caps and rate limits that never \
         refuse, the log level); added with `--broker-env`: {} |",
        m.broker_env
    );
    let _ = writeln!(
        out,
        "| machine | {} cores (nproc), {}, {} memory, Linux {} |",
        m.cores, m.cpu_model, m.memory, m.kernel
    );
    let _ = writeln!(
        out,
        "| load average | {} at the start, {} at the end (1, 5, 15 min) |",
        m.load_start, m.load_end
    );
    let others: Vec<f64> = all_rows(results)
        .iter()
        .map(|(_, r)| r.window.other_cores())
        .collect();
    if !others.is_empty() {
        let lo = others.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = others.iter().copied().fold(0.0, f64::max);
        let _ = writeln!(
            out,
            "| other processes | used {lo:.2}–{hi:.2} cores during the windows (column \"other\" below): \
             the machine is shared, so read every number against it |"
        );
    }
    let _ = writeln!(
        out,
        "| windows | {}; closed loop, one HTTP/1.1 keep-alive connection per worker, every answer checked |",
        m.windows
    );
    let _ = writeln!(
        out,
        "| headline | broker log level `{HEADLINE_LEVEL}` (its default, one JSON line per response, what \
         operators run); `{QUIET_LEVEL}` measured beside it |"
    );
    let _ = writeln!(
        out,
        "| supergateway | {} on Node.js {} (`--stateful`, `--logLevel none`, its cheapest) |",
        m.supergateway_version, m.node
    );
    let _ = writeln!(out, "| run time | {:.0} s |", m.duration.as_secs_f64());

    let _ = writeln!(out, "\n## Targets, at log level `{HEADLINE_LEVEL}`\n");
    let _ = writeln!(
        out,
        "| target | measured | goal | verdict |\n|---|---|---|---|"
    );
    for j in judge(results) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            j.target,
            j.measured,
            j.goal,
            j.verdict.word()
        );
    }

    let _ = writeln!(out, "\n## Sequential latency (C=1)\n");
    let _ = writeln!(
        out,
        "| server | p50 ms | p99 ms | p50 over the HTTP floor, ms |\n|---|---|---|---|"
    );
    let floor_p50 = row_at(&results.http_floor, 1).map(|w| w.percentile_ms(50.0));
    for (name, row) in all_rows(results) {
        if row.concurrency != 1 {
            continue;
        }
        let w = &row.window;
        let added = floor_p50.map_or(f64::NAN, |p| w.percentile_ms(50.0) - p);
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} |",
            f(w.percentile_ms(50.0), 3),
            f(w.percentile_ms(99.0), 3),
            if name.starts_with("broker") {
                f(added, 3)
            } else {
                "".into()
            }
        );
    }

    let _ = writeln!(out, "\n## Throughput and CPU per call\n");
    let _ = writeln!(
        out,
        "CPU per call is the user + system CPU time of the server's whole process tree during the \
         window divided by the calls answered in it: for the broker, the broker process (\"server\") \
         plus every echo child (\"children\"); for supergateway, node plus its children; for the \
         floors, the one process. \"child processes\" counts the live processes in that tree besides \
         its root at the window's end. \"generator\" is this benchmark's own process (load generator and \
         the in-process Forgejo double), \"other\" the cores everything else on the machine used.\n"
    );
    let _ = writeln!(
        out,
        "| server | C | child processes | req/s | p50 ms | p99 ms | CPU/call µs | server µs | children µs | generator µs | other (cores) |\n\
         |---|---|---|---|---|---|---|---|---|---|---|"
    );
    for (name, row) in all_rows(results) {
        throughput_row(&mut out, &name, row);
    }
    if let Err(reason) = &results.supergateway {
        let _ = writeln!(out, "\nsupergateway: {reason}.");
    }

    let n = &results.new_users;
    let _ = writeln!(out, "\n## A new user's first response\n");
    let _ = writeln!(
        out,
        "A user who has no child yet: from their first request to its answer (the broker checks their \
         Forgejo token, spawns and initializes their child), against spawning and initializing the same \
         child directly. The samples are interleaved.\n"
    );
    let _ = writeln!(
        out,
        "| | samples | min ms | median ms | max ms |\n|---|---|---|---|---|"
    );
    let lines: [(&str, Vec<Duration>); 4] = [
        (
            "direct: spawn + `initialize` answered",
            n.direct.iter().map(|d| d.initialize).collect(),
        ),
        (
            "broker: new user's 2025 `initialize`",
            n.broker_2025.clone(),
        ),
        (
            "direct: spawn + `initialize` + one `tools/call` answered",
            n.direct.iter().map(|d| d.first_call).collect(),
        ),
        (
            "broker: new user's first 2026 `tools/call`",
            n.broker_2026.clone(),
        ),
    ];
    for (name, values) in lines {
        let (lo, hi) = min_max_ms(values.iter().copied());
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} |",
            values.len(),
            f(lo, 2),
            f(median_ms(values.iter().copied()), 2),
            f(hi, 2)
        );
    }
    inside_the_broker(&mut out, &n.inside);

    let mem = &results.memory;
    let _ = writeln!(out, "\n## Broker memory\n");
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(
        out,
        "| VmRSS just after start (no users) | {:.1} MiB |",
        mem.rss_fresh as f64 / MIB
    );
    let _ = writeln!(
        out,
        "| VmRSS with {} live children and {} idle 2025-era sessions (after the throughput runs) | {:.1} MiB |",
        mem.live_children_seen,
        mem.sessions,
        mem.rss as f64 / MIB
    );
    let _ = writeln!(
        out,
        "| VmHWM (peak RSS of the run so far) | {:.1} MiB |",
        mem.hwm as f64 / MIB
    );
    let _ = writeln!(
        out,
        "| live children asked for / seen (processes whose parent is the broker) | {} / {} |",
        mem.live_children_wanted, mem.live_children_seen
    );
    if mem.live_children_seen > 0 {
        let _ = writeln!(
            out,
            "| echo children's VmRSS, total (per child) | {:.1} MiB ({:.2} MiB) |",
            mem.children_rss as f64 / MIB,
            mem.children_rss as f64 / MIB / mem.live_children_seen as f64
        );
    }

    let _ = writeln!(out, "\n## How it is measured\n");
    let notes = [
        "Everything runs on this one machine: the load generator (one thread) competes with the server \
         under test for the same cores, and so do other processes (the \"other\" column). Compare rows \
         of the same run; across runs, compare only what was measured under similar load.",
        "Latency at low concurrency and a child's start include waking idle cores, which on a virtual \
         machine can cost more than the work itself, and more when the machine is otherwise idle: the \
         same command can give noticeably different C=1 latencies and spawn times from run to run. \
         Throughput and CPU per call at C=64 are the steadier numbers.",
        "The child is `bench-echo-child` everywhere: one blocking thread, one JSON parse and one write per \
         message, nothing logged.",
        "The HTTP floor is a plain hyper HTTP/1.1 server in its own process (this binary as \
         `serve-echo`, tokio's multi-threaded runtime like the broker) that answers every request with \
         its body.",
        "The stdio floor drives one echo child over its pipes: one call at a time, then with as many \
         calls outstanding as the highest concurrency (latencies then include queueing).",
        "Tokens come from the broker's real OAuth flow (dynamic registration, authorize, sign-in at the \
         Forgejo test double, consent, token with PKCE), one user per worker; each 2025-era worker \
         has its own session, each user their own child.",
        "CPU is read at the start and the end of the measured part of each window, and only calls \
         answered between those two reads count. A server's root process: `utime + stime` from \
         `/proc/<pid>/stat` (10 ms ticks, so at most 20 ms off per window; it includes threads that \
         exited); each live descendant, found by parent pid: its threads' `/proc/<pid>/task/*/schedstat` \
         (nanoseconds, since a hundred children each truncated to 10 ms ticks would lose most of their \
         time); for both, `cutime + cstime` of reaped children. The stdio floor's single-threaded child \
         is read through `schedstat` too.",
        "The broker at `warn` runs on the same store after a restart (tokens and sessions survive it; \
         its children are started again during the warm-up).",
        "Memory is the broker process's VmRSS from `/proc/<pid>/status` (children excluded), read one \
         second after the sessions were opened; MB in the targets is read as MiB.",
    ];
    for note in notes {
        let _ = writeln!(out, "- {note}");
    }
    out
}

/// The summary printed on stdout (and the same facts as the report's tables).
pub(crate) fn summary(results: &Results) -> String {
    let m = &results.meta;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "fjmcp-bench{} on {} cores ({}), {}, load {} → {}, revision {}",
        if m.smoke {
            " (smoke: numbers mean nothing)"
        } else {
            ""
        },
        m.cores,
        m.cpu_model,
        m.date,
        m.load_start,
        m.load_end,
        m.revision
    );
    let _ = writeln!(
        out,
        "\n{:<34} {:>3} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>6}",
        "server", "C", "req/s", "p50 ms", "p99 ms", "CPU µs", "server", "children", "other"
    );
    for (name, row) in all_rows(results) {
        let w = &row.window;
        let _ = writeln!(
            out,
            "{:<34} {:>3} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>6}",
            name,
            row.concurrency,
            f(w.rps(), 0),
            f(w.percentile_ms(50.0), 3),
            f(w.percentile_ms(99.0), 3),
            f(w.cpu_per_call_us(), 1),
            f(w.per_call_us(w.server_root_cpu), 1),
            f(w.per_call_us(w.server_children_cpu), 1),
            f(w.other_cores(), 2),
        );
    }
    let _ = writeln!(out, "\ntargets at log level {HEADLINE_LEVEL}:");
    for j in judge(results) {
        let _ = writeln!(
            out,
            "  {:<12} {} — {} (goal {})",
            j.verdict.word().trim_matches('*'),
            j.target,
            j.measured,
            j.goal
        );
    }
    out
}
