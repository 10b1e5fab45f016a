//! Credential source "empowerid": the gateway as EmpowerID's OpenPSM gateway, speaking the
//! secure-access-gateway API the seed documents.
//!
//! - Check-out: `POST {ApiUrl}/api/services/v1/secureaccessgateway/getcredential` with the seed's
//!   payload (`computer`, `credential`, `password` = the master password, `mode`, `session`,
//!   `loginsessionid`); the access token (`ApiKey`) goes in `Authorization: Bearer`, the application
//!   key (`ApiApplicationKey`) in `X-EmpowerID-API-Key` (both header names are settings).
//! - Answers: 200 with the seed's success object; 401 is a wrong master password
//!   (`Unauthorized`), unless the API says the access token expired (RFC 6750
//!   `WWW-Authenticate: Bearer error="invalid_token"`, or a body naming an expired token):
//!   `TokenExpired`; anything else an error for the error page.
//! - End: `POST .../secureaccessgateway/endsession` with `computer`, `credential`, `session`,
//!   `loginsessionid` (the seed names the endpoint, not its body: this is the check-out payload
//!   without the password). The host retries it by the seed's rules and keeps it until done.
//! - Which credential: the IAM chose it; the start link names it (`CredentialID`, with
//!   `IsPersonalCred`, or `ExternalCredentialGuid`), and `list` offers exactly that one.
//!
//! Redirects are never followed (they could carry the master password elsewhere); plain `http://`
//! is only spoken to loopback addresses; answers are read up to `max_response_bytes`.
//!
//! Settings: `api_url` (used when a link carries no `ApiUrl`), `application_key` (when a link
//! carries no `ApiApplicationKey`), `timeout_secs` (15), `connect_timeout_secs` (5),
//! `max_response_bytes` (65536), `ca_file` (extra PEM CA certificates), `access_token_header`
//! ("Authorization"), `application_key_header` ("X-EmpowerID-API-Key"), `session_check_path`
//! (for start links authenticated by the IAM's parameters; see `authenticate`).

mod api;

use std::sync::Arc;

use openpsm_plugin_api::{
    BuiltinPlugin, CheckOut, CheckedOut, CredentialKind, CredentialRef, CredentialSource,
    EndSession, FlowSubject, Plugin, PluginInfo, PluginInstance, PluginKind, PluginResult,
    PluginSettings, async_trait,
};

pub use api::{CHECK_OUT_PATH, END_SESSION_PATH};

pub const ID: &str = "empowerid";

pub fn info() -> PluginInfo {
    PluginInfo::new(
        PluginKind::CredentialSource,
        ID,
        env!("CARGO_PKG_VERSION"),
        "EmpowerID secure-access-gateway API (getcredential, endsession)",
    )
}

pub fn build(settings: PluginSettings) -> PluginResult<PluginInstance> {
    Ok(PluginInstance::CredentialSource(Arc::new(EmpowerId {
        api: api::Api::new(&settings)?,
    })))
}

inventory::submit! { BuiltinPlugin { info, build } }

pub struct EmpowerId {
    api: api::Api,
}

#[async_trait]
impl Plugin for EmpowerId {
    fn info(&self) -> PluginInfo {
        info()
    }
}

#[async_trait]
impl CredentialSource for EmpowerId {
    /// The credential the start link names; none if it names none.
    async fn list(&self, who: &FlowSubject) -> PluginResult<Vec<CredentialRef>> {
        let personal = |id: String| CredentialRef {
            label: format!("personal credential {id}"),
            id,
            kind: CredentialKind::Personal,
            owner: Some(who.person),
            available: true,
        };
        Ok(match (&who.external_credential, &who.credential_id) {
            (Some(guid), _) => vec![personal(guid.to_string())],
            (None, Some(id)) if who.is_personal_cred == Some(true) => vec![personal(id.clone())],
            (None, Some(id)) => vec![CredentialRef {
                label: format!("shared credential {id}"),
                id: id.clone(),
                kind: CredentialKind::Shared,
                owner: None,
                available: true,
            }],
            (None, None) => Vec::new(),
        })
    }

    async fn check_out(&self, req: CheckOut) -> PluginResult<CheckedOut> {
        self.api.get_credential(&req).await
    }

    async fn end_session(&self, req: EndSession) -> PluginResult<()> {
        self.api.end_session(&req).await
    }

    async fn authenticate(&self, who: &FlowSubject) -> PluginResult<()> {
        self.api.check_session(who).await
    }
}
