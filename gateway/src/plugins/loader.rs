//! Loads one plugin from a shared library, refusing anything that could harm the process.
//!
//! Order: the file (exists, ELF, not truncated) → abi_stable's header → the plugin-api version the
//! library was built against → abi_stable's layout check → the plugin's own description (id,
//! kind) → building it from its settings. Each refusal is one line; abi_stable's long layout
//! report goes to debug level.

use std::path::Path;

use abi_stable::library::{LibraryError, lib_header_from_path};
use abi_stable::std_types::{RResult, RStr};
use openpsm_plugin_api::ffi::codec::{self, InstantiateArgs};
use openpsm_plugin_api::ffi::host::ForeignPlugin;
use openpsm_plugin_api::ffi::log::{host_emit, host_max_level};
use openpsm_plugin_api::ffi::{LogSink, PluginRoot_Ref};
use openpsm_plugin_api::info::api_compatible;
use openpsm_plugin_api::{API_VERSION, HostContext, PluginInfo, PluginInstance};

use super::elf;

/// A refusal: the reason, on one line, and an optional long detail for debug logs.
#[derive(Debug)]
pub struct Refusal {
    pub reason: String,
    pub detail: Option<String>,
}

impl Refusal {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            detail: None,
        }
    }
}

/// What a loaded library turned into.
pub struct Loaded {
    pub info: PluginInfo,
    pub instance: PluginInstance,
}

/// Loads the library at `path` as plugin `id` and builds it with `settings`.
pub fn load(
    path: &Path,
    id: &str,
    host: HostContext,
    settings: serde_json::Value,
) -> Result<Loaded, Refusal> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Refusal::new("file not found"),
        _ => Refusal::new(format!("cannot read the file: {e}")),
    })?;
    if !meta.is_file() {
        return Err(Refusal::new("not a regular file"));
    }
    elf::check_file(path).map_err(|e| Refusal::new(e.to_string()))?;

    let header = lib_header_from_path(path).map_err(|e| match e {
        LibraryError::GetSymbolError { .. } => {
            Refusal::new("not an openpsm plugin: the library exports no abi_stable root module")
        }
        LibraryError::OpenError { .. } => {
            Refusal::new(format!("cannot be loaded: {}", first_line(&e.to_string())))
        }
        LibraryError::InvalidAbiHeader(_) => Refusal::new(
            "built with an incompatible abi_stable version (not loadable by this gateway)",
        ),
        other => Refusal::new(first_line(&other.to_string())),
    })?;

    let found = header.version_strings().version.as_str().to_owned();
    if !api_compatible(API_VERSION, &found) {
        return Err(Refusal::new(format!(
            "built against plugin-api {found}, this gateway has plugin-api {API_VERSION}: rebuild the plugin against {API_VERSION}"
        )));
    }
    let root = header.init_root_module::<PluginRoot_Ref>().map_err(|e| match e {
        LibraryError::AbiInstability(report) => {
            let full = report.to_string();
            Refusal {
                reason: format!(
                    "plugin-api layout mismatch (library says {found}, gateway has {API_VERSION}): {}",
                    first_mismatch(&full)
                ),
                detail: Some(full),
            }
        }
        other => Refusal::new(first_line(&other.to_string())),
    })?;

    let info: PluginInfo = match (root.describe())() {
        RResult::ROk(text) => codec::from_json("plugin description", text.as_str())
            .map_err(|e| Refusal::new(e.to_string()))?,
        RResult::RErr(text) => {
            return Err(Refusal::new(
                codec::error_from_wire(text.as_str()).to_string(),
            ));
        }
    };
    if !api_compatible(API_VERSION, &info.api_version) {
        return Err(Refusal::new(format!(
            "describes itself as plugin-api {}, this gateway has {API_VERSION}",
            info.api_version
        )));
    }
    if info.id != id {
        return Err(Refusal::new(format!(
            "the library is plugin `{}`, but is configured as `{id}`: use [plugins.{}]",
            info.id, info.id
        )));
    }

    let args = codec::to_json(&InstantiateArgs { host, settings })
        .map_err(|e| Refusal::new(e.to_string()))?;
    let sink = LogSink {
        emit: host_emit,
        max_level: host_max_level(),
    };
    let built = match (root.instantiate())(RStr::from_str(&args), sink) {
        RResult::ROk(ffi) => ffi,
        RResult::RErr(text) => {
            let error = codec::error_from_wire(text.as_str());
            return Err(Refusal::new(describe_error(&error)));
        }
    };
    let foreign = ForeignPlugin::new(built).map_err(|e| Refusal::new(e.to_string()))?;
    if foreign.info().plugin != info {
        return Err(Refusal::new(
            "the built plugin describes itself differently from the library",
        ));
    }
    let instance = foreign
        .into_instance()
        .map_err(|e| Refusal::new(e.to_string()))?;
    Ok(Loaded { info, instance })
}

/// A plugin's build error as the refusal says it: settings errors are marked as such.
pub fn describe_error(e: &openpsm_plugin_api::PluginError) -> String {
    match e.kind {
        openpsm_plugin_api::ErrorKind::InvalidSettings => {
            format!("invalid settings: {}", e.message)
        }
        _ => e.message.clone(),
    }
}

fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("unknown error")
        .to_owned()
}

/// A one-line summary of abi_stable's layout report: its `Error:` line with what was expected and
/// what was found ("mismatched type: expected PluginRoot, found OtherRoot").
fn first_mismatch(report: &str) -> String {
    let lines: Vec<&str> = report.lines().map(str::trim).collect();
    let after = |label: &str| {
        lines
            .iter()
            .position(|l| *l == label)
            .and_then(|i| lines.iter().skip(i + 1).find(|l| !l.is_empty()))
            .map(|l| l.to_string())
    };
    let error = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("Error:"))
        .map(str::trim)
        .filter(|e| !e.is_empty());
    let summary = match (error, after("Expected:"), after("Found:")) {
        (Some(e), Some(x), Some(f)) => format!("{e}: expected {x}, found {f}"),
        (Some(e), _, _) => e.to_owned(),
        _ => first_line(report),
    };
    summary.chars().take(240).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_a_layout_report() {
        let report = "Compared <this>:\n  lots\n0 error(s).\n\nError:mismatched type\nExpected:\n    PluginRoot\nFound:\n    OtherRoot\n";
        assert_eq!(
            first_mismatch(report),
            "mismatched type: expected PluginRoot, found OtherRoot"
        );
        assert_eq!(first_mismatch("just one line"), "just one line");
    }
}
