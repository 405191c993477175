//! Assembling the broker from a validated configuration, serving, and draining.
//!
//! Every part is built here ([`assemble`]) and handed to the router as state;
//! nothing below constructs its own dependencies. The listener and the
//! shutdown signal are passed in, so tests bind `127.0.0.1:0` and stop the
//! broker without sending signals. Background work belongs to one
//! [`TaskTracker`], which shutdown drains within the grace period.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::account::AccountShared;
use crate::children::{Pool, PoolSettings};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, SealingKeyFile};
use crate::credentials::{CredentialSettings, Credentials};
use crate::crypto::{KeyError, Sealer, SealingKey};
use crate::forgejo::{EndpointOverrides, ForgejoClient};
use crate::http::{AppState, RateLimits, Routes, metrics_router, router};
use crate::mcp::McpShared;
use crate::oauth::client_metadata::{FetchPolicy, MetadataFetcher};
use crate::oauth::{BearerShared, OAuthShared, VerifiedTokens};
use crate::shared::Shared;
use crate::store::{Store, StoreError};

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A configuration problem found only at start (the key file): exit code 2.
    #[error(transparent)]
    SealingKey(#[from] KeyError),
    /// The store is unreachable or its schema unusable: exit code 1.
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    /// The private directory for children's working directories cannot be
    /// made safely: exit code 1.
    #[error("cannot create the children's directory: {0}")]
    WorkRoot(std::io::Error),
}

/// The assembled broker, ready to serve.
#[derive(Debug)]
pub struct Broker {
    config: Arc<Config>,
    state: AppState,
    store: Store,
    clock: Arc<dyn Clock>,
    pool: Pool,
    /// Owns every background task: sweepers, children's pipes, streams.
    tasks: TaskTracker,
    /// Where `/metrics` is served, if anywhere.
    metrics_listener: Option<TcpListener>,
}

/// Loads the sealing key (generating it on a first SQLite start), opens the
/// store (applying migrations), makes the children's private directory and
/// assembles the broker.
pub async fn prepare(config: Config) -> Result<Broker, StartError> {
    let sealer = sealer(&config.sealing_key, config.sealing_key.generate_if_missing)?;
    tracing::info!(
        key_id = %sealer.current_key_id(),
        path = %config.sealing_key.path.display(),
        previous_key_ids = ?sealer.previous_key_ids(),
        "sealing key loaded"
    );
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = Store::open(&config.store, Arc::new(sealer), clock.clone()).await?;
    tracing::info!(backend = store.backend().name(), "store ready");
    crate::children::create_work_root(&config.children.work_root).map_err(StartError::WorkRoot)?;
    if let Some(user) = config.children.run_as {
        tracing::info!(
            uid = user.uid,
            gid = user.gid,
            "children run as another user (needs root, or CAP_SETUID, CAP_SETGID, CAP_CHOWN and CAP_KILL)"
        );
    }
    Ok(assemble(Arc::new(config), store, clock))
}

/// The sealer of the configured key files: the current key (generated first
/// when `generate` and it does not exist) and the retired keys that can still
/// open older values.
pub(crate) fn sealer(keys: &SealingKeyFile, generate: bool) -> Result<Sealer, KeyError> {
    let current = if generate {
        SealingKey::load_or_generate(&keys.path)?
    } else {
        SealingKey::load(&keys.path)?
    };
    keys.previous
        .iter()
        .try_fold(Sealer::new(current), |sealer, path| {
            Ok(sealer.with_previous(SealingKey::load(path)?))
        })
}

