//! Exclusive check-out of shared credentials: a lease row that at most one holder has, with an
//! expiry so a crashed node cannot keep a credential forever.

use sqlx::Row as _;

use super::{Store, StoreError, is_unique_violation};

impl Store {
    /// Takes the lease on `credential` for `holder` until `expires_at`, unless someone else holds
    /// an unexpired one. True when `holder` has it now (taking it again extends it).
    pub async fn acquire_lease(
        &self,
        credential: &str,
        holder: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "DELETE FROM leases WHERE credential = $1 AND (expires_at <= $2 OR holder = $3)",
        )
        .bind(credential)
        .bind(now)
        .bind(holder)
        .execute(&mut *tx)
        .await?;
        let inserted = sqlx::query(
            "INSERT INTO leases (credential, holder, acquired_at, expires_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        )
        .bind(credential)
        .bind(holder)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await;
        let won = match inserted {
            Ok(done) => done.rows_affected() == 1,
            Err(e) if is_unique_violation(&e) => false,
            Err(e) => return Err(e.into()),
        };
        if won {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(won)
    }

    /// Gives the lease back; false when `holder` did not hold it.
    pub async fn release_lease(&self, credential: &str, holder: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM leases WHERE credential = $1 AND holder = $2")
            .bind(credential)
            .bind(holder)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Who holds an unexpired lease on `credential`.
    pub async fn lease_holder(
        &self,
        credential: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let row =
            sqlx::query("SELECT holder FROM leases WHERE credential = $1 AND expires_at > $2")
                .bind(credential)
                .bind(now)
                .fetch_optional(self.pool())
                .await?;
        Ok(match row {
            Some(row) => Some(row.try_get("holder")?),
            None => None,
        })
    }

    /// Every unexpired lease: (credential, holder).
    pub async fn leases(&self, now: i64) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT credential, holder FROM leases WHERE expires_at > $1 ORDER BY credential",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("credential")?, r.try_get("holder")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}

impl Store {
    /// The host keys recorded for a computer: (host, fingerprint).
    pub async fn host_keys(&self, computer: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT host, fingerprint FROM host_keys WHERE computer = $1 ORDER BY host",
        )
        .bind(computer)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("host")?, r.try_get("fingerprint")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Records a host key seen for the first time; false when one was already recorded.
    pub async fn trust_host_key(
        &self,
        computer: &str,
        host: &str,
        fingerprint: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO host_keys (computer, host, fingerprint, first_seen) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(computer)
        .bind(host)
        .bind(fingerprint)
        .bind(now)
        .execute(self.pool())
        .await;
        match done {
            Ok(d) => Ok(d.rows_affected() == 1),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
