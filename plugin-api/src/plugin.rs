//! What every plugin is, whichever of the five traits it implements.

use std::sync::Arc;

use async_trait::async_trait;

use crate::credential::CredentialSource;
use crate::error::PluginResult;
use crate::info::{PluginInfo, PluginKind};
use crate::mfa::MfaProvider;
use crate::mode::ConnectionMode;
use crate::provisioner::AccountProvisioner;
use crate::recorder::Recorder;

/// The part every plugin shares: identity and a health probe (the host's `/readyz` asks it).
#[async_trait]
pub trait Plugin: Send + Sync {
    fn info(&self) -> PluginInfo;

    /// Whether the plugin can do its work now (its backend answers, its settings still hold).
    async fn health(&self) -> PluginResult<()> {
        Ok(())
    }
}

/// A built plugin, as one of the five extension points.
#[derive(Clone)]
pub enum PluginInstance {
    ConnectionMode(Arc<dyn ConnectionMode>),
    MfaProvider(Arc<dyn MfaProvider>),
    CredentialSource(Arc<dyn CredentialSource>),
    Recorder(Arc<dyn Recorder>),
    AccountProvisioner(Arc<dyn AccountProvisioner>),
}

impl PluginInstance {
    pub fn kind(&self) -> PluginKind {
        match self {
            Self::ConnectionMode(_) => PluginKind::ConnectionMode,
            Self::MfaProvider(_) => PluginKind::MfaProvider,
            Self::CredentialSource(_) => PluginKind::CredentialSource,
            Self::Recorder(_) => PluginKind::Recorder,
            Self::AccountProvisioner(_) => PluginKind::AccountProvisioner,
        }
    }

    /// The plugin as its common part.
    pub fn plugin(&self) -> &dyn Plugin {
        match self {
            Self::ConnectionMode(p) => p.as_ref(),
            Self::MfaProvider(p) => p.as_ref(),
            Self::CredentialSource(p) => p.as_ref(),
            Self::Recorder(p) => p.as_ref(),
            Self::AccountProvisioner(p) => p.as_ref(),
        }
    }
}

impl std::fmt::Debug for PluginInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let info = self.plugin().info();
        write!(f, "PluginInstance({} {})", info.kind, info.id)
    }
}

/// What a plugin is built from: the host's context and the plugin's own settings table.
#[derive(Debug, Clone, Default)]
pub struct PluginSettings {
    pub host: crate::info::HostContext,
    pub settings: serde_json::Value,
}

impl PluginSettings {
    /// Parses the settings into the plugin's own type; a missing table counts as empty.
    /// Use `#[serde(deny_unknown_fields)]` on `T` so a mistyped key is reported by name.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> crate::error::PluginResult<T> {
        let value = match &self.settings {
            serde_json::Value::Null => serde_json::Value::Object(Default::default()),
            other => other.clone(),
        };
        serde_json::from_value(value)
            .map_err(|e| crate::error::PluginError::settings(e.to_string()))
    }
}

/// A plugin compiled into the gateway, registered with [`inventory::submit!`]:
///
/// ```ignore
/// inventory::submit! { openpsm_plugin_api::BuiltinPlugin { info: my_info, build: my_build } }
/// ```
/// The binary must reference the crate (`use my_plugin as _;`) or the linker drops it.
pub struct BuiltinPlugin {
    pub info: fn() -> PluginInfo,
    pub build: fn(PluginSettings) -> crate::error::PluginResult<PluginInstance>,
}

inventory::collect!(BuiltinPlugin);

/// Every built-in linked into this binary.
pub fn builtins() -> impl Iterator<Item = &'static BuiltinPlugin> {
    inventory::iter::<BuiltinPlugin>.into_iter()
}
