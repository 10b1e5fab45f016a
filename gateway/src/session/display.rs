//! The display channel's gateway side: the browser's Guacamole instructions become `Input`s (the
//! tunnel's own ping is answered here), and the instruction stream the browser is sent is recorded
//! as a `.guac` file that guacamole-common-js's player replays: ASCII, instructions back to back,
//! `key` events only where the policy asks, ending with a `sync`.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use openpsm_plugin_api::guac::{Instruction, Parser};
use openpsm_plugin_api::{Input, RecordingFile};
use tokio::io::AsyncWriteExt as _;

use super::recording::{self, RecordingError};

/// The largest clipboard text taken from the browser (bigger pastes are refused, not cut).
const MAX_CLIPBOARD: usize = 256 * 1024;

/// What one browser instruction means.
#[derive(Debug, PartialEq, Eq)]
pub enum FromBrowser {
    Input(Input),
    /// Send this back at once (the tunnel's ping).
    Reply(String),
    Nothing,
}

/// The browser's side of one display session.
#[derive(Default)]
pub struct BrowserState {
    parser: Parser,
    /// An incoming clipboard stream: its index and the base64 received so far.
    clipboard: Option<(String, String)>,
}

impl BrowserState {
    /// Parses a WebSocket text message; an error means the browser broke the protocol.
    pub fn receive(
        &mut self,
        text: &str,
        allow_paste: bool,
    ) -> Result<Vec<FromBrowser>, openpsm_plugin_api::guac::GuacError> {
        let instructions = self.parser.feed(text)?;
        Ok(instructions
            .into_iter()
            .map(|i| self.meaning(&i, allow_paste))
            .collect())
    }

    fn meaning(&mut self, i: &Instruction, allow_paste: bool) -> FromBrowser {
        let num = |n: usize| i.arg(n).and_then(|v| v.parse::<i64>().ok());
        match i.opcode.as_str() {
            // The tunnel's own instructions: ping is echoed unchanged.
            "" if i.arg(0) == Some("ping") => FromBrowser::Reply(i.encode()),
            "mouse" => match (num(0), num(1), num(2)) {
                (Some(x), Some(y), Some(mask)) => FromBrowser::Input(Input::Mouse {
                    x: i32::try_from(x.clamp(0, 16384)).unwrap_or(0),
                    y: i32::try_from(y.clamp(0, 16384)).unwrap_or(0),
                    buttons: u8::try_from(mask & 0x1f).unwrap_or(0),
                }),
                _ => FromBrowser::Nothing,
            },
            "key" => match (num(0), i.arg(1)) {
                (Some(keysym), Some(pressed)) => match u32::try_from(keysym) {
                    Ok(keysym) => FromBrowser::Input(Input::Key {
                        keysym,
                        pressed: pressed == "1" || pressed == "true",
                    }),
                    Err(_) => FromBrowser::Nothing,
                },
                _ => FromBrowser::Nothing,
            },
            "size" => match (num(0), num(1)) {
                (Some(w), Some(h)) if (200..=8192).contains(&w) && (200..=8192).contains(&h) => {
                    FromBrowser::Input(Input::Resize {
                        cols: 0,
                        rows: 0,
                        width: u32::try_from(w).unwrap_or(1024),
                        height: u32::try_from(h).unwrap_or(768),
                    })
                }
                _ => FromBrowser::Nothing,
            },
            "sync" => match num(0).and_then(|t| u64::try_from(t).ok()) {
                Some(timestamp) => FromBrowser::Input(Input::Sync { timestamp }),
                None => FromBrowser::Nothing,
            },
            "clipboard" if allow_paste && i.arg(1) == Some("text/plain") => {
                self.clipboard = i.arg(0).map(|idx| (idx.to_owned(), String::new()));
                FromBrowser::Nothing
            }
            "blob" => {
                if let (Some((idx, data)), Some(stream), Some(chunk)) =
                    (self.clipboard.as_mut(), i.arg(0), i.arg(1))
                    && idx == stream
                {
                    if data.len() + chunk.len() > MAX_CLIPBOARD * 4 / 3 + 4 {
                        self.clipboard = None;
                    } else {
                        data.push_str(chunk);
                    }
                }
                FromBrowser::Nothing
            }
            "end" => match self.clipboard.take() {
                Some((idx, data)) if i.arg(0) == Some(idx.as_str()) => {
                    // Chunks are each valid base64; decode them one by one.
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(data.as_bytes())
                        .unwrap_or_default();
                    FromBrowser::Input(Input::Clipboard(
                        String::from_utf8_lossy(&bytes).into_owned(),
                    ))
                }
                other => {
                    self.clipboard = other;
                    FromBrowser::Nothing
                }
            },
            "disconnect" => FromBrowser::Input(Input::Close),
            _ => FromBrowser::Nothing,
        }
    }
}

