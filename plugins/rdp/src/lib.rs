//! Connection mode "rdp": the gateway connects to the RDP server itself with IronRDP, injects the
//! credential, and serves the picture to the browser in the Guacamole display protocol.
//!
//! Server, then Server2, then Server3; TLS (or CredSSP/NLA where the server demands it) with the
//! server certificate pinned by SHA-256 of its DER ("sha256:<hex>"; none pinned: reported as
//! `Notice::HostKeySeen`, trust on first use); auto-logon with the injected user, domain and
//! password; the framebuffer goes out as `img`/`blob`/`end` instructions closed by `sync`, at most
//! `max_unacked_frames` frames ahead of the browser's `sync` acknowledgements. The server's pointer
//! becomes the browser's cursor (`cursor` from an off-screen layer, inside the frames). Clipboard
//! text goes both ways over cliprdr where the policy allows (`allow_paste`: the browser's text to
//! the server; `allow_copy`: the server's text to the browser as one `clipboard` display string,
//! kept out of frames so the gateway can keep it out of recordings); 256 KiB at most.
//!
//! Settings: `connect_timeout_secs` (10), `frame_interval_ms` (25), `max_unacked_frames` (2),
//! `max_regions` (64), `jpeg_quality` (80; 0 = PNG only, lossless), `bulk_compression` (true:
//! RDP 6.1 bulk compression, about 13x fewer bytes from xrdp), `remotefx` (false: RemoteFX is
//! lossy, so re-encoded as PNG it doubled the bytes to the browser and delayed the first frame by
//! about 200 ms against xrdp; classic bitmap updates decode pixel-exact).

pub mod clipboard;
mod connect;
pub mod cursor;
pub mod display;
/// The Guacamole instruction codec lives in plugin-api (the display channel's format).
pub use openpsm_plugin_api::guac;
pub mod keys;
mod session;

use std::sync::Arc;
use std::time::Duration;

use openpsm_plugin_api::{
    BuiltinPlugin, Channel, ConnectionMode, ModeInfo, OpenRequest, Plugin, PluginError, PluginInfo,
    PluginInstance, PluginKind, PluginResult, PluginSettings, SessionEnd, SessionIo, async_trait,
};
use serde::Deserialize;

pub use connect::{fingerprint, split_user};

pub const ID: &str = "rdp";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "connect_timeout")]
    connect_timeout_secs: u64,
    #[serde(default = "frame_interval")]
    frame_interval_ms: u64,
    #[serde(default = "max_unacked")]
    max_unacked_frames: usize,
    #[serde(default = "max_regions")]
    max_regions: usize,
    #[serde(default = "jpeg_quality")]
    jpeg_quality: u8,
    #[serde(default = "yes")]
    bulk_compression: bool,
    #[serde(default)]
    remotefx: bool,
}

fn connect_timeout() -> u64 {
    10
}

fn frame_interval() -> u64 {
    25
}

fn max_unacked() -> usize {
    2
}

fn max_regions() -> usize {
    64
}

fn jpeg_quality() -> u8 {
    80
}

fn yes() -> bool {
    true
}

/// The rdp connection mode.
pub struct Rdp {
    connect_timeout: Duration,
    frame_interval: Duration,
    max_unacked: usize,
    max_regions: usize,
    /// None: PNG only.
    jpeg_quality: Option<u8>,
    compression: bool,
    remotefx: bool,
}

impl Rdp {
    pub fn new(settings: &PluginSettings) -> PluginResult<Self> {
        let s: Settings = settings.parse()?;
        if !(1..=120).contains(&s.connect_timeout_secs) {
            return Err(PluginError::settings(
                "connect_timeout_secs must be 1 to 120",
            ));
        }
        if !(5..=1000).contains(&s.frame_interval_ms) {
            return Err(PluginError::settings("frame_interval_ms must be 5 to 1000"));
        }
        if !(1..=16).contains(&s.max_unacked_frames) || !(1..=1024).contains(&s.max_regions) {
            return Err(PluginError::settings(
                "max_unacked_frames must be 1 to 16 and max_regions 1 to 1024",
            ));
        }
        if s.jpeg_quality > 100 {
            return Err(PluginError::settings(
                "jpeg_quality must be 0 (PNG only) to 100",
            ));
        }
        Ok(Self {
            connect_timeout: Duration::from_secs(s.connect_timeout_secs),
            frame_interval: Duration::from_millis(s.frame_interval_ms),
            max_unacked: s.max_unacked_frames,
            max_regions: s.max_regions,
            jpeg_quality: (s.jpeg_quality > 0).then_some(s.jpeg_quality),
            compression: s.bulk_compression,
            remotefx: s.remotefx,
        })
    }
}

pub fn info() -> PluginInfo {
    PluginInfo::new(
        PluginKind::ConnectionMode,
        ID,
        env!("CARGO_PKG_VERSION"),
        "RDP sessions (IronRDP) shown with the Guacamole display protocol",
    )
}

pub fn build(settings: PluginSettings) -> PluginResult<PluginInstance> {
    Ok(PluginInstance::ConnectionMode(Arc::new(Rdp::new(
        &settings,
    )?)))
}

inventory::submit! { BuiltinPlugin { info, build } }

#[async_trait]
impl Plugin for Rdp {
    fn info(&self) -> PluginInfo {
        info()
    }
}

#[async_trait]
impl ConnectionMode for Rdp {
    fn mode_info(&self) -> ModeInfo {
        ModeInfo {
            id: ID.into(),
            label: "RDP".into(),
            channel: Channel::Display,
            default_port: 3389,
        }
    }

    async fn run(&self, req: OpenRequest, io: SessionIo) -> PluginResult<SessionEnd> {
        session::run(self, req, io).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn settings_defaults_and_refusals() {
        let rdp = Rdp::new(&PluginSettings::default()).unwrap();
        assert_eq!(rdp.connect_timeout, Duration::from_secs(10));
        assert_eq!(rdp.max_unacked, 2);
        assert_eq!(rdp.jpeg_quality, Some(80));
        let bad = |v: serde_json::Value| {
            Rdp::new(&PluginSettings {
                settings: v,
                ..PluginSettings::default()
            })
            .is_err()
        };
        assert!(bad(serde_json::json!({"connect_timeout_secs": 0})));
        assert!(bad(serde_json::json!({"jpeg_quality": 101})));
        assert!(bad(serde_json::json!({"no_such_setting": 1})));
        assert!(!bad(
            serde_json::json!({"jpeg_quality": 0, "remotefx": false})
        ));
        let info = Rdp::new(&PluginSettings::default()).unwrap().mode_info();
        assert_eq!(
            (info.id.as_str(), info.channel, info.default_port),
            ("rdp", Channel::Display, 3389)
        );
    }
}
