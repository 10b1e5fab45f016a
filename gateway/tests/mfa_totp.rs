//! TOTP through the whole gateway, with codes from the independent `oathtool`: enrolment by the
//! CLI and by the enrolment page (confirmed by a first code), the MFA step (right code passes, a
//! reused one fails, wrong ones lock the person out, audited), the zone rules picking providers by
//! client address (through a trusted proxy's X-Forwarded-For), all twice: with the built-in
//! provider and with the same provider loaded as a shared library.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::Stdio;

use common::*;
use openpsm_gateway::messages as msg;
use openpsm_gateway::store::{Store, unix_now};
use openpsm_gateway::{keys::Keys, startlink};
use serde_json::{Value, json};

const ALICE: &str = "a11ce000-0000-4000-8000-000000000001";
const BOB: &str = "b0b00000-0000-4000-8000-000000000002";
const CAROL: &str = "ca201000-0000-4000-8000-000000000003";
const C_MAIN: &str = "c0000000-0000-4000-8000-0000000000a1";
const P_ZONES: &str = "f0000000-0000-4000-8000-0000000000b1";
const MASTER: &str = "Master-Canary-77a2";

fn directory() -> String {
    let person = |id: &str, login: &str| {
        format!("[[person]]\nid = \"{id}\"\nlogin = \"{login}\"\nname = \"{login}\"\n")
    };
    person(ALICE, "alice")
        + &person(BOB, "bob")
        + &person(CAROL, "carol")
        + &format!(
            "[[computer]]\nid = \"{C_MAIN}\"\ncomputer_id = \"main\"\nname = \"main\"\nhosts = [\"127.0.0.1\"]\nport = 7\nmodes = [\"example-raw-tcp\"]\n"
        )
        // The office needs no MFA, loopback needs TOTP, everywhere else TOTP and a recovery code.
        + &format!(
            "[[policy]]\nid = \"{P_ZONES}\"\nname = \"zones\"\nrecord = false\ncomputers = [\"{C_MAIN}\"]\n\
             [[policy.mfa]]\nzone = [\"192.0.2.0/24\"]\nproviders = []\n\
             [[policy.mfa]]\nzone = [\"127.0.0.0/8\"]\nproviders = [\"totp\"]\n\
             [[policy.mfa]]\nzone = []\nproviders = [\"totp\", \"example-mfa\"]\n\
             [[policy.access_levels]]\nid = \"user\"\nlabel = \"User\"\napproved = [\"{ALICE}\", \"{BOB}\", \"{CAROL}\"]\n"
        )
}

struct Fx {
    s: Scratch,
    cfg: String,
    gw: Gateway,
    store: Store,
    keys: Keys,
    rt: tokio::runtime::Runtime,
    used: std::sync::Mutex<Vec<(String, i64)>>,
}

