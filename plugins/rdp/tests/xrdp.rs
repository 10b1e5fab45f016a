//! The rdp mode against a real xrdp on loopback (started by scripts/test.sh: start_sshd, then
//! start_xrdp), whose desktop is an xterm of the sshd test account.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use base64::Engine as _;
use openpsm_plugin_api::conformance::{self, mode::ModeFixture};
use openpsm_plugin_api::guac::{Instruction, Parser};
use openpsm_plugin_api::mode::{
    CredentialSecret, DisplaySize, EndReason, InjectedCredential, Notice, SessionPolicy,
};
use openpsm_plugin_api::{
    ErrorKind, Frame, HostContext, Input, OpenRequest, PluginInstance, PluginSettings, SecretText,
    SessionIo,
};

struct Target {
    port: u16,
    user: String,
    password: String,
}

fn target() -> Option<Target> {
    let var = |k: &str| std::env::var(k).ok();
    match (
        var("PSM_TEST_XRDP_PORT"),
        var("PSM_TEST_SSHD_USER"),
        var("PSM_TEST_SSHD_PASSWORD"),
    ) {
        (Some(port), Some(user), Some(password)) => Some(Target {
            port: port.parse().unwrap(),
            user,
            password,
        }),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "PSM_TEST_XRDP_PORT / PSM_TEST_SSHD_* missing under CI: run scripts/test.sh"
            );
            eprintln!("note: no test xrdp (run scripts/test.sh), skipped");
            None
        }
    }
}

fn mode() -> std::sync::Arc<dyn openpsm_plugin_api::ConnectionMode> {
    let built = openpsm_plugin_rdp::build(PluginSettings {
        host: HostContext::default(),
        settings: serde_json::json!({"connect_timeout_secs": 5}),
    })
    .unwrap();
    match built {
        PluginInstance::ConnectionMode(m) => m,
        other => panic!("not a connection mode: {other:?}"),
    }
}

fn request(t: &Target) -> OpenRequest {
    OpenRequest {
        session: uuid::Uuid::new_v4(),
        hosts: vec!["127.0.0.1".into()],
        port: t.port,
        credential: InjectedCredential {
            user: t.user.clone(),
            domain: None,
            secret: CredentialSecret::Password(SecretText::new(t.password.clone())),
        },
        display: DisplaySize {
            width: 1024,
            height: 768,
            ..DisplaySize::default()
        },
        policy: SessionPolicy::default(),
        pinned_keys: vec![],
        settings: serde_json::Value::Null,
    }
}

/// Keysyms pressed and released for each character, then Enter.
fn type_line(text: &str) -> Vec<Input> {
    let mut out = Vec::new();
    for c in text.chars() {
        let keysym = c as u32;
        out.push(Input::Key {
            keysym,
            pressed: true,
        });
        out.push(Input::Key {
            keysym,
            pressed: false,
        });
    }
    for pressed in [true, false] {
        out.push(Input::Key {
            keysym: 0xFF0D,
            pressed,
        });
    }
    out
}

fn is_image(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x89PNG\r\n\x1a\n") || bytes.starts_with(&[0xFF, 0xD8, 0xFF])
}

