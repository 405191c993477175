//! Assembling the broker from a validated configuration, serving, and draining.
//!
//! The listener and the shutdown signal are passed in, so tests bind
//! `127.0.0.1:0` and stop the broker without sending signals.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::crypto::{KeyError, Sealer, SealingKey};
use crate::http::{AppState, router};
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
}

/// Loads the sealing key (generating it on a first SQLite start) and opens the
/// store, applying migrations.
pub async fn prepare(config: Config) -> Result<AppState, StartError> {
    let key = if config.sealing_key.generate_if_missing {
        SealingKey::load_or_generate(&config.sealing_key.path)?
    } else {
        SealingKey::load(&config.sealing_key.path)?
    };
    tracing::info!(key_id = %key.id_hex(), path = %config.sealing_key.path.display(), "sealing key loaded");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = Store::open(&config.store, Arc::new(Sealer::new(key)), clock.clone()).await?;
    tracing::info!(backend = store.backend().name(), "store ready");
    Ok(AppState::new(Arc::new(config), store, clock))
}

/// Serves until `shutdown` is cancelled, then stops accepting, lets in-flight
/// requests finish within the configured grace period, and closes the store.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let grace = state.config.http.shutdown_grace;
    let store = state.store.clone();
    let sweeper = tokio::spawn(crate::oauth::sweeper::run(
        state.store.clone(),
        state.clock.clone(),
        shutdown.clone(),
    ));
    let pool = state.pool.clone();
    let streams = state.cancellations.clone();
    let pool_sweeps = tokio::spawn(pool.clone().run_background(shutdown.clone()));
    let app = router(state);
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .into_future();
    let mut server = tokio::spawn(server);
    let result = tokio::select! {
        finished = &mut server => finished,
        () = shutdown.cancelled() => {
            // Long-lived streams end now, so they do not hold the drain.
            streams.shut_down();
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
    sweeper.abort();
    pool_sweeps.abort();
    // Children last among the parts that serve requests, first before the store:
    // no orphans, no zombies.
    pool.shutdown().await;
    pool.remove_work_root();
    store.close().await;
    tracing::info!("stopped");
    match result {
        Ok(served) => served,
        Err(join_error) => Err(std::io::Error::other(join_error)),
    }
}

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