fn oathtool(secret: &str, offset_secs: i64) -> String {
    let at = format!("@{}", unix_now() + offset_secs);
    let out = std::process::Command::new("oathtool")
        .args(["--totp", "--base32", "-N", &at, secret])
        .output()
        .expect("oathtool (Debian package oathtool; scripts/test.sh installs it)");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A code for a time step this test has not used yet (each step is accepted once), preferring
/// steps ahead so that a step boundary passing meanwhile cannot push it out of the window (the
/// test configures a window of two steps).
fn fresh(key: &str, used: &mut Vec<(String, i64)>) -> String {
    let now = unix_now();
    for offset in [0, 30, 60, -30, -60] {
        let step = (now + offset) / 30;
        if !used.contains(&(key.to_owned(), step)) {
            used.push((key.to_owned(), step));
            return oathtool(key, offset);
        }
    }
    panic!("no unused step left in the window")
}

fn secret_of(uri: &str) -> String {
    let uri = uri.replace("&amp;", "&");
    uri.split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned()
}

fn name(step: &Value) -> &str {
    step["name"].as_str().unwrap_or("?")
}

impl Fx {
    fn new(library: bool) -> Option<Self> {
        if !std::path::Path::new("/usr/bin/oathtool").exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "oathtool missing under CI: run scripts/test.sh"
            );
            eprintln!("note: oathtool not installed, TOTP workflow test skipped");
            return None;
        }
        let s = Scratch::new();
        let dir = s.write("directory.toml", &directory());
        let totp = if library {
            format!(
                "[plugins.totp]\npath = {:?}\n",
                lib("openpsm-plugin-mfa-totp-so").display().to_string()
            )
        } else {
            String::new()
        };
        let config = s.write(
            "gw.toml",
            &format!(
                "[plugins.ssh]\nenabled = false\n[directory]\nfile = {:?}\n\
                 [server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n\
                 [mfa]\nflow_attempts = 3\nmax_failures = 4\nenrolment_attempts = 2\n\
                 [plugins.example-mfa]\npath = {:?}\n[plugins.example-raw-tcp]\npath = {:?}\n{totp}[plugins.totp.settings]\nwindow = 2\n",
                dir.display().to_string(),
                lib("openpsm-example-mfa").display().to_string(),
                lib("openpsm-example-raw-tcp").display().to_string(),
            ),
        );
        let cfg = config.to_str().unwrap().to_owned();
        for person in [ALICE, BOB, CAROL] {
            let out = run_input(
                s.path(),
                &["--config", &cfg, "vault", "set-master", "--person", person],
                &[],
                &format!("{MASTER}\n"),
            );
            assert!(out.status.success(), "{}", text(&out.stderr));
        }
        let out = run_input(
            s.path(),
            &[
                "--config",
                &cfg,
                "vault",
                "add",
                "--computer",
                C_MAIN,
                "--label",
                "root",
                "--user",
                "root",
            ],
            &[],
            "Target-Secret-1\n",
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        // The provider really is the library (or the built-in).
        let out = run(
            s.path(),
            &["--config", &cfg, "plugins", "list", "--json"],
            &[],
        );
        let list: Value = serde_json::from_slice(&out.stdout).unwrap();
        let totp = list
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == "totp")
            .unwrap()
            .clone();
        assert_eq!(
            totp["origin"]["type"],
            if library { "library" } else { "built_in" },
            "{totp}"
        );
        assert_eq!(totp["status"]["state"], "active", "{totp}");
        let gw = Gateway::start(s.path(), &config, &[]);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let data = s.path().join("data");
        let store = rt
            .block_on(Store::open(&format!(
                "sqlite://{}",
                data.join("openpsm.db").display()
            )))
            .unwrap();
        let keys = Keys::load_or_create(&data).unwrap();
        Some(Self {
            s,
            cfg,
            gw,
            store,
            keys,
            rt,
            used: Default::default(),
        })
    }

    fn start(&self, person: &str, forwarded: Option<&str>) -> (String, String, Value) {
        let pairs: Vec<(&str, String)> = vec![
            ("TargetPersonGuid", person.into()),
            ("AccessRequestPolicyID", P_ZONES.into()),
            ("TargetComputerGuid", C_MAIN.into()),
            ("IsAdvanceMode", "false".into()),
        ];
        let link = startlink::sign(
            &pairs,
            &self.keys.link,
            unix_now() + 300,
            &startlink::new_nonce(),
        );
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(f) = forwarded {
            headers.push(("X-Forwarded-For", f));
        }
        let (status, _, body) = http(
            self.gw.addr,
            "POST",
            "/api/v1/flows",
            &headers,
            &json!({ "link": link }).to_string(),
        );
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(status, 201, "{body}");
        (
            body["flow"].as_str().unwrap().to_owned(),
            body["flow_secret"].as_str().unwrap().to_owned(),
            body["step"].clone(),
        )
    }

    fn code(&self, key: &str) -> String {
        fresh(key, &mut self.used.lock().unwrap())
    }

    fn mfa(&self, flow: &str, secret: &str, response: &str) -> Value {
        let auth = format!("Bearer {secret}");
        let (status, _, body) = http(
            self.gw.addr,
            "POST",
            &format!("/api/v1/flows/{flow}/answer"),
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &auth),
            ],
            &json!({"step": "mfa", "response": response}).to_string(),
        );
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["step"].clone()
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["--config", self.cfg.as_str()];
        all.extend(args);
        run(self.s.path(), &all, &[])
    }

    /// Events of the audit log for `person`, in order.
    fn audit(&self, person: &str) -> Vec<(String, Value)> {
        self.rt
            .block_on(self.store.audit_entries(0, 100_000))
            .unwrap()
            .into_iter()
            .filter(|e| e.actor == person)
            .map(|e| (e.event, serde_json::from_str(&e.detail).unwrap()))
            .collect()
    }

    fn count(&self, person: &str, event: &str) -> usize {
        self.audit(person)
            .iter()
            .filter(|(e, _)| e == event)
            .count()
    }
}