#[tokio::test(flavor = "multi_thread")]
async fn draws_the_desktop_and_types_into_it() {
    let Some(t) = target() else { return };
    let _live = LIVE.lock().await;
    let (io, mut ends) = SessionIo::pair(64);
    let m = mode();
    let started = Instant::now();
    let req = request(&t);
    let run = tokio::spawn(async move { m.run(req, io).await });

    let mut parser = Parser::new();
    let mut notices = Vec::new();
    let mut instructions: Vec<Instruction> = Vec::new();
    let mut connected_at = None;
    let mut first_sync_at = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    // Until the first sync, collect everything.
    while first_sync_at.is_none() {
        let frame = tokio::time::timeout_at(deadline, ends.frames.recv())
            .await
            .expect("a first frame within 30 s")
            .expect("the session ended before its first frame");
        match frame {
            Frame::Display(text) => {
                for i in parser.feed(&text).unwrap() {
                    if i.opcode == "sync" {
                        first_sync_at = Some(started.elapsed());
                        let timestamp = i.arg(0).unwrap().parse().unwrap();
                        ends.inputs.send(Input::Sync { timestamp }).await.unwrap();
                    }
                    instructions.push(i);
                }
            }
            Frame::Notice(n) => {
                if matches!(n, Notice::Connected { .. }) {
                    connected_at = Some(started.elapsed());
                }
                notices.push(n);
            }
            Frame::Terminal(_) => panic!("a display mode sent terminal bytes"),
            Frame::Clipboard(_) => {}
        }
    }
    eprintln!(
        "connected after {:?}, first frame after {:?}",
        connected_at, first_sync_at
    );
    assert!(
        notices
            .iter()
            .any(|n| matches!(n, Notice::HostKeySeen { fingerprint, .. }
            if fingerprint.starts_with("sha256:") && fingerprint.len() == 7 + 64)),
        "{notices:?}"
    );
    assert!(
        notices
            .iter()
            .any(|n| matches!(n, Notice::Connected { host } if host == "127.0.0.1"))
    );
    let size = instructions
        .iter()
        .find(|i| i.opcode == "size")
        .expect("a size");
    assert_eq!(size.arg(0), Some("0"));
    assert!(size.arg(1).unwrap().parse::<u32>().unwrap() >= 200);
    // Every image stream's blobs decode, chunk by chunk, to a PNG or a JPEG.
    let imgs: Vec<&Instruction> = instructions.iter().filter(|i| i.opcode == "img").collect();
    assert!(!imgs.is_empty(), "no img before the first sync");
    let mut streams: std::collections::HashMap<String, Vec<u8>> = Default::default();
    for i in &instructions {
        match i.opcode.as_str() {
            "img" => {
                assert!(
                    matches!(i.arg(3), Some("image/png" | "image/jpeg")),
                    "{i:?}"
                );
                streams.insert(i.arg(0).unwrap().to_owned(), Vec::new());
            }
            "blob" => {
                let chunk = base64::engine::general_purpose::STANDARD
                    .decode(i.arg(1).unwrap())
                    .expect("each blob is valid base64 on its own");
                streams.get_mut(i.arg(0).unwrap()).unwrap().extend(chunk);
            }
            "end" => {
                let bytes = streams.remove(i.arg(0).unwrap()).unwrap();
                assert!(is_image(&bytes), "stream {} is no image", i.arg(0).unwrap());
            }
            _ => {}
        }
    }

    // Type a command into the xterm; the file appears on this machine.
    let marker = format!("/tmp/psm-rdp-{}", uuid::Uuid::new_v4().simple());
    // No window manager: the keyboard goes to the window under the pointer.
    ends.inputs.send(mouse(100, 100, 0)).await.unwrap();
    for input in type_line(&format!("touch {marker}")) {
        ends.inputs.send(input).await.unwrap();
    }
    let mut frames = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !std::path::Path::new(&marker).exists() {
        match tokio::time::timeout(Duration::from_millis(100), ends.frames.recv()).await {
            Ok(Some(Frame::Display(text))) => {
                for i in parser.feed(&text).unwrap() {
                    if i.opcode == "sync" {
                        frames += 1;
                        let timestamp = i.arg(0).unwrap().parse().unwrap();
                        ends.inputs.send(Input::Sync { timestamp }).await.unwrap();
                    }
                }
            }
            Ok(Some(_)) | Err(_) => {}
            Ok(None) => panic!("the session ended: {:?}", run.await),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{marker} never appeared"
        );
    }
    eprintln!("the typed command ran; {frames} frames meanwhile");
    let _ = std::fs::remove_file(&marker);

    ends.inputs.send(Input::Close).await.unwrap();
    let drain = tokio::spawn(async move { while ends.frames.recv().await.is_some() {} });
    let end = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the session ends after Close")
        .unwrap()
        .unwrap();
    assert_eq!(end.reason, EndReason::ClosedByUser);
    drain.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_pinned_certificate_is_refused_before_anything_is_shown() {
    let Some(t) = target() else { return };
    let _live = LIVE.lock().await;
    let mut req = request(&t);
    req.pinned_keys = vec![format!("sha256:{}", "0".repeat(64))];
    let (io, mut ends) = SessionIo::pair(64);
    let got = tokio::time::timeout(Duration::from_secs(20), mode().run(req, io))
        .await
        .expect("refused in time");
    let err = got.expect_err("a wrong pin must fail");
    assert_eq!(err.kind, ErrorKind::HostKeyMismatch, "{err:?}");
    assert!(!err.retryable);
    while let Ok(frame) = ends.frames.try_recv() {
        assert!(
            !matches!(frame, Frame::Display(_)),
            "a Display frame was sent"
        );
        assert!(!matches!(frame, Frame::Notice(Notice::Connected { .. })));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pinned_certificate_is_accepted() {
    let Some(t) = target() else { return };
    let _live = LIVE.lock().await;
    // Learn the fingerprint (trust on first use), then pin it.
    let (io, mut ends) = SessionIo::pair(64);
    let m = mode();
    let req = request(&t);
    let run = tokio::spawn(async move { m.run(req, io).await });
    let mut print = None;
    while let Some(frame) = ends.frames.recv().await {
        if let Frame::Notice(Notice::HostKeySeen { fingerprint, .. }) = frame {
            print = Some(fingerprint);
            break;
        }
    }
    drop(ends);
    let _ = tokio::time::timeout(Duration::from_secs(10), run).await;
    let print = print.expect("a HostKeySeen notice");

    let mut req = request(&t);
    req.pinned_keys = vec![print.to_uppercase().replace("SHA256:", "sha256:")];
    let (io, mut ends) = SessionIo::pair(64);
    let m = mode();
    let run = tokio::spawn(async move { m.run(req, io).await });
    let mut connected = false;
    while let Some(frame) = ends.frames.recv().await {
        if matches!(frame, Frame::Notice(Notice::Connected { .. })) {
            connected = true;
            break;
        }
    }
    assert!(connected, "{:?}", run.await);
    // The host closes the input side.
    drop(ends.inputs);
    let drain = tokio::spawn(async move { while ends.frames.recv().await.is_some() {} });
    let end = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(end.reason, EndReason::ClosedByHost);
    drain.abort();
}

/// The failure checks of the plugin-api mode suite (its live checks expect a terminal).
#[tokio::test(flavor = "multi_thread")]
async fn passes_the_mode_suite_failure_checks() {
    let _live = LIVE.lock().await;
    let t = target().unwrap_or(Target {
        port: 3389,
        user: "nobody".into(),
        password: "x".into(),
    });
    let fixture = ModeFixture {
        live: None,
        template: request(&t),
    };
    let report = conformance::mode::check(mode().as_ref(), &fixture).await;
    assert!(report.passed(), "{report}");
}

/// The tests that log in share one desktop (xrdp re-attaches to the account's session): one at a
/// time, so pointer, keyboard and clipboard of one do not reach another.
static LIVE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A session under test: frames are read (and their `sync`s acknowledged) while waiting.
struct Live {
    ends: openpsm_plugin_api::mode::HostEnds,
    run: tokio::task::JoinHandle<openpsm_plugin_api::PluginResult<openpsm_plugin_api::SessionEnd>>,
    parser: Parser,
    /// Every instruction of the normal frame stream.
    instructions: Vec<Instruction>,
    /// Clipboard texts the mode handed over.
    clipboards: Vec<String>,
}

impl Live {
    /// Connects with this policy and waits for the first frame.
    async fn open(t: &Target, policy: SessionPolicy) -> Live {
        let mut req = request(t);
        req.policy = policy;
        let (io, ends) = SessionIo::pair(64);
        let m = mode();
        let run = tokio::spawn(async move { m.run(req, io).await });
        let mut live = Live {
            ends,
            run,
            parser: Parser::new(),
            instructions: Vec::new(),
            clipboards: Vec::new(),
        };
        let synced = live
            .pump_until(Duration::from_secs(30), |l| {
                l.instructions.iter().any(|i| i.opcode == "sync")
            })
            .await;
        assert!(synced, "no first frame within 30 s");
        live
    }

    async fn send(&self, inputs: impl IntoIterator<Item = Input>) {
        for input in inputs {
            self.ends.inputs.send(input).await.unwrap();
        }
    }

    /// Reads frames until `done` holds (true) or `within` has passed (false).
    async fn pump_until(&mut self, within: Duration, mut done: impl FnMut(&Live) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if done(self) {
                return true;
            }
            let frame = match tokio::time::timeout_at(deadline, self.ends.frames.recv()).await {
                Err(_) => return false,
                Ok(Some(frame)) => frame,
                Ok(None) => panic!("the session ended: {:?}", (&mut self.run).await),
            };
            let text = match frame {
                Frame::Display(text) => text,
                Frame::Clipboard(text) => {
                    self.clipboards.push(text);
                    continue;
                }
                _ => continue,
            };
            let instructions = self.parser.feed(&text).unwrap();
            for i in instructions {
                assert!(i.opcode != "clipboard", "clipboard mixed into a frame");
                assert!(i.opcode != "mouse", "mouse instructions are not sent");
                if i.opcode == "sync" {
                    let timestamp = i.arg(0).unwrap().parse().unwrap();
                    self.ends
                        .inputs
                        .send(Input::Sync { timestamp })
                        .await
                        .unwrap();
                }
                self.instructions.push(i);
            }
        }
    }

    async fn pump(&mut self, d: Duration) {
        self.pump_until(d, |_| false).await;
    }

    async fn close(self) {
        let Live { ends, run, .. } = self;
        ends.inputs.send(Input::Close).await.unwrap();
        let mut frames = ends.frames;
        let drain = tokio::spawn(async move { while frames.recv().await.is_some() {} });
        let end = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("the session ends after Close")
            .unwrap()
            .unwrap();
        assert_eq!(end.reason, EndReason::ClosedByUser);
        drain.abort();
    }
}

fn mouse(x: i32, y: i32, buttons: u8) -> Input {
    Input::Mouse { x, y, buttons }
}

fn shift_insert() -> Vec<Input> {
    [
        (0xFFE1, true),
        (0xFF63, true),
        (0xFF63, false),
        (0xFFE1, false),
    ]
    .into_iter()
    .map(|(keysym, pressed)| Input::Key { keysym, pressed })
    .collect()
}

fn policy(allow_copy: bool, allow_paste: bool) -> SessionPolicy {
    SessionPolicy {
        read_only: false,
        allow_copy,
        allow_paste,
    }
}

fn rand() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// Puts `text` on the clipboard as the browser does, pastes it into the xterm with Shift+Insert,
/// then presses Enter (bash's bracketed paste does not run pasted lines by itself). Again every few
/// seconds: right after connecting, xrdp's chansrv may still announce the X clipboard of the
/// session (an earlier selection), which replaces the text. Whether `file` appeared within
/// `within`.
async fn paste_command(live: &mut Live, text: &str, file: &str, within: Duration) -> bool {
    live.send([mouse(100, 100, 0)]).await;
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        live.send([Input::Clipboard(text.to_owned())]).await;
        live.pump(Duration::from_secs(1)).await;
        live.send(shift_insert()).await;
        live.pump(Duration::from_millis(300)).await;
        live.send(type_line("")).await;
        let appeared = live
            .pump_until(Duration::from_secs(3), |_| {
                std::path::Path::new(file).exists()
            })
            .await;
        if appeared {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn text_pasted_in_the_browser_reaches_the_server() {
    let Some(t) = target() else { return };
    let _live = LIVE.lock().await;
    let mut live = Live::open(&t, policy(false, true)).await;
    let r = rand();
    let file = format!("/tmp/psm-clip-{r}");
    let text = format!("echo pasted-{r} > {file}\n");
    assert!(
        paste_command(&mut live, &text, &file, Duration::from_secs(20)).await,
        "{file} never appeared"
    );
    // Written by the shell once the line is complete.
    let mut content = String::new();
    for _ in 0..20 {
        content = std::fs::read_to_string(&file).unwrap_or_default();
        if content == format!("pasted-{r}\n") {
            break;
        }
        live.pump(Duration::from_millis(100)).await;
    }
    assert_eq!(content, format!("pasted-{r}\n"));
    let _ = std::fs::remove_file(&file);
    live.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pasting_is_refused_when_the_policy_forbids_it() {
    let Some(t) = target() else { return };
    let _live = LIVE.lock().await;
    // Copying allowed, so the clipboard channel is open: the refusal is the mode's.
    let mut live = Live::open(&t, policy(true, false)).await;
    let r = rand();
    let file = format!("/tmp/psm-clip-{r}");
    let text = format!("echo pasted-{r} > {file}\n");
    assert!(
        !paste_command(&mut live, &text, &file, Duration::from_secs(5)).await,
        "{file} was created although pasting is not allowed"
    );
    live.close().await;
}

/// Types `echo copy-<rand>` after clearing the screen, so the output is the xterm's first line,
/// and selects that line with a triple click.
async fn select_copied_line(live: &mut Live, r: &str) {
    live.send([mouse(100, 100, 0)]).await;
    live.send(type_line(&format!("clear; echo copy-{r}"))).await;
    live.pump(Duration::from_millis(1500)).await;
    // Line 0 of the xterm (6x13 font, 2 px border): y = 8.
    for _ in 0..3 {
        live.send([mouse(20, 8, 1), mouse(20, 8, 0)]).await;
    }
    live.send([mouse(100, 100, 0)]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn text_copied_on_the_server_reaches_the_browser() {
    let Some(t) = target() else { return };
    let _live = LIVE.lock().await;
    let mut live = Live::open(&t, policy(true, false)).await;
    let r = rand();
    select_copied_line(&mut live, &r).await;
    let wanted = format!("copy-{r}");
    let got = live
        .pump_until(Duration::from_secs(10), |l| {
            l.clipboards.iter().any(|c| c.contains(&wanted))
        })
        .await;
    assert!(
        got,
        "no clipboard with {wanted}; {} clipboard strings",
        live.clipboards.len()
    );
    live.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn copying_is_refused_when_the_policy_forbids_it() {
    let Some(t) = target() else { return };
    let _live = LIVE.lock().await;
    // Pasting allowed, so the clipboard channel is open: the refusal is the mode's.
    let mut live = Live::open(&t, policy(false, true)).await;
    let r = rand();
    select_copied_line(&mut live, &r).await;
    live.pump(Duration::from_secs(4)).await;
    assert!(live.clipboards.is_empty(), "clipboard text was sent");
    live.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_pointer_becomes_the_cursor() {
    let Some(t) = target() else { return };
    let _live = LIVE.lock().await;
    let mut live = Live::open(&t, SessionPolicy::default()).await;
    // Over the xterm and off it: the pointer changes shape.
    for (x, y) in [(100, 100), (700, 600), (100, 100)] {
        live.send([mouse(x, y, 0)]).await;
        live.pump(Duration::from_millis(300)).await;
    }
    let got = live
        .pump_until(Duration::from_secs(10), |l| {
            l.instructions.iter().any(|i| i.opcode == "cursor")
        })
        .await;
    assert!(got, "no cursor instruction");
    // The cursor's layer gets a PNG with alpha of the cursor's size, before the cursor.
    let at = live
        .instructions
        .iter()
        .position(|i| i.opcode == "cursor")
        .unwrap();
    let cursor = &live.instructions[at];
    assert_eq!(cursor.arg(2), Some("-1"), "{cursor:?}");
    let (w, h): (u32, u32) = (
        cursor.arg(5).unwrap().parse().unwrap(),
        cursor.arg(6).unwrap().parse().unwrap(),
    );
    let img = live.instructions[..at]
        .iter()
        .rposition(|i| i.opcode == "img" && i.arg(2) == Some("-1"))
        .expect("an image into the cursor layer");
    let stream = live.instructions[img].arg(0).unwrap().to_owned();
    assert_eq!(live.instructions[img].arg(1), Some("12"));
    let mut png_bytes = Vec::new();
    for i in &live.instructions[img..at] {
        if i.opcode == "blob" && i.arg(0) == Some(stream.as_str()) {
            png_bytes.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(i.arg(1).unwrap())
                    .unwrap(),
            );
        }
    }
    let reader = png::Decoder::new(png_bytes.as_slice()).read_info().unwrap();
    let info = reader.info();
    assert_eq!((info.width, info.height), (w, h));
    assert_eq!(info.color_type, png::ColorType::Rgba);
    eprintln!(
        "cursor {w}x{h}, hotspot {},{}",
        cursor.arg(0).unwrap(),
        cursor.arg(1).unwrap()
    );
    live.close().await;
}