/// The `.guac` recording of one session.
pub struct GuacRecording {
    path: PathBuf,
    file: tokio::io::BufWriter<tokio::fs::File>,
    /// The last `sync` timestamp written (the player needs a final `sync`).
    last_sync: Option<String>,
    started: std::time::Instant,
}

impl GuacRecording {
    pub async fn create(path: &Path) -> Result<Self, RecordingError> {
        let file = recording::create_file(path).await?;
        Ok(Self {
            path: path.to_owned(),
            file: tokio::io::BufWriter::new(file),
            last_sync: None,
            started: std::time::Instant::now(),
        })
    }

    /// Instructions as sent to the browser. They are ASCII; anything else is replaced so the
    /// player's character offsets stay byte offsets.
    pub async fn output(&mut self, instructions: &str) -> Result<(), RecordingError> {
        if let Some(at) = instructions.rfind("4.sync,") {
            let rest = &instructions[at + 7..];
            if let Some(len_end) = rest.find('.') {
                let len: usize = rest[..len_end].parse().unwrap_or(0);
                if let Some(ts) = rest.get(len_end + 1..len_end + 1 + len) {
                    self.last_sync = Some(ts.to_owned());
                }
            }
        }
        let ascii: String = if instructions.is_ascii() {
            instructions.to_owned()
        } else {
            instructions
                .chars()
                .map(|c| if c.is_ascii() { c } else { '?' })
                .collect()
        };
        self.write(ascii.as_bytes()).await
    }

    /// A key event (only where the policy records keys).
    pub async fn key(&mut self, keysym: u32, pressed: bool) -> Result<(), RecordingError> {
        let ts = self.started.elapsed().as_millis().to_string();
        let i = Instruction::new(
            "key",
            &[&keysym.to_string(), if pressed { "1" } else { "0" }, &ts],
        );
        self.write(i.encode().as_bytes()).await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), RecordingError> {
        self.file
            .write_all(bytes)
            .await
            .map_err(|e| recording::error(&self.path, &e))
    }

    /// Ends with a `sync` (anything after the last one is never played), flushes and seals.
    pub async fn seal(mut self) -> Result<RecordingFile, RecordingError> {
        if let Some(ts) = self.last_sync.take() {
            let closing = Instruction::new("sync", &[&ts]).encode();
            self.write(closing.as_bytes()).await?;
        }
        self.file
            .flush()
            .await
            .map_err(|e| recording::error(&self.path, &e))?;
        drop(self.file);
        recording::seal_existing(&self.path).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn inputs(text: &str, paste: bool) -> Vec<FromBrowser> {
        BrowserState::default().receive(text, paste).unwrap()
    }

    #[test]
    fn browser_instructions_become_inputs() {
        assert_eq!(
            inputs(
                "5.mouse,2.10,2.20,1.1;3.key,5.65293,1.1;4.sync,3.123;4.size,4.1280,3.720;",
                false
            ),
            vec![
                FromBrowser::Input(Input::Mouse {
                    x: 10,
                    y: 20,
                    buttons: 1
                }),
                FromBrowser::Input(Input::Key {
                    keysym: 65293,
                    pressed: true
                }),
                FromBrowser::Input(Input::Sync { timestamp: 123 }),
                FromBrowser::Input(Input::Resize {
                    cols: 0,
                    rows: 0,
                    width: 1280,
                    height: 720
                }),
            ]
        );
        assert_eq!(
            inputs("0.,4.ping,13.1700000000000;", false),
            vec![FromBrowser::Reply("0.,4.ping,13.1700000000000;".into())]
        );
        // Out of range or malformed arguments are dropped, not guessed.
        assert_eq!(
            inputs("4.size,1.0,1.0;3.key,2.-1,1.1;5.mouse,1.x,1.1,1.1;", false),
            vec![
                FromBrowser::Nothing,
                FromBrowser::Nothing,
                FromBrowser::Nothing
            ]
        );
    }

    #[test]
    fn clipboard_only_when_paste_is_allowed() {
        let wire = "9.clipboard,1.7,10.text/plain;4.blob,1.7,8.aMOpbGxv;3.end,1.7;";
        let got = inputs(wire, true);
        assert_eq!(got[2], FromBrowser::Input(Input::Clipboard("héllo".into())));
        assert!(
            inputs(wire, false)
                .iter()
                .all(|f| *f == FromBrowser::Nothing)
        );
    }

    #[tokio::test]
    async fn a_recording_ends_with_its_last_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("session.guac");
        let mut rec = GuacRecording::create(&path).await.unwrap();
        rec.output("4.size,1.0,3.640,3.480;4.sync,2.10;")
            .await
            .unwrap();
        rec.output("4.rect,1.0,1.0,1.0,1.1,1.1;").await.unwrap();
        rec.key(97, true).await.unwrap();
        let sealed = rec.seal().await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("4.sync,2.10;"), "{text}");
        assert!(text.contains("3.key,2.97,1.1,"));
        assert_eq!(sealed.bytes, text.len() as u64);
    }
}
