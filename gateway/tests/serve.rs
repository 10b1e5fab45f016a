//! `openpsm serve` with plugins that panic or hang: the gateway keeps answering.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

fn misbehaving(s: &Scratch, fault: &str, extra: &str) -> std::path::PathBuf {
    let path = lib("openpsm-misbehaving");
    s.write(
        "gw.toml",
        &format!(
            "[plugins.misbehaving]\npath = {:?}\n{extra}\n[plugins.misbehaving.settings]\nfault = \"{fault}\"\n",
            path.display().to_string()
        ),
    )
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn a_panicking_plugin_leaves_the_gateway_serving() {
    let s = Scratch::new();
    let config = misbehaving(&s, "panic", "");
    let mut gw = Gateway::start(s.path(), &config, &[]);
    assert_eq!(gw.get("/healthz"), (200, "ok\n".into()));
    for _ in 0..3 {
        let (status, body) = gw.get("/readyz");
        assert_eq!(status, 503, "{body}");
        let body = json(&body);
        assert_eq!(body["status"], "not_ready");
        assert_eq!(body["plugins"]["misbehaving"]["status"], "failing");
        assert_eq!(body["plugins"]["misbehaving"]["kind"], "panicked");
        assert_eq!(body["plugins"]["local-files"]["status"], "ok");
        assert_eq!(gw.get("/healthz").0, 200);
    }
    assert!(gw.is_running());
    // The library's own log lines and its panic reach the gateway's log with the plugin id.
    let log = gw.stderr();
    assert!(
        log.contains("misbehaving plugin built") && log.contains("plugin=\"misbehaving\""),
        "{log}"
    );
    assert!(
        log.contains("plugin panicked at")
            && log.contains("misbehaving plugin panics as configured"),
        "{log}"
    );
    let (status, metrics) = gw.get("/metrics");
    assert_eq!(status, 200);
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("openpsm_plugin_calls_total")
                && l.contains("misbehaving")
                && l.contains("panicked")
        })
        .unwrap_or_else(|| panic!("no panicked-call counter in:\n{metrics}"));
    assert!(line.ends_with(" 3"), "{line}");
    assert!(metrics.contains("openpsm_build_info"), "{metrics}");
    let status = gw.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_hanging_plugin_times_out_then_fails_fast() {
    let s = Scratch::new();
    let config = misbehaving(&s, "hang", "call_timeout_ms = 300");
    let gw = Gateway::start(s.path(), &config, &[]);
    let mut kinds = Vec::new();
    for _ in 0..6 {
        let (status, body) = gw.get("/readyz");
        assert_eq!(status, 503, "{body}");
        let body = json(&body);
        assert_eq!(body["plugins"]["local-files"]["status"], "ok");
        kinds.push(
            body["plugins"]["misbehaving"]["kind"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        assert_eq!(gw.get("/healthz").0, 200);
    }
    // Four calls time out and stay stuck in the library; then calls fail at once.
    assert_eq!(
        kinds,
        [
            "timeout",
            "timeout",
            "timeout",
            "timeout",
            "unresponsive",
            "unresponsive"
        ]
    );
    let (_, body) = gw.get("/readyz");
    assert!(body.contains("earlier calls never returned"), "{body}");
    // Shutdown is not held up by the stuck calls.
    let status = gw.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_healthy_gateway_is_ready_and_logs_json_when_asked() {
    let s = Scratch::new();
    let config = s.write(
        "gw.toml",
        &format!(
            "[plugins.example-mfa]\npath = {:?}\n",
            lib("openpsm-example-mfa").display().to_string()
        ),
    );
    let gw = Gateway::start(s.path(), &config, &[("OPENPSM_LOG__FORMAT", "json")]);
    let (status, body) = gw.get("/readyz");
    assert_eq!(status, 200, "{body}");
    let body = json(&body);
    assert_eq!(body["plugins"]["example-mfa"]["status"], "ok");
    assert_eq!(body["plugins"]["local-files"]["status"], "ok");
    assert_eq!(gw.get("/nope").0, 404);
    let log = gw.stderr();
    let lines: Vec<serde_json::Value> = log.lines().map(json).collect();
    assert!(
        lines.iter().any(|l| l["plugin"] == "example-mfa"
            && l["message"]
                .as_str()
                .is_some_and(|m| m.contains("provider ready"))),
        "{log}"
    );
    assert!(gw.terminate().success());
}
