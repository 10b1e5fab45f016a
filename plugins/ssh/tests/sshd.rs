//! The ssh mode against a real OpenSSH sshd on loopback (started by scripts/test.sh).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use openpsm_plugin_api::conformance::{self, mode::ModeFixture};
use openpsm_plugin_api::mode::{
    CredentialSecret, DisplaySize, InjectedCredential, Notice, SessionPolicy,
};
use openpsm_plugin_api::{
    ConnectionMode as _, ErrorKind, Frame, HostContext, Input, OpenRequest, PluginSettings,
    SecretText, SessionIo,
};
use openpsm_plugin_ssh::Ssh;

struct Target {
    port: u16,
    user: String,
    password: String,
    key: String,
    hostkey: String,
}

fn target() -> Option<Target> {
    let var = |k: &str| std::env::var(k).ok();
    match (
        var("PSM_TEST_SSHD_PORT"),
        var("PSM_TEST_SSHD_USER"),
        var("PSM_TEST_SSHD_PASSWORD"),
        var("PSM_TEST_SSHD_KEY"),
        var("PSM_TEST_SSHD_HOSTKEY"),
    ) {
        (Some(port), Some(user), Some(password), Some(key), Some(hostkey)) => Some(Target {
            port: port.parse().unwrap(),
            user,
            password,
            key: std::fs::read_to_string(key).unwrap(),
            hostkey,
        }),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "PSM_TEST_SSHD_* missing under CI: run scripts/test.sh"
            );
            eprintln!("note: no test sshd (run scripts/test.sh), skipped");
            None
        }
    }
}

fn ssh() -> Ssh {
    Ssh::new(&PluginSettings {
        host: HostContext::default(),
        settings: serde_json::json!({"connect_timeout_secs": 5}),
    })
    .unwrap()
}

fn request(t: &Target, secret: CredentialSecret) -> OpenRequest {
    OpenRequest {
        session: uuid::Uuid::new_v4(),
        hosts: vec!["127.0.0.1".into()],
        port: t.port,
        credential: InjectedCredential {
            user: t.user.clone(),
            domain: None,
            secret,
        },
        display: DisplaySize {
            cols: 100,
            rows: 30,
            ..DisplaySize::default()
        },
        policy: SessionPolicy::default(),
        pinned_keys: vec![],
        settings: serde_json::Value::Null,
    }
}

fn password(t: &Target) -> CredentialSecret {
    CredentialSecret::Password(SecretText::new(t.password.clone()))
}

#[tokio::test(flavor = "multi_thread")]
async fn passes_the_mode_suite_against_sshd() {
    let Some(t) = target() else { return };
    let fixture = ModeFixture {
        live: Some(conformance::mode::LiveTarget {
            request: request(&t, password(&t)),
            send: b"echo psm-$((6*7))-marker\n".to_vec(),
            expect: b"psm-42-marker".to_vec(),
        }),
        template: request(&t, password(&t)),
    };
    let report = conformance::mode::check(&ssh(), &fixture).await;
    assert!(report.passed(), "{report}");
}

/// Runs a session: sends `inputs` one by one, collects output until `until` shows up.
async fn session(req: OpenRequest, inputs: Vec<Input>, until: &str) -> (String, Vec<Notice>) {
    let (io, mut ends) = SessionIo::pair(64);
    let mode = ssh();
    let run = tokio::spawn(async move { mode.run(req, io).await });
    let mut out = String::new();
    let mut notices = Vec::new();
    for input in inputs {
        ends.inputs.send(input).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !out.contains(until) {
        match tokio::time::timeout_at(deadline, ends.frames.recv()).await {
            Ok(Some(Frame::Terminal(b))) => out.push_str(&String::from_utf8_lossy(&b)),
            Ok(Some(Frame::Notice(n))) => notices.push(n),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let _ = ends.inputs.send(Input::Close).await;
    drop(ends);
    let _ = tokio::time::timeout(Duration::from_secs(10), run).await;
    (out, notices)
}

#[tokio::test(flavor = "multi_thread")]
async fn key_auth_resize_and_the_host_key() {
    let Some(t) = target() else { return };
    // Private key authentication, and the pty follows a resize.
    let inputs = vec![
        Input::Resize {
            cols: 132,
            rows: 43,
            width: 0,
            height: 0,
        },
        Input::Bytes(b"stty size; echo size-$((1+1))-done\n".to_vec()),
    ];
    let (out, notices) = session(
        request(
            &t,
            CredentialSecret::PrivateKey(SecretText::new(t.key.clone())),
        ),
        inputs,
        "size-2-done",
    )
    .await;
    assert!(out.contains("43 132"), "{out}");
    assert!(
        notices.iter().any(
            |n| matches!(n, Notice::HostKeySeen { fingerprint, .. } if *fingerprint == t.hostkey)
        ),
        "{notices:?}"
    );
    // The pinned key is accepted; another pinned key refuses the connection.
    let mut pinned = request(&t, password(&t));
    pinned.pinned_keys = vec![t.hostkey.clone()];
    let (out, _) = session(
        pinned,
        vec![Input::Bytes(b"echo pinned-$((2+3))\n".to_vec())],
        "pinned-5",
    )
    .await;
    assert!(out.contains("pinned-5"));
    let mut wrong = request(&t, password(&t));
    wrong.pinned_keys = vec!["SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into()];
    let (io, _ends) = SessionIo::pair(8);
    let err = ssh().run(wrong, io).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::HostKeyMismatch, "{err}");
    assert!(err.message.contains(&t.hostkey), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_is_unauthorized_and_never_echoed() {
    let Some(t) = target() else { return };
    let canary = "Wrong-Canary-5521";
    let (io, _ends) = SessionIo::pair(8);
    let err = ssh()
        .run(
            request(&t, CredentialSecret::Password(SecretText::new(canary))),
            io,
        )
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.origin, err.retryable),
        (
            ErrorKind::Unauthorized,
            openpsm_plugin_api::Origin::Target,
            false
        )
    );
    assert!(!err.message.contains(canary), "{err}");
}
