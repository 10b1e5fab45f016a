//! Sessions that go wrong: a wrong target password, the target dropping mid-session, a host key
//! that changed, the access window ending, a browser that stops reading.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::ssh::*;
use futures::SinkExt as _;
use tokio_tungstenite::tungstenite::Message;

async fn after(lab: &Lab, reason_part: &str) {
    let store = lab.store().await;
    let entries = store.audit_entries(0, 10_000).await.unwrap();
    let ended = entries
        .iter()
        .filter(|e| e.event == "session.ended")
        .map(|e| e.detail.clone())
        .collect::<Vec<_>>();
    assert!(
        ended.iter().any(|d| d.contains(reason_part)),
        "no session.ended with {reason_part:?}: {ended:?}"
    );
    assert!(
        store
            .leases(openpsm_gateway::store::unix_now())
            .await
            .unwrap()
            .is_empty(),
        "the lease is given back"
    );
    assert!(store.audit_verify().await.unwrap().problems.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_target_password_fails_the_session_cleanly() {
    let Some((user, _)) = account() else { return };
    let scratch = tempfile::tempdir().unwrap();
    let sshd = PrivateSshd::start(scratch.path());
    let lab = lab(sshd.port, &user, "Not-The-Password-Canary", &[]);
    let (secret, token) = lab.launch(&[]);
    let mut ws = lab.connect(&secret, &token).await;
    let (_, texts) = read_until(&mut ws, "", 20).await;
    let ended = ended(&texts).unwrap_or_default();
    assert!(ended.contains("refused the credential"), "{texts:?}");
    after(&lab, "refused the credential").await;
    assert!(!lab.gw.stderr().contains("Not-The-Password-Canary"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_target_dropping_mid_session_ends_it() {
    if account().is_none() {
        return;
    }
    // An account of this test's own, so killing its processes touches no other test.
    let account = TempAccount::create("psmdrop");
    let (user, password) = (account.name.clone(), account.password.clone());
    let scratch = tempfile::tempdir().unwrap();
    let sshd = PrivateSshd::start(scratch.path());
    let lab = lab(sshd.port, &user, &password, &[]);
    let (secret, token) = lab.launch(&[]);
    let mut ws = lab.connect(&secret, &token).await;
    ws.send(Message::binary(b"echo psm-$((6*7))-up\n".to_vec()))
        .await
        .unwrap();
    let (screen, _) = read_until(&mut ws, "psm-42-up", 20).await;
    assert!(screen.contains("psm-42-up"), "{screen}");
    // Everything of the account on the target dies at once, as when the machine drops.
    let _ = std::process::Command::new("pkill")
        .args(["-KILL", "-u", &user])
        .status();
    let (_, texts) = read_until(&mut ws, "", 30).await;
    assert_eq!(
        ended(&texts).as_deref(),
        Some("The computer closed the session."),
        "{texts:?}"
    );
    after(&lab, "The computer closed the session.").await;
    let store = lab.store().await;
    let entries = store.audit_entries(0, 10_000).await.unwrap();
    assert!(
        entries.iter().any(|e| e.event == "recording.sealed"),
        "what was recorded is kept"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_host_key_is_refused() {
    let Some((user, password)) = account() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let sshd = PrivateSshd::start(scratch.path());
    let lab = lab(sshd.port, &user, &password, &[]);
    // The key recorded on an earlier first use is not the one this server presents now.
    let store = lab.store().await;
    let bogus = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert!(
        store
            .trust_host_key(COMPUTER, "127.0.0.1", bogus, 1)
            .await
            .unwrap()
    );
    let (secret, token) = lab.launch(&[]);
    let mut ws = lab.connect(&secret, &token).await;
    let (screen, texts) = read_until(&mut ws, "", 20).await;
    assert!(
        screen.is_empty(),
        "nothing of the impostor reaches the browser"
    );
    let ended = ended(&texts).unwrap_or_default();
    assert!(ended.contains("is not the pinned one"), "{texts:?}");
    after(&lab, "is not the pinned one").await;
    assert_eq!(
        store.host_keys(COMPUTER).await.unwrap(),
        vec![("127.0.0.1".to_owned(), bogus.to_owned())],
        "the pinned key stays"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_access_window_ending_closes_the_session() {
    let Some((user, password)) = account() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let sshd = PrivateSshd::start(scratch.path());
    let lab = lab(sshd.port, &user, &password, &[]);
    let end = time::OffsetDateTime::now_utc() + time::Duration::seconds(5);
    let end = end
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (secret, token) = lab.launch(&[("CheckOutEndDate", end)]);
    let mut ws = lab.connect(&secret, &token).await;
    ws.send(Message::binary(b"echo psm-$((6*7))-window\n".to_vec()))
        .await
        .unwrap();
    let (screen, texts) = read_until(&mut ws, "psm-42-window", 20).await;
    assert!(screen.contains("psm-42-window"), "{screen} {texts:?}");
    let (_, texts) = read_until(&mut ws, "", 30).await;
    assert_eq!(
        ended(&texts).as_deref(),
        Some("The access window ended, so the session was closed."),
        "{texts:?}"
    );
    after(&lab, "The access window ended").await;
}

struct TempAccount {
    name: String,
    password: String,
}

impl TempAccount {
    fn create(prefix: &str) -> Self {
        let name = format!(
            "{prefix}{}",
            &uuid::Uuid::new_v4().simple().to_string()[..6]
        );
        let password = format!("Drop-{}-1", uuid::Uuid::new_v4().simple());
        assert!(
            std::process::Command::new("useradd")
                .args(["-m", "-s", "/bin/bash", &name])
                .status()
                .unwrap()
                .success()
        );
        let mut chpasswd = std::process::Command::new("chpasswd")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(
            &mut chpasswd.stdin.take().unwrap(),
            format!("{name}:{password}\n").as_bytes(),
        )
        .unwrap();
        assert!(chpasswd.wait().unwrap().success());
        Self { name, password }
    }
}

impl Drop for TempAccount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-u", &self.name])
            .status();
        let _ = std::process::Command::new("userdel")
            .args(["-r", &self.name])
            .output();
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_that_stops_reading_cannot_grow_the_gateway() {
    let Some((user, password)) = account() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let sshd = PrivateSshd::start(scratch.path());
    let lab = lab(
        sshd.port,
        &user,
        &password,
        &[("OPENPSM_SESSIONS__BROWSER_SEND_TIMEOUT_SECS", "3")],
    );
    let (secret, token) = lab.launch(&[]);
    let mut ws = lab.connect(&secret, &token).await;
    ws.send(Message::binary(b"echo psm-$((6*7))-flood\n".to_vec()))
        .await
        .unwrap();
    read_until(&mut ws, "psm-42-flood", 20).await;
    let pid = lab.gw.child.id();
    let before = rss_kib(pid);
    // About 400 MB of output that the browser never reads.
    ws.send(Message::binary(
        b"head -c 300000000 /dev/zero | base64\n".to_vec(),
    ))
    .await
    .unwrap();
    let mut peak = before;
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        peak = peak.max(rss_kib(pid));
    }
    assert!(
        peak < before + 64 * 1024,
        "gateway memory grew from {before} KiB to {peak} KiB"
    );
    let (_, texts) = read_until(&mut ws, "", 60).await;
    assert!(
        ended(&texts)
            .unwrap_or_default()
            .contains("the browser stopped reading"),
        "{texts:?}"
    );
    after(&lab, "the browser stopped reading").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_session_is_ended() {
    let Some((user, password)) = account() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let sshd = PrivateSshd::start(scratch.path());
    let lab = lab(
        sshd.port,
        &user,
        &password,
        &[("OPENPSM_SESSIONS__IDLE_TIMEOUT_SECS", "3")],
    );
    let (secret, token) = lab.launch(&[]);
    let mut ws = lab.connect(&secret, &token).await;
    let (_, texts) = read_until(&mut ws, "", 30).await;
    assert_eq!(
        ended(&texts).as_deref(),
        Some(openpsm_gateway::session::live::IDLE),
        "{texts:?}"
    );
    after(&lab, "idle for too long").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recording_that_cannot_be_written_stops_the_session() {
    let Some((user, password)) = account() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let sshd = PrivateSshd::start(scratch.path());
    let lab = lab(sshd.port, &user, &password, &[]);
    // Where open recordings go is a file, not a directory: nothing can be recorded.
    std::fs::write(lab.s.path().join("data/recordings-open"), "in the way").unwrap();
    let (secret, token) = lab.launch(&[]);
    let mut ws = lab.connect(&secret, &token).await;
    let (screen, texts) = read_until(&mut ws, "", 20).await;
    assert!(
        screen.is_empty(),
        "no byte of an unrecorded session reaches the browser"
    );
    let ended = ended(&texts).unwrap_or_default();
    assert!(ended.contains("must be recorded"), "{texts:?}");
    after(&lab, "must be recorded").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cross_origin_websocket_is_refused() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let Some((user, password)) = account() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let sshd = PrivateSshd::start(scratch.path());
    let lab = lab(sshd.port, &user, &password, &[]);
    let (secret, token) = lab.launch(&[]);
    let mut request = format!("ws://{}/api/v1/tunnel", lab.gw.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {secret}").parse().unwrap());
    request
        .headers_mut()
        .insert("Origin", "https://evil.example.test".parse().unwrap());
    let refused = tokio_tungstenite::connect_async(request).await;
    assert!(
        matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 403),
        "{refused:?}"
    );
    // The token was not spent: the right page can still use it.
    let mut ws = lab.connect(&secret, &token).await;
    ws.send(Message::binary(b"echo psm-$((6*7))-origin\n".to_vec()))
        .await
        .unwrap();
    let (screen, _) = read_until(&mut ws, "psm-42-origin", 20).await;
    assert!(screen.contains("psm-42-origin"));
}
