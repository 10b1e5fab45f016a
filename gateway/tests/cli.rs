//! The real `openpsm` binary: configuration layers, `plugins list`, `check-config`, and one-line
//! start-up refusals for every way a plugin can be broken.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

fn lib_entry(id: &str, path: &std::path::Path, extra: &str) -> String {
    format!(
        "[plugins.{id}]\npath = {:?}\n{extra}\n",
        path.display().to_string()
    )
}

fn list(
    scratch: &Scratch,
    config: &std::path::Path,
    env: &[(&str, &str)],
) -> (Option<i32>, serde_json::Value) {
    let out = run(
        scratch.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "plugins",
            "list",
            "--json",
        ],
        env,
    );
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
    (out.status.code(), json)
}

fn record<'a>(list: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed: {list}"))
}

#[test]
fn plugins_list_shows_builtins_libraries_and_disabled_ones() {
    let s = Scratch::new();
    let mfa = lib("openpsm-example-mfa");
    let config = s.write(
        "gw.toml",
        &(lib_entry("example-mfa", &mfa, "")
            + &lib_entry("example-raw-tcp", &lib("openpsm-example-raw-tcp"), "")
            + "[plugins.vendor-x]\nenabled = false\npath = \"/nonexistent/libvendor_x.so\"\n"),
    );
    let (code, list) = list(&s, &config, &[]);
    assert_eq!(code, Some(0), "{list}");
    let builtin = record(&list, "local-files");
    assert_eq!(builtin["kind"], "recorder");
    assert_eq!(builtin["origin"]["type"], "built_in");
    assert_eq!(builtin["status"]["state"], "active");
    assert_eq!(builtin["api_version"], env!("CARGO_PKG_VERSION"));
    let m = record(&list, "example-mfa");
    assert_eq!(m["kind"], "mfa_provider");
    assert_eq!(m["version"], "0.1.0");
    assert_eq!(m["origin"]["path"], mfa.display().to_string());
    assert_eq!(m["status"]["state"], "active");
    assert_eq!(record(&list, "example-raw-tcp")["kind"], "connection_mode");
    let off = record(&list, "vendor-x");
    assert_eq!(off["enabled"], false);
    assert_eq!(off["status"]["state"], "disabled");
    // The table form names the same things.
    let out = run(
        s.path(),
        &["--config", config.to_str().unwrap(), "plugins", "list"],
        &[],
    );
    let table = text(&out.stdout);
    assert!(table.lines().next().unwrap().starts_with("ID"), "{table}");
    assert!(
        table.contains("example-mfa")
            && table.contains("mfa_provider")
            && table.contains("disabled"),
        "{table}"
    );
}

