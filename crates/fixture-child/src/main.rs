//! `fixture-child`: parse flags, check the Forgejo token like forgejo-mcp does, then serve MCP
//! on stdin/stdout until stdin closes or SIGTERM arrives.
//!
//! Exit status: 0 on stdin EOF or SIGTERM, 1 when the start-up Forgejo check fails, 2 for bad
//! flags (clap), 3 from the `crash` tool.

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use fixture_child::Options;
use fixture_child::forgejo::{self, AccessToken, Forgejo};
use tokio::io::AsyncWriteExt;
use tracing_subscriber::EnvFilter;

/// A stdio MCP server with the MCP conformance suite's fixtures, standing in for forgejo-mcp.
#[derive(Debug, Parser)]
#[command(name = "fixture-child", version)]
struct Cli {
    /// Transport. Only stdio exists; the flag is accepted so a forgejo-mcp command line
    /// (`--transport stdio`) works unchanged.
    #[arg(short = 't', long, default_value = "stdio", value_parser = ["stdio"])]
    transport: String,

    /// Forgejo base URL; overrides FORGEJO_URL. The token is only read from
    /// FORGEJO_ACCESS_TOKEN, never from the command line.
    #[arg(long)]
    url: Option<String>,

    /// Act as if the client declared sampling, elicitation and roots (for a broker that
    /// initializes its child with empty capabilities but relays server→client requests).
    #[arg(long)]
    assume_client_capabilities: bool,

    /// Seconds a server→client request (sampling, elicitation) waits for the client's answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    client_request_timeout_secs: u64,

    /// Misbehaviour: never answer `initialize`.
    #[arg(long)]
    ignore_initialize: bool,

    /// Misbehaviour: wait this long after the start-up check before reading stdin.
    #[arg(long, value_name = "MS")]
    startup_delay_ms: Option<u64>,

    /// Misbehaviour: write one line that is not JSON-RPC to stdout before serving.
    #[arg(long)]
    noise_on_stdout: bool,
}

fn main() -> ExitCode {
    // stdout carries JSON-RPC only; every log line goes to stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("fixture-child: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run(cli));
    // Tokio reads stdin on a blocking thread that cannot be interrupted; do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

/// Everything after flag parsing.
async fn run(cli: Cli) -> ExitCode {
    let forgejo = match connect_forgejo(cli.url).await {
        Ok(forgejo) => forgejo,
        Err(message) => {
            eprintln!("fixture-child: {message}");
            return ExitCode::from(1);
        }
    };
    let options = Options {
        assume_client_capabilities: cli.assume_client_capabilities,
        ignore_initialize: cli.ignore_initialize,
        client_request_timeout: Duration::from_secs(cli.client_request_timeout_secs),
        forgejo,
    };
    if let Some(ms) = cli.startup_delay_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if cli.noise_on_stdout {
        let mut stdout = tokio::io::stdout();
        let _ = stdout
            .write_all(b"fixture-child: this line is not JSON-RPC\n")
            .await;
        let _ = stdout.flush().await;
    }

    let mut sigterm = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        Ok(signal) => signal,
        Err(e) => {
            eprintln!("fixture-child: cannot install the SIGTERM handler: {e}");
            return ExitCode::FAILURE;
        }
    };
    tokio::select! {
        served = fixture_child::serve(tokio::io::stdin(), tokio::io::stdout(), options) => match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("serving failed: {e:#}");
                ExitCode::FAILURE
            }
        },
        _ = sigterm.recv() => {
            tracing::info!("SIGTERM received; exiting");
            ExitCode::SUCCESS
        }
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("SIGINT received; exiting");
            ExitCode::SUCCESS
        }
    }
}

/// The start-up check of forgejo-mcp: with a Forgejo URL, `GET /api/v1/user` must succeed
/// before serving. Without one there is nothing to check (conformance runs, unit tests).
async fn connect_forgejo(url_flag: Option<String>) -> Result<Option<Forgejo>, String> {
    let Some(url) = url_flag.or_else(|| non_empty_env(forgejo::ENV_URL)) else {
        tracing::info!("FORGEJO_URL is not set; skipping the Forgejo connection check");
        return Ok(None);
    };
    let token = non_empty_env(forgejo::ENV_TOKEN).map(AccessToken::new);
    if token.is_none() {
        tracing::warn!("FORGEJO_ACCESS_TOKEN is not set; Forgejo will likely refuse the check");
    }
    let client =
        Forgejo::new(&url, token).map_err(|e| format!("cannot build the Forgejo client: {e}"))?;
    let login = client
        .current_user()
        .await
        .map_err(|e| format!("Forgejo connection check failed: {e}"))?;
    tracing::info!(%login, "Forgejo connection check passed");
    Ok(Some(client))
}

/// An environment variable, treating empty as unset. The child is configured
/// through its environment, as forgejo-mcp is.
#[allow(clippy::disallowed_methods)]
fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}