/// `openpsm mfa enroll alice`: the URI and a QR code on the terminal (and as SVG); a wrong first
/// code is refused, the right one (from oathtool) enrols. Returns the TOTP key.
fn enrol_by_cli(fx: &Fx) -> String {
    let svg = fx.s.path().join("alice.svg");
    let mut child = openpsm(
        fx.s.path(),
        &[
            "--config",
            &fx.cfg,
            "mfa",
            "enroll",
            "alice",
            "--qr-svg",
            svg.to_str().unwrap(),
        ],
        &[],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut uri = String::new();
    let mut shown = String::new();
    while uri.is_empty() {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "no URI: {shown}");
        if line.starts_with("otpauth://totp/openpsm:alice?") {
            uri = line.trim().to_owned();
        }
        shown.push_str(&line);
    }
    assert!(
        shown.contains('█') || shown.contains('▀'),
        "a QR code on the terminal"
    );
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    let key = secret_of(&uri);
    // Before the first code, alice is not enrolled: a flow says so.
    let (_, _, step) = fx.start(ALICE, None);
    assert_eq!(name(&step), "failed");
    assert!(
        step["error"]
            .as_str()
            .unwrap()
            .contains("not enrolled for Authenticator app")
    );
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "123456").unwrap();
    writeln!(stdin, "{}", fx.code(&key)).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let rest = {
        let mut r = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut r).unwrap();
        r
    };
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("not accepted (1 tries left)"));
    assert_eq!(rest.trim(), "enrolled");
    assert_eq!(fx.count(ALICE, "mfa.enrolled"), 1);
    key
}

/// `openpsm mfa enroll bob --link` and the page, over plain HTTP: the link moves its id into a
/// cookie, the page shows the URI and the QR SVG, the first code confirms.
fn enrol_by_page(fx: &Fx, login: &str) -> String {
    let out = fx.cli(&["mfa", "enroll", login, "--link"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let link = text(&out.stdout).trim().to_owned();
    let path = link.strip_prefix("http://127.0.0.1:8080").unwrap();
    let (status, headers, _) = http(fx.gw.addr, "GET", path, &[], "");
    assert_eq!(status, 200);
    let cookie = headers
        .iter()
        .find(|(k, _)| k == "set-cookie")
        .unwrap()
        .1
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let (status, headers, page) =
        http(fx.gw.addr, "GET", "/mfa/enroll", &[("Cookie", &cookie)], "");
    assert_eq!(status, 200, "{page}");
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "cache-control" && v == "no-store")
    );
    assert!(page.contains("<svg"), "the QR code is drawn by the gateway");
    let uri = page
        .split("<code id=\"uri\" style=\"word-break:break-all\">")
        .nth(1)
        .unwrap()
        .split("</code>")
        .next()
        .unwrap()
        .to_owned();
    let key = secret_of(&uri);
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let post = |code: &str, csrf: &str| {
        http(
            fx.gw.addr,
            "POST",
            "/mfa/enroll",
            &[
                ("Cookie", &cookie),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            &format!("csrf={csrf}&code={code}"),
        )
    };
    let (status, _, _) = post("123456", "forged");
    assert_eq!(status, 403, "a form without the page's CSRF token");
    let (status, _, body) = post("000000", &csrf);
    assert_eq!(status, 200);
    assert!(body.contains("That code was not accepted"), "{body}");
    let (status, _, body) = post(&fx.code(&key), &csrf);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("id=\"done\""), "{body}");
    // The link is spent.
    let (status, _, _) = http(fx.gw.addr, "GET", "/mfa/enroll", &[("Cookie", &cookie)], "");
    assert_eq!(status, 404);
    key
}

