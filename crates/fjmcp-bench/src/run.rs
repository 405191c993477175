//! One benchmark run, in this order (so each server is measured while the others are
//! stopped or idle):
//!
//! 1. the stdio floor (the echo child driven directly), one call at a time and with
//!    the highest concurrency's number of calls outstanding;
//! 2. the HTTP floor at every concurrency;
//! 3. the broker at the headline log level (`info`, its default): tokens for every user
//!    through the real OAuth flow, one 2025-era session per worker, every concurrency in
//!    both eras; then new users' first responses against direct starts of the child,
//!    interleaved; then its memory with the live children and idle sessions asked for;
//! 4. the broker restarted at `warn` on the same state: every concurrency in both eras;
//! 5. supergateway at the highest concurrency, one session (so one child) per worker.

use std::path::Path;

use anyhow::{Context, Result, bail};
use forgejo_double::{App, Config, ForgejoDouble, User};
use tokio::task::JoinSet;
use tokio::time::{Duration, Instant};

use crate::inside;
use crate::load::{self, Connection};
use crate::mcp::{self, Target};
use crate::oauth::Flow;
use crate::options::{HEADLINE_LEVEL, Options, QUIET_LEVEL};
use crate::procfs::{self, Ticks};
use crate::report::{self, Era, Memory, Meta, NewUsers, Results, Row, Series};
use crate::servers::{self, BrokerSetup, Server};
use crate::stdio;

/// The broker's OAuth client at the Forgejo double.
const FORGEJO_CLIENT_ID: &str = "fjmcp-broker";
const FORGEJO_CLIENT_SECRET: &str = "fjmcp-broker-bench-secret";

/// Runs everything, writes the report, prints the summary.
pub(crate) async fn run(options: Options) -> Result<()> {
    let began = Instant::now();
    let ticks = Ticks::detect();
    let scratch = tempfile::Builder::new().prefix("fjmcp-bench.").tempdir()?;
    let mut meta = Meta::collect(&options)?;
    let max_c = options.max_concurrency();
    progress(&format!(
        "fjmcp-bench{}: {} cores, load {}; windows {:.1} s warm-up + {:.1} s",
        if options.smoke { " --smoke" } else { "" },
        meta.cores,
        meta.load_start,
        options.timing.warmup.as_secs_f64(),
        options.timing.measure.as_secs_f64()
    ));

    // 1. The stdio floor.
    let mut direct = Vec::new();
    for depth in [1, max_c] {
        progress(&format!("stdio floor, {depth} in flight"));
        let window = stdio::window(&options.echo_child, depth, options.timing, ticks).await?;
        direct.push(Row::new(depth, window));
    }

    // 2. The HTTP floor.
    let floor = servers::start_echo_floor(&options.bench_bin, scratch.path()).await?;
    let mut http_floor = Vec::new();
    for &c in &options.concurrencies {
        progress(&format!("HTTP floor, C={c}"));
        let mut workers = Vec::new();
        for i in 0..c {
            workers.push((
                Connection::open(floor.target.addr).await?,
                mcp::floor_call(&floor.target, &format!("floor-{i}"))?,
            ));
        }
        let window = load::run_window(workers, options.timing, floor.pid, ticks).await?;
        http_floor.push(Row::new(c, window));
    }
    floor.stop().await?;

    // 3. The broker at the headline level.
    let bench = BrokerBench::start(&options, scratch.path()).await?;
    let mut broker = bench.broker_at(HEADLINE_LEVEL).await?;
    let rss_fresh = procfs::status_kb(broker.pid, "VmRSS")?;
    let users = bench.users(&options, &broker).await?;
    let mut series = Vec::new();
    for era in [Era::Session2025, Era::Stateless2026] {
        series.push(
            bench
                .series(&options, &mut broker, &users, era, HEADLINE_LEVEL, ticks)
                .await?,
        );
        if let Some(dir) = &options.perf_dir {
            bench.profile(&options, &broker, &users, era, dir).await?;
        }
    }
    let new_users = bench.new_users(&options, &broker, &users).await?;
    let memory = bench.memory(&options, &broker, &users, rss_fresh).await?;

    // 4. The broker again at the quiet level, on the same state.
    broker.stop().await?;
    let mut broker = bench.broker_at(QUIET_LEVEL).await?;
    for era in [Era::Session2025, Era::Stateless2026] {
        series.push(
            bench
                .series(&options, &mut broker, &users, era, QUIET_LEVEL, ticks)
                .await?,
        );
    }
    broker.stop().await?;
    bench.double.clone().shutdown().await;

    // 5. supergateway.
    let supergateway = match &options.supergateway {
        Ok(dir) => {
            progress(&format!("supergateway, C={max_c}"));
            Ok(measure_supergateway(&options, dir, scratch.path(), max_c, ticks).await?)
        }
        Err(reason) => Err(reason.clone()),
    };

    meta.finish(began.elapsed());
    let results = Results {
        meta,
        direct,
        http_floor,
        series,
        supergateway,
        new_users,
        memory,
    };
    let summary = report::summary(&results);
    if let Some(path) = &options.output {
        std::fs::write(path, report::markdown(&results))
            .with_context(|| format!("write {}", path.display()))?;
        progress(&format!("wrote {}", path.display()));
    }
    println!("{summary}");
    Ok(())
}

