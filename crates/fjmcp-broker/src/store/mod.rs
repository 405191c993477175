//! Persistence: one [`Store`] API with domain methods over SQLite or PostgreSQL.
//!
//! Invariants: only this module knows SQL or the schema; callers hand in and get
//! back domain values (plaintext Forgejo tokens go in and come out as
//! [`secrecy::SecretString`]s, sealed on the way to the database with the row's
//! identity as associated data). Every statement is written once, in the dialect
//! both backends accept (`$1` placeholders, `ON CONFLICT`, `RETURNING`); where they
//! differ, [`Backend`] picks the variant.

mod account;
mod admin;
mod audit;
mod authorizations;
mod clients;
mod credential_lock;
mod epoch;
mod grants;
mod migrations;
mod resealing;
mod sessions;
mod sweep;
mod tokens;
mod users;

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor};

pub use account::{AccountSession, ConnectedApp, UserGrantRevocation};
pub use admin::{
    ClientSummary, GrantFilter, GrantSelector, GrantSummary, SessionSummary, StoredAuditEvent,
    UserSummary,
};
pub use audit::AuditEvent;
pub use authorizations::{
    CodeProof, CodeRedemption, CodeRefusal, NewAuthorizationCode, NewPendingAuthorization,
    PendingAuthorization, RedeemedCode,
};
pub use clients::{ClientKind, ClientRecord, NewClient};
pub use grants::{GrantRecord, NewGrant};
pub use resealing::{ResealReport, SealedColumnReport};
pub use sweep::SweepCounts;
pub use tokens::{AccessTokenGrant, NewTokenPair, RefreshOutcome};
pub use users::UserRecord;

use crate::clock::Clock;
use crate::config::StoreLocation;
use crate::crypto::{OpenError, Sealer};

/// The newest schema version this broker knows (and creates).
pub const SCHEMA_VERSION: i64 = migrations::KNOWN_VERSION;

/// Which database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Lower-case name for logs and health output.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// What went wrong in the store. The HTTP edge maps these to 5xx (the client
/// did nothing wrong); the log gets the cause.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        version: i64,
        name: &'static str,
        source: sqlx::Error,
    },
    #[error(
        "the database schema is at version {found}, newer than this broker knows ({known}); upgrade the broker"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error(
        "the database schema is at version {found}, older than this broker's ({known}); start `fjmcp-broker serve` of this version once to migrate it"
    )]
    SchemaTooOld { found: i64, known: i64 },
    #[error(
        "the database holds no broker schema (was `fjmcp-broker serve` ever started on it?): {0}"
    )]
    NoSchema(sqlx::Error),
    #[error("stored value is corrupt: {0}")]
    Corrupt(String),
    #[error("sealed credential cannot be opened: {0}")]
    Sealed(#[from] OpenError),
}

/// The broker's persistent state. Cloned into every request's handler state,
/// so one reference count.
#[derive(Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    /// Connection pool; `Any` so one set of statements serves both backends.
    pool: AnyPool,
    /// Which backend the pool talks to, for the few dialect differences.
    backend: Backend,
    /// Seals Forgejo tokens before they reach the database.
    sealer: Arc<Sealer>,
    /// Source of "now" for every timestamp the store writes or compares.
    clock: Arc<dyn Clock>,
    /// What this instance knows of revocations (see `epoch.rs`).
    epoch: epoch::Epoch,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.backend)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connects and applies pending migrations (each in its own transaction).
    pub async fn open(
        location: &StoreLocation,
        sealer: Arc<Sealer>,
        clock: Arc<dyn Clock>,
    ) -> Result<Store, StoreError> {
        let store = Store::connect(location, sealer, clock, true).await?;
        migrations::apply(&store).await?;
        Ok(store)
    }

    /// Connects to a store that `serve` created and migrated, changing nothing
    /// about it: a missing SQLite file is not created, and a schema older or
    /// newer than this broker's is refused rather than migrated (for the admin
    /// command, which may run beside brokers of another version).
    pub async fn open_existing(
        location: &StoreLocation,
        sealer: Arc<Sealer>,
        clock: Arc<dyn Clock>,
    ) -> Result<Store, StoreError> {
        let store = Store::connect(location, sealer, clock, false).await?;
        let found = match migrations::current_version(&store.inner.pool).await {
            Ok(found) => found,
            Err(StoreError::Database(e)) => return Err(StoreError::NoSchema(e)),
            Err(other) => return Err(other),
        };
        let known = migrations::KNOWN_VERSION;
        if found > known {
            return Err(StoreError::SchemaTooNew { found, known });
        }
        if found < known {
            return Err(StoreError::SchemaTooOld { found, known });
        }
        Ok(store)
    }

    async fn connect(
        location: &StoreLocation,
        sealer: Arc<Sealer>,
        clock: Arc<dyn Clock>,
        create: bool,
    ) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (url, backend, max_connections) = match location {
            StoreLocation::Sqlite(path) => {
                if create {
                    create_private_file(path)?;
                }
                (
                    format!(
                        "sqlite://{}?mode={}",
                        path.display(),
                        if create { "rwc" } else { "rw" }
                    ),
                    Backend::Sqlite,
                    4,
                )
            }
            StoreLocation::Postgres(url) => {
                (url.expose_secret().to_string(), Backend::Postgres, 10)
            }
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            // A ping before every query catches a PostgreSQL connection the
            // server or the network dropped; a SQLite connection (a file in this
            // process) cannot go stale, and the ping would double every query's
            // trip to its worker thread.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers proceed during a write; the busy timeout makes
                        // concurrent writers wait instead of failing; foreign keys are off
                        // by default in SQLite and the schema relies on them.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        Ok(Store {
            inner: Arc::new(StoreInner {
                pool,
                backend,
                sealer,
                clock,
                epoch: epoch::Epoch::new(),
            }),
        })
    }

    /// Which backend this store uses.
    pub(crate) fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// Answers whether the database is reachable and usable (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.inner.pool).await?;
        Ok(())
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }

    /// The schema version the database is at.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        migrations::current_version(&self.inner.pool).await
    }

    fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    /// A transaction that writes: SQLite takes its write lock up front (a later
    /// upgrade from read to write could fail instead of waiting).
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(match self.inner.backend {
            Backend::Sqlite => self.inner.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.inner.pool.begin().await?,
        })
    }
}

/// Creates a missing SQLite database file readable by its owner only (0600),
/// before SQLite would create it with the umask's looser mode; SQLite gives
/// its `-wal` and `-shm` files the same mode. An existing file is left as it is.
fn create_private_file(path: &std::path::Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Database(sqlx::Error::Io(e))),
    }
}

impl From<sqlx::Error> for StoreError {
    /// Every failed database operation passes here: counted for the metrics.
    fn from(error: sqlx::Error) -> Self {
        crate::metrics::metrics().store_error();
        StoreError::Database(error)
    }
}

/// Reads a column that the schema guarantees, turning a mismatch into
/// [`StoreError::Corrupt`] rather than a panic.
fn column<'r, T>(row: &'r AnyRow, name: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    use sqlx::Row;
    row.try_get(name)
        .map_err(|e| StoreError::Corrupt(format!("column {name}: {e}")))
}