fn scenario(library: bool) {
    let Some(fx) = Fx::new(library) else { return };
    let alice = enrol_by_cli(&fx);
    // A right code (of the next step, since enrolment used this one) passes; from loopback only
    // TOTP is asked, so the flow goes on to the master password.
    let (flow, secret, step) = fx.start(ALICE, None);
    assert_eq!(
        (name(&step), step["provider"].as_str()),
        ("mfa", Some("totp")),
        "{step}"
    );
    let code = fx.code(&alice);
    let step = fx.mfa(&flow, &secret, &code);
    assert_eq!(name(&step), "master_password", "{step}");
    // The same code again, in another flow: refused as a replay (and audited as one).
    let (flow, secret, _) = fx.start(ALICE, None);
    let step = fx.mfa(&flow, &secret, &code);
    assert_eq!(
        (name(&step), step["message"].as_str()),
        ("mfa", Some(msg::MFA_WRONG))
    );
    assert!(
        fx.audit(ALICE)
            .iter()
            .any(|(e, d)| e == "mfa.failed" && d["reason"] == "replayed")
    );
    // Zones: from the office (through the trusted proxy) no MFA at all; from elsewhere TOTP and
    // then a recovery code, which alice has not set up.
    let (_, _, step) = fx.start(ALICE, Some("192.0.2.10"));
    assert_eq!(name(&step), "master_password", "{step}");
    let (flow, secret, step) = fx.start(ALICE, Some("1.2.3.4, 198.51.100.7"));
    assert_eq!(step["provider"], "totp", "{step}");
    let step = fx.mfa(&flow, &secret, &fx.code(&alice));
    assert_eq!(name(&step), "failed", "{step}");
    assert!(
        step["error"]
            .as_str()
            .unwrap()
            .contains("not enrolled for Recovery code")
    );

    // Bob enrols through the page, then locks himself out: 3 wrong codes end a flow, the 4th
    // (in the next flow) locks MFA; then even the right code is refused until an unlock.
    let bob = enrol_by_page(&fx, "bob");
    let (flow, secret, _) = fx.start(BOB, None);
    for _ in 0..2 {
        assert_eq!(fx.mfa(&flow, &secret, "000000")["message"], msg::MFA_WRONG);
    }
    assert_eq!(fx.mfa(&flow, &secret, "000000")["error"], msg::MFA_TOO_MANY);
    let (flow, secret, _) = fx.start(BOB, None);
    let step = fx.mfa(&flow, &secret, "999999");
    assert_eq!(name(&step), "failed");
    let locked = step["error"].as_str().unwrap().to_owned();
    assert!(
        locked.starts_with(
            "Too many wrong codes for your account: MFA is locked for 15 more minutes"
        ),
        "{locked}"
    );
    let (_, _, step) = fx.start(BOB, None);
    assert_eq!(
        (name(&step), step["error"].as_str()),
        ("failed", Some(locked.as_str()))
    );
    assert_eq!(fx.count(BOB, "mfa.failed"), 4);
    assert_eq!(fx.count(BOB, "mfa.locked"), 1);
    let out = fx.cli(&["mfa", "list"]);
    assert!(
        text(&out.stdout).contains("bob\ttotp"),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stdout).contains("locked for"));
    let out = fx.cli(&["mfa", "unlock", "bob"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(fx.count(BOB, "mfa.unlocked"), 1);
    let (flow, secret, _) = fx.start(BOB, None);
    let step = fx.mfa(&flow, &secret, &fx.code(&bob));
    assert_eq!(name(&step), "master_password", "{step}");
    // An administrator's reset: bob must enrol again.
    assert!(fx.cli(&["mfa", "remove", "bob"]).status.success());
    let (_, _, step) = fx.start(BOB, None);
    assert!(step["error"].as_str().unwrap().contains("not enrolled"));
    // An enrolment link is void after enrolment_attempts wrong codes.
    let out = fx.cli(&["mfa", "enroll", "carol", "--link"]);
    let path = text(&out.stdout)
        .trim()
        .replace("http://127.0.0.1:8080", "");
    let (_, headers, _) = http(fx.gw.addr, "GET", &path, &[], "");
    let cookie = headers
        .iter()
        .find(|(k, _)| k == "set-cookie")
        .unwrap()
        .1
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let (_, _, page) = http(fx.gw.addr, "GET", "/mfa/enroll", &[("Cookie", &cookie)], "");
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    for expected in [200, 403] {
        let (status, _, _) = http(
            fx.gw.addr,
            "POST",
            "/mfa/enroll",
            &[
                ("Cookie", &cookie),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            &format!("csrf={csrf}&code=000000"),
        );
        assert_eq!(status, expected);
    }
    assert_eq!(fx.count(CAROL, "mfa.enrolment_void"), 1);
    // No TOTP key in the gateway's log, the audit log, or the store's enrolment rows.
    let log = fx.gw.stderr();
    let audit: String = fx
        .audit(ALICE)
        .iter()
        .chain(fx.audit(BOB).iter())
        .map(|(e, d)| format!("{e} {d}\n"))
        .collect();
    for key in [&alice, &bob] {
        assert!(!log.contains(key.as_str()), "a TOTP key in the log");
        assert!(!audit.contains(key.as_str()), "a TOTP key in the audit log");
    }
    let db = std::fs::read(fx.s.path().join("data/openpsm.db")).unwrap();
    assert!(
        !String::from_utf8_lossy(&db).contains(alice.as_str()),
        "TOTP keys are stored sealed"
    );
    assert!(!log.contains(MASTER));
    if !library {
        enrol_in_browser(&fx);
    }
}

/// Carol enrols in headless Chromium: the QR code the page shows decodes (jsQR) to the URI whose
/// oathtool code confirms the enrolment.
fn enrol_in_browser(fx: &Fx) {
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
    let ready = std::path::Path::new("/usr/bin/chromium").exists()
        && web.join("node_modules/playwright-core").exists()
        && web.join("node_modules/jsqr").exists();
    if !ready {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium and web/node_modules are missing: run scripts/test.sh"
        );
        eprintln!("note: chromium or web/node_modules missing, browser enrolment skipped");
        return;
    }
    let out = fx.cli(&["mfa", "enroll", "carol", "--link"]);
    let link = text(&out.stdout)
        .trim()
        .replace("http://127.0.0.1:8080", &format!("http://{}", fx.gw.addr));
    let shot = fx.s.path().join("enrol.png");
    let out = std::process::Command::new("node")
        .arg(web.join("tests/enrol-totp.mjs"))
        .arg(&link)
        .arg(&shot)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)));
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(
        report["url"],
        format!("http://{}/mfa/enroll", fx.gw.addr),
        "the enrolment id leaves the address bar"
    );
    assert!(
        report["uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/openpsm:carol?secret="),
        "{report}"
    );
    assert_eq!(fx.count(CAROL, "mfa.enrolled"), 1);
    if let Ok(dir) = std::env::var("PSM_TEST_ARTIFACTS") {
        let _ = std::fs::copy(&shot, std::path::Path::new(&dir).join("enrol-page.png"));
    }
}

#[test]
fn totp_built_in() {
    scenario(false);
}

#[test]
fn totp_as_a_shared_library() {
    scenario(true);
}
