//! The plugin registry: built-ins collected with inventory, libraries loaded from `path`, every
//! one wrapped in its guard.
//!
//! **Architecture invariant**: an enabled plugin that cannot be built stops start-up with one line
//! naming the plugin, its file and the reason; the gateway never runs with a plugin missing.

pub mod elf;
pub mod guard;
pub mod loader;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use openpsm_plugin_api::{
    BuiltinPlugin, HostContext, PluginInfo, PluginInstance, PluginKind, PluginSettings,
};
use serde::Serialize;

use crate::config::{Config, PluginEntry};

/// Where a plugin comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "path")]
pub enum PluginOrigin {
    BuiltIn,
    Library(PathBuf),
}

impl std::fmt::Display for PluginOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BuiltIn => f.write_str("built-in"),
            Self::Library(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A plugin that could not be built: the one line start-up stops with.
#[derive(Debug, Clone, thiserror::Error)]
#[error("plugin `{id}` ({origin}): {reason}")]
pub struct LoadError {
    pub id: String,
    pub origin: PluginOrigin,
    pub reason: String,
    /// Long diagnostics (abi_stable's layout report), logged at debug level only.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum Status {
    Active,
    Disabled,
    Failed(String),
}

/// One line of `openpsm plugins list`.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub id: String,
    pub kind: Option<PluginKind>,
    pub version: Option<String>,
    pub api_version: Option<String>,
    pub origin: PluginOrigin,
    pub enabled: bool,
    pub status: Status,
}

/// The built plugins of a running gateway.
pub struct Registry {
    records: Vec<Record>,
    active: BTreeMap<String, PluginInstance>,
}

impl Registry {
    /// Builds every enabled plugin; the first failure stops (start-up must not go on without it).
    pub async fn load(config: &Config) -> Result<Self, LoadError> {
        let (registry, failures) = Self::build(config, true).await;
        match failures.into_iter().next() {
            Some(first) => Err(first),
            None => Ok(registry),
        }
    }

    /// Builds every enabled plugin and reports each one, failed or not (`plugins list`).
    pub async fn inspect(config: &Config) -> (Self, Vec<LoadError>) {
        Self::build(config, false).await
    }

    async fn build(config: &Config, stop_at_first: bool) -> (Self, Vec<LoadError>) {
        let mut registry = Self {
            records: Vec::new(),
            active: BTreeMap::new(),
        };
        let mut failures = Vec::new();
        let mut builtins: BTreeMap<String, &'static BuiltinPlugin> = BTreeMap::new();
        for builtin in openpsm_plugin_api::builtins() {
            let id = (builtin.info)().id;
            if builtins.insert(id.clone(), builtin).is_some() {
                failures.push(LoadError {
                    id,
                    origin: PluginOrigin::BuiltIn,
                    reason: "duplicate id: two built-in plugins register this id".into(),
                    detail: None,
                });
            }
        }
        let mut wanted: BTreeMap<String, PluginEntry> = config.plugins.clone();
        for id in builtins.keys() {
            wanted.entry(id.clone()).or_insert(PluginEntry {
                enabled: true,
                path: None,
                call_timeout_ms: None,
                settings: serde_json::Value::Null,
            });
        }
        for (id, entry) in wanted {
            if stop_at_first && !failures.is_empty() {
                break;
            }
            let origin = match &entry.path {
                Some(path) => PluginOrigin::Library(path.clone()),
                None => PluginOrigin::BuiltIn,
            };
            // A library configured under a built-in's id replaces that built-in (a vendor's build
            // of it); the library must then present that id itself.
            let builtin = if entry.path.is_some() {
                None
            } else {
                builtins.get(&id).copied()
            };
            let known = builtin.map(|b| (b.info)());
            let mut record = Record {
                id: id.clone(),
                kind: known.as_ref().map(|i| i.kind),
                version: known.as_ref().map(|i| i.version.clone()),
                api_version: known.as_ref().map(|i| i.api_version.clone()),
                origin: origin.clone(),
                enabled: entry.enabled,
                status: Status::Disabled,
            };
            if entry.enabled {
                match registry.build_one(config, &id, &entry, builtin).await {
                    Ok((info, instance)) => {
                        record.kind = Some(info.kind);
                        record.version = Some(info.version);
                        record.api_version = Some(info.api_version);
                        record.status = Status::Active;
                        let instance = guard::guard(
                            instance,
                            guard::Guard::new(&id, config.call_timeout(&id)),
                        );
                        registry.active.insert(id.clone(), instance);
                    }
                    Err(reason) => {
                        if let Some(detail) = &reason.detail {
                            tracing::debug!(plugin = %id, "{detail}");
                        }
                        record.status = Status::Failed(reason.reason.clone());
                        failures.push(LoadError {
                            id: id.clone(),
                            origin,
                            reason: reason.reason,
                            detail: reason.detail,
                        });
                    }
                }
            }
            registry.records.push(record);
        }
        metrics::gauge!("openpsm_plugins_active").set(registry.active.len() as f64);
        (registry, failures)
    }

    async fn build_one(
        &self,
        config: &Config,
        id: &str,
        entry: &PluginEntry,
        builtin: Option<&'static BuiltinPlugin>,
    ) -> Result<(PluginInfo, PluginInstance), loader::Refusal> {
        let host = HostContext {
            id: id.to_owned(),
            data_dir: config.data_dir.clone(),
        };
        let refuse = |reason: String| loader::Refusal {
            reason,
            detail: None,
        };
        let limit = std::time::Duration::from_millis(config.plugin_defaults.load_timeout_ms);
        match (&entry.path, builtin) {
            (None, None) => {
                let known: Vec<String> = openpsm_plugin_api::builtins()
                    .map(|b| (b.info)().id)
                    .collect();
                Err(refuse(format!(
                    "no built-in plugin has this id (built-ins: {}); set `path` to load a library",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )))
            }
            (None, Some(builtin)) => {
                let info = (builtin.info)();
                let build = builtin.build;
                let settings = PluginSettings {
                    host,
                    settings: entry.settings.clone(),
                };
                let built = tokio::time::timeout(
                    limit,
                    tokio::task::spawn_blocking(move || build(settings)),
                )
                .await
                .map_err(|_| {
                    refuse(format!(
                        "building the plugin took longer than {} ms",
                        limit.as_millis()
                    ))
                })?
                .map_err(|e| refuse(format!("building the plugin panicked: {e}")))?;
                let instance = built.map_err(|e| refuse(loader::describe_error(&e)))?;
                Ok((info, instance))
            }
            (Some(path), _) => {
                let (path, id_owned, settings) =
                    (path.clone(), id.to_owned(), entry.settings.clone());
                let loaded = tokio::time::timeout(
                    limit,
                    tokio::task::spawn_blocking(move || {
                        loader::load(&path, &id_owned, host, settings)
                    }),
                )
                .await
                .map_err(|_| {
                    refuse(format!(
                        "loading the library took longer than {} ms",
                        limit.as_millis()
                    ))
                })?
                .map_err(|e| refuse(format!("loading the library panicked: {e}")))??;
                Ok((loaded.info, loaded.instance))
            }
        }
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The active plugins, guarded, by id.
    pub fn active(&self) -> &BTreeMap<String, PluginInstance> {
        &self.active
    }

    pub fn get(&self, id: &str) -> Option<&PluginInstance> {
        self.active.get(id)
    }
}

/// A registry shared by the server's tasks.
pub type SharedRegistry = Arc<Registry>;
