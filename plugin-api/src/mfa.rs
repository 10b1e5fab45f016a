//! `MfaProvider`: enrol a person, verify a response.
//!
//! The host owns storage of the enrolled secret (encrypted), the replay cache, rate limits and
//! audit; a provider only does the cryptography of its method.

use std::time::SystemTime;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::PluginResult;
use crate::plugin::Plugin;
use crate::secret::SecretText;
use crate::types::Subject;

/// How a provider presents itself on the MFA page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderInfo {
    pub id: String,
    /// Shown to the person ("Authenticator app").
    pub label: String,
    /// What to type ("the 6-digit code from your app").
    pub prompt: String,
}

/// The secret a provider keeps for one person. Opaque to the host, which stores it encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolledSecret(pub SecretText);

/// The result of enrolment: the secret to keep and what to show the person once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    pub secret: EnrolledSecret,
    /// Instructions for the person.
    pub instructions: String,
    /// A value to show once (an otpauth URI, a recovery code); never logged.
    pub reveal: Option<SecretText>,
}

/// A provider's answer to a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Verdict {
    /// Accepted. `step` identifies what was matched (a TOTP time step, a counter) so the host can
    /// refuse the same response again (replay).
    Accepted { step: Option<u64> },
    /// Not accepted. Not an error: the host counts it against the person's attempts.
    Rejected,
}

#[async_trait]
pub trait MfaProvider: Plugin {
    fn provider_info(&self) -> ProviderInfo;

    async fn enroll(&self, who: &Subject) -> PluginResult<Enrollment>;

    async fn verify(
        &self,
        who: &Subject,
        secret: &EnrolledSecret,
        response: &SecretText,
        now: SystemTime,
    ) -> PluginResult<Verdict>;
}
