//! Connection mode "ssh": a russh client on the terminal channel.
//!
//! Server, then Server2, then Server3 on the management port; the host key is checked against the
//! computer's pinned keys (none pinned: the key is reported as `Notice::HostKeySeen` for the host
//! to record, trust on first use); password (with keyboard-interactive for PAM servers) or private
//! key authentication; a pty sized like the browser's terminal; keepalives.
//! Settings: `keepalive_secs` (30), `connect_timeout_secs` (10), `term` ("xterm-256color").

mod session;

use std::sync::Arc;
use std::time::Duration;

use openpsm_plugin_api::{
    BuiltinPlugin, Channel, ConnectionMode, ModeInfo, OpenRequest, Plugin, PluginError, PluginInfo,
    PluginInstance, PluginKind, PluginResult, PluginSettings, SessionEnd, SessionIo, async_trait,
};
use serde::Deserialize;

pub const ID: &str = "ssh";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "keepalive")]
    keepalive_secs: u64,
    #[serde(default = "connect_timeout")]
    connect_timeout_secs: u64,
    #[serde(default = "term")]
    term: String,
}

fn keepalive() -> u64 {
    30
}

fn connect_timeout() -> u64 {
    10
}

fn term() -> String {
    "xterm-256color".into()
}

/// The ssh connection mode.
pub struct Ssh {
    keepalive: Duration,
    connect_timeout: Duration,
    term: String,
}

impl Ssh {
    pub fn new(settings: &PluginSettings) -> PluginResult<Self> {
        let s: Settings = settings.parse()?;
        if !(1..=3600).contains(&s.keepalive_secs) || !(1..=120).contains(&s.connect_timeout_secs) {
            return Err(PluginError::settings(
                "keepalive_secs must be 1 to 3600 and connect_timeout_secs 1 to 120",
            ));
        }
        if s.term.is_empty() || s.term.len() > 64 || !s.term.chars().all(|c| c.is_ascii_graphic()) {
            return Err(PluginError::settings("term must be a terminal type name"));
        }
        Ok(Self {
            keepalive: Duration::from_secs(s.keepalive_secs),
            connect_timeout: Duration::from_secs(s.connect_timeout_secs),
            term: s.term,
        })
    }
}

pub fn info() -> PluginInfo {
    PluginInfo::new(
        PluginKind::ConnectionMode,
        ID,
        env!("CARGO_PKG_VERSION"),
        "SSH sessions (russh)",
    )
}

fn build(settings: PluginSettings) -> PluginResult<PluginInstance> {
    Ok(PluginInstance::ConnectionMode(Arc::new(Ssh::new(
        &settings,
    )?)))
}

inventory::submit! { BuiltinPlugin { info, build } }

#[async_trait]
impl Plugin for Ssh {
    fn info(&self) -> PluginInfo {
        info()
    }
}

#[async_trait]
impl ConnectionMode for Ssh {
    fn mode_info(&self) -> ModeInfo {
        ModeInfo {
            id: ID.into(),
            label: "SSH".into(),
            channel: Channel::Terminal,
            default_port: 22,
        }
    }

    async fn run(&self, req: OpenRequest, io: SessionIo) -> PluginResult<SessionEnd> {
        session::run(self, req, io).await
    }
}
