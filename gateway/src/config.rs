//! Configuration: built-in defaults < config file < `OPENPSM_*` environment (figment).
//!
//! The defaults are `config/gateway.toml` itself, embedded at build time, so the documented file
//! and the behaviour cannot drift apart.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format as _, Toml};
use openpsm_plugin_api::info::validate_id;
use serde::{Deserialize, Serialize};

/// The documented configuration file, which is also the defaults.
pub const DEFAULTS: &str = include_str!("../../config/gateway.toml");

/// The file read when no `--config` is given, if it exists.
pub const DEFAULT_FILE: &str = "config/gateway.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    Missing(PathBuf),
    #[error("{0}")]
    Parse(String),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub data_dir: PathBuf,
    pub cluster_id: String,
    pub node_id: String,
    pub store: StoreConfig,
    pub directory: DirectoryConfig,
    pub links: LinksConfig,
    pub flows: FlowsConfig,
    pub mfa: MfaConfig,
    pub credentials: CredentialsConfig,
    pub sessions: SessionsConfig,
    pub web: WebConfig,
    pub server: ServerConfig,
    pub log: LogConfig,
    pub plugin_defaults: PluginDefaults,
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    pub url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    pub file: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinksConfig {
    pub public_url: String,
    pub max_lifetime_secs: u64,
    pub authentication: LinkAuthentication,
    pub api_urls: Vec<String>,
}

