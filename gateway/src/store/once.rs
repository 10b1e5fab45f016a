//! Ids that may be used once (start-link nonces, launch tokens, MFA time steps), shared by every
//! gateway node through the store.

use super::{Store, StoreError, is_unique_violation};

impl Store {
    /// Records `id` of `kind` as used; true the first time, false for every later try (a replay).
    /// The record is kept until `expires_at`, after which the id could not be used anyway.
    pub async fn consume_once(
        &self,
        kind: &str,
        id: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let inserted = sqlx::query("INSERT INTO consumed (kind, id, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(kind)
            .bind(id)
            .bind(expires_at)
            .execute(self.pool())
            .await;
        match inserted {
            Ok(done) => Ok(done.rows_affected() == 1),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Forgets one-time ids whose validity ended before `now`.
    pub async fn purge_consumed(&self, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM consumed WHERE expires_at < $1")
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}

impl Store {
    /// Records one failed attempt of `kind` (e.g. "master") by `subject` (a person) at `at`.
    pub async fn record_failure(
        &self,
        kind: &str,
        subject: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO attempts (kind, subject, at) VALUES ($1, $2, $3)")
            .bind(kind)
            .bind(subject)
            .bind(at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Failed attempts of `kind` by `subject` since `since`.
    pub async fn failures_since(
        &self,
        kind: &str,
        subject: &str,
        since: i64,
    ) -> Result<i64, StoreError> {
        use sqlx::Row as _;
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM attempts WHERE kind = $1 AND subject = $2 AND at >= $3",
        )
        .bind(kind)
        .bind(subject)
        .bind(since)
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get::<i64, _>("n")?)
    }

    /// Forgets attempts older than `before`.
    pub async fn purge_failures(&self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM attempts WHERE at < $1")
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
