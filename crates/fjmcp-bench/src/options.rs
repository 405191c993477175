//! What a run measures and how, resolved from the command line: the binaries,
//! the windows, the concurrencies, the numbers of users, sessions and children,
//! and the log levels the broker is measured at.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use tokio::time::Duration;

use crate::load::Timing;

/// The log level the targets are judged at: the broker's default, what operators run.
pub(crate) const HEADLINE_LEVEL: &str = "info";
/// The quieter level measured beside it, showing what the per-response log line costs.
pub(crate) const QUIET_LEVEL: &str = "warn";

/// Everything a run needs, resolved from the command line.
#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) smoke: bool,
    pub(crate) broker_bin: PathBuf,
    pub(crate) echo_child: PathBuf,
    pub(crate) bench_bin: PathBuf,
    /// `Err`: supergateway is not measured, for the reason given.
    pub(crate) supergateway: Result<PathBuf, String>,
    pub(crate) output: Option<PathBuf>,
    pub(crate) timing: Timing,
    pub(crate) concurrencies: Vec<usize>,
    /// New users measured per era.
    pub(crate) new_users: usize,
    /// Users with a live child when the broker's memory is read.
    pub(crate) live_children: usize,
    /// 2025-era sessions open (idle) when the broker's memory is read.
    pub(crate) idle_sessions: usize,
    pub(crate) perf_dir: Option<PathBuf>,
    /// Extra broker settings from `--broker-env`.
    pub(crate) broker_env: Vec<(String, String)>,
    pub(crate) invoked_as: String,
}

impl Options {
    pub(crate) fn from_cli(cli: crate::Cli) -> Result<Options> {
        let bench_bin = std::env::current_exe().context("locate this binary")?;
        let bin_dir = bench_bin
            .parent()
            .context("this binary has no directory")?
            .to_path_buf();
        let broker_bin = cli
            .broker_bin
            .unwrap_or_else(|| bin_dir.join("fjmcp-broker"));
        let echo_child = cli
            .echo_child
            .unwrap_or_else(|| bin_dir.join("bench-echo-child"));
        for (what, path) in [("broker", &broker_bin), ("echo child", &echo_child)] {
            if !path.is_file() {
                bail!("the {what} binary {} does not exist", path.display());
            }
        }
        let installed = cli
            .supergateway_dir
            .join("node_modules/supergateway/dist/index.js")
            .is_file();
        let supergateway = if cli.no_supergateway {
            Err("left out (--no-supergateway)".to_string())
        } else if cli.smoke && !installed {
            Err(format!(
                "not installed in {} (a smoke run leaves it out)",
                cli.supergateway_dir.display()
            ))
        } else {
            Ok(std::path::absolute(&cli.supergateway_dir)?)
        };
        let (warmup, window) = if cli.smoke { (0.2, 0.3) } else { (1.0, 4.0) };
        let seconds = |s: f64| -> Result<Duration> {
            Duration::try_from_secs_f64(s).map_err(|e| anyhow::anyhow!("bad duration {s}: {e}"))
        };
        let timing = Timing {
            warmup: seconds(cli.warmup.unwrap_or(warmup))?,
            measure: seconds(cli.window.unwrap_or(window))?,
        };
        if timing.measure.is_zero() {
            bail!("--window must be positive");
        }
        let invoked_as = cli.invoked_as.unwrap_or_else(|| {
            std::env::args()
                .map(|a| shell_words::quote(&a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        });
        let mut broker_env = Vec::new();
        for pair in &cli.broker_env {
            match pair.split_once('=') {
                Some((name, value)) if name.starts_with("FJMCP_") => {
                    broker_env.push((name.to_string(), value.to_string()));
                }
                _ => bail!("--broker-env wants FJMCP_NAME=value, not {pair:?}"),
            }
        }
        let output = match (cli.output, cli.smoke) {
            (Some(path), _) => Some(path),
            (None, true) => None,
            (None, false) => Some(PathBuf::from("BENCHMARKS.md")),
        };
        Ok(Options {
            smoke: cli.smoke,
            broker_bin: std::path::absolute(broker_bin)?,
            echo_child: std::path::absolute(echo_child)?,
            bench_bin,
            supergateway,
            output,
            timing,
            concurrencies: if cli.smoke {
                vec![1, 4]
            } else {
                vec![1, 8, 64]
            },
            // A child's start varies by milliseconds from one to the next on a small VM, so
            // take many samples; 18 per era plus the 64 workers are the 100 live children
            // the memory measurement asks for.
            new_users: if cli.smoke { 1 } else { 18 },
            live_children: if cli.smoke { 6 } else { 100 },
            idle_sessions: if cli.smoke { 12 } else { 1000 },
            perf_dir: cli.perf_dir,
            broker_env,
            invoked_as,
        })
    }

    pub(crate) fn max_concurrency(&self) -> usize {
        self.concurrencies.iter().copied().max().unwrap_or(1)
    }
}
