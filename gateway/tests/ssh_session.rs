//! End to end against a real sshd on loopback: the workflow through the API, then the tunnel;
//! a marker typed and read back, a resize, the recording, the audit chain, the lease given back.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest as _};

use common::ssh::{COMPUTER, MASTER};

fn sshd() -> Option<(u16, String, String)> {
    let (user, password) = common::ssh::account()?;
    let port = std::env::var("PSM_TEST_SSHD_PORT").ok()?.parse().ok()?;
    Some((port, user, password))
}

struct Setup {
    s: Scratch,
    gw: Gateway,
    link: String,
    password: String,
}

/// The shared test sshd (scripts/test.sh), the gateway, a policy that also asks for typescripts.
fn setup() -> Option<Setup> {
    let (port, user, password) = sshd()?;
    let lab = common::ssh::lab_with(port, &user, &password, &[], "typescript = true");
    let link = lab.link(&[]);
    let common::ssh::Lab { s, gw, .. } = lab;
    Some(Setup {
        s,
        gw,
        link,
        password,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_ssh_session_through_the_gateway() {
    let Some(Setup {
        s,
        gw,
        link,
        password,
    }) = setup()
    else {
        return;
    };
    let post = |path: &str, secret: Option<&str>, body: Value| {
        let auth = secret.map(|s| format!("Bearer {s}")).unwrap_or_default();
        let mut headers = vec![("Content-Type", "application/json")];
        if secret.is_some() {
            headers.push(("Authorization", auth.as_str()));
        }
        let (status, _, body) = http(gw.addr, "POST", path, &headers, &body.to_string());
        (status, serde_json::from_str::<Value>(&body).unwrap())
    };
    let (status, started) = post("/api/v1/flows", None, json!({"link": link}));
    assert_eq!(status, 201, "{started}");
    let (flow, secret) = (
        started["flow"].as_str().unwrap().to_owned(),
        started["flow_secret"].as_str().unwrap().to_owned(),
    );
    let (_, step) = post(
        &format!("/api/v1/flows/{flow}/answer"),
        Some(&secret),
        json!({"step": "agreement", "accept": true}),
    );
    assert_eq!(step["step"]["name"], "master_password", "{step}");
    let (_, step) = post(
        &format!("/api/v1/flows/{flow}/answer"),
        Some(&secret),
        json!({"step": "master_password", "master_password": MASTER}),
    );
    assert_eq!(step["step"]["name"], "launch", "{step}");
    let token = step["step"]["token"].as_str().unwrap().to_owned();

    let mut request = format!("ws://{}/api/v1/tunnel", gw.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {secret}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    ws.send(Message::text(token.clone())).await.unwrap();
    ws.send(Message::text(
        json!({"resize": {"cols": 120, "rows": 40}}).to_string(),
    ))
    .await
    .unwrap();
    ws.send(Message::binary(
        b"stty size; echo psm-$((6*7))-e2e\n".to_vec(),
    ))
    .await
    .unwrap();
    let mut screen = String::new();
    let mut notices = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while !screen.contains("psm-42-e2e") {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => screen.push_str(&String::from_utf8_lossy(&b)),
            Ok(Some(Ok(Message::Text(t)))) => notices.push(t.to_string()),
            other => panic!("no marker: {other:?}\n{screen}\n{notices:?}"),
        }
    }
    assert!(
        screen.contains("40 120"),
        "the resize reached the pty: {screen}"
    );
    assert!(!screen.contains(&password) && !screen.contains(MASTER));
    ws.send(Message::binary(b"exit\n".to_vec())).await.unwrap();
    let mut ended = None;
    while let Ok(Some(Ok(msg))) =
        tokio::time::timeout(std::time::Duration::from_secs(20), ws.next()).await
    {
        if let Message::Text(t) = msg
            && let Ok(v) = serde_json::from_str::<Value>(&t)
            && v.get("ended").is_some()
        {
            ended = Some(v["ended"].as_str().unwrap_or_default().to_owned());
        }
    }
    assert_eq!(
        ended.as_deref(),
        Some("The computer closed the session. (the shell exited with status 0)"),
        "{notices:?}"
    );

    // The token works once.
    let mut again = format!("ws://{}/api/v1/tunnel", gw.addr)
        .into_client_request()
        .unwrap();
    again
        .headers_mut()
        .insert("Authorization", format!("Bearer {secret}").parse().unwrap());
    let (mut ws2, _) = tokio_tungstenite::connect_async(again).await.unwrap();
    ws2.send(Message::text(token)).await.unwrap();
    let reply = ws2.next().await.unwrap().unwrap();
    assert!(
        reply.to_text().unwrap().contains("already been used"),
        "{reply:?}"
    );

    // Afterwards: the recording holds the marker and its hash is in the audit chain, which
    // verifies; the lease is back; the host key was trusted on first use.
    let store = openpsm_gateway::store::Store::open(&format!(
        "sqlite://{}",
        s.path().join("data/openpsm.db").display()
    ))
    .await
    .unwrap();
    let entries = store.audit_entries(0, 10_000).await.unwrap();
    let sealed = entries
        .iter()
        .find(|e| e.event == "recording.sealed")
        .expect("a sealed recording");
    let detail: Value = serde_json::from_str(&sealed.detail).unwrap();
    let cast_path = std::path::Path::new(detail["location"].as_str().unwrap()).join("session.cast");
    let cast = std::fs::read(&cast_path).unwrap();
    let digest: String = <sha2::Sha256 as sha2::Digest>::digest(&cast)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(detail["sha256"], digest);
    let cast = String::from_utf8(cast).unwrap();
    assert!(cast.lines().next().unwrap().contains("\"version\":2"));
    assert!(cast.contains("psm-42-e2e"), "{cast}");
    assert!(!cast.contains(&password) && !cast.contains(MASTER));
    for event in [
        "session.token_redeemed",
        "session.started",
        "session.host_key_trusted",
        "session.connected",
        "session.ended",
        "flow.ended",
    ] {
        assert!(entries.iter().any(|e| e.event == event), "no {event}");
    }
    assert!(store.audit_verify().await.unwrap().problems.is_empty());
    assert!(
        store
            .leases(openpsm_gateway::store::unix_now())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.host_keys(COMPUTER).await.unwrap().len(), 1);
    let log = gw.stderr();
    assert!(
        !log.contains(&password) && !log.contains(MASTER),
        "a secret reached the log"
    );
}

/// The same path as a person takes it: headless Chromium through the pages into xterm.js.
#[test]
fn a_live_ssh_session_in_the_browser() {
    let Some(Setup {
        s,
        gw,
        link,
        password,
    }) = setup()
    else {
        return;
    };
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
    if !(std::path::Path::new("/usr/bin/chromium").exists()
        && web.join("node_modules/@xterm/xterm").exists())
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium or web/node_modules missing: run scripts/test.sh"
        );
        return;
    }
    let shot = s.path().join("terminal.png");
    let query = link.clone();
    let out = std::process::Command::new("node")
        .arg(web.join("tests/ssh-session.mjs"))
        .arg(format!("http://{}", gw.addr))
        .arg(&query)
        .arg(MASTER)
        .arg(&shot)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)));
    assert_eq!(report["ok"], true, "{report}\n{}", gw.stderr());
    let rows = report["rows"].as_str().unwrap();
    assert!(rows.contains("psm-42-browser"), "{rows}");
    assert!(!rows.contains(&password));
    assert_eq!(
        report["ended"],
        "The computer closed the session. (the shell exited with status 0)"
    );
    assert_eq!(report["url"], format!("http://{}/flow", gw.addr));
    if let Ok(dir) = std::env::var("PSM_TEST_ARTIFACTS") {
        let _ = std::fs::copy(&shot, std::path::Path::new(&dir).join("terminal.png"));
    }
}
