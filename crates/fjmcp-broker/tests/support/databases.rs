//! Fresh databases for store tests: a temporary SQLite file always, and a
//! PostgreSQL database of its own per test when `FJMCP_TEST_POSTGRES_URL` is set.

use std::sync::Arc;

use fjmcp_broker::clock::{Clock, ManualClock};
use fjmcp_broker::config::StoreLocation;
use fjmcp_broker::crypto::{Sealer, SealingKey};
use fjmcp_broker::store::Store;
use secrecy::{ExposeSecret, SecretString};
use sqlx::{Connection, Executor};

/// The environment variable naming a PostgreSQL server (any database on it) to test against.
pub const POSTGRES_ENV: &str = "FJMCP_TEST_POSTGRES_URL";

/// A database that exists for one test and is removed afterwards.
pub struct TestDatabase {
    pub location: StoreLocation,
    pub label: &'static str,
    /// Keeps the SQLite file's directory alive.
    _dir: Option<tempfile::TempDir>,
    /// For PostgreSQL: the admin URL and the database name to drop.
    drop_postgres: Option<(String, String)>,
}

impl TestDatabase {
    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("store.db");
        TestDatabase {
            location: StoreLocation::Sqlite(path),
            label: "sqlite",
            _dir: Some(dir),
            drop_postgres: None,
        }
    }

    /// A fresh PostgreSQL database, or `None` when no server is configured.
    pub async fn postgres() -> Option<TestDatabase> {
        let admin = std::env::var(POSTGRES_ENV).ok()?;
        sqlx::any::install_default_drivers();
        let name = format!(
            "fjmcp_test_{}_{}",
            std::process::id(),
            &fjmcp_broker::crypto::random_id()[..12]
        );
        let mut conn = sqlx::AnyConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_ENV}={admin}: cannot connect: {e}"));
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create test database");
        conn.close().await.ok();
        let mut url = url::Url::parse(&admin).expect("postgres URL");
        url.set_path(&format!("/{name}"));
        Some(TestDatabase {
            location: StoreLocation::Postgres(SecretString::from(url.to_string())),
            label: "postgres",
            _dir: None,
            drop_postgres: Some((admin, name)),
        })
    }

    /// SQLite, plus PostgreSQL when configured: every store test runs on each.
    pub async fn all() -> Vec<TestDatabase> {
        let mut all = vec![TestDatabase::sqlite()];
        match TestDatabase::postgres().await {
            Some(pg) => all.push(pg),
            None => eprintln!("{POSTGRES_ENV} is not set: PostgreSQL part skipped"),
        }
        all
    }

    /// Opens a store on this database with the given key seed and clock.
    pub async fn open_with(&self, key_seed: u8, clock: ManualClock) -> Store {
        let sealer = Arc::new(Sealer::new(SealingKey::from_bytes([key_seed; 32])));
        let clock: Arc<dyn Clock> = Arc::new(clock);
        Store::open(&self.location, sealer, clock)
            .await
            .unwrap_or_else(|e| panic!("{}: open store: {e}", self.label))
    }

    /// Waits until `n` sessions of this (PostgreSQL) database wait for a lock.
    pub async fn wait_for_lock_waiters(&self, n: i64) {
        let StoreLocation::Postgres(url) = &self.location else {
            panic!("only PostgreSQL has row locks to wait for");
        };
        let mut conn = sqlx::AnyConnection::connect(url.expose_secret())
            .await
            .unwrap();
        for _ in 0..1000 {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&mut conn)
            .await
            .unwrap();
            if waiting >= n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        panic!("no session started waiting for a lock");
    }

    pub async fn open(&self) -> Store {
        self.open_with(1, ManualClock::at(1_700_000_000)).await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin, name)) = self.drop_postgres.take() else {
            return;
        };
        // Drop runs outside any runtime guarantee; a small thread with its own
        // runtime removes the database even when the test panicked.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok(mut conn) = sqlx::AnyConnection::connect(&admin).await {
                    let _ = conn
                        .execute(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .await;
                }
            });
        })
        .join();
    }
}
