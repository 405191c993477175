//! The `fjmcp-broker` binary: parse, validate, prepare, bind, serve, drain.

use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use fjmcp_broker::children::{limits, probe};
use fjmcp_broker::cli::{Cli, Command};
use fjmcp_broker::config::{self, ProcessEnvironment};
use fjmcp_broker::server::{self, StartError};
use fjmcp_broker::{admin, telemetry, version};

/// mimalloc rather than glibc's malloc: on the hot path (a few dozen small
/// allocations per request, freed on another worker thread as often as not)
/// glibc's arenas, their locks and consolidation took about an eighth of the
/// broker's CPU (see BENCHMARKS.md). Built with `no_thp` so transparent huge
/// pages do not inflate the resident set the memory target is judged on.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for a configuration the broker refuses (as sysexits' EX_USAGE-like 2).
const EXIT_CONFIG: u8 = 2;
/// Exit code for a failure to start with a valid configuration.
const EXIT_START: u8 = 1;
/// How long `check-config` waits for `<child> --version`.
const CHILD_VERSION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn main() -> ExitCode {
    // The hidden resource-limit wrapper (children/limits.rs) is this binary re-executed as a
    // child: it must act before clap, configuration or logging touch anything.
    let mut args = std::env::args_os();
    if args.nth(1).as_deref() == Some(std::ffi::OsStr::new(limits::EXEC_LIMITED)) {
        let error = limits::exec_limited(args);
        eprintln!("fjmcp-broker {}: {error}", limits::EXEC_LIMITED);
        return ExitCode::from(error.exit_code());
    }
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve(_)) {
        // Before any secret is read: processes of the same user (children included) must
        // not read the broker's memory or /proc/<pid>/environ (client secret, database
        // password), and no core dump may hold them.
        use rustix::process::{DumpableBehavior, set_dumpable_behavior};
        if let Err(e) = set_dumpable_behavior(DumpableBehavior::NotDumpable) {
            eprintln!("fjmcp-broker: cannot make the process non-dumpable: {e}");
            return ExitCode::from(EXIT_START);
        }
    }
    let flags = cli.command.flags();
    let env = ProcessEnvironment;
    let config_file = config::config_file(flags.config.clone(), &env);
    let (config, layers) = match config::load(&flags.given(), config_file.as_deref(), &env) {
        Ok(loaded) => loaded,
        Err(problems) => {
            eprint!("fjmcp-broker: {problems}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("fjmcp-broker: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_START);
        }
    };
    match cli.command {
        Command::CheckConfig(args) => {
            print!("{}", config::describe(&layers));
            if args.skip_child_check {
                println!("# child_command: not checked (--skip-child-check)");
            } else {
                match runtime.block_on(probe::probe(
                    &config.children.command,
                    &config.children.inherited_env,
                    CHILD_VERSION_TIMEOUT,
                )) {
                    Ok(found) => print!("{found}"),
                    Err(e) => {
                        // Serving would fail every spawn: a configuration error.
                        eprint!(
                            "fjmcp-broker: {}",
                            config::ConfigErrors(vec![format!(
                                "child_command: {e}; install forgejo-mcp (README, \"Installing forgejo-mcp\") or set child_command (--child-command, FJMCP_CHILD_COMMAND) to the program's full path"
                            )])
                        );
                        return ExitCode::from(EXIT_CONFIG);
                    }
                }
            }
            println!("# configuration is valid");
            ExitCode::SUCCESS
        }
        Command::Serve(_) => runtime.block_on(serve(config)),
        Command::Admin(args) => {
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let mut out = String::new();
            let result = runtime.block_on(admin::run(&args, &config, &mut out));
            print!("{out}");
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("fjmcp-broker admin: {e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
    }
}

/// The socket to accept on: bound here, or inherited as standard input.
async fn listener(listen: config::Listen) -> std::io::Result<tokio::net::TcpListener> {
    match listen {
        config::Listen::Address(addr) => tokio::net::TcpListener::bind(addr).await,
        config::Listen::Stdin => {
            use std::os::fd::AsFd;
            let fd = std::io::stdin().as_fd().try_clone_to_owned()?;
            let listener = std::net::TcpListener::from(fd);
            // Fails with "not a socket" unless stdin really is one.
            listener.local_addr()?;
            listener.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(listener)
        }
    }
}

async fn serve(config: config::Config) -> ExitCode {
    let _logs = telemetry::init(config.log_format, &config.log_level);
    // One TLS provider for every client (Forgejo, metadata documents, PostgreSQL).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    tracing::info!(version = %version::LONG, public_url = config.public_url.as_str(), "starting");
    let listen = config.listen;
    let metrics_listen = config.metrics_listen;
    let mut broker = match server::prepare(config).await {
        Ok(broker) => broker,
        Err(e @ StartError::SealingKey(_)) => {
            tracing::error!(error = %e, "refusing to start");
            eprintln!("fjmcp-broker: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("fjmcp-broker: {e}");
            return ExitCode::from(EXIT_START);
        }
    };
    let listener = match listener(listen).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error = %e, ?listen, "cannot listen");
            eprintln!("fjmcp-broker: cannot listen ({listen:?}): {e}");
            return ExitCode::from(EXIT_START);
        }
    };
    if let Some(addr) = metrics_listen {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(metrics) => {
                match metrics.local_addr() {
                    Ok(addr) => tracing::info!(%addr, "serving /metrics"),
                    Err(e) => tracing::warn!(error = %e, "serving /metrics on an unknown address"),
                }
                broker.serve_metrics_on(metrics);
            }
            Err(e) => {
                tracing::error!(error = %e, %addr, "cannot listen for metrics");
                eprintln!("fjmcp-broker: cannot listen for metrics on {addr}: {e}");
                return ExitCode::from(EXIT_START);
            }
        }
    }
    let shutdown = CancellationToken::new();
    if let Err(e) = server::cancel_on_signals(shutdown.clone()) {
        eprintln!("fjmcp-broker: cannot install signal handlers: {e}");
        return ExitCode::from(EXIT_START);
    }
    match listener.local_addr() {
        Ok(addr) => tracing::info!(%addr, "listening"),
        Err(e) => tracing::warn!(error = %e, "listening on an unknown address"),
    }
    match server::serve(listener, broker, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::from(EXIT_START)
        }
    }
}
