//! Connection mode "telnet": option negotiation (RFC 854/855: BINARY, ECHO, SUPPRESS-GO-AHEAD,
//! TERMINAL-TYPE, NAWS) and login automation on the terminal channel. The gateway types the
//! injected user name and password at the server's prompts; nothing before a successful login
//! reaches the browser or the recording.
//! Settings: `connect_timeout_secs` (10), `login_timeout_secs` (20), `term` ("xterm-256color"),
//! `login_prompts`, `password_prompts`, `failure_patterns`, `shell_prompts` (screen endings, any case).

pub mod negotiation;
mod session;

use std::sync::Arc;
use std::time::Duration;

use openpsm_plugin_api::{
    BuiltinPlugin, Channel, ConnectionMode, ModeInfo, OpenRequest, Plugin, PluginError, PluginInfo,
    PluginInstance, PluginKind, PluginResult, PluginSettings, SessionEnd, SessionIo, async_trait,
};
use serde::Deserialize;

pub const ID: &str = "telnet";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "connect_timeout")]
    connect_timeout_secs: u64,
    #[serde(default = "login_timeout")]
    login_timeout_secs: u64,
    #[serde(default = "term")]
    term: String,
    login_prompts: Option<Vec<String>>,
    password_prompts: Option<Vec<String>>,
    failure_patterns: Option<Vec<String>>,
    shell_prompts: Option<Vec<String>>,
}

fn connect_timeout() -> u64 {
    10
}

fn login_timeout() -> u64 {
    session::DEFAULT_LOGIN_TIMEOUT.as_secs()
}

fn term() -> String {
    "xterm-256color".into()
}

pub struct Telnet {
    connect_timeout: Duration,
    login_timeout: Duration,
    term: String,
    login_prompts: Vec<String>,
    password_prompts: Vec<String>,
    failure_patterns: Vec<String>,
    shell_prompts: Vec<String>,
}

impl Telnet {
    pub fn new(settings: &PluginSettings) -> PluginResult<Self> {
        let s: Settings = settings.parse()?;
        if !(1..=120).contains(&s.connect_timeout_secs)
            || !(1..=300).contains(&s.login_timeout_secs)
        {
            return Err(PluginError::settings(
                "connect_timeout_secs must be 1 to 120 and login_timeout_secs 1 to 300",
            ));
        }
        let (login, password, failure, shell) = session::default_patterns();
        let non_empty = |v: Option<Vec<String>>, d: Vec<String>, name: &str| match v {
            Some(v) if v.is_empty() || v.iter().any(String::is_empty) => Err(
                PluginError::settings(format!("{name} must list non-empty patterns")),
            ),
            Some(v) => Ok(v),
            None => Ok(d),
        };
        Ok(Self {
            connect_timeout: Duration::from_secs(s.connect_timeout_secs),
            login_timeout: Duration::from_secs(s.login_timeout_secs),
            term: s.term,
            login_prompts: non_empty(s.login_prompts, login, "login_prompts")?,
            password_prompts: non_empty(s.password_prompts, password, "password_prompts")?,
            failure_patterns: non_empty(s.failure_patterns, failure, "failure_patterns")?,
            shell_prompts: non_empty(s.shell_prompts, shell, "shell_prompts")?,
        })
    }
}

pub fn info() -> PluginInfo {
    PluginInfo::new(
        PluginKind::ConnectionMode,
        ID,
        env!("CARGO_PKG_VERSION"),
        "Telnet sessions with login automation",
    )
}

fn build(settings: PluginSettings) -> PluginResult<PluginInstance> {
    Ok(PluginInstance::ConnectionMode(Arc::new(Telnet::new(
        &settings,
    )?)))
}

inventory::submit! { BuiltinPlugin { info, build } }

#[async_trait]
impl Plugin for Telnet {
    fn info(&self) -> PluginInfo {
        info()
    }
}

#[async_trait]
impl ConnectionMode for Telnet {
    fn mode_info(&self) -> ModeInfo {
        ModeInfo {
            id: ID.into(),
            label: "Telnet".into(),
            channel: Channel::Terminal,
            default_port: 23,
        }
    }

    async fn run(&self, req: OpenRequest, io: SessionIo) -> PluginResult<SessionEnd> {
        session::run(self, req, io).await
    }
}
