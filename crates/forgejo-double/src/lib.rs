//! A test double of Forgejo's OAuth2 provider and a little of its API, **for trying and
//! testing only** — never put it in front of real users or data.
//!
//! fjmcp-broker's integration tests start it in-process ([`ForgejoDouble::start`]); the local
//! demo and end-to-end tests in other languages run the `forgejo-double` binary and steer it
//! through the `/_double/` HTTP control API.
//!
//! It mirrors Forgejo where a client can tell the difference:
//! - the paths, discovery document and error shapes of Forgejo's OAuth2 provider
//!   (`/login/oauth/authorize`, `/login/oauth/access_token`, `/login/oauth/userinfo`,
//!   `/login/oauth/introspect`, `/login/oauth/keys`) and `/api/v1/user`, `/api/v1/version`;
//! - one grant per (user, app), with Forgejo's refresh-token rotation: every token issuance
//!   for a grant (a new login's code exchange or a refresh) makes all older refresh tokens
//!   unusable (`unauthorized_client`, "token was already used"), while older access tokens
//!   stay valid until they expire; revoking the grant ends them all;
//! - public clients must use PKCE, may use any port on a loopback redirect URI, and always see
//!   a consent page; confidential clients get their code straight after sign-in.
//!
//! Where it deliberately differs, it is simpler or stricter, never more lenient:
//! - tokens are opaque random strings (`fgj_at_…`, `fgj_rt_…`), not JWTs, and no ID token is
//!   issued;
//! - the token endpoint insists on `redirect_uri` and checks it against the code's;
//! - a refresh token it never issued gets `invalid_grant` (Forgejo: `unauthorized_client`
//!   "unable to parse refresh token"), a wrong client secret always `invalid_client` (Forgejo
//!   answers `unauthorized_client` on the code grant), a missing `grant_type`
//!   `invalid_request` (Forgejo: `unsupported_grant_type`). Clients should treat all of these
//!   as final anyway.
//!
//! Tests steer it through the handle: add users and apps, switch auto-login on, inject
//! faults, move its clock forward to expire tokens without sleeping, revoke grants, and read
//! which tokens currently work and how often each endpoint was called.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use forgejo_double::{App, Config, ForgejoDouble, User};
//! let double = ForgejoDouble::start(
//!     Config::default()
//!         .with_user(User::new(1, "alice", "alice-password"))
//!         .with_app(App::confidential("broker", "secret", &["http://127.0.0.1:8080/callback"]))
//!         .with_auto_login("alice"),
//! )
//! .await?;
//! println!("Forgejo at {}", double.url());
//! double.shutdown().await;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod clock;
mod config;
mod faults;
mod pkce;
mod random;
mod routes;
mod state;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{
    App, Config, DEFAULT_ACCESS_TOKEN_LIFETIME, DEFAULT_REFRESH_TOKEN_LIFETIME, User,
};
pub use faults::{Endpoint, Fault};
pub use state::TokenStats;

use state::DoubleState;

/// How long [`ForgejoDouble::shutdown`] lets open connections finish before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running double. Cloning is cheap and every clone steers the same server, so a test can
/// hand one to a background task while it keeps another. The server stops on
/// [`ForgejoDouble::shutdown`] or when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct ForgejoDouble {
    inner: Arc<Running>,
}

#[derive(Debug)]
struct Running {
    /// What the handlers see; the handle steers the double through it.
    state: Arc<DoubleState>,
    /// The bound address (the real port when started on port 0).
    addr: SocketAddr,
    /// Tells the server to stop accepting and drain.
    stop: CancellationToken,
    /// The server task, taken by whichever clone shuts down first.
    task: Mutex<Option<JoinHandle<io::Result<()>>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl ForgejoDouble {
    /// Starts a double on `127.0.0.1` with a port chosen by the system.
    pub async fn start(config: Config) -> io::Result<ForgejoDouble> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        Self::start_on(listener, config).await
    }

