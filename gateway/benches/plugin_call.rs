//! One plugin call, built-in vs shared library: `MfaProvider::verify` of the example recovery-code
//! provider, compiled into this benchmark and loaded from its cdylib, each both bare and through
//! the gateway's guard (timeout + panic catcher + metrics), as the gateway calls it.
//!
//! Run with `bench/plugin-call.sh` (it builds the library first and prints the ratios).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use openpsm_gateway::plugins::{guard, loader};
use openpsm_plugin_api::{
    HostContext, MfaProvider, PluginInstance, PluginSettings, Subject, Verdict,
};

fn library_path() -> PathBuf {
    // target/<profile>/deps/plugin_call-* → target/<profile>/
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let path = dir.join("libopenpsm_example_mfa.so");
    assert!(
        path.is_file(),
        "{} missing: run bench/plugin-call.sh",
        path.display()
    );
    path
}

fn mfa(instance: PluginInstance) -> Arc<dyn MfaProvider> {
    match instance {
        PluginInstance::MfaProvider(p) => p,
        _ => panic!("not an MFA provider"),
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _entered = rt.enter();
    let settings = serde_json::json!({"digits": 10});
    let builtin = mfa(openpsm_example_mfa::build(PluginSettings {
        host: HostContext::default(),
        settings: settings.clone(),
    })
    .unwrap());
    let library = mfa(loader::load(
        &library_path(),
        "example-mfa",
        HostContext::default(),
        settings,
    )
    .map_err(|r| r.reason)
    .unwrap()
    .instance);
    let g = || guard::Guard::new("example-mfa", Duration::from_secs(10));
    let guarded_builtin = mfa(guard::guard(
        PluginInstance::MfaProvider(builtin.clone()),
        g(),
    ));
    let guarded_library = mfa(guard::guard(
        PluginInstance::MfaProvider(library.clone()),
        g(),
    ));

    let who = Subject {
        person: uuid::Uuid::nil(),
        login: "bench".into(),
        display_name: "Bench".into(),
    };
    let enrolment = rt.block_on(builtin.enroll(&who)).unwrap();
    let code = enrolment.reveal.clone().unwrap();
    let mut group = c.benchmark_group("mfa_verify");
    for (name, provider) in [
        ("builtin", &builtin),
        ("library", &library),
        ("builtin_guarded", &guarded_builtin),
        ("library_guarded", &guarded_library),
    ] {
        // Both must give the same answer before they are timed.
        let verdict = rt
            .block_on(provider.verify(&who, &enrolment.secret, &code, SystemTime::now()))
            .unwrap();
        assert_eq!(verdict, Verdict::Accepted { step: Some(0) });
        group.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| provider.verify(&who, &enrolment.secret, &code, SystemTime::now()));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
