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
