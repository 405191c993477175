//! Embedded schema migrations, one SQL file per backend and version.
//!
//! All pending migrations are applied in one transaction at start: a broker
//! either sees the whole new schema or the old one. Several instances starting
//! together serialize on a lock (PostgreSQL advisory lock, SQLite's write lock).

use sqlx::{AnyPool, Row};

use super::{Backend, Store, StoreError};

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

/// In increasing version order. Numbers need not be contiguous: every
/// migration a database has not applied yet is applied, in this order, so
/// branches can reserve numbers and land in any order, as long as their
/// migrations do not depend on each other.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sqlite: include_str!("migrations/sqlite/0001_initial.sql"),
        postgres: include_str!("migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "credentials",
        sqlite: include_str!("migrations/sqlite/0002_credentials.sql"),
        postgres: include_str!("migrations/postgres/0002_credentials.sql"),
    },
    Migration {
        version: 3,
        name: "security",
        sqlite: include_str!("migrations/sqlite/0003_security.sql"),
        postgres: include_str!("migrations/postgres/0003_security.sql"),
    },
    Migration {
        version: 4,
        name: "operations",
        sqlite: include_str!("migrations/sqlite/0004_operations.sql"),
        postgres: include_str!("migrations/postgres/0004_operations.sql"),
    },
    Migration {
        version: 5,
        name: "revocation epoch",
        sqlite: include_str!("migrations/sqlite/0005_revocation_epoch.sql"),
        postgres: include_str!("migrations/postgres/0005_revocation_epoch.sql"),
    },
];

/// The newest schema version this broker knows.
pub(super) const KNOWN_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// An arbitrary constant naming the broker's migration lock in PostgreSQL.
const POSTGRES_MIGRATION_LOCK: i64 = 0x666a_6d63_7000;

const CREATE_LEDGER: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    BIGINT PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)";

pub(super) async fn apply(store: &Store) -> Result<(), StoreError> {
    let mut tx = match store.inner.backend {
        // IMMEDIATE takes the write lock up front, so two brokers starting on the same
        // file wait for each other instead of failing on a read-to-write upgrade.
        Backend::Sqlite => store.begin_write().await?,
        Backend::Postgres => {
            let mut tx = store.inner.pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(POSTGRES_MIGRATION_LOCK)
                .execute(&mut *tx)
                .await?;
            tx
        }
    };
    sqlx::query(CREATE_LEDGER).execute(&mut *tx).await?;
    let applied: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations")
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| row.try_get::<i64, _>("version"))
        .collect::<Result<_, _>>()?;
    let known = KNOWN_VERSION;
    if let Some(found) = applied.iter().copied().filter(|v| *v > known).max() {
        return Err(StoreError::SchemaTooNew { found, known });
    }
    for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        let sql = match store.inner.backend {
            Backend::Sqlite => migration.sqlite,
            Backend::Postgres => migration.postgres,
        };
        let failed = |source| StoreError::Migration {
            version: migration.version,
            name: migration.name,
            source,
        };
        sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(failed)?;
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(migration.version)
        .bind(migration.name)
        .bind(store.now())
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applied migration"
        );
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn current_version(pool: &AnyPool) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT COALESCE(MAX(version), 0) AS version FROM schema_migrations")
        .fetch_one(pool)
        .await?;
    Ok(row.try_get::<i64, _>("version")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_listed_in_increasing_version_order() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
        for m in MIGRATIONS {
            let file = format!("{:04}_{}.sql", m.version, m.name);
            assert!(!m.sqlite.is_empty() && !m.postgres.is_empty(), "{file}");
        }
    }
}
