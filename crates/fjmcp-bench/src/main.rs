//! `fjmcp-bench`: measures fjmcp-broker's hot path in one run, side by side with two
//! floors (the echo child driven directly over stdio; a plain hyper HTTP echo server)
//! and with supergateway, and writes `BENCHMARKS.md`. `--smoke` runs the same harness
//! with tiny windows, so CI proves it still works end to end; no mode asserts numbers.
//!
//! See README.md ("Benchmarks") for the command, and the generated BENCHMARKS.md for
//! what each number is.

#![forbid(unsafe_code)]

mod echo_server;
mod inside;
mod load;
mod mcp;
mod oauth;
mod options;
mod procfs;
mod report;
mod run;
mod servers;
mod stdio;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Benchmark of fjmcp-broker against two floors and supergateway; writes BENCHMARKS.md.
#[derive(Debug, Parser)]
#[command(name = "fjmcp-bench", version)]
struct Cli {
    /// A few seconds in total: tiny windows and a handful of users, to prove the harness
    /// works. Writes no BENCHMARKS.md unless --output says where.
    #[arg(long)]
    smoke: bool,

    /// The broker binary [default: fjmcp-broker next to this binary].
    #[arg(long, value_name = "PATH")]
    broker_bin: Option<PathBuf>,

    /// The echo child [default: bench-echo-child next to this binary].
    #[arg(long, value_name = "PATH")]
    echo_child: Option<PathBuf>,

    /// Where supergateway's pinned package is installed (`npm ci` there).
    #[arg(long, value_name = "DIR", default_value = "bench/supergateway")]
    supergateway_dir: PathBuf,

    /// Leave supergateway out (its target is then reported as not measured). A smoke
    /// run leaves it out by itself when it is not installed.
    #[arg(long)]
    no_supergateway: bool,

    /// Where to write the report [default: BENCHMARKS.md; none with --smoke].
    #[arg(long, value_name = "PATH")]
    output: Option<PathBuf>,

    /// Seconds each window measures, after its warm-up [default: 4; 0.3 with --smoke].
    #[arg(long, value_name = "SECONDS")]
    window: Option<f64>,

    /// Seconds each window warms up first [default: 1; 0.2 with --smoke].
    #[arg(long, value_name = "SECONDS")]
    warmup: Option<f64>,

    /// Also record a CPU profile of the broker (`perf record -g`) in one extra,
    /// unreported window per era at the highest concurrency, into this directory.
    #[arg(long, value_name = "DIR")]
    perf_dir: Option<PathBuf>,

    /// An extra setting for every broker the run starts, as `FJMCP_NAME=value`
    /// (repeatable), to measure a setting's cost; the report lists them.
    #[arg(long, value_name = "NAME=VALUE")]
    broker_env: Vec<String>,

    /// The command line to print in the report as the one that produced it
    /// [default: this process's arguments].
    #[arg(long, value_name = "TEXT")]
    invoked_as: Option<String>,

    #[command(subcommand)]
    mode: Option<Mode>,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Internal: be the HTTP echo floor on the listening socket given as standard input.
    #[command(hide = true)]
    ServeEcho,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.mode {
        Some(Mode::ServeEcho) => echo_server::serve(),
        None => options::Options::from_cli(cli).and_then(|options| {
            // One thread: the load generator (and the in-process Forgejo double) never
            // take more than one core from the servers under test on a small machine.
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(run::run(options))
        }),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fjmcp-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}
