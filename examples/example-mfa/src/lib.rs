//! An MFA provider shipped as a shared library: one-time recovery codes.
//!
//! Enrolment draws a random code and shows it once; the provider keeps only a salted SHA-256 of
//! it. A right code is accepted with step 0, so the host's replay cache refuses it the second time.
//! Settings: `digits` (6 to 12, default 10).

use std::sync::Arc;
use std::time::SystemTime;

use openpsm_plugin_api::{
    EnrolledSecret, Enrollment, MfaProvider, Plugin, PluginError, PluginInfo, PluginInstance,
    PluginKind, PluginResult, PluginSettings, ProviderInfo, SecretText, Subject, Verdict,
    async_trait,
};
use rand::Rng as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

pub const ID: &str = "example-mfa";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "default_digits")]
    digits: usize,
}

fn default_digits() -> usize {
    10
}

pub struct RecoveryCodes {
    digits: usize,
}

pub fn info() -> PluginInfo {
    PluginInfo::new(
        PluginKind::MfaProvider,
        ID,
        env!("CARGO_PKG_VERSION"),
        "one-time recovery codes (example shared-library plugin)",
    )
}

pub fn build(settings: PluginSettings) -> PluginResult<PluginInstance> {
    let s: Settings = settings.parse()?;
    if !(6..=12).contains(&s.digits) {
        return Err(PluginError::settings(format!(
            "digits must be between 6 and 12, got {}",
            s.digits
        )));
    }
    tracing::info!(digits = s.digits, "recovery-code provider ready");
    Ok(PluginInstance::MfaProvider(Arc::new(RecoveryCodes {
        digits: s.digits,
    })))
}

openpsm_plugin_api::export_plugin!(info: info, build: build);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest(salt: &str, code: &str) -> String {
    hex(&Sha256::new()
        .chain_update(salt)
        .chain_update(b"$")
        .chain_update(code)
        .finalize())
}

#[async_trait]
impl Plugin for RecoveryCodes {
    fn info(&self) -> PluginInfo {
        info()
    }
}

#[async_trait]
impl MfaProvider for RecoveryCodes {
    fn provider_info(&self) -> ProviderInfo {
        ProviderInfo {
            id: ID.into(),
            label: "Recovery code".into(),
            prompt: format!("the {}-digit recovery code you were given", self.digits),
        }
    }

    async fn enroll(&self, _who: &Subject) -> PluginResult<Enrollment> {
        let mut rng = rand::rng();
        let code: String = (0..self.digits)
            .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
            .collect();
        let salt = hex(&rng.random::<[u8; 16]>());
        let secret = format!("v1${salt}${}", digest(&salt, &code));
        Ok(Enrollment {
            secret: EnrolledSecret(SecretText::new(secret)),
            instructions: "Keep this code somewhere safe; it is shown once.".into(),
            reveal: Some(SecretText::new(code)),
        })
    }

    async fn verify(
        &self,
        _who: &Subject,
        secret: &EnrolledSecret,
        response: &SecretText,
        _now: SystemTime,
    ) -> PluginResult<Verdict> {
        let mut parts = secret.0.expose_secret().split('$');
        let (Some("v1"), Some(salt), Some(want), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(PluginError::invalid_input(
                "the enrolled secret is not a recovery-code secret",
            ));
        };
        let typed: String = response
            .expose_secret()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-'))
            .collect();
        if typed.len() != self.digits || !typed.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(Verdict::Rejected);
        }
        let got = digest(salt, &typed);
        if bool::from(got.as_bytes().ct_eq(want.as_bytes())) {
            Ok(Verdict::Accepted { step: Some(0) })
        } else {
            Ok(Verdict::Rejected)
        }
    }
}
