//! A gateway killed mid-session finishes that session's end when it starts again: the lease is
//! given back, the recording sealed as far as it got, the end audited.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::ssh::*;
use common::*;
use futures::SinkExt as _;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread")]
async fn unfinished_ends_are_completed_at_start_up() {
    let Some((user, password)) = account() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let sshd = PrivateSshd::start(scratch.path());
    let mut lab = lab(
        sshd.port,
        &user,
        &password,
        &[("OPENPSM_NODE_ID", "lab-node")],
    );
    let (secret, token) = lab.launch(&[]);
    let mut ws = lab.connect(&secret, &token).await;
    ws.send(Message::binary(
        b"echo psm-$((6*7))-before-crash\n".to_vec(),
    ))
    .await
    .unwrap();
    let (screen, _) = read_until(&mut ws, "psm-42-before-crash", 20).await;
    assert!(screen.contains("psm-42-before-crash"));
    let store = lab.store().await;
    assert_eq!(
        store
            .leases(openpsm_gateway::store::unix_now())
            .await
            .unwrap()
            .len(),
        1
    );

    assert_eq!(
        store.running_sessions("lab-node").await.unwrap().len(),
        1,
        "the session is registered"
    );
    // The gateway dies without any chance to clean up.
    lab.gw.child.kill().unwrap();
    lab.gw.child.wait().unwrap();
    drop(ws);
    let config = lab.s.path().join("gw.toml");
    lab.gw = Gateway::start(lab.s.path(), &config, &[("OPENPSM_NODE_ID", "lab-node")]);

    assert!(
        store
            .leases(openpsm_gateway::store::unix_now())
            .await
            .unwrap()
            .is_empty(),
        "the lease is given back"
    );
    let entries = store.audit_entries(0, 10_000).await.unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e.event == "session.ended" && e.detail.contains("The gateway restarted")),
        "the end is audited"
    );
    let sealed = entries
        .iter()
        .find(|e| e.event == "recording.sealed")
        .expect("the recording is sealed");
    let detail: serde_json::Value = serde_json::from_str(&sealed.detail).unwrap();
    let cast = std::fs::read_to_string(
        std::path::Path::new(detail["location"].as_str().unwrap()).join("session.cast"),
    )
    .unwrap();
    assert!(
        cast.contains("psm-42-before-crash"),
        "what was recorded before the crash is kept"
    );
    assert!(store.audit_verify().await.unwrap().problems.is_empty());
    assert!(store.running_sessions("lab-node").await.unwrap().is_empty());
    assert!(
        lab.gw
            .stderr()
            .contains("ended the sessions this node was running")
    );
}
