//! `ConnectionMode`: open and run one session of one protocol with an injected credential.
//!
//! The host hands the mode two bounded channels and tees what the mode sends to the recorders and
//! watchers. The mode never sees the store, the audit log or the browser. Bounded both ways:
//! back-pressure reaches the target, never the heap.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::error::PluginResult;
use crate::plugin::Plugin;
use crate::secret::SecretText;

/// Which browser channel a mode speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Bytes both ways plus resize (xterm.js).
    Terminal,
    /// Guacamole protocol instructions (guacamole-common-js).
    Display,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeInfo {
    /// The mode's id as the seed's `Mode` parameter names it, lower-case ("ssh").
    pub id: String,
    pub label: String,
    pub channel: Channel,
    pub default_port: u16,
}

/// The secret part of an injected credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "value")]
pub enum CredentialSecret {
    Password(SecretText),
    /// A private key in OpenSSH or PEM form (the seed's IsPasswordSSHKey).
    PrivateKey(SecretText),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InjectedCredential {
    pub user: String,
    pub domain: Option<String>,
    pub secret: CredentialSecret,
}

/// Initial size of the browser's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisplaySize {
    pub cols: u16,
    pub rows: u16,
    /// `GUAC_WIDTH`, `GUAC_HEIGHT`, `GUAC_DPI`.
    pub width: u32,
    pub height: u32,
    pub dpi: u32,
}

impl Default for DisplaySize {
    fn default() -> Self {
        Self {
            cols: 80,
            rows: 24,
            width: 1024,
            height: 768,
            dpi: 96,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionPolicy {
    pub read_only: bool,
    pub allow_copy: bool,
    pub allow_paste: bool,
}

/// Everything a mode needs to open one session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenRequest {
    pub session: Uuid,
    /// Server, Server2, Server3 in order: try the next when one does not answer.
    pub hosts: Vec<String>,
    pub port: u16,
    pub credential: InjectedCredential,
    pub display: DisplaySize,
    pub policy: SessionPolicy,
    /// Pinned host keys or certificate fingerprints; empty means trust on first use.
    pub pinned_keys: Vec<String>,
    /// Per-computer settings for this mode.
    pub settings: serde_json::Value,
}

/// Something the mode reports to the host beside the picture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "notice")]
pub enum Notice {
    /// Connected to this host (after fail-over, the one that answered).
    Connected { host: String },
    /// The target's key or certificate fingerprint, for pinning and trust on first use.
    HostKeySeen { host: String, fingerprint: String },
    /// A line for the person ("connection to server1 failed, trying server2").
    Message { text: String },
}

/// From the mode to the browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frame {
    /// Terminal output bytes.
    Terminal(Vec<u8>),
    /// One Guacamole instruction.
    Display(String),
    /// Text the target put on its clipboard. The host hands it to the browser only where the
    /// policy allows copying, and never records it.
    Clipboard(String),
    Notice(Notice),
}

/// From the browser to the mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    Bytes(Vec<u8>),
    Resize {
        cols: u16,
        rows: u16,
        width: u32,
        height: u32,
    },
    Key {
        keysym: u32,
        pressed: bool,
    },
    Mouse {
        x: i32,
        y: i32,
        buttons: u8,
    },
    Clipboard(String),
    /// The browser has painted everything up to the display frame that ended with this `sync`
    /// timestamp (flow control for the display channel).
    Sync {
        timestamp: u64,
    },
    /// The person closed the session.
    Close,
}

/// The two channels of one session.
pub struct SessionIo {
    pub to_browser: mpsc::Sender<Frame>,
    pub from_browser: mpsc::Receiver<Input>,
}

impl SessionIo {
    /// A pair of bounded channels: the mode's `SessionIo` and the host's ends.
    pub fn pair(capacity: usize) -> (Self, HostEnds) {
        let (to_browser, frames) = mpsc::channel(capacity);
        let (inputs, from_browser) = mpsc::channel(capacity);
        (
            Self {
                to_browser,
                from_browser,
            },
            HostEnds { frames, inputs },
        )
    }
}

/// The host's ends of a `SessionIo`.
pub struct HostEnds {
    pub frames: mpsc::Receiver<Frame>,
    pub inputs: mpsc::Sender<Input>,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The target closed the connection (logout, exit).
    TargetClosed,
    /// The person closed it (`Input::Close`, or the browser went away).
    ClosedByUser,
    /// The host closed it (admin, access window over, shutdown): the input channel closed.
    ClosedByHost,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEnd {
    pub reason: EndReason,
    pub message: Option<String>,
}

#[async_trait]
pub trait ConnectionMode: Plugin {
    fn mode_info(&self) -> ModeInfo;

    /// Runs one session until it ends. Failing to connect or to log in is an error
    /// (`Unreachable`, `Unauthorized`, ...), not a `SessionEnd`.
    async fn run(&self, req: OpenRequest, io: SessionIo) -> PluginResult<SessionEnd>;
}
