//! Sessions ended from outside: by an administrator (`openpsm sessions terminate`) and by the
//! gateway shutting down; both through the one end path.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::ssh::*;
use common::*;
use futures::SinkExt as _;
use tokio_tungstenite::tungstenite::Message;

async fn live_session(lab: &Lab) -> Ws {
    let (secret, token) = lab.launch(&[]);
    let mut ws = lab.connect(&secret, &token).await;
    ws.send(Message::binary(b"echo psm-$((6*7))-live\n".to_vec()))
        .await
        .unwrap();
    let (screen, _) = read_until(&mut ws, "psm-42-live", 20).await;
    assert!(screen.contains("psm-42-live"));
    ws
}

async fn given_back(lab: &Lab, reason: &str) {
    let store = lab.store().await;
    assert!(
        store
            .leases(openpsm_gateway::store::unix_now())
            .await
            .unwrap()
            .is_empty()
    );
    let entries = store.audit_entries(0, 10_000).await.unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e.event == "session.ended" && e.detail.contains(reason))
    );
    assert!(entries.iter().any(|e| e.event == "recording.sealed"));
    assert!(store.audit_verify().await.unwrap().problems.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_administrator_ends_a_session() {
    let Some((user, password)) = account() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let sshd = PrivateSshd::start(scratch.path());
    let lab = lab(sshd.port, &user, &password, &[]);
    let mut ws = live_session(&lab).await;
    let config = lab.s.path().join("gw.toml");
    let listed = run(
        lab.s.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "sessions",
            "list",
            "--json",
        ],
        &[],
    );
    let sessions: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let id = sessions[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(sessions[0]["state"], "running");
    let out = run(
        lab.s.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "sessions",
            "terminate",
            &id,
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (_, texts) = read_until(&mut ws, "", 20).await;
    assert_eq!(
        ended(&texts).as_deref(),
        Some(openpsm_gateway::session::live::TERMINATED),
        "{texts:?}"
    );
    given_back(&lab, openpsm_gateway::session::live::TERMINATED).await;
    let again = run(
        lab.s.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "sessions",
            "terminate",
            &id,
        ],
        &[],
    );
    assert!(
        !again.status.success(),
        "an ended session cannot be terminated again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_shutdown_ends_sessions_cleanly() {
    let Some((user, password)) = account() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let sshd = PrivateSshd::start(scratch.path());
    let mut lab = lab(sshd.port, &user, &password, &[]);
    let mut ws = live_session(&lab).await;
    let pid = lab.gw.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let (_, texts) = read_until(&mut ws, "", 20).await;
    assert_eq!(
        ended(&texts).as_deref(),
        Some(openpsm_gateway::session::live::SHUTDOWN),
        "{texts:?}"
    );
    let status = lab.gw.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    given_back(&lab, openpsm_gateway::session::live::SHUTDOWN).await;
    let store = lab.store().await;
    assert!(
        store.open_sessions().await.unwrap().is_empty(),
        "nothing is left for a restart to finish"
    );
}
