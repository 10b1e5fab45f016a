//! A deliberately misbehaving MFA provider: with `fault = "panic"` its calls panic, with
//! `fault = "hang"` they never return, with `fault = "none"` it refuses every response. The
//! gateway's tests load it to prove that neither takes the gateway down.

#![allow(clippy::panic)]

use std::sync::Arc;
use std::time::SystemTime;

use openpsm_plugin_api::{
    EnrolledSecret, Enrollment, MfaProvider, Plugin, PluginError, PluginInfo, PluginInstance,
    PluginKind, PluginResult, PluginSettings, ProviderInfo, SecretText, Subject, Verdict,
    async_trait,
};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Fault {
    None,
    Panic,
    Hang,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    fault: Fault,
}

struct Misbehaving {
    fault: Fault,
}

pub fn info() -> PluginInfo {
    PluginInfo::new(
        PluginKind::MfaProvider,
        "misbehaving",
        env!("CARGO_PKG_VERSION"),
        "panics or hangs on demand",
    )
}

pub fn build(settings: PluginSettings) -> PluginResult<PluginInstance> {
    let s: Settings = settings.parse()?;
    tracing::warn!(fault = ?s.fault, "misbehaving plugin built");
    Ok(PluginInstance::MfaProvider(Arc::new(Misbehaving {
        fault: s.fault,
    })))
}

openpsm_plugin_api::export_plugin!(info: info, build: build);

impl Misbehaving {
    async fn misbehave(&self) {
        match self.fault {
            Fault::None => {}
            Fault::Panic => panic!("misbehaving plugin panics as configured"),
            Fault::Hang => futures::future::pending::<()>().await,
        }
    }
}

#[async_trait]
impl Plugin for Misbehaving {
    fn info(&self) -> PluginInfo {
        info()
    }

    async fn health(&self) -> PluginResult<()> {
        self.misbehave().await;
        Ok(())
    }
}

#[async_trait]
impl MfaProvider for Misbehaving {
    fn provider_info(&self) -> ProviderInfo {
        ProviderInfo {
            id: "misbehaving".into(),
            label: "Misbehaving".into(),
            prompt: "anything".into(),
        }
    }

    async fn enroll(&self, _who: &Subject) -> PluginResult<Enrollment> {
        self.misbehave().await;
        Err(PluginError::internal("this provider enrols nobody"))
    }

    async fn verify(
        &self,
        _: &Subject,
        _: &EnrolledSecret,
        _: &SecretText,
        _: SystemTime,
    ) -> PluginResult<Verdict> {
        self.misbehave().await;
        Ok(Verdict::Rejected)
    }
}
