//! A flow's state and its persistence: one row per flow, the state sealed (AES-256-GCM, the flow
//! id as associated data) because it holds the checked-out credential between steps, and a
//! version number so two requests cannot both advance the same step.

use std::net::IpAddr;

use openpsm_plugin_api::credential::ApiContext;
use openpsm_plugin_api::{CredentialKind, JitAccountRef, SecretText};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use sqlx::Row as _;
use uuid::Uuid;

use crate::keys::Key256;
use crate::store::{Store, StoreError};
use crate::vault::crypto;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chosen {
    pub id: String,
    pub kind: CredentialKind,
    pub label: String,
}

/// What the session will inject, once checked out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Injected {
    pub user_name: String,
    pub secret: SecretText,
    pub is_key: bool,
    pub hosts: Vec<String>,
    pub port: Option<u16>,
    pub record: bool,
    /// The IAM's live-monitoring permissions for this session (AllowLiveSnooping,
    /// AllowJoinRequests, AllowJoinInvites), kept for live monitoring.
    pub allow_live_snooping: bool,
    #[serde(default)]
    pub allow_join_requests: bool,
    #[serde(default)]
    pub allow_join_invites: bool,
}

/// A just-in-time account's login (`DOMAIN\\user` and its password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JitLogin {
    pub user_name: String,
    pub password: SecretText,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Launched {
        token_id: Uuid,
        expires_at: i64,
        token: String,
    },
    Ended {
        reason: String,
    },
    Failed {
        message: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flow {
    pub id: String,
    pub person: Uuid,
    pub policy: Uuid,
    pub computer: Uuid,
    pub computer_id: Option<String>,
    pub advanced: bool,
    pub window_start: Option<i64>,
    pub window_end: Option<i64>,
    pub external_credential: Option<Uuid>,
    pub requested_mode: Option<String>,
    pub connection_delay: u32,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub dpi: Option<u32>,
    pub client_ip: IpAddr,
    pub login_session_id: Option<String>,
    pub api: Option<ApiContext>,
    /// `CredentialID` and `IsPersonalCred` from the link (the IAM chose the credential).
    #[serde(default)]
    pub credential_id: Option<String>,
    #[serde(default)]
    pub is_personal_cred: Option<bool>,
    pub session: Uuid,
    pub credential: Option<Chosen>,
    pub agreed: bool,
    pub mode: Option<String>,
    pub mfa_passed: Vec<String>,
    pub mfa_failures: u32,
    pub access_level: Option<String>,
    pub master_failures: u32,
    pub master_prompt_at: Option<i64>,
    pub lease: Option<String>,
    pub injected: Option<Injected>,
    pub jit: Option<JitAccountRef>,
    /// The JIT account's login, from its creation (before the master-password prompt) until the
    /// check-out puts it into `injected`.
    #[serde(default)]
    pub jit_login: Option<JitLogin>,
    pub outcome: Option<Outcome>,
    /// `token::browser_binding` of the flow secret: launch tokens are bound to it.
    pub browser: String,
    /// A message for the current step ("The master password is not correct.").
    pub notice: Option<String>,
}

/// Hash of a flow secret, as stored.
pub fn secret_hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no such flow")]
    NotFound,
    #[error("the flow changed meanwhile")]
    Conflict,
    #[error("flow state cannot be read")]
    Unreadable,
}

impl From<sqlx::Error> for StateError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// A loaded flow with the version it was read at.
pub struct Loaded {
    pub flow: Flow,
    pub version: i64,
    pub secret_hash: String,
    pub expires_at: i64,
}

pub struct FlowStore {
    store: Store,
    key: Key256,
}

impl FlowStore {
    pub fn new(store: Store, key: Key256) -> Self {
        Self { store, key }
    }

    fn seal(&self, flow: &Flow) -> Result<String, StateError> {
        let json = zeroize::Zeroizing::new(
            serde_json::to_string(flow).map_err(|_| StateError::Unreadable)?,
        );
        crypto::seal(&self.key.0, &format!("flow:{}", flow.id), &json)
            .map_err(|_| StateError::Unreadable)
    }

    pub async fn insert(
        &self,
        flow: &Flow,
        secret_hash: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StateError> {
        sqlx::query(
            "INSERT INTO flows (id, secret_hash, person, state, version, created_at, updated_at, expires_at)
             VALUES ($1, $2, $3, $4, 1, $5, $5, $6)",
        )
        .bind(&flow.id)
        .bind(secret_hash)
        .bind(flow.person.to_string())
        .bind(self.seal(flow)?)
        .bind(now)
        .bind(expires_at)
        .execute(self.store.pool())
        .await?;
        Ok(())
    }

    pub async fn load(&self, id: &str) -> Result<Loaded, StateError> {
        let row =
            sqlx::query("SELECT state, version, secret_hash, expires_at FROM flows WHERE id = $1")
                .bind(id)
                .fetch_optional(self.store.pool())
                .await?
                .ok_or(StateError::NotFound)?;
        let sealed: String = row.try_get("state")?;
        let json = crypto::open(&self.key.0, &format!("flow:{id}"), &sealed)
            .map_err(|_| StateError::Unreadable)?;
        let flow: Flow = serde_json::from_str(&json).map_err(|_| StateError::Unreadable)?;
        Ok(Loaded {
            flow,
            version: row.try_get("version")?,
            secret_hash: row.try_get("secret_hash")?,
            expires_at: row.try_get("expires_at")?,
        })
    }

    /// Saves `flow` if nobody saved it since `version` was read.
    pub async fn save(&self, flow: &Flow, version: i64, now: i64) -> Result<i64, StateError> {
        let done = sqlx::query("UPDATE flows SET state = $1, version = $2, updated_at = $3 WHERE id = $4 AND version = $5")
            .bind(self.seal(flow)?)
            .bind(version + 1)
            .bind(now)
            .bind(&flow.id)
            .bind(version)
            .execute(self.store.pool())
            .await?;
        if done.rows_affected() == 1 {
            Ok(version + 1)
        } else {
            Err(StateError::Conflict)
        }
    }

    /// Moves a flow's expiry (a running session keeps its flow, and so its lease, alive).
    pub async fn extend(&self, id: &str, expires_at: i64) -> Result<(), StateError> {
        sqlx::query("UPDATE flows SET expires_at = $1 WHERE id = $2")
            .bind(expires_at)
            .bind(id)
            .execute(self.store.pool())
            .await?;
        Ok(())
    }

    /// Flows past their expiry: (id) for the sweeper, which ends them.
    pub async fn expired(&self, now: i64) -> Result<Vec<String>, StateError> {
        let rows = sqlx::query("SELECT id FROM flows WHERE expires_at <= $1")
            .bind(now)
            .fetch_all(self.store.pool())
            .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("id").map_err(StateError::from))
            .collect()
    }

    pub async fn delete(&self, id: &str) -> Result<(), StateError> {
        sqlx::query("DELETE FROM flows WHERE id = $1")
            .bind(id)
            .execute(self.store.pool())
            .await?;
        Ok(())
    }
}