/// How start links are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkAuthentication {
    /// HMAC-signed by the IAM portal with the link key.
    Signed,
    /// Unsigned; the IAM's parameters (LoginSessionID, ApiKey) are confirmed with the credential
    /// source's API before anything is shown.
    Iam,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsConfig {
    pub source: String,
    pub end_retry_secs: u64,
    pub end_retry_max_secs: u64,
    pub end_give_up_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowsConfig {
    pub ttl_secs: u64,
    pub master_password_attempts: u32,
    pub person_failures_per_15min: u32,
    pub launch_token_ttl_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfaConfig {
    pub flow_attempts: u32,
    pub max_failures: u32,
    pub failure_window_secs: u64,
    pub lockout_secs: u64,
    pub enrolment_ttl_secs: u64,
    pub enrolment_attempts: u32,
}

impl MfaConfig {
    /// The most wrong codes one person can try in an hour under these settings: a lock after
    /// every `max_failures`, or `max_failures - 1` per window without ever being locked.
    pub fn worst_case_per_hour(&self) -> u64 {
        let f = u64::from(self.max_failures);
        let locked_cycles = 3600 / self.lockout_secs.max(1) + 1;
        let unlocked = f.saturating_sub(1) * 3600_u64.div_ceil(self.failure_window_secs.max(1));
        (f * locked_cycles).max(unlocked)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsConfig {
    pub browser_send_timeout_secs: u64,
    pub idle_timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    pub dir: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginDefaults {
    pub call_timeout_ms: u64,
    pub load_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginEntry {
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub settings: serde_json::Value,
}

fn enabled_by_default() -> bool {
    true
}

/// Maps an environment key to a config key: after `plugins.`, a `_` in the plugin id stands for
/// `-` (a shell cannot export a name with `-`).
fn env_key(key: &str) -> String {
    let mut parts: Vec<String> = key.split('.').map(str::to_owned).collect();
    // figment lowercases keys after this mapping, so the key may still be upper-case here.
    let in_plugins = parts
        .first()
        .is_some_and(|p| p.eq_ignore_ascii_case("plugins"));
    if in_plugins && let Some(id) = parts.get_mut(1) {
        *id = id.replace('_', "-");
    }
    parts.join(".")
}

impl Config {
    /// Loads the layers. `file` is `--config`; without it `config/gateway.toml` is read if present.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULTS));
        match file {
            Some(path) if !path.is_file() => return Err(ConfigError::Missing(path.to_owned())),
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if Path::new(DEFAULT_FILE).is_file() => {
                figment = figment.merge(Toml::file_exact(DEFAULT_FILE));
            }
            None => {}
        }
        let env = Env::prefixed("OPENPSM_")
            .ignore(&["config"])
            .split("__")
            .map(|k| env_key(k.as_str()).into());
        figment = figment.merge(env);
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Parse(one_line(&e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Rules serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.data_dir.as_os_str().is_empty() {
            return invalid("data_dir must not be empty".into());
        }
        if self.cluster_id.trim().is_empty() {
            return invalid("cluster_id must not be empty".into());
        }
        if !self.store.url.is_empty()
            && !["sqlite:", "postgres://", "postgresql://"]
                .iter()
                .any(|p| self.store.url.starts_with(p))
        {
            return invalid(
                "store.url must be empty (SQLite in data_dir), sqlite:... or postgres://...".into(),
            );
        }
        if !(self.links.public_url.starts_with("http://")
            || self.links.public_url.starts_with("https://"))
        {
            return invalid("links.public_url must start with http:// or https://".into());
        }
        if !(10..=86_400).contains(&self.links.max_lifetime_secs) {
            return invalid("links.max_lifetime_secs must be 10 to 86400".into());
        }
        if !(60..=86_400).contains(&self.flows.ttl_secs)
            || !(1..=600).contains(&self.flows.launch_token_ttl_secs)
        {
            return invalid(
                "flows.ttl_secs must be 60 to 86400 and flows.launch_token_ttl_secs 1 to 600"
                    .into(),
            );
        }
        if !(1..=20).contains(&self.flows.master_password_attempts) {
            return invalid("flows.master_password_attempts must be 1 to 20".into());
        }
        if !(1..=3600).contains(&self.sessions.browser_send_timeout_secs) {
            return invalid("sessions.browser_send_timeout_secs must be 1 to 3600".into());
        }
        if !(1..=100).contains(&self.flows.person_failures_per_15min) {
            return invalid("flows.person_failures_per_15min must be 1 to 100".into());
        }
        for url in &self.links.api_urls {
            if crate::startlink::allow::Allowed::parse(url).is_none() {
                return invalid(format!(
                    "links.api_urls: {url:?} is not an http(s) URL without user name, query or fragment"
                ));
            }
        }
        let c = &self.credentials;
        if c.source.is_empty()
            || !(1..=3600).contains(&c.end_retry_secs)
            || !(c.end_retry_secs..=86_400).contains(&c.end_retry_max_secs)
            || !(60..=30 * 86_400).contains(&c.end_give_up_secs)
        {
            return invalid(
                "credentials: source must be set; end_retry_secs 1 to 3600, end_retry_max_secs from end_retry_secs to 86400, end_give_up_secs 60 to 2592000".into(),
            );
        }
        if self.links.authentication == LinkAuthentication::Iam && c.source == "vault" {
            return invalid(
                "links.authentication = \"iam\" needs a credential source that confirms IAM sessions (credentials.source = \"empowerid\")".into(),
            );
        }
        let m = &self.mfa;
        if !(1..=20).contains(&m.flow_attempts)
            || !(1..=100).contains(&m.max_failures)
            || !(60..=86_400).contains(&m.failure_window_secs)
            || !(60..=86_400).contains(&m.lockout_secs)
            || !(300..=604_800).contains(&m.enrolment_ttl_secs)
            || !(1..=20).contains(&m.enrolment_attempts)
        {
            return invalid(
                "mfa: flow_attempts 1 to 20, max_failures 1 to 100, failure_window_secs and lockout_secs 60 to 86400, enrolment_ttl_secs 300 to 604800, enrolment_attempts 1 to 20".into(),
            );
        }
        if m.worst_case_per_hour() > 100 {
            return invalid(format!(
                "mfa: these settings allow {} wrong codes an hour; OWASP ASVS 2.2.1 allows at most 100 (lower max_failures or raise lockout_secs)",
                m.worst_case_per_hour()
            ));
        }
        if !self.server.listen.ip().is_loopback() {
            return invalid(format!(
                "server.listen = {} is not a loopback address: plain HTTP is only served on loopback",
                self.server.listen
            ));
        }
        let timeouts = [
            (
                "plugin_defaults.call_timeout_ms",
                Some(self.plugin_defaults.call_timeout_ms),
            ),
            (
                "plugin_defaults.load_timeout_ms",
                Some(self.plugin_defaults.load_timeout_ms),
            ),
        ];
        let per_plugin = self
            .plugins
            .iter()
            .map(|(id, p)| (id.as_str(), p.call_timeout_ms));
        for (name, value) in timeouts.into_iter().chain(per_plugin) {
            if let Some(ms) = value
                && !(1..=600_000).contains(&ms)
            {
                return invalid(format!("{name}: timeout must be 1 to 600000 ms, got {ms}"));
            }
        }
        for (id, entry) in &self.plugins {
            if let Err(e) = validate_id(id) {
                return invalid(format!("plugins.{id}: {e}"));
            }
            if entry
                .path
                .as_ref()
                .is_some_and(|p| p.as_os_str().is_empty())
            {
                return invalid(format!("plugins.{id}.path must not be empty"));
            }
            if !(entry.settings.is_null() || entry.settings.is_object()) {
                return invalid(format!("plugins.{id}.settings must be a table"));
            }
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return invalid(format!(
                "log.level {:?} is not a valid filter",
                self.log.level
            ));
        }
        Ok(())
    }

    /// The store's URL: the configured one, or SQLite in the data directory.
    pub fn store_url(&self) -> String {
        if self.store.url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("openpsm.db").display())
        } else {
            self.store.url.clone()
        }
    }

    /// This node's name: `node_id`, else the host name.
    pub fn node(&self) -> String {
        if !self.node_id.is_empty() {
            return self.node_id.clone();
        }
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "node".into())
    }

    /// The call timeout of one plugin.
    pub fn call_timeout(&self, id: &str) -> std::time::Duration {
        let ms = self
            .plugins
            .get(id)
            .and_then(|p| p.call_timeout_ms)
            .unwrap_or(self.plugin_defaults.call_timeout_ms);
        std::time::Duration::from_millis(ms)
    }

    /// The effective configuration as TOML, with every secret-looking value redacted.
    pub fn to_redacted_toml(&self) -> Result<String, ConfigError> {
        let mut value =
            serde_json::to_value(self).map_err(|e| ConfigError::Parse(e.to_string()))?;
        redact(&mut value);
        toml::to_string_pretty(&value).map_err(|e| ConfigError::Parse(e.to_string()))
    }
}

/// True for a key whose value must never be printed.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "passphrase",
        "credential",
        "private",
    ]
    .iter()
    .any(|w| k.contains(w))
        || k == "key"
        || k.ends_with("_key")
        || k.ends_with("-key")
        || k.ends_with("apikey")
}

fn redact(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if is_secret_key(k) && !v.is_object() {
                    *v = serde_json::Value::String("[redacted]".into());
                } else if let Some(text) = v.as_str()
                    && let Some(clean) = redact_url_password(text)
                {
                    *v = serde_json::Value::String(clean);
                } else {
                    redact(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// `scheme://user:password@host...` with the password replaced; None for anything else.
pub fn redact_url_password(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    let (userinfo, host) = rest.split_once('@')?;
    if host.contains('@') || userinfo.contains('/') {
        return None;
    }
    let (user, _password) = userinfo.split_once(':')?;
    Some(format!("{scheme}://{user}:[redacted]@{host}"))
}

/// figment's errors can span lines; the gateway reports configuration errors on one line.
fn one_line(e: &figment::Error) -> String {
    e.clone()
        .into_iter()
        .map(|e| e.to_string().replace('\n', " "))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_keys_map_plugin_ids() {
        assert_eq!(
            env_key("plugins.jit_ad.settings.bind_dn"),
            "plugins.jit-ad.settings.bind_dn"
        );
        assert_eq!(
            env_key("server.shutdown_grace_secs"),
            "server.shutdown_grace_secs"
        );
    }

    #[test]
    fn secrets_are_redacted() {
        let mut v = serde_json::json!({"a": {"bind_password": "x", "api_key": "y", "keepalive_secs": 3, "dir": "d"}});
        redact(&mut v);
        assert_eq!(v["a"]["bind_password"], "[redacted]");
        assert_eq!(v["a"]["api_key"], "[redacted]");
        assert_eq!(v["a"]["keepalive_secs"], 3);
        assert_eq!(v["a"]["dir"], "d");
        let mut v =
            serde_json::json!({"store": {"url": "postgres://psm:Canary-9@db:5432/openpsm"}});
        redact(&mut v);
        assert_eq!(
            v["store"]["url"],
            "postgres://psm:[redacted]@db:5432/openpsm"
        );
    }

    #[test]
    fn embedded_defaults_parse_and_validate() {
        let config: Config = Figment::from(Toml::string(DEFAULTS)).extract().unwrap();
        config.validate().unwrap();
        assert!(config.plugins.contains_key("local-files"));
    }
}
