//! Durable state behind one type, on two real engines: SQLite (the embedded default, one file in
//! the data directory) and PostgreSQL (several gateway nodes share flows, leases, one-time ids,
//! sessions and the audit chain).
//!
//! One implementation serves both through sqlx's `Any` driver: the SQL here is the common subset
//! (`$n` placeholders, `ON CONFLICT DO NOTHING`, integers for times, text for ids and JSON), and
//! the schema is created by [`migrations`] with a variant per engine where DDL differs.

pub mod audit;
mod leases;
pub mod migrations;
mod once;
pub mod sessions;

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row as _};

pub use audit::{AuditEntry, AuditEvent, ChainProblem};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported store url (use sqlite:// or postgres://)")]
    UnsupportedUrl,
    #[error("store: {0}")]
    Database(#[from] sqlx::Error),
    #[error("store migration {version}: {reason}")]
    Migration { version: i64, reason: String },
    #[error("store: {0}")]
    Corrupt(String),
}

/// Which engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    engine: Engine,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("engine", &self.engine)
            .finish()
    }
}

impl Store {
    /// Opens (creating a SQLite file if needed) and migrates the store at `url`.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        install_default_drivers();
        let engine = if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Engine::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        let url = match engine {
            Engine::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_owned(),
        };
        let options = AnyPoolOptions::new()
            .max_connections(match engine {
                // SQLite serialises writers anyway; a few readers are enough.
                Engine::Sqlite => 4,
                Engine::Postgres => 16,
            })
            .acquire_timeout(Duration::from_secs(30));
        let options = match engine {
            Engine::Sqlite => options.after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL lets readers run beside the writer; busy_timeout makes concurrent writers
                    // wait instead of failing with SQLITE_BUSY.
                    sqlx::query("PRAGMA journal_mode = WAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA busy_timeout = 10000")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA foreign_keys = ON")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            }),
            Engine::Postgres => options,
        };
        let pool = options.connect(&url).await?;
        let store = Self { pool, engine };
        migrations::run(&store).await?;
        Ok(store)
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Answers a trivial query (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let row = sqlx::query("SELECT 1 AS one").fetch_one(&self.pool).await?;
        let one: i32 = row
            .try_get("one")
            .or_else(|_| row.try_get::<i64, _>("one").map(|v| v as i32))?;
        if one == 1 {
            Ok(())
        } else {
            Err(StoreError::Corrupt("SELECT 1 did not answer 1".into()))
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Seconds since the Unix epoch, the unit of every time in the store.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// True when a database error is a unique-constraint violation (a race lost to another writer).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.is_unique_violation()
                || db
                    .code()
                    .is_some_and(|c| c == "23505" || c == "2067" || c == "1555")
        }
        _ => false,
    }
}

#[cfg(test)]
pub(crate) mod tests;
