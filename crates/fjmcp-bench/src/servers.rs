//! The servers under test, each its own process: the broker binary, the HTTP echo
//! floor (this binary in `serve-echo` mode) and supergateway. Their logs go to files
//! in the run's temporary directory (not to a pipe this process would have to read,
//! which would cost it CPU inside the windows); a failed start shows the log's tail.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use rustix::process::{Pid, Signal, kill_process};
use tokio::process::{Child, Command};
use tokio::time::{Duration, Instant};

use crate::load::Connection;
use crate::mcp::Target;
use crate::procfs;

/// A server process the bench started.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) name: String,
    child: Child,
    pub(crate) pid: u32,
    pub(crate) target: Target,
    /// Where the broker serves its Prometheus metrics (not for the other servers).
    pub(crate) metrics: Option<SocketAddr>,
    /// Where its stdout and stderr go.
    log: PathBuf,
}

impl Server {
    /// The last lines of its log, for an error message.
    pub(crate) fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// SIGTERM, then up to ten seconds for it to drain and exit, then SIGKILL.
    pub(crate) async fn stop(mut self) -> Result<()> {
        if let Some(pid) = i32::try_from(self.pid).ok().and_then(Pid::from_raw) {
            let _ = kill_process(pid, Signal::TERM);
        }
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                self.child.kill().await?;
                bail!("{} did not exit on SIGTERM within 10 s", self.name);
            }
        }
        Ok(())
    }

    /// Fails when the process has exited.
    pub(crate) fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}); log:\n{}", self.name, self.log_tail());
        }
        Ok(())
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A listening socket on 127.0.0.1 with a port chosen by the system.
pub(crate) fn listener() -> Result<TcpListener> {
    TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")
}

fn log_file(dir: &Path, name: &str) -> Result<(PathBuf, Stdio, Stdio)> {
    let path = dir.join(format!("{name}.log"));
    let file = File::create(&path).with_context(|| format!("create {}", path.display()))?;
    let err = file.try_clone()?;
    Ok((path, Stdio::from(file), Stdio::from(err)))
}

