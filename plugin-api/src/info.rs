//! Plugin identity and what the host hands a plugin when it builds one.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::PluginError;

/// The plugin-api version a plugin was built against. A library whose version is not
/// compatible with the host's (same 0.x minor) is refused at load.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Which of the five extension points a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginKind {
    ConnectionMode,
    MfaProvider,
    CredentialSource,
    Recorder,
    AccountProvisioner,
}

impl PluginKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConnectionMode => "connection_mode",
            Self::MfaProvider => "mfa_provider",
            Self::CredentialSource => "credential_source",
            Self::Recorder => "recorder",
            Self::AccountProvisioner => "account_provisioner",
        }
    }
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a plugin is. `id` is what config keys it by (`[plugins.<id>]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    pub kind: PluginKind,
    pub id: String,
    pub version: String,
    pub api_version: String,
    pub description: String,
}

impl PluginInfo {
    /// Info for a plugin built against this crate: `api_version` is filled in.
    pub fn new(
        kind: PluginKind,
        id: impl Into<String>,
        version: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            id: id.into(),
            version: version.into(),
            api_version: API_VERSION.to_owned(),
            description: description.into(),
        }
    }
}

/// Checks a plugin id: 1 to 64 characters of `a-z`, `0-9` and `-`, starting with a letter.
///
/// Why no `_`: ids appear in environment variables (`OPENPSM_PLUGINS__JIT_AD__ENABLED`), where a
/// `-` cannot be written; the host maps `_` in that position back to `-`, so both spellings must
/// name the same plugin.
pub fn validate_id(id: &str) -> Result<(), PluginError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(PluginError::invalid_input(format!(
            "invalid plugin id {id:?}: use 1-64 characters of a-z, 0-9 and '-', starting with a letter"
        )))
    }
}

/// Compares two plugin-api versions the way the loader does: same major, and for 0.x the same minor.
pub fn api_compatible(host: &str, plugin: &str) -> bool {
    fn parts(v: &str) -> Option<(u64, u64)> {
        let mut it = v.split('.');
        let major = it.next()?.parse().ok()?;
        let minor = it.next()?.parse().ok()?;
        Some((major, minor))
    }
    match (parts(host), parts(plugin)) {
        (Some((0, hm)), Some((0, pm))) => hm == pm,
        (Some((hmaj, _)), Some((pmaj, _))) => hmaj == pmaj,
        _ => false,
    }
}

/// What the host hands a plugin beside its settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostContext {
    /// The id the plugin is configured under.
    pub id: String,
    /// The gateway's data directory; a plugin that keeps files keeps them below it.
    pub data_dir: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for good in ["ssh", "jit-ad", "acme-mfa2"] {
            assert!(validate_id(good).is_ok(), "{good}");
        }
        for bad in ["", "SSH", "jit_ad", "-x", "1x", "a b", &"a".repeat(65)] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn versions() {
        assert!(api_compatible("0.1.0", "0.1.7"));
        assert!(!api_compatible("0.1.0", "0.2.0"));
        assert!(!api_compatible("0.1.0", "0.0.9"));
        assert!(api_compatible("1.2.0", "1.0.0"));
        assert!(!api_compatible("1.2.0", "2.0.0"));
        assert!(!api_compatible("0.1.0", "garbage"));
    }
}
