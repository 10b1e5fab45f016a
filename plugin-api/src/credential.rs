//! `CredentialSource`: which credentials a person may use on a computer, and the seed's
//! check-out (`getcredential`) and end-of-session (`endsession`) calls.
//!
//! Field names follow the seed: `CheckOut` carries every field of the getcredential payload and
//! `CheckedOut` every field of its success response.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{ErrorKind, Origin, PluginError, PluginResult};
use crate::plugin::Plugin;
use crate::secret::SecretText;

/// The IAM context a start link brought (EmpowerID mode): where its API is and how to call it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiContext {
    /// `ApiUrl`, already checked against the allow-list by the host; empty when the link carried
    /// none (the source then uses the URL it is configured with).
    pub url: String,
    /// `ApiKey`: the access token.
    pub api_key: SecretText,
    /// `ApiApplicationKey`; empty when the link carried none (the source's configured one).
    pub application_key: SecretText,
}

/// Who asks for credentials, and for which computer under which policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowSubject {
    /// `TargetPersonGuid`.
    pub person: Uuid,
    /// `TargetComputerGuid`.
    pub computer: Uuid,
    /// `ComputerID`, the IAM's internal id, where the start link carried it.
    pub computer_id: Option<String>,
    /// `AccessRequestPolicyID`.
    pub policy: Uuid,
    /// `LoginSessionID`.
    pub login_session_id: Option<String>,
    pub api: Option<ApiContext>,
    /// `CredentialID`, where the start link named the credential (EmpowerID mode).
    #[serde(default)]
    pub credential_id: Option<String>,
    /// `IsPersonalCred`.
    #[serde(default)]
    pub is_personal_cred: Option<bool>,
    /// `ExternalCredentialGuid`: a personal credential the link names.
    #[serde(default)]
    pub external_credential: Option<Uuid>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    Personal,
    Shared,
}

/// One credential the person may choose. Never carries the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRef {
    /// `CredentialID` (or `ExternalCredentialGuid` for personal credentials).
    pub id: String,
    pub label: String,
    pub kind: CredentialKind,
    /// The person a personal credential belongs to.
    pub owner: Option<Uuid>,
    /// False while a shared credential is checked out by someone else.
    pub available: bool,
}

/// The seed's getcredential payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOut {
    /// `computer`: ComputerID.
    pub computer: String,
    /// `credential`: CredentialID.
    pub credential: String,
    /// `password`: the person's master password.
    pub password: SecretText,
    /// `mode`: "RDP", "SSH" or "Telnet".
    pub mode: String,
    /// `session`: the session's UUID.
    pub session: Uuid,
    /// `loginsessionid`: LoginSessionID.
    pub loginsessionid: Option<String>,
    /// Who checks out (the host has verified it); not part of the seed's payload.
    pub subject: FlowSubject,
}

/// The seed's getcredential success response (field names as the API sends them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CheckedOut {
    #[serde(rename = "IsPasswordSSHKey")]
    pub is_password_ssh_key: bool,
    /// `Domain\username` or `username`.
    pub user_name: String,
    /// The password, or the private key when `IsPasswordSSHKey` is true.
    pub password: SecretText,
    pub notes: Option<String>,
    pub server: Option<String>,
    pub server2: Option<String>,
    pub server3: Option<String>,
    #[serde(rename = "GatewayServerDNSHostName")]
    pub gateway_server_dns_host_name: Option<String>,
    pub management_port: Option<u16>,
    pub allow_live_snooping: bool,
    pub allow_join_requests: bool,
    pub allow_join_invites: bool,
    #[serde(rename = "RecordPSMSession")]
    pub record_psm_session: bool,
}

/// The seed's endsession call: the session is over, release what it held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndSession {
    pub session: Uuid,
    pub computer: String,
    pub credential: String,
    pub loginsessionid: Option<String>,
    pub subject: FlowSubject,
}

/// Where credentials come from. Errors use `ErrorKind::Unauthorized` for the seed's 401 (wrong
/// master password: ask again), `TokenExpired` (end the flow), `Unavailable` (a shared credential
/// is taken), anything else for the error page. The host retries `end_session` by the seed's rules
/// (401 up to 7 times, other errors with backoff), so it must be idempotent.
#[async_trait]
pub trait CredentialSource: Plugin {
    async fn list(&self, who: &FlowSubject) -> PluginResult<Vec<CredentialRef>>;

    async fn check_out(&self, req: CheckOut) -> PluginResult<CheckedOut>;

    async fn end_session(&self, req: EndSession) -> PluginResult<()>;

    /// Confirms the IAM context a start link brought (`LoginSessionID` and the access token) with
    /// the source, before anything is shown; used when start links are authenticated by the IAM's
    /// parameters instead of a signature. `TokenExpired` or `Unauthorized` refuse the link.
    /// Sources that cannot do this keep the default, which refuses.
    async fn authenticate(&self, who: &FlowSubject) -> PluginResult<()> {
        let _ = who;
        Err(PluginError::new(
            Origin::Plugin,
            ErrorKind::InvalidSettings,
            "this credential source cannot confirm IAM sessions",
        ))
    }
}
