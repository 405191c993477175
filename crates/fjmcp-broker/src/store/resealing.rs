//! Re-sealing every sealed value under the store's current key, for a key
//! rotation (`admin seal-key rotate`).
//!
//! The store's sealer holds the new key as current and the retired ones as
//! previous. Each value not sealed with the current key is opened, sealed
//! again for the same row and column, and written back only if the row still
//! holds the value that was read (compare-and-set), so a broker replacing a
//! credential at the same moment wins and nothing is lost. Safe to run while
//! brokers serve, and again after an interruption.

use super::{Store, StoreError, column};
use crate::crypto::{OpenError, SealContext};

/// A column holding sealed values, and how its associated data is formed.
#[derive(Debug)]
pub(crate) struct SealedColumn {
    pub(crate) table: &'static str,
    /// The column naming the row in the associated data.
    pub(crate) key: &'static str,
    pub(crate) column: &'static str,
    /// The column's name in the associated data.
    pub(crate) context: &'static str,
}

/// Every sealed column of the schema. A new one must be added here, or a key
/// rotation leaves its values behind; the store tests compare this list with
/// the schema's `sealed_*` columns on both databases.
pub(crate) const SEALED_COLUMNS: &[SealedColumn] = &[
    SealedColumn {
        table: "users",
        key: "id",
        column: "sealed_access_token",
        context: "access_token",
    },
    SealedColumn {
        table: "users",
        key: "id",
        column: "sealed_refresh_token",
        context: "refresh_token",
    },
    SealedColumn {
        table: "pending_authorizations",
        key: "state_hash",
        column: "sealed_upstream_verifier",
        context: "upstream_verifier",
    },
    // A sign-in's Forgejo tokens, held on the consent page until the user approves.
    SealedColumn {
        table: "pending_authorizations",
        key: "state_hash",
        column: "sealed_upstream_access",
        context: "sealed_upstream_access",
    },
    SealedColumn {
        table: "pending_authorizations",
        key: "state_hash",
        column: "sealed_upstream_refresh",
        context: "sealed_upstream_refresh",
    },
    SealedColumn {
        table: "account_logins",
        key: "state_hash",
        column: "sealed_upstream_verifier",
        context: "upstream_verifier",
    },
];

/// Rows read per round trip.
const PAGE: i64 = 500;

/// What re-sealing one column did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealedColumnReport {
    /// `table.column`.
    pub name: String,
    /// Values sealed with the current key before this run.
    pub already_current: u64,
    /// Values re-sealed by this run.
    pub resealed: u64,
    /// Values a broker replaced while this run was re-sealing them; whatever
    /// it wrote was kept.
    pub replaced_meanwhile: u64,
    /// Values that no key held opens (the row identity and why).
    pub unopenable: Vec<(String, OpenError)>,
}

/// What re-sealing every column did, and what is left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResealReport {
    pub columns: Vec<SealedColumnReport>,
    /// Values still not sealed with the current key after the run, counted
    /// afresh (unopenable ones, and any a broker sealed with another key meanwhile).
    pub remaining: u64,
}

impl Store {
    /// Re-seals every sealed value under the current key (see the module comment).
    pub async fn reseal_all(&self) -> Result<ResealReport, StoreError> {
        let mut report = ResealReport::default();
        for sealed in SEALED_COLUMNS {
            report.columns.push(self.reseal_column(sealed).await?);
        }
        report.remaining = self.count_not_current().await?;
        Ok(report)
    }

    /// How many sealed values are not sealed with the current key.
    pub async fn count_not_current(&self) -> Result<u64, StoreError> {
        let mut count = 0;
        for sealed in SEALED_COLUMNS {
            self.for_each_sealed(sealed, |_, value| {
                if !self.inner.sealer.is_current(value) {
                    count += 1;
                }
            })
            .await?;
        }
        Ok(count)
    }

    async fn reseal_column(&self, sealed: &SealedColumn) -> Result<SealedColumnReport, StoreError> {
        let mut report = SealedColumnReport {
            name: format!("{}.{}", sealed.table, sealed.column),
            ..SealedColumnReport::default()
        };
        let mut stale = Vec::new();
        self.for_each_sealed(sealed, |key, value| {
            if self.inner.sealer.is_current(value) {
                report.already_current += 1;
            } else {
                stale.push((key.to_string(), value.to_vec()));
            }
        })
        .await?;
        let update = format!(
            "UPDATE {table} SET {column} = $1 WHERE {key} = $2 AND {column} = $3",
            table = sealed.table,
            column = sealed.column,
            key = sealed.key,
        );
        for (key, value) in stale {
            let context = SealContext::new(sealed.table, &key, sealed.context);
            let plain = match self.inner.sealer.open(&value, &context) {
                Ok(plain) => plain,
                Err(why) => {
                    report.unopenable.push((key, why));
                    continue;
                }
            };
            let fresh = self.inner.sealer.seal(&plain, &context);
            let done = sqlx::query(sqlx::AssertSqlSafe(update.clone()))
                .bind(fresh)
                .bind(&key)
                .bind(value)
                .execute(&self.inner.pool)
                .await?;
            if done.rows_affected() == 1 {
                report.resealed += 1;
            } else {
                report.replaced_meanwhile += 1;
            }
        }
        Ok(report)
    }

    /// Calls `each` with the row key and value of every non-null value of the
    /// column, reading a page at a time in key order.
    async fn for_each_sealed(
        &self,
        sealed: &SealedColumn,
        mut each: impl FnMut(&str, &[u8]),
    ) -> Result<(), StoreError> {
        let select = format!(
            "SELECT {key} AS k, {column} AS v FROM {table}
             WHERE {column} IS NOT NULL AND {key} > $1 ORDER BY {key} LIMIT $2",
            table = sealed.table,
            column = sealed.column,
            key = sealed.key,
        );
        let mut after = String::new();
        loop {
            let rows = sqlx::query(sqlx::AssertSqlSafe(select.clone()))
                .bind(&after)
                .bind(PAGE)
                .fetch_all(&self.inner.pool)
                .await?;
            for row in &rows {
                let key: String = column(row, "k")?;
                let value: Vec<u8> = column(row, "v")?;
                each(&key, &value);
                after = key;
            }
            if (rows.len() as i64) < PAGE {
                return Ok(());
            }
        }
    }
}