/// Builds every part from the configuration and an open store. Does no I/O:
/// Forgejo's endpoints are discovered on first use, children start on demand.
pub fn assemble(config: Arc<Config>, store: Store, clock: Arc<dyn Clock>) -> Broker {
    let tasks = TaskTracker::new();
    let forgejo = ForgejoClient::new(
        &config.forgejo.url,
        &config.forgejo.client_id,
        config.forgejo.client_secret.clone(),
        &config.forgejo.scopes,
        EndpointOverrides {
            authorize: config.forgejo.authorize_url.clone(),
            token: config.forgejo.token_url.clone(),
            userinfo: config.forgejo.userinfo_url.clone(),
        },
    );
    if config.oauth.client_metadata_allow_loopback_http {
        tracing::warn!(
            "client metadata documents may be fetched over http from loopback: a TEST-ONLY setting"
        );
    }
    let client_metadata = MetadataFetcher::new(FetchPolicy {
        allow_loopback_http: config.oauth.client_metadata_allow_loopback_http,
        ..FetchPolicy::default()
    });
    let credentials = Credentials::new(
        store.clone(),
        forgejo.clone(),
        clock.clone(),
        CredentialSettings {
            // A child reads its token once, at start: it must get one that lasts
            // (a minute with the default five-minute lead).
            min_validity: config.children.refresh_lead / 5,
            refresh_lead: config.children.refresh_lead,
            check_interval: config.children.forgejo_check_interval,
        },
    );
    let pool = Pool::new(
        PoolSettings::from_config(&config),
        credentials.clone(),
        clock.clone(),
        tasks.clone(),
    );
    let verified = Arc::new(VerifiedTokens::default());
    let state = Shared::new(Routes {
        account: Shared::new(AccountShared {
            config: config.clone(),
            store: store.clone(),
            clock: clock.clone(),
            forgejo: forgejo.clone(),
            credentials: credentials.clone(),
        }),
        oauth: Shared::new(OAuthShared {
            config: config.clone(),
            store: store.clone(),
            clock: clock.clone(),
            forgejo,
            client_metadata,
            credentials: credentials.clone(),
            verified: verified.clone(),
        }),
        bearer: Shared::new(BearerShared {
            config: config.clone(),
            store: store.clone(),
            clock: clock.clone(),
            verified,
        }),
        mcp: Shared::new(McpShared::new(
            config.clone(),
            store.clone(),
            clock.clone(),
            pool.clone(),
            credentials,
            tasks.clone(),
        )),
        store: store.clone(),
        config: config.clone(),
        limits: RateLimits::new(&config.http),
    });
    Broker {
        config,
        state,
        store,
        clock,
        pool,
        tasks,
        metrics_listener: None,
    }
}

impl Broker {
    /// The broker's routes with their middleware, for serving (or for tests
    /// that drive the router in-process).
    pub fn router(&self) -> Router {
        router(self.state.clone())
    }

    /// Serves `/metrics` on `listener` too (the metrics listener, never the
    /// public one).
    pub fn serve_metrics_on(&mut self, listener: TcpListener) {
        self.metrics_listener = Some(listener);
    }
}

/// Serves until `shutdown` is cancelled, then stops accepting, lets in-flight
/// requests finish within the configured grace period, stops the children,
/// drains the background tasks and closes the store.
pub async fn serve(
    listener: TcpListener,
    mut broker: Broker,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let grace = broker.config.http.shutdown_grace;
    let tasks = broker.tasks.clone();
    tasks.spawn(crate::oauth::sweeper::run(
        broker.store.clone(),
        broker.clock.clone(),
        crate::oauth::sweeper::Retention::from_config(&broker.config),
        shutdown.clone(),
    ));
    tasks.spawn(broker.pool.clone().run_background(shutdown.clone()));
    tasks.spawn(broker.store.clone().follow_epoch(shutdown.clone()));
    tasks.spawn(
        broker
            .state
            .mcp
            .sessions
            .clone()
            .write_behind(shutdown.clone()),
    );
    if let Some(metrics) = broker.metrics_listener.take() {
        let app = metrics_router(broker.store.clone());
        let stop = shutdown.clone();
        tasks.spawn(async move {
            let served = axum::serve(metrics, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the metrics listener failed");
            }
        });
    }
    let app = broker.router();
    let settings = broker.config.http.clone();
    let server_shutdown = shutdown.clone();
    let mut server =
        tokio::spawn(
            async move { crate::http::serve(listener, app, &settings, server_shutdown).await },
        );
    let result = tokio::select! {
        finished = &mut server => finished,
        () = shutdown.cancelled() => {
            // Long-lived streams end now, so they do not hold the drain.
            broker.state.mcp.end_streams();
            tracing::info!(grace_seconds = grace.as_secs_f64(), "shutting down: draining in-flight requests");
            match tokio::time::timeout(grace, &mut server).await {
                Ok(finished) => finished,
                Err(_) => {
                    tracing::warn!("grace period over: abandoning requests still in flight");
                    server.abort();
                    Ok(Ok(()))
                }
            }
        }
    };
    // The last requests' session uses, before the store closes.
    if let Err(e) = broker.state.mcp.sessions.flush().await {
        tracing::warn!(error = %e, "could not write sessions' last use at shutdown");
    }
    // Children last among the parts that serve requests, first before the store:
    // no orphans, no zombies.
    broker.pool.shutdown().await;
    broker.pool.remove_work_root();
    tasks.close();
    if tokio::time::timeout(TASK_DRAIN, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            running = tasks.len(),
            "background tasks still running at exit"
        );
    }
    broker.store.close().await;
    tracing::info!("stopped");
    match result {
        Ok(served) => served,
        Err(join_error) => Err(std::io::Error::other(join_error)),
    }
}

/// How long the exit waits for background tasks once requests and children
/// are done (sweepers finish their round, children's pipes close).
const TASK_DRAIN: Duration = Duration::from_secs(5);

/// Cancels `token` on SIGTERM or SIGINT.
pub fn cancel_on_signals(token: CancellationToken) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("received SIGTERM"),
            _ = interrupt.recv() => tracing::info!("received SIGINT"),
        }
        token.cancel();
    });
    Ok(())
}
