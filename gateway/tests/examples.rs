//! The example libraries, loaded as the gateway loads them, pass their traits' conformance suites.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use openpsm_gateway::plugins::loader;
use openpsm_plugin_api::conformance::{self, mfa::MfaFixture, mode::ModeFixture};
use openpsm_plugin_api::mode::{CredentialSecret, DisplaySize, InjectedCredential, SessionPolicy};
use openpsm_plugin_api::{HostContext, OpenRequest, PluginInstance, SecretText};

fn load(crate_name: &str, id: &str, settings: serde_json::Value) -> PluginInstance {
    let host = HostContext {
        id: id.into(),
        data_dir: std::env::temp_dir(),
    };
    match loader::load(&common::lib(crate_name), id, host, settings) {
        Ok(loaded) => loaded.instance,
        Err(refusal) => panic!("{}", refusal.reason),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn example_mfa_library_passes_the_mfa_suite() {
    let PluginInstance::MfaProvider(p) = load(
        "openpsm-example-mfa",
        "example-mfa",
        serde_json::json!({"digits": 8}),
    ) else {
        panic!("kind")
    };
    let fixture = MfaFixture {
        respond: Box::new(|enrolment, _| enrolment.reveal.clone()),
    };
    let report = conformance::mfa::check(p.as_ref(), &fixture).await;
    assert!(report.passed(), "{report}");
    assert!(report.checks >= 15, "{report}");
    assert!(p.provider_info().prompt.contains("8-digit"));
}

#[tokio::test(flavor = "multi_thread")]
async fn example_raw_tcp_library_passes_the_mode_suite() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let echo = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let PluginInstance::ConnectionMode(mode) = load(
        "openpsm-example-raw-tcp",
        "example-raw-tcp",
        serde_json::Value::Null,
    ) else {
        panic!("kind")
    };
    let request = OpenRequest {
        session: uuid::Uuid::new_v4(),
        hosts: vec!["127.0.0.1".into()],
        port,
        credential: InjectedCredential {
            user: "nobody".into(),
            domain: None,
            secret: CredentialSecret::Password(SecretText::new("unused")),
        },
        display: DisplaySize::default(),
        policy: SessionPolicy::default(),
        pinned_keys: vec![],
        settings: serde_json::Value::Null,
    };
    let fixture = ModeFixture {
        live: Some(conformance::mode::LiveTarget {
            request: request.clone(),
            send: b"hello through a plugin library\n".to_vec(),
            expect: b"hello through a plugin library".to_vec(),
        }),
        template: request,
    };
    let report = conformance::mode::check(mode.as_ref(), &fixture).await;
    echo.abort();
    assert!(report.passed(), "{report}");
}

fn account_exists(name: &str) -> bool {
    std::process::Command::new("getent")
        .args(["passwd", name])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread")]
async fn example_jit_unix_library_passes_the_provisioner_suite() {
    let PluginInstance::AccountProvisioner(p) = load(
        "openpsm-example-jit-unix",
        "example-jit-unix",
        serde_json::json!({"prefix": "psmt-"}),
    ) else {
        panic!("kind")
    };
    let request = openpsm_plugin_api::JitRequest {
        person: openpsm_plugin_api::Subject {
            person: uuid::Uuid::new_v4(),
            login: "Conformance".into(),
            display_name: "C".into(),
        },
        computer: uuid::Uuid::new_v4(),
        session: uuid::Uuid::new_v4(),
        groups: vec!["users".into()],
        not_after: std::time::SystemTime::now() + std::time::Duration::from_secs(3600),
    };
    let report = conformance::provisioner::check(p.as_ref(), &request).await;
    assert!(report.passed(), "{report}");
    // A real account while it lives; a group that does not exist fails cleanly and leaves nothing.
    let account = p.create(request.clone()).await.unwrap();
    assert!(
        account.user_name.starts_with("psmt-conformance-"),
        "{}",
        account.user_name
    );
    assert!(account_exists(&account.user_name));
    p.remove(&account.account).await.unwrap();
    assert!(!account_exists(&account.user_name));
    let before = p.owned().await.unwrap();
    let mut bad = request;
    bad.groups = vec!["no-such-group-psm".into()];
    let err = p.create(bad).await.unwrap_err();
    assert!(err.message.contains("no-such-group-psm"), "{err}");
    assert_eq!(p.owned().await.unwrap(), before);
}