/// Spawns `command` with its logs in `dir/<name>.log`, then waits until `ready` holds.
async fn start(
    mut command: Command,
    name: &str,
    dir: &Path,
    addr: SocketAddr,
    ready: impl AsyncFn(&Target) -> bool,
) -> Result<Server> {
    let (log, out, err) = log_file(dir, name)?;
    command.stdout(out).stderr(err).kill_on_drop(true);
    let child = command.spawn().with_context(|| format!("spawn {name}"))?;
    let pid = child.id().context("no pid")?;
    let mut server = Server {
        name: name.to_string(),
        child,
        pid,
        target: Target::new(addr),
        metrics: None,
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        server.check_alive()?;
        if ready(&server.target).await {
            return Ok(server);
        }
        if Instant::now() > deadline {
            bail!(
                "{name} did not become ready within 60 s; log:\n{}",
                server.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `GET path` answers 200.
async fn answers(target: &Target, path: &str) -> bool {
    let Ok(mut connection) = Connection::open(target.addr).await else {
        return false;
    };
    connection
        .get(path, &target.host)
        .await
        .is_ok_and(|status| status == 200)
}

/// How the broker is started.
#[derive(Debug)]
pub(crate) struct BrokerSetup {
    pub(crate) binary: PathBuf,
    /// `FJMCP_CHILD_COMMAND`: the echo child, quoted for the broker's shell-like split.
    pub(crate) child_command: String,
    pub(crate) forgejo_url: String,
    pub(crate) forgejo_client_id: String,
    pub(crate) forgejo_client_secret: String,
    /// Holds the SQLite store and sealing key, kept across restarts.
    pub(crate) state_dir: PathBuf,
    /// Bound by the bench and handed to every broker it starts as standard input.
    pub(crate) listener: TcpListener,
    /// Settings given with `--broker-env`, applied last.
    pub(crate) extra_env: Vec<(String, String)>,
}

impl BrokerSetup {
    pub(crate) fn public_url(&self) -> Result<String> {
        Ok(format!("http://{}", self.listener.local_addr()?))
    }

    /// Starts the broker at `log_level` with caps and rate limits that never refuse.
    pub(crate) async fn start(&self, log_level: &str) -> Result<Server> {
        let addr = self.listener.local_addr()?;
        let public_url = self.public_url()?;
        let store = format!("sqlite:{}", self.state_dir.join("broker.db").display());
        let mut command = Command::new(&self.binary);
        let handed: OwnedFd = self.listener.try_clone()?.into();
        command
            .arg("serve")
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("FJMCP_PUBLIC_URL", &public_url)
            .env("FJMCP_FORGEJO_URL", &self.forgejo_url)
            .env("FJMCP_FORGEJO_CLIENT_ID", &self.forgejo_client_id)
            .env("FJMCP_FORGEJO_CLIENT_SECRET", &self.forgejo_client_secret)
            .env("FJMCP_STORE", store)
            .env("FJMCP_LISTEN", "stdin")
            .env("FJMCP_LOG_FORMAT", "json")
            // Port 0: the broker binds it before it serves, and the bench finds
            // it among the broker's listening sockets (no port freed for it).
            .env("FJMCP_METRICS_LISTEN", "127.0.0.1:0")
            .env("FJMCP_LOG_LEVEL", log_level)
            .env("FJMCP_CHILD_COMMAND", &self.child_command)
            .env("FJMCP_MAX_CHILDREN", "5000")
            .env("FJMCP_MAX_SESSIONS_PER_USER", "100000")
            .env("FJMCP_MAX_IN_FLIGHT_PER_CHILD", "1024")
            // The OAuth flow of a hundred users in a few seconds, all from 127.0.0.1.
            .env("FJMCP_RATE_LIMIT_PER_IP", "off")
            .env("FJMCP_RATE_LIMIT_GLOBAL", "off")
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::from(handed));
        let mut server = start(
            command,
            &format!("broker-{log_level}"),
            &self.state_dir,
            addr,
            async |target| answers(target, "/healthz").await,
        )
        .await?;
        server.metrics = metrics_port(server.pid, addr.port())?
            .map(|port| SocketAddr::from(([127, 0, 0, 1], port)));
        Ok(server)
    }
}

/// The port the broker serves its metrics on: the one it listens on besides
/// `public_port` (the listener the bench handed it).
fn metrics_port(pid: u32, public_port: u16) -> Result<Option<u16>> {
    let others: Vec<u16> = procfs::listening_ports(pid)?
        .into_iter()
        .filter(|port| *port != public_port)
        .collect();
    match others[..] {
        [] => Ok(None),
        [port] => Ok(Some(port)),
        _ => bail!("the broker listens on several ports besides its own: {others:?}"),
    }
}

/// Starts the HTTP echo floor: `bench` re-executed as `serve-echo` on a socket it is
/// handed as standard input.
pub(crate) async fn start_echo_floor(bench: &Path, dir: &Path) -> Result<Server> {
    let listener = listener()?;
    let addr = listener.local_addr()?;
    let handed: OwnedFd = listener.into();
    let mut command = Command::new(bench);
    command.arg("serve-echo").stdin(Stdio::from(handed));
    start(command, "http-echo-floor", dir, addr, async |target| {
        answers(target, "/").await
    })
    .await
}

/// Starts supergateway (stateful Streamable HTTP, the echo child per session) with
/// the `node` on the PATH, from its pinned install in `install_dir`.
pub(crate) async fn start_supergateway(
    install_dir: &Path,
    child: &Path,
    dir: &Path,
) -> Result<Server> {
    let script = install_dir.join("node_modules/supergateway/dist/index.js");
    if !script.is_file() {
        bail!(
            "{} is missing: run `npm ci` in {}",
            script.display(),
            install_dir.display()
        );
    }
    // supergateway binds the port itself: take a free one and let it go.
    let addr = listener()?.local_addr()?;
    let child_command = shell_words::quote(&child.display().to_string()).into_owned();
    let mut command = Command::new("node");
    command
        .arg(&script)
        .args(["--stdio", &child_command])
        .args(["--outputTransport", "streamableHttp", "--stateful"])
        .args(["--port", &addr.port().to_string()])
        // Its `info` level logs every message's JSON; `none` is its cheapest setting.
        .args(["--logLevel", "none"])
        .stdin(Stdio::null());
    // It has no health endpoint: ready when it accepts connections.
    start(command, "supergateway", dir, addr, async |target| {
        tokio::net::TcpStream::connect(target.addr).await.is_ok()
    })
    .await
}
