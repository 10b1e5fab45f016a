//! Just-in-time accounts around the provisioner: every account is tracked in `jit_accounts` by
//! session (the row is written before the provisioner is asked), removed when its flow ends, and a
//! sweeper removes marked accounts whose flow is over or unknown: after a crash, a lost flow, or a
//! removal that failed while the directory was down.

use std::sync::Arc;

use openpsm_plugin_api::{AccountProvisioner, JitAccountRef, PluginInstance};
use serde_json::json;
use sqlx::Row as _;
use uuid::Uuid;

use super::state::{Flow, Outcome};
use super::{Engine, FlowError, internal};
use crate::store::unix_now;

impl Engine {
    pub(crate) fn provisioner(&self) -> Option<Arc<dyn AccountProvisioner>> {
        self.registry.active().values().find_map(|p| match p {
            PluginInstance::AccountProvisioner(p) => Some(p.clone()),
            _ => None,
        })
    }

    /// Before creation: the row that makes the account known to the sweeper.
    pub(crate) async fn track_jit_intent(&self, flow: &Flow) -> Result<(), FlowError> {
        sqlx::query("INSERT INTO jit_accounts (session, flow, person, account, created_at) VALUES ($1, $2, $3, NULL, $4) ON CONFLICT DO NOTHING")
            .bind(flow.session.to_string())
            .bind(&flow.id)
            .bind(flow.person.to_string())
            .bind(unix_now())
            .execute(self.app.store.pool())
            .await
            .map_err(internal)?;
        Ok(())
    }

    /// After creation: the account's id.
    pub(crate) async fn track_jit(
        &self,
        flow: &Flow,
        account: &JitAccountRef,
    ) -> Result<(), FlowError> {
        sqlx::query("UPDATE jit_accounts SET account = $1 WHERE session = $2")
            .bind(&account.id)
            .bind(flow.session.to_string())
            .execute(self.app.store.pool())
            .await
            .map_err(internal)?;
        Ok(())
    }

    async fn untrack_jit(&self, session: &Uuid) -> Result<(), FlowError> {
        sqlx::query("DELETE FROM jit_accounts WHERE session = $1")
            .bind(session.to_string())
            .execute(self.app.store.pool())
            .await
            .map_err(internal)?;
        Ok(())
    }

    /// A creation that failed: nothing is left (the provisioner guarantees it), so neither is the row.
    pub(crate) async fn forget_jit_intent(&self, flow: &Flow) -> Result<(), FlowError> {
        self.untrack_jit(&flow.session).await
    }

    /// Removes a flow's account; a failure keeps the row, so the sweeper tries again.
    pub(crate) async fn remove_jit(
        &self,
        person: &Uuid,
        flow: &str,
        account: &JitAccountRef,
        by: &str,
    ) -> Result<bool, FlowError> {
        let removed = match self.provisioner() {
            Some(p) => p.remove(account).await.map_err(|e| e.to_string()),
            None => Err("no account provisioner is active".into()),
        };
        match removed {
            Ok(()) => {
                self.untrack_jit(&account.session).await?;
                self.audit(
                    person,
                    "jit.removed",
                    json!({"flow": flow, "account": account.id, "session": account.session, "by": by}),
                )
                .await?;
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(flow, account = %account.id, "removing the JIT account failed: {e}");
                self.audit(
                    person,
                    "jit.remove_failed",
                    json!({"flow": flow, "account": account.id, "session": account.session, "error": e}),
                )
                .await?;
                Ok(false)
            }
        }
    }

    /// Removes every account the provisioner marked as ours whose flow is over or unknown.
    /// Returns how many were removed.
    pub async fn sweep_jit(&self) -> Result<usize, FlowError> {
        let Some(p) = self.provisioner() else {
            return Ok(0);
        };
        let owned = p
            .owned()
            .await
            .map_err(|e| internal(format!("listing JIT accounts for the sweeper failed: {e}")))?;
        let mut removed = 0;
        for account in owned {
            let row = sqlx::query("SELECT flow, person FROM jit_accounts WHERE session = $1")
                .bind(account.session.to_string())
                .fetch_optional(self.app.store.pool())
                .await
                .map_err(internal)?;
            let (flow, person) = match &row {
                Some(r) => (
                    r.try_get::<String, _>("flow").map_err(internal)?,
                    r.try_get::<String, _>("person").map_err(internal)?,
                ),
                None => (String::new(), String::new()),
            };
            if !flow.is_empty() && self.flow_needs_account(&flow).await {
                continue;
            }
            let person: Uuid = person.parse().unwrap_or_default();
            if self.remove_jit(&person, &flow, &account, "sweeper").await? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// A flow needs its account while it goes on: not finished, or launched (its session may run).
    async fn flow_needs_account(&self, flow: &str) -> bool {
        match self.flows.load(flow).await {
            Ok(loaded) => matches!(loaded.flow.outcome, None | Some(Outcome::Launched { .. })),
            Err(_) => false,
        }
    }
}
