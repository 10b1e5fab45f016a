//! `AccountProvisioner`: just-in-time accounts for JIT-enabled computers.

use std::time::SystemTime;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::PluginResult;
use crate::plugin::Plugin;
use crate::secret::SecretText;
use crate::types::Subject;

/// Create an account for this person and session, in these groups, until `not_after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JitRequest {
    pub person: Subject,
    pub computer: Uuid,
    pub session: Uuid,
    /// The directory groups of the chosen access level.
    pub groups: Vec<String>,
    /// The end of the access window; the account must not work after it.
    pub not_after: SystemTime,
}

/// How to find a created account again (for removal and the sweeper).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JitAccountRef {
    /// The provisioner's own key (a DN).
    pub id: String,
    pub session: Uuid,
}

/// A created account: what the session injects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JitAccount {
    pub account: JitAccountRef,
    pub user_name: String,
    pub domain: Option<String>,
    pub password: SecretText,
    pub groups: Vec<String>,
    pub not_after: SystemTime,
}

#[async_trait]
pub trait AccountProvisioner: Plugin {
    /// Creates the account; on error nothing is left behind.
    async fn create(&self, req: JitRequest) -> PluginResult<JitAccount>;

    /// Removes (or disables) the account. Removing one that is already gone is not an error.
    async fn remove(&self, account: &JitAccountRef) -> PluginResult<()>;

    /// Every account this provisioner created that still exists (for the sweeper).
    async fn owned(&self) -> PluginResult<Vec<JitAccountRef>>;
}
