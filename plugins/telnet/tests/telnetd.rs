//! The telnet mode against a real inetutils telnetd on loopback (started by scripts/test.sh).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use openpsm_plugin_api::conformance::{self, mode::ModeFixture};
use openpsm_plugin_api::mode::{CredentialSecret, DisplaySize, InjectedCredential, SessionPolicy};
use openpsm_plugin_api::{
    ConnectionMode as _, ErrorKind, Frame, HostContext, Input, OpenRequest, PluginSettings,
    SecretText, SessionIo,
};
use openpsm_plugin_telnet::Telnet;

fn target() -> Option<(u16, String, String)> {
    let var = |k: &str| std::env::var(k).ok();
    match (
        var("PSM_TEST_TELNETD_PORT"),
        var("PSM_TEST_SSHD_USER"),
        var("PSM_TEST_SSHD_PASSWORD"),
    ) {
        (Some(p), Some(u), Some(w)) => Some((p.parse().unwrap(), u, w)),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "PSM_TEST_TELNETD_PORT missing under CI: run scripts/test.sh"
            );
            None
        }
    }
}

fn telnet(login_timeout: u64) -> Telnet {
    let settings =
        serde_json::json!({"login_timeout_secs": login_timeout, "connect_timeout_secs": 5});
    Telnet::new(&PluginSettings {
        host: HostContext::default(),
        settings,
    })
    .unwrap()
}

fn request(port: u16, user: &str, password: &str) -> OpenRequest {
    OpenRequest {
        session: uuid::Uuid::new_v4(),
        hosts: vec!["127.0.0.1".into()],
        port,
        credential: InjectedCredential {
            user: user.into(),
            domain: None,
            secret: CredentialSecret::Password(SecretText::new(password)),
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

#[tokio::test(flavor = "multi_thread")]
async fn passes_the_mode_suite_against_telnetd() {
    let Some((port, user, password)) = target() else {
        return;
    };
    let fixture = ModeFixture {
        live: Some(conformance::mode::LiveTarget {
            request: request(port, &user, &password),
            send: b"echo psm-$((6*7))-telnet\r".to_vec(),
            expect: b"psm-42-telnet".to_vec(),
        }),
        template: request(port, &user, &password),
    };
    let report = conformance::mode::check(&telnet(20), &fixture).await;
    assert!(report.passed(), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn resize_reaches_the_remote_side_and_the_password_never_shows() {
    let Some((port, user, password)) = target() else {
        return;
    };
    let (io, mut ends) = SessionIo::pair(64);
    let mode = telnet(20);
    let req = request(port, &user, &password);
    let run = tokio::spawn(async move { mode.run(req, io).await });
    ends.inputs
        .send(Input::Resize {
            cols: 123,
            rows: 45,
            width: 0,
            height: 0,
        })
        .await
        .unwrap();
    ends.inputs
        .send(Input::Bytes(
            b"stty size; echo psm-$((6*7))-size\r".to_vec(),
        ))
        .await
        .unwrap();
    let mut out = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !out.contains("psm-42-size") {
        match tokio::time::timeout_at(deadline, ends.frames.recv()).await {
            Ok(Some(Frame::Terminal(b))) => out.push_str(&String::from_utf8_lossy(&b)),
            Ok(Some(_)) => {}
            other => panic!("no output: {other:?} {out}"),
        }
    }
    assert!(out.contains("45 123"), "{out}");
    assert!(!out.contains(&password), "the password reached the browser");
    ends.inputs.send(Input::Close).await.unwrap();
    drop(ends);
    let _ = tokio::time::timeout(Duration::from_secs(10), run).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_is_detected() {
    let Some((port, user, _)) = target() else {
        return;
    };
    let (io, _ends) = SessionIo::pair(8);
    let err = telnet(30)
        .run(request(port, &user, "Wrong-Canary-8812"), io)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unauthorized, "{err}");
    assert!(!err.message.contains("Wrong-Canary"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_never_prompts_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(socket);
    });
    let (io, _ends) = SessionIo::pair(8);
    let err = telnet(2)
        .run(request(port, "u", "p"), io)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Protocol, "{err}");
    assert!(err.message.contains("never prompted"), "{err}");
    silent.abort();
}
