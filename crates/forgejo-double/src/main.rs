//! `forgejo-double`: runs the Forgejo test double as a process for the local demo and for
//! end-to-end tests in other languages. For trying and testing only.

#![forbid(unsafe_code)]

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory as _, Parser};
use forgejo_double::{App, Config, ForgejoDouble, User};

/// A test double of Forgejo's OAuth2 provider and a little of its API, FOR TRYING AND TESTING
/// ONLY.
///
/// Serves /login/oauth/*, /api/v1/user and /api/v1/version like Forgejo, and is steerable over
/// HTTP under /_double/. Plain-text passwords, no TLS, an unauthenticated control API: never
/// expose it. It listens on loopback only.
///
/// Prints "forgejo-double listening on http://ADDR" to stdout once it accepts connections;
/// logs go to stderr (RUST_LOG sets the level). Stops cleanly on SIGINT or SIGTERM.
#[derive(Debug, Parser)]
#[command(version, verbatim_doc_comment)]
struct Args {
    /// Address to listen on; must be a loopback address. Port 0 picks a free port.
    #[arg(long, env = "FORGEJO_DOUBLE_LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,

    /// Client id of an OAuth2 application to register (needs --redirect-uri).
    #[arg(long, env = "FORGEJO_DOUBLE_CLIENT_ID", requires = "redirect_uri")]
    client_id: Option<String>,

    /// Its client secret; without one the application is a public client (PKCE required).
    #[arg(long, env = "FORGEJO_DOUBLE_CLIENT_SECRET", requires = "client_id")]
    client_secret: Option<String>,

    /// A redirect URI of the application (repeatable; the variable takes a comma-separated list).
    #[arg(
        long,
        env = "FORGEJO_DOUBLE_REDIRECT_URIS",
        value_delimiter = ',',
        requires = "client_id"
    )]
    redirect_uri: Vec<String>,

    /// A user as LOGIN:PASSWORD (repeatable; the variable takes a comma-separated list).
    /// Users get ids 1, 2, … in order and the e-mail LOGIN@example.com.
    #[arg(
        long = "user",
        env = "FORGEJO_DOUBLE_USERS",
        value_name = "LOGIN:PASSWORD",
        value_delimiter = ',',
        default_value = "alice:alice-password",
        value_parser = parse_user
    )]
    users: Vec<(String, String)>,

    /// Sign every authorization request in as this user, without login form or consent page.
    #[arg(long, env = "FORGEJO_DOUBLE_AUTO_LOGIN", value_name = "LOGIN")]
    auto_login: Option<String>,

    /// Lifetime of issued access tokens, in seconds.
    #[arg(
        long,
        env = "FORGEJO_DOUBLE_ACCESS_TOKEN_LIFETIME",
        value_name = "SECS",
        default_value_t = 3600,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    access_token_lifetime: u64,

    /// Keep refresh tokens valid after use (Gitea's default) instead of rotating them
    /// (Forgejo's INVALIDATE_REFRESH_TOKENS=true, the default here too).
    #[arg(long, env = "FORGEJO_DOUBLE_KEEP_REFRESH_TOKENS")]
    keep_refresh_tokens: bool,
}

fn parse_user(value: &str) -> Result<(String, String), String> {
    match value.split_once(':') {
        Some((login, password)) if !login.is_empty() && !password.is_empty() => {
            Ok((login.to_owned(), password.to_owned()))
        }
        _ => Err("expected LOGIN:PASSWORD with both parts non-empty".to_owned()),
    }
}

impl Args {
    /// Turns the arguments into a config, or every problem found, at once.
    fn config(&self) -> Result<Config, Vec<String>> {
        let mut problems = Vec::new();
        if !self.listen.ip().is_loopback() {
            problems.push(format!(
                "--listen {} is not a loopback address; the double must not be reachable from other hosts",
                self.listen
            ));
        }
        let mut config = Config::default()
            .with_access_token_lifetime(Duration::from_secs(self.access_token_lifetime))
            .with_invalidate_refresh_tokens(!self.keep_refresh_tokens);
        for (index, (login, password)) in self.users.iter().enumerate() {
            let id = i64::try_from(index).unwrap_or(i64::MAX - 1) + 1;
            config = config.with_user(User::new(id, login, password));
        }
        if let Some(client_id) = &self.client_id {
            let uris: Vec<&str> = self.redirect_uri.iter().map(String::as_str).collect();
            for uri in &uris {
                if url::Url::parse(uri).is_err() {
                    problems.push(format!("--redirect-uri {uri:?} is not an absolute URL"));
                }
            }
            config = config.with_app(match self.client_secret.as_deref() {
                Some(secret) if !secret.is_empty() => App::confidential(client_id, secret, &uris),
                _ => App::public(client_id, &uris),
            });
        }
        if let Some(login) = &self.auto_login {
            config = config.with_auto_login(login);
        }
        if let Err(message) = config.validate() {
            problems.push(message);
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = match args.config() {
        Ok(config) => config,
        Err(problems) => Args::command()
            .error(clap::error::ErrorKind::ValueValidation, problems.join("\n"))
            .exit(),
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("forgejo-double: cannot listen on {}: {err}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let double = match ForgejoDouble::start_on(listener, config).await {
        Ok(double) => double,
        Err(err) => {
            eprintln!("forgejo-double: cannot start: {err}");
            return ExitCode::FAILURE;
        }
    };
    // Scripts wait for this exact line; flush so it is not stuck in a pipe buffer.
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "forgejo-double listening on {}", double.url());
    let _ = stdout.flush();

    wait_for_signal().await;
    tracing::info!("shutting down");
    double.shutdown().await;
    ExitCode::SUCCESS
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(err) => {
                tracing::warn!(%err, "cannot watch SIGTERM; only Ctrl-C stops the double");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
