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

    /// Sessions still marked running on `node`.
    pub async fn running_sessions(&self, node: &str) -> Result<Vec<SessionRow>, StoreError> {
        let detail = serde_json::json!({"node": node}).to_string();
        let rows = sqlx::query("SELECT id, flow, person FROM sessions WHERE state = 'running' AND detail = $1 ORDER BY started_at")
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
