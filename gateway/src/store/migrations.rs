//! The schema, as numbered migrations (one SQL for both engines, or a PostgreSQL variant where
//! the DDL must differ), applied in order at open and
//! recorded in `schema_migrations` with a checksum so an edited migration is noticed.

use sha2::{Digest as _, Sha256};
use sqlx::Row as _;

use super::{Engine, Store, StoreError};

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    /// The SQL both engines run...
    pub sql: &'static str,
    /// ...unless PostgreSQL needs its own.
    pub postgres: Option<&'static str>,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../../migrations/0001_initial.sql"),
        postgres: None,
    },
    Migration {
        version: 2,
        name: "vault",
        sql: include_str!("../../migrations/0002_vault.sql"),
        postgres: None,
    },
    Migration {
        version: 3,
        name: "mfa",
        sql: include_str!("../../migrations/0003_mfa.sql"),
        postgres: None,
    },
    Migration {
        version: 4,
        name: "attempts",
        sql: include_str!("../../migrations/0004_attempts.sql"),
        postgres: None,
    },
    Migration {
        version: 5,
        name: "host_keys",
        sql: include_str!("../../migrations/0005_host_keys.sql"),
        postgres: None,
    },
    Migration {
        version: 6,
        name: "mfa_enrolment",
        sql: include_str!("../../migrations/0006_mfa_enrolment.sql"),
        postgres: None,
    },
    Migration {
        version: 7,
        name: "pending_ends",
        sql: include_str!("../../migrations/0007_pending_ends.sql"),
        postgres: None,
    },
    Migration {
        version: 8,
        name: "jit_accounts",
        sql: include_str!("../../migrations/0008_jit_accounts.sql"),
        postgres: None,
    },
];

/// The statements of a migration: `--` comment lines dropped, split at `;` (migrations hold no
/// `;` inside string literals).
fn statements(sql: &str) -> Vec<String> {
    let code: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .map(|l| format!("{l}\n"))
        .collect();
    code.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn checksum(sql: &str) -> String {
    Sha256::digest(sql.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub async fn run(store: &Store) -> Result<(), StoreError> {
    let pool = store.pool();
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY,
            name TEXT NOT NULL,
            checksum TEXT NOT NULL,
            applied_at BIGINT NOT NULL)",
    )
    .execute(pool)
    .await?;
    for m in MIGRATIONS {
        let sql = match (store.engine(), m.postgres) {
            (Engine::Postgres, Some(pg)) => pg,
            _ => m.sql,
        };
        let sum = checksum(sql);
        let applied = sqlx::query("SELECT checksum FROM schema_migrations WHERE version = $1")
            .bind(m.version)
            .fetch_optional(pool)
            .await?;
        if let Some(row) = applied {
            let recorded: String = row.try_get("checksum")?;
            if recorded != sum {
                return Err(StoreError::Migration {
                    version: m.version,
                    reason: "the applied migration differs from this gateway's: refusing to run"
                        .into(),
                });
            }
            continue;
        }
        let mut tx = pool.begin().await?;
        for statement in statements(sql) {
            sqlx::query(&statement)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::Migration {
                    version: m.version,
                    reason: e.to_string(),
                })?;
        }
        let recorded = sqlx::query(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        )
        .bind(m.version)
        .bind(m.name)
        .bind(&sum)
        .bind(super::unix_now())
        .execute(&mut *tx)
        .await?;
        if recorded.rows_affected() == 1 {
            tx.commit().await?;
        } else {
            // Another node applied it at the same moment.
            tx.rollback().await?;
        }
    }
    Ok(())
}