/// A progress line on stderr (stdout carries the summary).
fn progress(line: &str) {
    eprintln!("[bench] {line}");
}

/// `err`, then the last lines of `server`'s log (the cause first, where it is read).
fn with_log(err: anyhow::Error, server: &Server) -> anyhow::Error {
    anyhow::anyhow!(
        "{err:#}\n--- last lines of the {} log ---\n{}",
        server.name,
        server.log_tail()
    )
}

/// The simulated users and what they hold.
#[derive(Debug)]
struct Users {
    /// Access tokens of the regular users; the first `max_concurrency` are the workers.
    tokens: Vec<String>,
    /// The workers' 2025-era sessions.
    sessions: Vec<String>,
    /// Tokens of users who have never sent `/mcp` a request: `new_users` for each era.
    fresh_2025: Vec<String>,
    fresh_2026: Vec<String>,
}

/// The Forgejo double and how the broker is started.
#[derive(Debug)]
struct BrokerBench {
    double: ForgejoDouble,
    setup: BrokerSetup,
}

fn login(i: usize) -> String {
    format!("bench-{i:04}")
}

impl BrokerBench {
    async fn start(options: &Options, scratch: &Path) -> Result<BrokerBench> {
        let listener = servers::listener()?;
        let public_url = format!("http://{}", listener.local_addr()?);
        let callback = format!("{public_url}/oauth/callback");
        let mut config = Config::default().with_app(App::confidential(
            FORGEJO_CLIENT_ID,
            FORGEJO_CLIENT_SECRET,
            &[&callback],
        ));
        for i in 0..user_count(options) {
            config = config.with_user(User::new(
                i64::try_from(i + 1)?,
                &login(i),
                &format!("{}-password", login(i)),
            ));
        }
        let double = ForgejoDouble::start(config)
            .await
            .context("start the Forgejo double")?;
        let state_dir = scratch.join("broker");
        std::fs::create_dir_all(&state_dir)?;
        let setup = BrokerSetup {
            binary: options.broker_bin.clone(),
            child_command: shell_words::quote(&options.echo_child.display().to_string())
                .into_owned(),
            forgejo_url: double.url(),
            forgejo_client_id: FORGEJO_CLIENT_ID.into(),
            forgejo_client_secret: FORGEJO_CLIENT_SECRET.into(),
            state_dir,
            listener,
            extra_env: options.broker_env.clone(),
        };
        Ok(BrokerBench { double, setup })
    }

    async fn broker_at(&self, level: &str) -> Result<Server> {
        progress(&format!("starting the broker at log level {level}"));
        self.setup.start(level).await
    }

