//! Every trait through the boundary's codec, in one process: a plugin is wrapped as the library
//! would wrap it (`guest::wrap`), then adapted back as the host does (`ForeignPlugin`), and both
//! the native plugin and its round trip must pass the trait's conformance suite.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, SystemTime};

use openpsm_plugin_api::conformance::{
    self, credential::CredentialFixture, mfa::MfaFixture, mode::ModeFixture,
};
use openpsm_plugin_api::ffi::{guest, host::ForeignPlugin};
use openpsm_plugin_api::{ErrorKind, PluginInstance, SecretText};
use support::*;

fn round_trip(instance: PluginInstance) -> PluginInstance {
    ForeignPlugin::new(guest::wrap(instance))
        .unwrap()
        .into_instance()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn mfa_native_and_across_the_boundary() {
    let fixture = MfaFixture {
        respond: Box::new(|enrolment, _now| enrolment.reveal.clone()),
    };
    let native = mfa();
    for instance in [native.clone(), round_trip(native)] {
        let PluginInstance::MfaProvider(p) = instance else {
            panic!("kind")
        };
        let report = conformance::mfa::check(p.as_ref(), &fixture).await;
        assert!(report.passed(), "{report}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn credential_source_native_and_across_the_boundary() {
    let fixture = CredentialFixture {
        subject: flow_subject(),
        master_password: SecretText::new(MASTER),
        credential: "cred-1".into(),
        expected_password: SecretText::new(TARGET_PASSWORD),
    };
    let native = credentials();
    for instance in [native.clone(), round_trip(native)] {
        let PluginInstance::CredentialSource(p) = instance else {
            panic!("kind")
        };
        let report = conformance::credential::check(p.as_ref(), &fixture).await;
        assert!(report.passed(), "{report}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn recorder_native_and_across_the_boundary() {
    let native = recorder();
    for instance in [native.clone(), round_trip(native)] {
        let PluginInstance::Recorder(p) = instance else {
            panic!("kind")
        };
        let scratch = tempdir();
        let report = conformance::recorder::check(p.as_ref(), &scratch).await;
        assert!(report.passed(), "{report}");
        let _ = std::fs::remove_dir_all(scratch);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn provisioner_native_and_across_the_boundary() {
    let native = provisioner();
    for instance in [native.clone(), round_trip(native)] {
        let PluginInstance::AccountProvisioner(p) = instance else {
            panic!("kind")
        };
        let report = conformance::provisioner::check(p.as_ref(), &jit_request()).await;
        assert!(report.passed(), "{report}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_mode_native_and_across_the_boundary() {
    let echo = EchoServer::start().await;
    let fixture = ModeFixture {
        live: Some(conformance::mode::LiveTarget {
            request: open_request("127.0.0.1", echo.port),
            send: b"marker-4711\n".to_vec(),
            expect: b"marker-4711".to_vec(),
        }),
        template: open_request("127.0.0.1", echo.port),
    };
    let native = mode();
    for instance in [native.clone(), round_trip(native)] {
        let PluginInstance::ConnectionMode(p) = instance else {
            panic!("kind")
        };
        let report = conformance::mode::check(p.as_ref(), &fixture).await;
        assert!(report.passed(), "{report}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn panics_become_errors_and_wrong_methods_are_refused() {
    let PluginInstance::MfaProvider(p) = round_trip(panicking()) else {
        panic!("kind")
    };
    let err = p.health().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Panicked);
    assert!(err.message.contains("on purpose"), "{err}");
    // The same instance keeps answering after a panic.
    let err = p.health().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Panicked);
    let who = subject();
    let verdict = p
        .verify(
            &who,
            &openpsm_plugin_api::EnrolledSecret(SecretText::new("x")),
            &SecretText::new("1"),
            SystemTime::now(),
        )
        .await;
    assert_eq!(verdict.unwrap_err().kind, ErrorKind::Panicked);
}

#[test]
fn abandoned_calls_make_a_hung_plugin_fail_fast() {
    // Its own runtime: the stuck threads never return, so the runtime is left in the background
    // (a normal drop would wait for them forever; the gateway's main does the same).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let foreign = ForeignPlugin::new(guest::wrap(hanging())).unwrap();
        let PluginInstance::MfaProvider(p) = foreign.into_instance().unwrap() else {
            panic!("kind")
        };
        for _ in 0..openpsm_plugin_api::ffi::host::MAX_ABANDONED {
            let timed_out = tokio::time::timeout(Duration::from_millis(50), p.health()).await;
            assert!(timed_out.is_err());
        }
        // Fails at once instead of starting one more stuck thread (a hang here would end in the
        // timeout below, not in an error).
        let err = tokio::time::timeout(Duration::from_secs(30), p.health())
            .await
            .expect("fails fast")
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unresponsive, "{err}");
    });
    rt.shutdown_background();
}
