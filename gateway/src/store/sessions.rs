//! The session registry: which sessions run on which gateway node, so a node that restarts can
//! finish the ends of its own sessions (and only its own).

use sqlx::Row as _;

use super::{Store, StoreError};

/// A session row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id: String,
    pub flow: String,
    pub person: String,
}

impl Store {
    #[allow(clippy::too_many_arguments)]
    pub async fn session_started(
        &self,
        id: &str,
        flow: &str,
        person: &str,
        computer: &str,
        mode: &str,
        node: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, flow, person, computer, mode, state, detail, started_at) VALUES ($1, $2, $3, $4, $5, 'running', $6, $7)",
        )
        .bind(id)
        .bind(flow)
        .bind(person)
        .bind(computer)
        .bind(mode)
        .bind(serde_json::json!({"node": node}).to_string())
        .bind(at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn session_ended(&self, id: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET state = 'ended', ended_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Asks for a session to be ended (the node running it notices within seconds).
    pub async fn request_termination(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET state = 'terminate' WHERE id = $1 AND state = 'running'",
        )
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Sessions an administrator asked to end.
    pub async fn termination_requests(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT id FROM sessions WHERE state = 'terminate'")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("id").map_err(StoreError::from))
            .collect()
    }

    /// Every session not yet ended: (id, person, computer, mode, state, started_at).
    pub async fn open_sessions(
        &self,
    ) -> Result<Vec<(String, String, String, String, String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT id, person, computer, mode, state, started_at FROM sessions WHERE state <> 'ended' ORDER BY started_at")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("id")?,
                    r.try_get("person")?,
                    r.try_get("computer")?,
                    r.try_get("mode")?,
                    r.try_get("state")?,
                    r.try_get("started_at")?,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Sessions still marked running on `node`.
    pub async fn running_sessions(&self, node: &str) -> Result<Vec<SessionRow>, StoreError> {
        let detail = serde_json::json!({"node": node}).to_string();
        let rows = sqlx::query("SELECT id, flow, person FROM sessions WHERE state <> 'ended' AND detail = $1 ORDER BY started_at")
            .bind(detail)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SessionRow {
                    id: r.try_get("id")?,
                    flow: r.try_get("flow")?,
                    person: r.try_get("person")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}