    /// Tokens for every user (the real OAuth flow), then one session per worker.
    async fn users(&self, options: &Options, broker: &Server) -> Result<Users> {
        let regular = regular_users(options);
        progress(&format!(
            "OAuth flow for {} users",
            regular + 2 * options.new_users
        ));
        let flow = Flow::new(&self.setup.public_url()?, self.double.clone())?;
        let mut tokens = Vec::new();
        for i in 0..regular + 2 * options.new_users {
            tokens.push(flow.token_for(&login(i)).await?);
        }
        let fresh_2026 = tokens.split_off(regular + options.new_users);
        let fresh_2025 = tokens.split_off(regular);
        progress(&format!(
            "opening {} 2025-era sessions",
            options.max_concurrency()
        ));
        let mut sessions = Vec::new();
        let mut connection = Connection::open(broker.target.addr).await?;
        for token in &tokens[..options.max_concurrency()] {
            let session = mcp::initialize(&mut connection, &broker.target, Some(token)).await?;
            mcp::initialized(&mut connection, &broker.target, Some(token), &session).await?;
            sessions.push(session);
        }
        Ok(Users {
            tokens,
            sessions,
            fresh_2025,
            fresh_2026,
        })
    }

    /// One window per concurrency, worker i as user i.
    async fn series(
        &self,
        options: &Options,
        broker: &mut Server,
        users: &Users,
        era: Era,
        level: &str,
        ticks: Ticks,
    ) -> Result<Series> {
        let mut rows = Vec::new();
        for &c in &options.concurrencies {
            progress(&format!("broker {}, log {level}, C={c}", era.label()));
            let workers = workers(&broker.target, users, era, c).await?;
            let window = load::run_window(workers, options.timing, broker.pid, ticks)
                .await
                .map_err(|err| {
                    with_log(
                        err.context(format!("broker {} at C={c}", era.label())),
                        broker,
                    )
                })?;
            broker.check_alive()?;
            rows.push(Row::new(c, window));
        }
        Ok(Series {
            level: level.to_string(),
            era,
            rows,
        })
    }