    /// Starts a double on an already bound listener (the binary binds the address it was
    /// given). Fails with `InvalidInput` when `config` is inconsistent (duplicate logins or
    /// client ids, an unknown auto-login user).
    pub async fn start_on(listener: TcpListener, config: Config) -> io::Result<ForgejoDouble> {
        config
            .validate()
            .map_err(|problems| io::Error::new(io::ErrorKind::InvalidInput, problems))?;
        let addr = listener.local_addr()?;
        let state = Arc::new(DoubleState::new(format!("http://{addr}"), config));
        let app = routes::router(state.clone());
        let stop = CancellationToken::new();
        let serve =
            axum::serve(listener, app).with_graceful_shutdown(stop.clone().cancelled_owned());
        let task = tokio::spawn(async move { serve.await });
        Ok(ForgejoDouble {
            inner: Arc::new(Running {
                state,
                addr,
                stop,
                task: Mutex::new(Some(task)),
            }),
        })
    }

    /// The base URL, `http://127.0.0.1:PORT`, without trailing slash.
    pub fn url(&self) -> String {
        self.inner.state.base_url().to_owned()
    }

    /// The issuer in the discovery document: [`ForgejoDouble::url`] plus `/`, as Forgejo's
    /// issuer is its `ROOT_URL`.
    pub fn issuer(&self) -> String {
        format!("{}/", self.url())
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Adds a user, replacing any user with the same login.
    pub fn add_user(&self, user: User) {
        self.state().add_user(user);
    }

    /// Registers an app, replacing any app with the same client id (existing grants stay).
    pub fn add_app(&self, app: App) {
        self.state().add_app(app);
    }

    /// Signs every following authorization request in as `login` without a form or consent
    /// page (`None` brings the login form back). An unknown login falls back to the form.
    pub fn set_auto_login(&self, login: Option<&str>) {
        self.state().set_auto_login(login);
    }

    /// Makes the next `times` calls of `endpoint` fail with `fault`, after any faults already
    /// queued for that endpoint.
    pub fn inject_fault(&self, endpoint: Endpoint, fault: Fault, times: u32) {
        self.state().faults().inject(endpoint, fault, times);
    }

    /// Drops every fault not yet served.
    pub fn clear_faults(&self) {
        self.state().faults().clear();
    }

    /// Access tokens of `login` that `/api/v1` and userinfo currently accept, oldest first.
    pub fn valid_access_tokens(&self, login: &str) -> Vec<String> {
        self.state().valid_access_tokens(login)
    }

    /// Refresh tokens of `login` that the token endpoint currently accepts, oldest first.
    /// With rotation on, at most one per app.
    pub fn valid_refresh_tokens(&self, login: &str) -> Vec<String> {
        self.state().valid_refresh_tokens(login)
    }

    /// Deletes the grant of `login` for `client_id`, as when the user revokes the app in
    /// Forgejo's settings: every access and refresh token of the grant stops working at once.
    /// Returns whether there was such a grant.
    pub fn revoke_grant(&self, login: &str, client_id: &str) -> bool {
        self.state().revoke_grant(login, client_id)
    }

    /// Moves the double's clock forward, so tokens and codes expire without sleeping.
    pub fn advance_clock(&self, by: Duration) {
        self.state().clock().advance(by);
    }

    /// How many requests `endpoint` has received, faulted ones included.
    pub fn calls(&self, endpoint: Endpoint) -> u64 {
        self.state().faults().calls(endpoint)
    }

    /// Counters of the token endpoint: codes exchanged, refreshes served, rejections.
    pub fn token_stats(&self) -> TokenStats {
        self.state().token_stats()
    }

    /// Stops accepting connections, lets open ones finish for a few seconds, then stops.
    /// Other clones of this handle see a stopped server afterwards.
    pub async fn shutdown(self) {
        self.inner.stop.cancel();
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(mut task) = task else {
            return;
        };
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => tracing::warn!(%err, "forgejo-double server failed"),
            Ok(Err(err)) => tracing::warn!(%err, "forgejo-double server task failed"),
            Err(_) => {
                tracing::warn!("forgejo-double connections did not close in time; aborting");
                task.abort();
            }
        }
    }

    fn state(&self) -> &DoubleState {
        &self.inner.state
    }
}
