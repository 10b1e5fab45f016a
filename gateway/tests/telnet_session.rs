//! A telnet session through the gateway against a real inetutils telnetd: the workflow, login
//! automation, the marker echoed, the resize on the remote side, the recording with the marker and
//! without the password.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::ssh::*;
use futures::SinkExt as _;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread")]
async fn a_live_telnet_session_through_the_gateway() {
    let Some((user, password)) = account() else {
        return;
    };
    let Ok(port) = std::env::var("PSM_TEST_TELNETD_PORT") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "PSM_TEST_TELNETD_PORT missing under CI: run scripts/test.sh"
        );
        return;
    };
    let lab = lab_for(
        "telnet",
        port.parse().unwrap(),
        &user,
        &password,
        &[],
        "typescript = true",
    );
    let (secret, token) = lab.launch(&[]);
    let mut ws = lab.connect(&secret, &token).await;
    ws.send(Message::text(
        serde_json::json!({"resize": {"cols": 111, "rows": 33}}).to_string(),
    ))
    .await
    .unwrap();
    ws.send(Message::binary(
        b"stty size; echo psm-$((6*7))-telnet\r".to_vec(),
    ))
    .await
    .unwrap();
    let (screen, texts) = read_until(&mut ws, "psm-42-telnet", 30).await;
    assert!(screen.contains("psm-42-telnet"), "{screen} {texts:?}");
    assert!(screen.contains("33 111"), "{screen}");
    assert!(!screen.contains(&password));
    ws.send(Message::binary(b"exit\r".to_vec())).await.unwrap();
    let (_, texts) = read_until(&mut ws, "", 20).await;
    assert!(
        ended(&texts)
            .unwrap_or_default()
            .starts_with("The computer closed the session."),
        "{texts:?}"
    );
    let store = lab.store().await;
    let entries = store.audit_entries(0, 10_000).await.unwrap();
    let sealed: Vec<serde_json::Value> = entries
        .iter()
        .filter(|e| e.event == "recording.sealed")
        .map(|e| serde_json::from_str(&e.detail).unwrap())
        .collect();
    let dir = std::path::PathBuf::from(sealed[0]["location"].as_str().unwrap());
    for name in ["session.cast", "session.typescript"] {
        let text = String::from_utf8_lossy(&std::fs::read(dir.join(name)).unwrap()).into_owned();
        assert!(text.contains("psm-42-telnet"), "{name}: {text}");
        assert!(!text.contains(&password), "{name} holds the password");
    }
    assert!(
        store
            .leases(openpsm_gateway::store::unix_now())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.audit_verify().await.unwrap().problems.is_empty());
    assert!(!lab.gw.stderr().contains(&password));
}