    /// One extra window at the highest concurrency under `perf record -g`; not reported.
    async fn profile(
        &self,
        options: &Options,
        broker: &Server,
        users: &Users,
        era: Era,
        dir: &Path,
    ) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        let c = options.max_concurrency();
        let data = dir.join(format!("perf-{}.data", era.slug()));
        progress(&format!("profiling broker {} at C={c}", era.label()));
        let seconds = (options.timing.warmup + options.timing.measure).as_secs_f64();
        let mut perf = tokio::process::Command::new("perf")
            .args(["record", "-g", "-p", &broker.pid.to_string(), "-o"])
            .arg(&data)
            .args(["--", "sleep", &format!("{seconds:.1}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("run perf")?;
        let workers = workers(&broker.target, users, era, c).await?;
        load::run_window(workers, options.timing, broker.pid, Ticks::detect()).await?;
        let status = perf.wait().await?;
        if !status.success() {
            bail!("perf record failed ({status})");
        }
        progress(&format!("profile in {}", data.display()));
        Ok(())
    }

    /// New users' first responses, interleaved with direct starts of the child so drift
    /// in the machine's load hits both alike.
    async fn new_users(
        &self,
        options: &Options,
        broker: &Server,
        users: &Users,
    ) -> Result<NewUsers> {
        progress(&format!("{} new users per era", options.new_users));
        let target = &broker.target;
        let metrics = broker
            .metrics
            .context("the broker has no metrics listener")?;
        let before = inside::read(metrics).await?;
        let mut result = NewUsers::default();
        for i in 0..options.new_users {
            result
                .direct
                .push(stdio::direct_start(&options.echo_child).await?);

            let token = &users.fresh_2025[i];
            let mut connection = Connection::open(target.addr).await?;
            let began = Instant::now();
            let session = mcp::initialize(&mut connection, target, Some(token)).await?;
            result.broker_2025.push(began.elapsed());
            mcp::initialized(&mut connection, target, Some(token), &session).await?;

            let token = &users.fresh_2026[i];
            let mut connection = Connection::open(target.addr).await?;
            let began = Instant::now();
            mcp::one_stateless_call(&mut connection, target, token, "first-call").await?;
            result.broker_2026.push(began.elapsed());
        }
        result.inside = inside::read(metrics).await?.since(&before);
        Ok(result)
    }

    /// Brings the live children and idle sessions to the numbers asked for, lets the
    /// broker settle, and reads its memory.
    async fn memory(
        &self,
        options: &Options,
        broker: &Server,
        users: &Users,
        rss_fresh: u64,
    ) -> Result<Memory> {
        let target = &broker.target;
        // Workers and new users have children already; wake the rest of the users'.
        let mut all: Vec<&String> = users.tokens.iter().collect();
        all.extend(users.fresh_2025.iter().chain(&users.fresh_2026));
        progress(&format!(
            "memory: {} live children, {} idle sessions",
            options.live_children, options.idle_sessions
        ));
        let mut connection = Connection::open(target.addr).await?;
        for token in users.tokens.iter().skip(options.max_concurrency()) {
            mcp::one_stateless_call(&mut connection, target, token, "wake").await?;
        }
        let existing_sessions = users.sessions.len() + users.fresh_2025.len();
        let wanted = options.idle_sessions.saturating_sub(existing_sessions);
        let tokens: Vec<String> = all.iter().map(|t| t.to_string()).collect();
        let mut set = JoinSet::new();
        let lanes = 8;
        for lane in 0..lanes {
            let target = target.clone();
            let tokens = tokens.clone();
            set.spawn(async move {
                let mut connection = Connection::open(target.addr).await?;
                for n in (lane..wanted).step_by(lanes) {
                    let token = &tokens[n % tokens.len()];
                    let session = mcp::initialize(&mut connection, &target, Some(token)).await?;
                    mcp::initialized(&mut connection, &target, Some(token), &session).await?;
                }
                Ok::<_, anyhow::Error>(())
            });
        }
        while let Some(done) = set.join_next().await {
            done??;
        }
        // Let in-flight work and the allocator settle before reading.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let children = procfs::children_of(broker.pid);
        let mut children_rss = 0;
        for pid in &children {
            children_rss += procfs::status_kb(*pid, "VmRSS").unwrap_or(0);
        }
        Ok(Memory {
            live_children_wanted: options.live_children,
            live_children_seen: children.len(),
            sessions: existing_sessions + wanted,
            rss_fresh,
            rss: procfs::status_kb(broker.pid, "VmRSS")?,
            hwm: procfs::status_kb(broker.pid, "VmHWM")?,
            children_rss,
        })
    }
}

/// Users with tokens besides the new users: the workers, plus enough to reach the live
/// children asked for (the new users' children count too).
fn regular_users(options: &Options) -> usize {
    options
        .max_concurrency()
        .max(options.live_children.saturating_sub(2 * options.new_users))
}

fn user_count(options: &Options) -> usize {
    regular_users(options) + 2 * options.new_users
}

/// `c` workers, worker i as user i with its own connection (and, in the 2025 era, its
/// own session).
async fn workers(
    target: &Target,
    users: &Users,
    era: Era,
    c: usize,
) -> Result<Vec<(Connection, load::Call)>> {
    let mut workers = Vec::new();
    for i in 0..c {
        let marker = format!("user-{i}");
        let call = match era {
            Era::Session2025 => {
                mcp::session_call(target, Some(&users.tokens[i]), &users.sessions[i], &marker)?
            }
            Era::Stateless2026 => mcp::stateless_call(target, &users.tokens[i], &marker)?,
        };
        workers.push((Connection::open(target.addr).await?, call));
    }
    Ok(workers)
}

async fn measure_supergateway(
    options: &Options,
    dir: &Path,
    scratch: &Path,
    c: usize,
    ticks: Ticks,
) -> Result<Row> {
    let mut gateway = servers::start_supergateway(dir, &options.echo_child, scratch).await?;
    let mut workers = Vec::new();
    for i in 0..c {
        let mut connection = Connection::open(gateway.target.addr).await?;
        let session = mcp::initialize(&mut connection, &gateway.target, None)
            .await
            .map_err(|err| with_log(err, &gateway))?;
        mcp::initialized(&mut connection, &gateway.target, None, &session).await?;
        let call = mcp::session_call(&gateway.target, None, &session, &format!("user-{i}"))?;
        workers.push((connection, call));
    }
    let window = load::run_window(workers, options.timing, gateway.pid, ticks)
        .await
        .map_err(|err| with_log(err, &gateway))?;
    gateway.check_alive()?;
    gateway.stop().await?;
    Ok(Row::new(c, window))
}
