//! A graphical session end to end against a real xrdp (Xorg backend, an xterm desktop) on
//! loopback: the workflow, the display tunnel (subprotocol `guacamole`, the token as the first
//! instruction), keyboard input that types a command into the remote xterm and creates a file the
//! test finds on the target, the `.guac` recording sealed into the audit chain and replayed in
//! guacamole-common-js's player, and the session page in headless Chromium.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::ssh::{Lab, MASTER, lab_for};
use common::*;
use futures::{SinkExt as _, StreamExt as _};
use openpsm_plugin_api::guac::{Instruction, Parser};
use serde_json::Value;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest as _};

fn target() -> Option<(u16, String, String)> {
    let port = std::env::var("PSM_TEST_XRDP_PORT").ok();
    match (port, common::ssh::account()) {
        (Some(p), Some((user, password))) => Some((p.parse().unwrap(), user, password)),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "PSM_TEST_XRDP_PORT missing under CI: run scripts/test.sh"
            );
            eprintln!("note: no xrdp (PSM_TEST_XRDP_PORT), skipped");
            None
        }
    }
}

type Ws = common::ssh::Ws;

async fn open_display(lab: &Lab, secret: &str, token: &str) -> Ws {
    let mut request = format!("ws://{}/api/v1/tunnel", lab.gw.addr)
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    headers.insert("Authorization", format!("Bearer {secret}").parse().unwrap());
    headers.insert("Sec-WebSocket-Protocol", "guacamole".parse().unwrap());
    let (mut ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(
        response.headers().get("sec-websocket-protocol").unwrap(),
        "guacamole"
    );
    let first = ws.next().await.unwrap().unwrap();
    let opened = Parser::new().feed(first.to_text().unwrap()).unwrap();
    assert_eq!(opened[0].opcode, "", "the tunnel opens with its id");
    ws.send(Message::text(Instruction::new("token", &[token]).encode()))
        .await
        .unwrap();
    ws
}

/// Reads instructions for up to `secs`, acknowledging every `sync`, until `stop` says so.
async fn pump(
    ws: &mut Ws,
    parser: &mut Parser,
    seen: &mut Vec<Instruction>,
    secs: u64,
    mut stop: impl FnMut(&[Instruction]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !stop(seen) {
        let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, ws.next()).await else {
            return;
        };
        let Message::Text(text) = msg else { continue };
        let parsed = parser
            .feed(text.as_str())
            .unwrap_or_else(|e| panic!("{e}: {}", &text.as_str()[..text.len().min(300)]));
        for i in parsed {
            if i.opcode == "sync" {
                let ack = Instruction::new("sync", &[i.arg(0).unwrap()]).encode();
                let _ = ws.send(Message::text(ack)).await;
            }
            seen.push(i);
        }
    }
}

async fn type_text(ws: &mut Ws, text: &str) {
    for c in text.chars() {
        let keysym = if c == '\n' { 0xFF0D } else { c as u32 };
        for pressed in ["1", "0"] {
            let key = Instruction::new("key", &[&keysym.to_string(), pressed]).encode();
            ws.send(Message::text(key)).await.unwrap();
        }
    }
}

/// Text selected in the remote xterm arrives as the browser's clipboard stream (the policy allows
/// copying by default).
async fn copy_reaches_the_browser(ws: &mut Ws, parser: &mut Parser) {
    use base64::Engine as _;
    let word = format!("copy-{}", uuid::Uuid::new_v4().simple());
    type_text(ws, &format!("clear; echo {word}\n")).await;
    let mut seen = Vec::new();
    pump(ws, parser, &mut seen, 2, |_| false).await;
    // Line 0 of the xterm (6x13 font): a triple click selects it (xterm copies to CLIPBOARD).
    for _ in 0..3 {
        for mask in ["1", "0"] {
            let click = Instruction::new("mouse", &["20", "8", mask]).encode();
            ws.send(Message::text(click)).await.unwrap();
        }
    }
    let mut got = Vec::new();
    pump(ws, parser, &mut got, 15, |s| {
        s.iter()
            .any(|i| i.opcode == "end" && i.arg(0) == Some("65"))
    })
    .await;
    let text: Vec<u8> = got
        .iter()
        .filter(|i| i.opcode == "blob" && i.arg(0) == Some("65"))
        .flat_map(|i| {
            base64::engine::general_purpose::STANDARD
                .decode(i.arg(1).unwrap())
                .unwrap()
        })
        .collect();
    assert!(
        String::from_utf8_lossy(&text).contains(&word),
        "the copied line reaches the browser's clipboard: {:?}",
        got.iter().map(|i| &i.opcode).collect::<Vec<_>>()
    );
}

fn wait_for_file(path: &str, secs: u64) -> bool {
    for _ in 0..secs * 10 {
        if std::path::Path::new(path).exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn a_graphical_session_through_the_gateway() {
    let Some((port, user, password)) = target() else {
        return;
    };
    let lab = lab_for("rdp", port, &user, &password, &[], "record_keys = false");
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Twice: the second connection re-attaches to the desktop the first one left.
    for round in 0..2 {
        let marker = format!("/tmp/psm-rdp-{round}-{}", uuid::Uuid::new_v4().simple());
        let (secret, token) = lab.launch(&[]);
        rt.block_on(async {
            let mut ws = open_display(&lab, &secret, &token).await;
            let mut parser = Parser::new();
            let mut seen = Vec::new();
            pump(&mut ws, &mut parser, &mut seen, 30, |s| {
                s.iter().filter(|i| i.opcode == "img").count() > 0
                    && s.iter().any(|i| i.opcode == "sync")
            })
            .await;
            assert!(
                seen.iter().any(|i| i.opcode == "size"),
                "{:?}",
                seen.iter().map(|i| &i.opcode).collect::<Vec<_>>()
            );
            assert!(seen.iter().any(|i| i.opcode == "img"));
            // Let the desktop settle, then type into the remote xterm.
            pump(&mut ws, &mut parser, &mut seen, 3, |_| false).await;
            // A click into the desktop first (as a person focusing it would).
            for mask in ["0", "1", "0"] {
                let mouse = Instruction::new("mouse", &["400", "300", mask]).encode();
                ws.send(Message::text(mouse)).await.unwrap();
            }
            type_text(&mut ws, &format!("touch {marker}\n")).await;
            let mut made = false;
            for _ in 0..30 {
                pump(&mut ws, &mut parser, &mut seen, 1, |_| false).await;
                if std::path::Path::new(&marker).exists() {
                    made = true;
                    break;
                }
            }
            assert!(
                made,
                "typing into the session created {marker} on the target"
            );
            if round == 0 {
                copy_reaches_the_browser(&mut ws, &mut parser).await;
            }
            ws.send(Message::text(Instruction::new("disconnect", &[]).encode()))
                .await
                .unwrap();
            let mut end = Vec::new();
            pump(&mut ws, &mut parser, &mut end, 20, |s| {
                s.iter().any(|i| i.opcode == "disconnect")
            })
            .await;
            let error = end
                .iter()
                .find(|i| i.opcode == "error")
                .expect("the end is told");
            assert_eq!(error.arg(1), Some("523"), "{error:?}");
        });
        let _ = std::fs::remove_file(&marker);
    }
    slow_browser(&lab, &rt);
    // The .guac recording: sealed into the audit chain, ASCII, ends with a sync, holds no key.
    let store = rt.block_on(lab.store());
    let entries = rt.block_on(store.audit_entries(0, 10_000)).unwrap();
    let sealed: Value = entries
        .iter()
        .filter(|e| e.event == "recording.sealed")
        .map(|e| serde_json::from_str::<Value>(&e.detail).unwrap())
        .find(|d| d["file"] == "session.guac")
        .expect("a sealed .guac recording");
    let path = std::path::Path::new(sealed["location"].as_str().unwrap()).join("session.guac");
    let guac = std::fs::read_to_string(&path).unwrap();
    assert!(guac.is_ascii() && guac.starts_with("4.size,") || guac.contains("4.size,"));
    assert!(guac.contains("3.img,") && guac.ends_with(';'));
    let last = guac.rsplit(';').nth(1).unwrap_or_default();
    assert!(last.starts_with("4.sync,"), "ends with a sync: {last}");
    assert!(
        !guac.contains("3.key,"),
        "keys are not recorded unless the policy says so"
    );
    assert!(
        !guac.contains("9.clipboard,"),
        "clipboard text is never recorded"
    );
    assert!(!guac.contains(&password) && !guac.contains(MASTER));
    let log = lab.gw.stderr();
    assert!(!log.contains(&password) && !log.contains(MASTER));

    browser_checks(&lab, &path);
}

/// A browser that stops acknowledging frames: the mode sends at most two frames ahead while the
/// xterm scrolls (regions are coalesced, frames skipped, nothing queued), and catches up with the
/// current picture once acknowledgements resume.
fn slow_browser(lab: &Lab, rt: &tokio::runtime::Runtime) {
    let (secret, token) = lab.launch(&[]);
    rt.block_on(async {
        let mut ws = open_display(lab, &secret, &token).await;
        let mut parser = Parser::new();
        let mut seen = Vec::new();
        pump(&mut ws, &mut parser, &mut seen, 30, |s| {
            s.iter().any(|i| i.opcode == "img") && s.iter().any(|i| i.opcode == "sync")
        })
        .await;
        pump(&mut ws, &mut parser, &mut seen, 2, |_| false).await;
        for mask in ["0", "1", "0"] {
            let mouse = Instruction::new("mouse", &["100", "100", mask]).encode();
            ws.send(Message::text(mouse)).await.unwrap();
        }
        pump(&mut ws, &mut parser, &mut seen, 1, |_| false).await;
        // From here on, no acknowledgements while the xterm scrolls for a few seconds.
        type_text(&mut ws, "seq 1 20000\n").await;
        let mut unacked = Vec::new();
        let mut bytes = 0usize;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
        while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, ws.next()).await {
            if let Message::Text(text) = msg {
                bytes += text.len();
                unacked.extend(parser.feed(text.as_str()).unwrap());
            }
        }
        let syncs: Vec<&Instruction> = unacked.iter().filter(|i| i.opcode == "sync").collect();
        assert!(
            syncs.len() <= 2,
            "a browser that does not acknowledge gets at most 2 frames, got {} ({bytes} bytes)",
            syncs.len()
        );
        // Acknowledge: the picture catches up.
        if let Some(last) = syncs.last() {
            let ack = Instruction::new("sync", &[last.arg(0).unwrap()]).encode();
            ws.send(Message::text(ack)).await.unwrap();
        }
        let mut after = Vec::new();
        pump(&mut ws, &mut parser, &mut after, 3, |s| {
            s.iter().any(|i| i.opcode == "img")
        })
        .await;
        // Whether or not the scroll was still drawing, new output is drawn again.
        type_text(&mut ws, "echo caught-up\n").await;
        pump(&mut ws, &mut parser, &mut after, 15, |s| {
            s.iter().any(|i| i.opcode == "img")
        })
        .await;
        assert!(
            after.iter().any(|i| i.opcode == "img"),
            "frames resume after the acknowledgement"
        );
        ws.send(Message::text(Instruction::new("disconnect", &[]).encode()))
            .await
            .unwrap();
        let mut end = Vec::new();
        pump(&mut ws, &mut parser, &mut end, 20, |s| {
            s.iter().any(|i| i.opcode == "disconnect")
        })
        .await;
    });
}

/// Chromium: the session page paints the desktop and its keyboard reaches the xterm; the player
/// replays the recording.
fn browser_checks(lab: &Lab, recording: &std::path::Path) {
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
    let ready = std::path::Path::new("/usr/bin/chromium").exists()
        && web.join("node_modules/guacamole-common-js").exists();
    if !ready {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium and web/node_modules are missing: run scripts/test.sh"
        );
        return;
    }
    let artifacts = std::env::var("PSM_TEST_ARTIFACTS").ok();
    let marker = format!("/tmp/psm-rdp-chromium-{}", uuid::Uuid::new_v4().simple());
    let shot = lab.s.path().join("rdp-page.png");
    let query = lab.link(&[]);
    let out = std::process::Command::new("node")
        .arg(web.join("tests/rdp-session.mjs"))
        .arg(format!("http://{}", lab.gw.addr))
        .arg(&query)
        .arg(MASTER)
        .arg(format!("touch {marker}"))
        .arg(&shot)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)));
    if let Some(dir) = &artifacts {
        let dir = std::path::Path::new(dir);
        let _ = std::fs::copy(&shot, dir.join("rdp-session-page.png"));
    }
    assert_eq!(report["ok"], true, "{report}");
    eprintln!("session page: {report}");
    assert!(
        report["colours"].as_u64().unwrap() >= 2,
        "a painted desktop: {report}"
    );
    assert_eq!(
        report["changed"], true,
        "typing changed the picture: {report}"
    );
    assert!(
        wait_for_file(&marker, 20),
        "the page's keyboard reached the xterm: {report}\n{}",
        lab.gw.stderr()
    );
    let _ = std::fs::remove_file(&marker);
    let player_shot = lab.s.path().join("rdp-replay.png");
    let out = std::process::Command::new("node")
        .arg(web.join("tests/guac-player.mjs"))
        .arg(recording)
        .arg(&player_shot)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)));
    assert_eq!(report["ok"], true, "{report}");
    assert!(report["duration"].as_u64().unwrap() > 0, "{report}");
    assert!(
        report["colours"].as_u64().unwrap() >= 2,
        "the replay paints: {report}"
    );
    if let Some(dir) = artifacts {
        let dir = std::path::Path::new(&dir);
        let _ = std::fs::copy(&player_shot, dir.join("rdp-replay.png"));
    }
}
