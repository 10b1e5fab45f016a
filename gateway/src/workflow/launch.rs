//! Redeeming a launch token (once, by the browser that earned it) and ending the session it
//! started.

use serde_json::json;

use super::state::{Flow, Outcome};
use super::{Engine, FlowError, internal};
use crate::store::unix_now;
use crate::token::{LaunchClaims, TokenError, browser_binding};

/// A redeemed token: the flow (with its checked-out credential) and what to connect.
pub struct Launch {
    pub flow: Flow,
    pub claims: LaunchClaims,
}

impl Engine {
    pub async fn redeem(&self, token: &str, flow_secret: &str) -> Result<Launch, FlowError> {
        let now = unix_now();
        let claims = self
            .app
            .sealer
            .open(token, now, &browser_binding(flow_secret))
            .map_err(|e| FlowError::BadAnswer(e.to_string()))?;
        if !self
            .app
            .store
            .consume_once("token", &claims.id.to_string(), claims.expires_at)
            .await
            .map_err(internal)?
        {
            return Err(FlowError::BadAnswer(TokenError::Replayed.to_string()));
        }
        let loaded = self.flows.load(&claims.flow).await?;
        let flow = loaded.flow;
        match &flow.outcome {
            Some(Outcome::Launched { token_id, .. }) if *token_id == claims.id => {}
            _ => {
                return Err(FlowError::BadAnswer(
                    "the launch token no longer belongs to a launchable flow".into(),
                ));
            }
        }
        // The flow lives as long as its session may.
        let until = self.session_until_pub(&flow, now) + 300;
        self.flows.extend(&flow.id, until).await?;
        self.audit(
            &flow.person,
            "session.token_redeemed",
            json!({"flow": flow.id, "session": flow.session, "token": claims.id}),
        )
        .await?;
        Ok(Launch { flow, claims })
    }

    /// The flow's state (for recovery after a restart).
    pub async fn load_flow(&self, id: &str) -> Result<Flow, FlowError> {
        Ok(self.flows.load(id).await?.flow)
    }

    /// Ends a launched flow's session: gives back the lease, ends the session at the credential
    /// source, removes a JIT account, audits. Safe to call more than once.
    pub async fn end_launched(&self, flow_id: &str, reason: &str) -> Result<(), FlowError> {
        for _ in 0..5 {
            let loaded = self.flows.load(flow_id).await?;
            let mut flow = loaded.flow;
            if !matches!(flow.outcome, Some(Outcome::Launched { .. })) {
                return Ok(());
            }
            self.finish(
                &mut flow,
                Outcome::Ended {
                    reason: reason.to_owned(),
                },
            )
            .await?;
            match self.flows.save(&flow, loaded.version, unix_now()).await {
                Ok(_) => return Ok(()),
                Err(super::state::StateError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(FlowError::Conflict)
    }
}