#[test]
fn environment_overrides_file_overrides_defaults() {
    let s = Scratch::new();
    let config = s.write(
        "gw.toml",
        &lib_entry(
            "example-mfa",
            &lib("openpsm-example-mfa"),
            "[plugins.example-mfa.settings]\ndigits = 8",
        ),
    );
    let (code, listed) = list(
        &s,
        &config,
        &[("OPENPSM_PLUGINS__LOCAL_FILES__ENABLED", "false")],
    );
    assert_eq!(code, Some(0));
    assert_eq!(
        record(&listed, "local-files")["status"]["state"],
        "disabled"
    );
    assert_eq!(record(&listed, "example-mfa")["status"]["state"], "active");

    let out = run(
        s.path(),
        &["--config", config.to_str().unwrap(), "check-config"],
        &[("OPENPSM_PLUGINS__EXAMPLE_MFA__SETTINGS__DIGITS", "3")],
    );
    let line = refusal_line(&out);
    assert!(
        line.contains("plugin `example-mfa`")
            && line.contains("digits must be between 6 and 12, got 3"),
        "{line}"
    );

    let out = run(
        s.path(),
        &["--config", config.to_str().unwrap(), "check-config"],
        &[("OPENPSM_SERVER__LISTEN", "127.0.0.1:9123")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let effective: toml::Value = toml::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(
        effective["server"]["listen"].as_str(),
        Some("127.0.0.1:9123")
    );
    assert_eq!(
        effective["plugins"]["example-mfa"]["settings"]["digits"].as_integer(),
        Some(8)
    );
    assert_eq!(
        effective["log"]["level"].as_str(),
        Some("info"),
        "defaults fill what the file leaves out"
    );
}

#[test]
fn check_config_redacts_secrets() {
    let s = Scratch::new();
    let canary = "Canary-Secret-5e1f";
    let config = s.write(
        "gw.toml",
        &format!("[plugins.vendor-y]\nenabled = false\npath = \"/opt/libvendor_y.so\"\n[plugins.vendor-y.settings]\nbind_password = \"{canary}\"\napi_key = \"{canary}\"\nendpoint = \"https://iam.example.test\"\n"),
    );
    let out = run(
        s.path(),
        &["--config", config.to_str().unwrap(), "check-config"],
        &[("OPENPSM_PLUGINS__VENDOR_Y__SETTINGS__CLIENT_SECRET", canary)],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(!all.contains(canary), "a secret leaked:\n{all}");
    let effective: toml::Value = toml::from_str(&text(&out.stdout)).unwrap();
    let settings = &effective["plugins"]["vendor-y"]["settings"];
    assert_eq!(settings["bind_password"].as_str(), Some("[redacted]"));
    assert_eq!(settings["api_key"].as_str(), Some("[redacted]"));
    assert_eq!(settings["client_secret"].as_str(), Some("[redacted]"));
    assert_eq!(
        settings["endpoint"].as_str(),
        Some("https://iam.example.test")
    );
}

#[test]
fn unknown_keys_are_reported_by_name() {
    let s = Scratch::new();
    type Env = Vec<(&'static str, &'static str)>;
    let cases: Vec<(String, Env, &str)> = vec![
        (
            "[server]\nlsten = \"127.0.0.1:1\"\n".into(),
            vec![],
            "lsten",
        ),
        (
            String::new(),
            vec![("OPENPSM_SERVER__BOGUS_KNOB", "1")],
            "bogus_knob",
        ),
        (
            lib_entry("example-mfa", &lib("openpsm-example-mfa"), "pth = \"x\""),
            vec![],
            "pth",
        ),
        ("colour = \"blue\"\n".into(), vec![], "colour"),
    ];
    for (file, env, key) in cases {
        let config = s.write("gw.toml", &file);
        let out = run(
            s.path(),
            &["--config", config.to_str().unwrap(), "check-config"],
            &env,
        );
        let line = refusal_line(&out);
        assert!(line.contains(key), "{key} not named in: {line}");
    }
    // A plugin's own settings are checked by the plugin, which names the key too.
    let config = s.write(
        "gw.toml",
        &lib_entry(
            "example-mfa",
            &lib("openpsm-example-mfa"),
            "[plugins.example-mfa.settings]\ndigts = 8",
        ),
    );
    let line = refusal_line(&run(
        s.path(),
        &["--config", config.to_str().unwrap(), "check-config"],
        &[],
    ));
    assert!(
        line.contains("plugin `example-mfa`") && line.contains("digts"),
        "{line}"
    );
}

#[test]
fn bad_values_and_missing_files_are_refused() {
    let s = Scratch::new();
    let line = refusal_line(&run(
        s.path(),
        &["--config", "/nonexistent/gw.toml", "check-config"],
        &[],
    ));
    assert!(
        line.contains("/nonexistent/gw.toml") && line.contains("does not exist"),
        "{line}"
    );
    let config = s.write("gw.toml", "[plugin_defaults]\ncall_timeout_ms = 0\n");
    let line = refusal_line(&run(
        s.path(),
        &["--config", config.to_str().unwrap(), "check-config"],
        &[],
    ));
    assert!(line.contains("call_timeout_ms"), "{line}");
    let config = s.write("gw.toml", "[plugins.Bad_Id]\nenabled = false\n");
    let line = refusal_line(&run(
        s.path(),
        &["--config", config.to_str().unwrap(), "check-config"],
        &[],
    ));
    assert!(line.contains("invalid plugin id"), "{line}");
    let config = s.write("gw.toml", "");
    let line = refusal_line(&run(
        s.path(),
        &["--config", config.to_str().unwrap(), "serve"],
        &[("OPENPSM_SERVER__LISTEN", "0.0.0.0:0")],
    ));
    assert!(line.contains("not a loopback address"), "{line}");
}

/// Every way a plugin can be broken stops start-up with one line naming plugin, file and reason.
#[test]
fn broken_plugins_stop_start_up_with_one_line() {
    let s = Scratch::new();
    let mfa = lib("openpsm-example-mfa");
    let not_elf = s.write("libtext.so", "#!/bin/sh\necho this is not a library\n");
    let whole = std::fs::read(&mfa).unwrap();
    let truncated = s.path().join("libtruncated.so");
    std::fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    let truncated_tail = s.path().join("libtruncated_tail.so");
    std::fs::write(&truncated_tail, &whole[..whole.len() - 64]).unwrap();
    let missing = s.path().join("libmissing.so");

    struct Case {
        id: &'static str,
        entry: String,
        file: String,
        reason: &'static str,
    }
    let case = |id: &'static str, path: &std::path::Path, extra: &str, reason: &'static str| Case {
        id,
        entry: lib_entry(id, path, extra),
        file: path.display().to_string(),
        reason,
    };
    let cases = vec![
        case("vendor-a", &missing, "", "file not found"),
        case("vendor-b", &not_elf, "", "not an ELF shared library"),
        case("vendor-c", &truncated, "", "truncated"),
        case("vendor-d", &truncated_tail, "", "truncated"),
        case(
            "not-a-plugin",
            &lib("openpsm-not-a-plugin"),
            "",
            "not an openpsm plugin",
        ),
        case(
            "broken-version",
            &lib("openpsm-broken-version"),
            "",
            "built against plugin-api 0.0.1, this gateway has plugin-api 0.1.0",
        ),
        case(
            "broken-layout",
            &lib("openpsm-broken-layout"),
            "",
            "layout mismatch",
        ),
        case(
            "example-mfa",
            &mfa,
            "[plugins.example-mfa.settings]\ndigits = 99",
            "invalid settings: digits must be between 6 and 12",
        ),
        case(
            "local-files",
            &mfa,
            "",
            "the library is plugin `example-mfa`, but is configured as `local-files`",
        ),
        case(
            "acme-mfa",
            &mfa,
            "",
            "the library is plugin `example-mfa`, but is configured as `acme-mfa`",
        ),
        case(
            "misbehaving",
            &lib("openpsm-misbehaving"),
            "[plugins.misbehaving.settings]\nfault = \"explode\"",
            "unknown variant `explode`",
        ),
        Case {
            id: "no-such-builtin",
            entry: "[plugins.no-such-builtin]\n".into(),
            file: "built-in".into(),
            reason: "no built-in plugin has this id",
        },
    ];
    for c in cases {
        let config = s.write("gw.toml", &c.entry);
        for command in [&["check-config"][..], &["serve"][..]] {
            let mut args = vec!["--config", config.to_str().unwrap()];
            args.extend_from_slice(command);
            let out = run(
                s.path(),
                &args,
                &[("OPENPSM_SERVER__LISTEN", "127.0.0.1:0")],
            );
            let line = refusal_line(&out);
            let expected_start = format!("error: plugin `{}` ({})", c.id, c.file);
            assert!(
                line.starts_with(&expected_start),
                "{command:?}: {line}\nexpected to start with {expected_start}"
            );
            assert!(
                line.contains(c.reason),
                "{command:?}: {line}\nexpected reason {:?}",
                c.reason
            );
            assert!(
                !text(&out.stdout).contains("listening"),
                "serve must not start: {}",
                text(&out.stdout)
            );
        }
    }
}

#[test]
fn layout_report_goes_to_debug_level_only() {
    let s = Scratch::new();
    let config = s.write(
        "gw.toml",
        &lib_entry("broken-layout", &lib("openpsm-broken-layout"), ""),
    );
    let args = ["--config", config.to_str().unwrap(), "check-config"];
    let quiet = run(s.path(), &args, &[]);
    assert!(
        text(&quiet.stderr).lines().count() <= 3,
        "{}",
        text(&quiet.stderr)
    );
    let verbose = run(s.path(), &args, &[("RUST_LOG", "debug")]);
    let stderr = text(&verbose.stderr);
    assert!(stderr.contains("Layout of expected type"), "{stderr}");
    assert_eq!(verbose.status.code(), Some(2));
}

#[test]
fn link_prints_a_signed_start_link_that_verifies() {
    let s = Scratch::new();
    let config = s.write(
        "gw.toml",
        "[links]\npublic_url = \"https://psm.example.test\"\n",
    );
    let out = run(
        s.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "link",
            "--person",
            "6f1c2b8e-3a4d-4e5f-8a9b-0c1d2e3f4a5b",
            "--computer",
            "11111111-2222-4333-8444-555555555555",
            "--policy",
            "0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d",
            "--advanced",
            "--mode",
            "SSH",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let link = text(&out.stdout).trim().to_owned();
    let query = link
        .strip_prefix("https://psm.example.test/start?")
        .unwrap_or_else(|| panic!("{link}"));
    let keys = openpsm_gateway::keys::Keys::load_or_create(&s.path().join("data")).unwrap();
    let now = openpsm_gateway::store::unix_now();
    let verified = openpsm_gateway::startlink::verify(query, &keys.link, now, 600).unwrap();
    assert!(verified.params.is_advance_mode);
    assert_eq!(
        verified.params.mode,
        Some(openpsm_gateway::startlink::SeedMode::Ssh)
    );
    assert!(verified.expires_at > now && verified.expires_at <= now + 300);
}
