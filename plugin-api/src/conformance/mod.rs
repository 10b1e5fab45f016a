//! Conformance suites: one per trait, run by every plugin (built-in or shared library) in its own
//! tests. Each suite drives the plugin through the trait only and returns the list of rules the
//! plugin broke; an empty list is a pass.
//!
//! ```ignore
//! let report = conformance::mfa::check(&provider, &fixture).await;
//! assert!(report.passed(), "{report}");
//! ```

pub mod credential;
pub mod mfa;
pub mod mode;
pub mod provisioner;
pub mod recorder;

use crate::info::{API_VERSION, PluginKind, api_compatible, validate_id};
use crate::plugin::Plugin;

/// What a suite found.
#[derive(Debug, Default)]
pub struct Report {
    pub checks: usize,
    pub failures: Vec<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// Records one rule; `ok` false records `rule` as broken.
    pub fn check(&mut self, ok: bool, rule: impl Into<String>) {
        self.checks += 1;
        if !ok {
            self.failures.push(rule.into());
        }
    }

    fn fail(&mut self, rule: impl Into<String>) {
        self.check(false, rule);
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} checks, {} failed", self.checks, self.failures.len())?;
        for failure in &self.failures {
            writeln!(f, "  - {failure}")?;
        }
        Ok(())
    }
}

/// The rules every plugin follows, whatever its kind.
pub(crate) async fn common(report: &mut Report, plugin: &dyn Plugin, kind: PluginKind) {
    let info = plugin.info();
    report.check(
        validate_id(&info.id).is_ok(),
        format!("id {:?} is a valid plugin id", info.id),
    );
    report.check(
        info.kind == kind,
        format!("info().kind is {kind}, not {}", info.kind),
    );
    report.check(
        api_compatible(API_VERSION, &info.api_version),
        format!(
            "api_version {} is compatible with {API_VERSION}",
            info.api_version
        ),
    );
    report.check(!info.version.is_empty(), "version is not empty");
    match plugin.health().await {
        Ok(()) => report.check(true, "health"),
        Err(e) => report.fail(format!("health() answers Ok on a working plugin, got: {e}")),
    }
}
