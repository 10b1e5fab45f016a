//! A connection mode shipped as a shared library: a raw TCP terminal.
//!
//! It connects to Server, then Server2, then Server3 on the request's port and relays bytes both
//! ways on the terminal channel. Raw TCP has no login, so the injected credential is not used: the
//! example shows the shape of a mode (fail-over, notices, the three ways a session ends), not a
//! protocol. Settings: `connect_timeout_secs` (default 5).

use std::sync::Arc;
use std::time::Duration;

use openpsm_plugin_api::mode::{EndReason, Notice};
use openpsm_plugin_api::{
    Channel, ConnectionMode, ErrorKind, Frame, Input, ModeInfo, OpenRequest, Origin, Plugin,
    PluginError, PluginInfo, PluginInstance, PluginKind, PluginResult, PluginSettings, SessionEnd,
    SessionIo, async_trait,
};
use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub const ID: &str = "example-raw-tcp";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "default_timeout")]
    connect_timeout_secs: u64,
}

fn default_timeout() -> u64 {
    5
}

struct RawTcp {
    connect_timeout: Duration,
}

pub fn info() -> PluginInfo {
    PluginInfo::new(
        PluginKind::ConnectionMode,
        ID,
        env!("CARGO_PKG_VERSION"),
        "raw TCP terminal (example shared-library plugin)",
    )
}

pub fn build(settings: PluginSettings) -> PluginResult<PluginInstance> {
    let s: Settings = settings.parse()?;
    if s.connect_timeout_secs == 0 || s.connect_timeout_secs > 120 {
        return Err(PluginError::settings(
            "connect_timeout_secs must be between 1 and 120",
        ));
    }
    Ok(PluginInstance::ConnectionMode(Arc::new(RawTcp {
        connect_timeout: Duration::from_secs(s.connect_timeout_secs),
    })))
}

openpsm_plugin_api::export_plugin!(info: info, build: build);

#[async_trait]
impl Plugin for RawTcp {
    fn info(&self) -> PluginInfo {
        info()
    }
}

fn end(reason: EndReason) -> PluginResult<SessionEnd> {
    Ok(SessionEnd {
        reason,
        message: None,
    })
}

#[async_trait]
impl ConnectionMode for RawTcp {
    fn mode_info(&self) -> ModeInfo {
        ModeInfo {
            id: ID.into(),
            label: "Raw TCP".into(),
            channel: Channel::Terminal,
            default_port: 7,
        }
    }

    async fn run(&self, req: OpenRequest, mut io: SessionIo) -> PluginResult<SessionEnd> {
        if req.hosts.is_empty() {
            return Err(PluginError::new(
                Origin::Host,
                ErrorKind::InvalidInput,
                "no server to connect to",
            ));
        }
        let (stream, host) =
            openpsm_plugin_api::connect::connect_tcp(&req, self.connect_timeout, &io).await?;
        if io
            .to_browser
            .send(Frame::Notice(Notice::Connected { host }))
            .await
            .is_err()
        {
            return end(EndReason::ClosedByUser);
        }
        let (mut rd, mut wr) = stream.into_split();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            tokio::select! {
                read = rd.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return end(EndReason::TargetClosed),
                    Ok(n) => {
                        let bytes = buf.get(..n).unwrap_or_default().to_vec();
                        if io.to_browser.send(Frame::Terminal(bytes)).await.is_err() {
                            return end(EndReason::ClosedByUser);
                        }
                    }
                },
                input = io.from_browser.recv() => match input {
                    None => return end(EndReason::ClosedByHost),
                    Some(Input::Close) => return end(EndReason::ClosedByUser),
                    Some(Input::Bytes(bytes)) => {
                        if wr.write_all(&bytes).await.is_err() {
                            return end(EndReason::TargetClosed);
                        }
                    }
                    Some(_) => {}
                },
                () = io.to_browser.closed() => return end(EndReason::ClosedByUser),
            }
        }
    }
}
