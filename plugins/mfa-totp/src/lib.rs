//! MFA provider "totp" (RFC 6238): HMAC-SHA-1/256/512, 6 or 8 digits, a time step (30 s) and a
//! window of steps either side (1). The enrolled secret records its own parameters, so changing the
//! settings later does not break existing enrolments. The host keeps the replay cache (a code's step
//! is accepted once) and the attempt limits.
//! Settings: `algorithm` ("sha1" | "sha256" | "sha512"), `digits` (6 | 8), `step_secs` (30),
//! `window` (1), `issuer` ("openpsm").

pub mod totp;

use std::sync::Arc;
use std::time::SystemTime;

use openpsm_plugin_api::{
    BuiltinPlugin, EnrolledSecret, Enrollment, MfaProvider, Plugin, PluginError, PluginInfo,
    PluginInstance, PluginKind, PluginResult, PluginSettings, ProviderInfo, SecretText, Subject,
    Verdict, async_trait,
};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use totp::Algorithm;

pub const ID: &str = "totp";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    algorithm: Algorithm,
    #[serde(default = "six")]
    digits: u32,
    #[serde(default = "thirty")]
    step_secs: u64,
    #[serde(default = "one")]
    window: u64,
    #[serde(default = "issuer")]
    issuer: String,
}

fn six() -> u32 {
    6
}
fn thirty() -> u64 {
    30
}
fn one() -> u64 {
    1
}
fn issuer() -> String {
    "openpsm".into()
}

/// What the host stores (sealed) for one person.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    v: u8,
    algorithm: Algorithm,
    digits: u32,
    step_secs: u64,
    secret: String,
}

pub struct Totp {
    algorithm: Algorithm,
    digits: u32,
    step_secs: u64,
    window: u64,
    issuer: String,
}

impl Totp {
    pub fn new(settings: &PluginSettings) -> PluginResult<Self> {
        let s: Settings = settings.parse()?;
        if !matches!(s.digits, 6 | 8) || !(15..=120).contains(&s.step_secs) || s.window > 5 {
            return Err(PluginError::settings(
                "digits must be 6 or 8, step_secs 15 to 120, window 0 to 5",
            ));
        }
        if s.issuer.is_empty() || s.issuer.contains(':') {
            return Err(PluginError::settings(
                "issuer must be a non-empty name without ':'",
            ));
        }
        Ok(Self {
            algorithm: s.algorithm,
            digits: s.digits,
            step_secs: s.step_secs,
            window: s.window,
            issuer: s.issuer,
        })
    }
}

pub fn info() -> PluginInfo {
    PluginInfo::new(
        PluginKind::MfaProvider,
        ID,
        env!("CARGO_PKG_VERSION"),
        "time-based one-time passwords (RFC 6238)",
    )
}

pub fn build(settings: PluginSettings) -> PluginResult<PluginInstance> {
    Ok(PluginInstance::MfaProvider(Arc::new(Totp::new(&settings)?)))
}

inventory::submit! { BuiltinPlugin { info, build } }

fn escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[async_trait]
impl Plugin for Totp {
    fn info(&self) -> PluginInfo {
        info()
    }
}

#[async_trait]
impl MfaProvider for Totp {
    fn provider_info(&self) -> ProviderInfo {
        ProviderInfo {
            id: ID.into(),
            label: "Authenticator app".into(),
            prompt: format!("the {}-digit code from your authenticator app", self.digits),
        }
    }

    async fn enroll(&self, who: &Subject) -> PluginResult<Enrollment> {
        let mut key = vec![0u8; self.algorithm.key_len()];
        rand::rng().fill_bytes(&mut key);
        let secret = data_encoding::BASE32_NOPAD.encode(&key);
        let stored = Stored {
            v: 1,
            algorithm: self.algorithm,
            digits: self.digits,
            step_secs: self.step_secs,
            secret: secret.clone(),
        };
        let uri = format!(
            "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm={alg}&digits={digits}&period={period}",
            issuer = escape(&self.issuer),
            account = escape(&who.login),
            alg = self.algorithm.uri_name(),
            digits = self.digits,
            period = self.step_secs,
        );
        Ok(Enrollment {
            secret: EnrolledSecret(SecretText::new(serde_json::to_string(&stored).map_err(|e| PluginError::internal(e.to_string()))?)),
            instructions: "Add this account to your authenticator app (scan the QR code or enter the key), then type its current code.".into(),
            reveal: Some(SecretText::new(uri)),
        })
    }

    async fn verify(
        &self,
        _who: &Subject,
        secret: &EnrolledSecret,
        response: &SecretText,
        now: SystemTime,
    ) -> PluginResult<Verdict> {
        let stored: Stored = serde_json::from_str(secret.0.expose_secret())
            .map_err(|_| PluginError::invalid_input("the enrolled secret is not a TOTP secret"))?;
        let key = data_encoding::BASE32_NOPAD
            .decode(stored.secret.as_bytes())
            .map_err(|_| PluginError::invalid_input("the enrolled TOTP key is damaged"))?;
        let typed: String = response
            .expose_secret()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if typed.len() != stored.digits as usize || !typed.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(Verdict::Rejected);
        }
        let unix = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let step = unix / stored.step_secs.max(1);
        let low = step.saturating_sub(self.window);
        for candidate in low..=step.saturating_add(self.window) {
            let code = totp::code(stored.algorithm, &key, candidate, stored.digits);
            if totp::same(&code, &typed) {
                return Ok(Verdict::Accepted {
                    step: Some(candidate),
                });
            }
        }
        Ok(Verdict::Rejected)
    }
}
