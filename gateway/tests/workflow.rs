//! The OpenPSM workflow over real HTTP against the real binary, on SQLite and on PostgreSQL:
//! every branch of the seed, its messages verbatim, the 50-flow race for two shared credentials,
//! and a canary master password and credential that must never come back out.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use openpsm_gateway::keys::Keys;
use openpsm_gateway::messages as msg;
use openpsm_gateway::store::Store;
use openpsm_gateway::{startlink, token, workflow};
use openpsm_plugin_api::{HostContext, PluginInstance, PluginSettings};
use serde_json::{Value, json};

const ALICE: &str = "a11ce000-0000-4000-8000-000000000001";
const BOB: &str = "b0b00000-0000-4000-8000-000000000002";
const CAROL: &str = "ca201000-0000-4000-8000-000000000003";
const DAVE: &str = "da7e0000-0000-4000-8000-000000000004";
const C_MAIN: &str = "c0000000-0000-4000-8000-0000000000a1";
const C_NONE: &str = "c0000000-0000-4000-8000-0000000000a2";
const C_PAIR: &str = "c0000000-0000-4000-8000-0000000000a3";
const C_SSH_ONLY: &str = "c0000000-0000-4000-8000-0000000000a4";
const C_JIT: &str = "c0000000-0000-4000-8000-0000000000a5";
const C_PERSONAL: &str = "c0000000-0000-4000-8000-0000000000a6";
const P_PLAIN: &str = "f0000000-0000-4000-8000-0000000000b1";
const P_MFA: &str = "f0000000-0000-4000-8000-0000000000b2";
const P_MFA_ELSEWHERE: &str = "f0000000-0000-4000-8000-0000000000b3";
const MASTER: &str = "Master-Canary-8d1e";
const SECRET: &str = "Target-Canary-41c9";

fn directory() -> String {
    let person = |id: &str, login: &str| {
        format!("[[person]]\nid = \"{id}\"\nlogin = \"{login}\"\nname = \"{login}\"\n")
    };
    let computer = |id: &str, name: &str, modes: &str, jit: bool| {
        format!(
            "[[computer]]\nid = \"{id}\"\ncomputer_id = \"{name}\"\nname = \"{name}\"\nhosts = [\"127.0.0.1\"]\nport = 7\nmodes = {modes}\njit = {jit}\n"
        )
    };
    let all = format!(
        "[\"{C_MAIN}\", \"{C_NONE}\", \"{C_PAIR}\", \"{C_SSH_ONLY}\", \"{C_JIT}\", \"{C_PERSONAL}\"]"
    );
    let levels = format!(
        "[[policy.access_levels]]\nid = \"user\"\nlabel = \"User\"\napproved = [\"{ALICE}\", \"{BOB}\", \"{DAVE}\"]\n\
         [[policy.access_levels]]\nid = \"admin\"\nlabel = \"Admin\"\ngroups = [\"CN=Admins\"]\napproved = [\"{ALICE}\"]\n"
    );
    person(ALICE, "alice")
        + &person(BOB, "bob")
        + &person(CAROL, "carol")
        + &person(DAVE, "dave")
        + &computer(C_MAIN, "main", "[\"ssh\", \"example-raw-tcp\"]", false)
        + &computer(C_NONE, "none", "[\"example-raw-tcp\"]", false)
        + &computer(C_PAIR, "pair", "[\"example-raw-tcp\"]", false)
        + &computer(C_SSH_ONLY, "sshonly", "[\"ssh\"]", false)
        + &computer(C_JIT, "jit", "[\"example-raw-tcp\"]", true)
        + &computer(C_PERSONAL, "personal", "[\"example-raw-tcp\"]", false)
        + &format!("[[policy]]\nid = \"{P_PLAIN}\"\nname = \"plain\"\ncomputers = {all}\n{levels}")
        + &format!(
            "[[policy]]\nid = \"{P_MFA}\"\nname = \"mfa\"\ncomputers = {all}\n[[policy.mfa]]\nzone = [\"127.0.0.0/8\"]\nproviders = [\"example-mfa\"]\n{levels}"
        )
        + &format!(
            "[[policy]]\nid = \"{P_MFA_ELSEWHERE}\"\nname = \"mfa elsewhere\"\nrecord = false\ncomputers = {all}\n[[policy.mfa]]\nzone = [\"10.0.0.0/8\"]\nproviders = [\"example-mfa\"]\n{levels}"
        )
}

struct Fx {
    s: Scratch,
    gw: Gateway,
    config: std::path::PathBuf,
    store: Store,
    keys: Keys,
    rt: tokio::runtime::Runtime,
    shared_main: String,
    alice_personal: String,
    pair: [String; 2],
    /// Every response body, to look for the canaries at the end.
    seen: std::sync::Mutex<String>,
}

impl Fx {
    fn new(postgres: bool) -> Option<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let store_url = if postgres {
            let Ok(base) = std::env::var("PSM_TEST_POSTGRES_URL") else {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "PSM_TEST_POSTGRES_URL must be set under CI (scripts/test.sh)"
                );
                eprintln!("note: PSM_TEST_POSTGRES_URL not set, PostgreSQL run skipped");
                return None;
            };
            let name = format!("openpsm_wf_{}", uuid::Uuid::new_v4().simple());
            rt.block_on(async {
                sqlx::any::install_default_drivers();
                let admin = sqlx::AnyPool::connect(&format!("{base}/postgres"))
                    .await
                    .unwrap();
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&admin)
                    .await
                    .unwrap();
                admin.close().await;
            });
            format!("{base}/{name}")
        } else {
            String::new()
        };
        let s = Scratch::new();
        let dir = s.write("directory.toml", &directory());
        let config = s.write(
            "gw.toml",
            &format!(
                "[plugins.ssh]\nenabled = false\n[store]\nurl = {store_url:?}\n[directory]\nfile = {:?}\n[flows]\nmaster_password_attempts = 3\nperson_failures_per_15min = 6\n\
                 [plugins.example-mfa]\npath = {:?}\n[plugins.example-raw-tcp]\npath = {:?}\n\
                 [plugins.example-jit-unix]\npath = {:?}\n[plugins.example-jit-unix.settings]\nprefix = \"psmw-\"\n",
                dir.display().to_string(),
                lib("openpsm-example-mfa").display().to_string(),
                lib("openpsm-example-raw-tcp").display().to_string(),
                lib("openpsm-example-jit-unix").display().to_string(),
            ),
        );
        let cfg = config.to_str().unwrap().to_owned();
        for person in [ALICE, BOB, CAROL, DAVE] {
            let out = run_input(
                s.path(),
                &["--config", &cfg, "vault", "set-master", "--person", person],
                &[],
                &format!("{MASTER}\n"),
            );
            assert!(out.status.success(), "{}", text(&out.stderr));
        }
        let add = |computer: &str, label: &str, owner: Option<&str>| {
            let mut args = vec![
                "--config",
                cfg.as_str(),
                "vault",
                "add",
                "--computer",
                computer,
                "--label",
                label,
                "--user",
                "root",
            ];
            let input = match owner {
                Some(o) => {
                    args.extend(["--owner", o]);
                    format!("{MASTER}\n{SECRET}\n")
                }
                None => format!("{SECRET}\n"),
            };
            let out = run_input(s.path(), &args, &[], &input);
            assert!(out.status.success(), "{}", text(&out.stderr));
            text(&out.stdout).trim().to_owned()
        };
        let shared_main = add(C_MAIN, "root (shared)", None);
        let alice_personal = add(C_MAIN, "alice (personal)", Some(ALICE));
        add(C_SSH_ONLY, "root", None);
        add(C_JIT, "root", None);
        add(C_PERSONAL, "alice's own", Some(ALICE));
        let pair = [add(C_PAIR, "pair one", None), add(C_PAIR, "pair two", None)];
        let gw = Gateway::start(s.path(), &config, &[]);
        let data = s.path().join("data");
        let url = if store_url.is_empty() {
            format!("sqlite://{}", data.join("openpsm.db").display())
        } else {
            store_url
        };
        let store = rt.block_on(Store::open(&url)).unwrap();
        let keys = Keys::load_or_create(&data).unwrap();
        Some(Self {
            s,
            gw,
            config,
            store,
            keys,
            rt,
            shared_main,
            alice_personal,
            pair,
            seen: Default::default(),
        })
    }

    fn link(&self, pairs: &[(&str, &str)]) -> String {
        let pairs: Vec<(&str, String)> = pairs.iter().map(|(k, v)| (*k, v.to_string())).collect();
        let now = openpsm_gateway::store::unix_now();
        startlink::sign(&pairs, &self.keys.link, now + 300, &startlink::new_nonce())
    }

    fn post(&self, path: &str, secret: Option<&str>, body: &Value) -> (u16, Value) {
        let auth = secret.map(|s| format!("Bearer {s}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        let (status, _, body) = http(self.gw.addr, "POST", path, &headers, &body.to_string());
        self.seen.lock().unwrap().push_str(&body);
        (
            status,
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}")),
        )
    }

    fn start(&self, query: &str) -> (u16, Value) {
        self.post("/api/v1/flows", None, &json!({"link": query}))
    }

    fn start_ok(&self, pairs: &[(&str, &str)]) -> (String, String, Value) {
        let (status, body) = self.start(&self.link(pairs));
        assert_eq!(status, 201, "{body}");
        (
            body["flow"].as_str().unwrap().to_owned(),
            body["flow_secret"].as_str().unwrap().to_owned(),
            body["step"].clone(),
        )
    }

    fn answer(&self, flow: &str, secret: &str, answer: Value) -> (u16, Value) {
        self.post(
            &format!("/api/v1/flows/{flow}/answer"),
            Some(secret),
            &answer,
        )
    }

    fn step(&self, flow: &str, secret: &str, answer: Value) -> Value {
        let (status, body) = self.answer(flow, secret, answer);
        assert_eq!(status, 200, "{body}");
        body["step"].clone()
    }

    fn cancel(&self, flow: &str, secret: &str) -> Value {
        let auth = format!("Bearer {secret}");
        let (status, _, body) = http(
            self.gw.addr,
            "DELETE",
            &format!("/api/v1/flows/{flow}"),
            &[("Authorization", &auth)],
            "",
        );
        self.seen.lock().unwrap().push_str(&body);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["step"].clone()
    }

    fn leases(&self) -> Vec<(String, String)> {
        self.rt
            .block_on(self.store.leases(openpsm_gateway::store::unix_now()))
            .unwrap()
    }

    fn enroll(&self, person: &str) -> String {
        let settings = PluginSettings {
            host: HostContext::default(),
            settings: Value::Null,
        };
        let PluginInstance::MfaProvider(p) = openpsm_example_mfa::build(settings).unwrap() else {
            panic!()
        };
        let who = openpsm_plugin_api::Subject {
            person: person.parse().unwrap(),
            login: "x".into(),
            display_name: "x".into(),
        };
        let enrolment = self.rt.block_on(p.enroll(&who)).unwrap();
        self.rt
            .block_on(workflow::mfa::save(
                &self.store,
                &self.keys.vault,
                &who.person,
                "example-mfa",
                &enrolment.secret,
            ))
            .unwrap();
        enrolment.reveal.unwrap().expose_secret().to_owned()
    }
}

fn base(
    person: &'static str,
    computer: &'static str,
    policy: &'static str,
) -> Vec<(&'static str, &'static str)> {
    vec![
        ("TargetPersonGuid", person),
        ("AccessRequestPolicyID", policy),
        ("TargetComputerGuid", computer),
        ("IsAdvanceMode", "false"),
    ]
}

fn name(step: &Value) -> &str {
    step["name"].as_str().unwrap_or("?")
}

fn error_of(body: &Value) -> (&str, &str) {
    (
        body["error"]["code"].as_str().unwrap_or("?"),
        body["error"]["message"].as_str().unwrap_or("?"),
    )
}

fn links_are_checked(fx: &Fx) {
    let mut missing = base(ALICE, C_MAIN, P_PLAIN);
    missing.remove(2);
    let (status, body) = fx.start(&fx.link(&missing));
    assert_eq!(
        (status, error_of(&body)),
        (400, ("missing_parameters", msg::MISSING_PARAMETERS))
    );
    let mut bad = base(ALICE, C_MAIN, P_PLAIN);
    bad.push(("GUAC_DPI", "lots"));
    let (status, body) = fx.start(&fx.link(&bad));
    assert_eq!(
        (status, error_of(&body)),
        (400, ("invalid_parameters", msg::INVALID_PARAMETERS))
    );
    let (status, body) =
        fx.start(&fx.link(&base(ALICE, C_MAIN, "f0000000-0000-4000-8000-0000000000ff")));
    assert_eq!(
        (status, error_of(&body).1),
        (400, msg::INVALID_PARAMETERS),
        "unknown policy"
    );
    let mut api = base(ALICE, C_MAIN, P_PLAIN);
    api.push(("ApiUrl", "https://elsewhere.example.test"));
    assert_eq!(
        fx.start(&fx.link(&api)).1["error"]["message"],
        msg::INVALID_PARAMETERS,
        "ApiUrl off the allow-list"
    );
    let good = fx.link(&base(ALICE, C_MAIN, P_PLAIN));
    let unsigned = good.split("&sig=").next().unwrap().to_owned();
    assert_eq!(
        error_of(&fx.start(&unsigned).1),
        ("invalid_link", msg::LINK_UNSIGNED)
    );
    let altered = good.replace("IsAdvanceMode=false", "IsAdvanceMode=true");
    assert_eq!(
        error_of(&fx.start(&altered).1),
        ("invalid_link", msg::LINK_BAD_SIGNATURE)
    );
    let expired = startlink::sign(
        &base(ALICE, C_MAIN, P_PLAIN)
            .iter()
            .map(|(k, v)| (*k, v.to_string()))
            .collect::<Vec<_>>(),
        &fx.keys.link,
        openpsm_gateway::store::unix_now() - 1,
        &startlink::new_nonce(),
    );
    assert_eq!(
        error_of(&fx.start(&expired).1),
        ("link_expired", msg::LINK_EXPIRED)
    );
    let (status, first) = fx.start(&good);
    assert_eq!(status, 201, "{first}");
    let (status, again) = fx.start(&good);
    assert_eq!(
        (status, error_of(&again)),
        (403, ("link_used", msg::LINK_REPLAYED))
    );
    fx.cancel(
        first["flow"].as_str().unwrap(),
        first["flow_secret"].as_str().unwrap(),
    );
}

fn availability_and_credentials(fx: &Fx) {
    let (status, body) = fx.start(&fx.link(&base(ALICE, C_NONE, P_PLAIN)));
    assert_eq!((status, error_of(&body).1), (403, msg::NO_CREDENTIALS));
    // Someone else's personal credential, named by the link.
    let mut theirs = base(BOB, C_MAIN, P_PLAIN);
    theirs.push(("ExternalCredentialGuid", fx.alice_personal.as_str()));
    let (status, body) = fx.start(&fx.link(&theirs));
    assert_eq!(
        (status, error_of(&body).1),
        (403, msg::SOMEONE_ELSES_CREDENTIAL)
    );
    // ...and chosen in advanced mode.
    let mut advanced = base(BOB, C_MAIN, P_PLAIN);
    advanced[3].1 = "true";
    let (flow, secret, step) = fx.start_ok(&advanced);
    assert_eq!(name(&step), "choose_credential");
    let ids: Vec<&str> = step["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [fx.shared_main.as_str()],
        "Bob is offered the shared credential only"
    );
    let step = fx.step(
        &flow,
        &secret,
        json!({"step": "choose_credential", "credential": fx.alice_personal}),
    );
    assert_eq!(
        (name(&step), step["message"].as_str()),
        ("choose_credential", Some(msg::SOMEONE_ELSES_CREDENTIAL))
    );
    fx.cancel(&flow, &secret);
    // No shared credential: the person is prompted for a personal one; someone without one is told.
    let (flow, secret, step) = fx.start_ok(&base(ALICE, C_PERSONAL, P_PLAIN));
    assert_eq!(name(&step), "choose_credential");
    let options = step["options"].as_array().unwrap();
    assert_eq!(
        (options.len(), options[0]["kind"].as_str()),
        (1, Some("personal"))
    );
    let step = fx.step(
        &flow,
        &secret,
        json!({"step": "choose_credential", "credential": options[0]["id"]}),
    );
    assert_eq!(name(&step), "agreement");
    fx.cancel(&flow, &secret);
    let (status, body) = fx.start(&fx.link(&base(BOB, C_PERSONAL, P_PLAIN)));
    assert_eq!((status, error_of(&body).1), (403, msg::NO_CREDENTIALS));
    // Alice in advanced mode sees both, and may take her own.
    let mut advanced = base(ALICE, C_MAIN, P_PLAIN);
    advanced[3].1 = "true";
    let (flow, secret, step) = fx.start_ok(&advanced);
    assert_eq!(step["options"].as_array().unwrap().len(), 2);
    let step = fx.step(
        &flow,
        &secret,
        json!({"step": "choose_credential", "credential": fx.alice_personal}),
    );
    assert_eq!(name(&step), "agreement");
    fx.cancel(&flow, &secret);
}

/// Runs a flow of `person` on `computer` through agreement to the master password step.
fn to_master_password(fx: &Fx, pairs: &[(&str, &str)]) -> (String, String) {
    let (flow, secret, step) = fx.start_ok(pairs);
    assert_eq!(name(&step), "agreement", "{step}");
    let step = fx.step(&flow, &secret, json!({"step": "agreement", "accept": true}));
    let step = if name(&step) == "choose_access_level" {
        fx.step(
            &flow,
            &secret,
            json!({"step": "choose_access_level", "access_level": "user"}),
        )
    } else {
        step
    };
    assert_eq!(name(&step), "master_password", "{step}");
    (flow, secret)
}

fn agreement_window_modes_levels(fx: &Fx) {
    let (flow, secret, _) = fx.start_ok(&base(BOB, C_MAIN, P_PLAIN));
    let step = fx.step(
        &flow,
        &secret,
        json!({"step": "agreement", "accept": false}),
    );
    assert_eq!(
        (name(&step), step["reason"].as_str()),
        ("ended", Some(msg::DECLINED))
    );
    assert!(fx.leases().is_empty());

    let mut early = base(BOB, C_MAIN, P_PLAIN);
    early.push(("CheckOutStartDate", "2099-01-01T00:00:00Z"));
    let (status, body) = fx.start(&fx.link(&early));
    assert_eq!((status, error_of(&body).1), (403, msg::WINDOW_NOT_STARTED));
    let mut late = base(BOB, C_MAIN, P_PLAIN);
    late.extend([
        ("CheckOutStartDate", "2020-01-01T00:00:00Z"),
        ("CheckOutEndDate", "2020-01-02T00:00:00Z"),
    ]);
    let (status, body) = fx.start(&fx.link(&late));
    assert_eq!((status, error_of(&body).1), (403, msg::WINDOW_OVER));

    // Modes: ssh is disabled on this gateway, so the computer offering ssh and example-raw-tcp
    // goes straight on, and the ssh-only one cannot be reached.
    let (flow, secret, _) = fx.start_ok(&base(BOB, C_SSH_ONLY, P_PLAIN));
    let step = fx.step(&flow, &secret, json!({"step": "agreement", "accept": true}));
    assert_eq!(
        (name(&step), step["error"].as_str()),
        ("failed", Some(msg::NO_MODE))
    );
    assert!(fx.leases().is_empty());

    // Access levels: Alice chooses between two; Carol has none; Bob's only one is taken for him.
    let (flow, secret, _) = fx.start_ok(&base(ALICE, C_MAIN, P_PLAIN));
    let step = fx.step(&flow, &secret, json!({"step": "agreement", "accept": true}));
    assert_eq!(name(&step), "choose_access_level");
    assert_eq!(step["options"].as_array().unwrap().len(), 2);
    let (status, body) = fx.answer(
        &flow,
        &secret,
        json!({"step": "choose_access_level", "access_level": "root"}),
    );
    assert_eq!((status, error_of(&body).0), (400, "bad_answer"));
    let (status, body) = fx.answer(
        &flow,
        &secret,
        json!({"step": "choose_mode", "mode": "ssh"}),
    );
    assert_eq!((status, error_of(&body).0), (409, "wrong_step"));
    fx.cancel(&flow, &secret);
    let (flow, secret, _) = fx.start_ok(&base(CAROL, C_MAIN, P_PLAIN));
    let step = fx.step(&flow, &secret, json!({"step": "agreement", "accept": true}));
    assert_eq!(
        (name(&step), step["error"].as_str()),
        ("failed", Some(msg::NO_ACCESS_LEVEL))
    );
    let (flow, secret) = to_master_password(fx, &base(BOB, C_MAIN, P_PLAIN));
    fx.cancel(&flow, &secret);
}

fn mfa_by_zone(fx: &Fx) {
    // Not enrolled: a clear message naming what to do.
    let (flow, secret, _) = fx.start_ok(&base(BOB, C_MAIN, P_MFA));
    let step = fx.step(&flow, &secret, json!({"step": "agreement", "accept": true}));
    assert_eq!(name(&step), "failed");
    assert!(
        step["error"]
            .as_str()
            .unwrap()
            .contains("not enrolled for Recovery code"),
        "{step}"
    );
    // Enrolled: a wrong code, then the right one; the same code again in a new flow is refused.
    let code = fx.enroll(ALICE);
    let (flow, secret, _) = fx.start_ok(&base(ALICE, C_MAIN, P_MFA));
    let step = fx.step(&flow, &secret, json!({"step": "agreement", "accept": true}));
    assert_eq!(
        (name(&step), step["provider"].as_str()),
        ("mfa", Some("example-mfa"))
    );
    let step = fx.step(
        &flow,
        &secret,
        json!({"step": "mfa", "response": "0000000000"}),
    );
    assert_eq!(
        (name(&step), step["message"].as_str()),
        ("mfa", Some(msg::MFA_WRONG))
    );
    let step = fx.step(&flow, &secret, json!({"step": "mfa", "response": code}));
    assert_eq!(name(&step), "choose_access_level", "{step}");
    fx.cancel(&flow, &secret);
    let (flow, secret, _) = fx.start_ok(&base(ALICE, C_MAIN, P_MFA));
    fx.step(&flow, &secret, json!({"step": "agreement", "accept": true}));
    let step = fx.step(&flow, &secret, json!({"step": "mfa", "response": code}));
    assert_eq!(
        (name(&step), step["message"].as_str()),
        ("mfa", Some(msg::MFA_WRONG)),
        "a replayed code"
    );
    fx.cancel(&flow, &secret);
    // The policy asks for MFA only from 10.0.0.0/8: from loopback it is skipped (and so is the
    // agreement, this policy does not record).
    let (flow, secret, step) = fx.start_ok(&base(BOB, C_MAIN, P_MFA_ELSEWHERE));
    assert_eq!(name(&step), "master_password", "{step}");
    fx.cancel(&flow, &secret);
}

fn master_password_and_launch(fx: &Fx) {
    let (flow, secret) = to_master_password(fx, &base(BOB, C_MAIN, P_PLAIN));
    let step = fx.step(
        &flow,
        &secret,
        json!({"step": "master_password", "master_password": "wrong one"}),
    );
    assert_eq!(
        (name(&step), step["message"].as_str()),
        ("master_password", Some(msg::MASTER_WRONG))
    );
    assert!(
        fx.leases().is_empty(),
        "a refused check-out gives the lease back"
    );
    let step = fx.step(
        &flow,
        &secret,
        json!({"step": "master_password", "master_password": MASTER}),
    );
    assert_eq!(name(&step), "launch", "{step}");
    assert_eq!(step["channel"], "terminal");
    assert_eq!(fx.leases(), vec![(fx.shared_main.clone(), flow.clone())]);
    // The token opens for this browser only, carries no secret, and says what to connect.
    let token_text = step["token"].as_str().unwrap();
    let sealer = token::TokenSealer::new(&fx.keys.token, "openpsm");
    let now = openpsm_gateway::store::unix_now();
    let claims = sealer
        .open(token_text, now, &token::browser_binding(&secret))
        .unwrap();
    assert_eq!(claims.flow, flow);
    assert_eq!(claims.connection["mode"], "example-raw-tcp");
    assert_eq!(claims.connection["hosts"], json!(["127.0.0.1"]));
    assert!(!claims.connection.to_string().contains(SECRET));
    assert!(
        sealer
            .open(token_text, now, &token::browser_binding("another browser"))
            .is_err()
    );
    // Someone else now finds the only shared credential taken.
    let (status, body) = fx.start(&fx.link(&base(BOB, C_MAIN, P_PLAIN)));
    assert_eq!((status, error_of(&body).1), (403, msg::SHARED_IN_USE));
    let step = fx.cancel(&flow, &secret);
    assert_eq!(
        (name(&step), step["reason"].as_str()),
        ("ended", Some(msg::CANCELLED))
    );
    assert!(fx.leases().is_empty());
    // Too many wrong master passwords end the flow.
    let (flow, secret) = to_master_password(fx, &base(BOB, C_MAIN, P_PLAIN));
    for _ in 0..2 {
        fx.step(
            &flow,
            &secret,
            json!({"step": "master_password", "master_password": "nope"}),
        );
    }
    let step = fx.step(
        &flow,
        &secret,
        json!({"step": "master_password", "master_password": "nope"}),
    );
    assert_eq!(
        (name(&step), step["error"].as_str()),
        ("failed", Some(msg::MASTER_TOO_MANY))
    );
    // Access to a flow needs its secret.
    let (status, body) = fx.answer(
        &flow,
        "not-the-secret",
        json!({"step": "agreement", "accept": true}),
    );
    assert_eq!((status, error_of(&body).0), (403, "forbidden"));
    let (status, _, _) = http(fx.gw.addr, "GET", &format!("/api/v1/flows/{flow}"), &[], "");
    assert_eq!(status, 401);
    let (status, body) = fx.post(
        &format!("/api/v1/flows/{flow}/answer"),
        Some(&secret),
        &json!({"step": "agreement", "accept": "maybe"}),
    );
    assert_eq!((status, error_of(&body).0), (400, "bad_request"));
}

/// Wrong master passwords count per person across flows: past the limit, even the right one is
/// refused until the window has passed.
fn person_lockout(fx: &Fx) {
    let wrong = |flow: &str, secret: &str| {
        fx.step(
            flow,
            secret,
            json!({"step": "master_password", "master_password": "wrong"}),
        )
    };
    let (flow, secret) = to_master_password(fx, &base(DAVE, C_MAIN, P_PLAIN));
    wrong(&flow, &secret);
    wrong(&flow, &secret);
    assert_eq!(wrong(&flow, &secret)["error"], msg::MASTER_TOO_MANY);
    let (flow, secret) = to_master_password(fx, &base(DAVE, C_MAIN, P_PLAIN));
    wrong(&flow, &secret);
    assert_eq!(wrong(&flow, &secret)["message"], msg::MASTER_WRONG);
    let (flow, secret) = to_master_password(fx, &base(DAVE, C_MAIN, P_PLAIN));
    assert_eq!(
        wrong(&flow, &secret)["message"],
        msg::MASTER_WRONG,
        "the sixth failure"
    );
    let step = fx.step(
        &flow,
        &secret,
        json!({"step": "master_password", "master_password": MASTER}),
    );
    assert_eq!(
        (name(&step), step["error"].as_str()),
        ("failed", Some(msg::PERSON_LOCKED)),
        "{step}"
    );
    assert!(fx.leases().is_empty());
}

fn account_exists(name: &str) -> bool {
    std::process::Command::new("getent")
        .args(["passwd", name])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn jit_computer(fx: &Fx) {
    let mut pairs = base(BOB, C_JIT, P_PLAIN);
    pairs.push(("PSM_Connection_Delay", "1"));
    let (flow, secret) = to_master_password(fx, &pairs);
    // The account exists from the master-password prompt on (the delay lets the directory have it).
    let made = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(
        made.contains("psmw-bob-"),
        "the JIT account is made before the prompt"
    );
    let step = fx.step(
        &flow,
        &secret,
        json!({"step": "master_password", "master_password": MASTER}),
    );
    if step["message"] == msg::MASTER_TOO_EARLY {
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    let step = fx.step(
        &flow,
        &secret,
        json!({"step": "master_password", "master_password": MASTER}),
    );
    assert_eq!(name(&step), "launch", "{step}");
    // The session will log in with a just-in-time account, which exists until the flow ends.
    let sealer = token::TokenSealer::new(&fx.keys.token, "openpsm");
    let claims = sealer
        .open(
            step["token"].as_str().unwrap(),
            openpsm_gateway::store::unix_now(),
            &token::browser_binding(&secret),
        )
        .unwrap();
    let user = claims.connection["user"].as_str().unwrap().to_owned();
    assert!(user.starts_with("psmw-bob-"), "{user}");
    assert_eq!(claims.connection["jit"], true);
    assert!(account_exists(&user));
    fx.cancel(&flow, &secret);
    assert!(
        !account_exists(&user),
        "the JIT account is removed when the flow ends"
    );
    assert!(fx.leases().is_empty());
    // Alice's admin level maps to a group this host does not have: creation fails cleanly.
    let mut pairs = base(ALICE, C_JIT, P_PLAIN);
    pairs.push(("PSM_Connection_Delay", "0"));
    let (flow, secret, _) = fx.start_ok(&pairs);
    fx.step(&flow, &secret, json!({"step": "agreement", "accept": true}));
    // The account is made before the master-password prompt: the failure shows right away.
    let step = fx.step(
        &flow,
        &secret,
        json!({"step": "choose_access_level", "access_level": "admin"}),
    );
    assert_eq!(
        (name(&step), step["error"].as_str()),
        ("failed", Some(msg::JIT_UNAVAILABLE)),
        "{step}"
    );
    assert!(fx.leases().is_empty());
    let leftovers = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(
        !leftovers.contains("psmw-alice-"),
        "a failed creation leaves no account"
    );
}

fn fifty_flows_race_for_two_credentials(fx: &Fx) {
    let flows: Vec<(String, String)> = (0..50)
        .map(|_| to_master_password(fx, &base(BOB, C_PAIR, P_PLAIN)))
        .collect();
    let results: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = flows
            .iter()
            .map(|(flow, secret)| {
                scope.spawn(move || {
                    fx.step(
                        flow,
                        secret,
                        json!({"step": "master_password", "master_password": MASTER}),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let launched = results.iter().filter(|s| name(s) == "launch").count();
    let refused = results
        .iter()
        .filter(|s| s["error"] == msg::SHARED_IN_USE)
        .count();
    assert_eq!((launched, refused), (2, 48), "{results:?}");
    let mut held: Vec<String> = fx.leases().into_iter().map(|(c, _)| c).collect();
    held.sort();
    let mut pair = fx.pair.clone();
    pair.sort();
    assert_eq!(held, pair);
    for (flow, secret) in &flows {
        fx.cancel(flow, secret);
    }
    assert!(
        fx.leases().is_empty(),
        "nothing stays leased after the flows end"
    );
}

fn pages_and_audit_and_canary(fx: &Fx) {
    let (status, _, body) = http(fx.gw.addr, "GET", "/api/v1/openapi.json", &[], "");
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert!(doc["paths"]["/api/v1/flows/{id}/answer"]["post"].is_object());
    // The page flow's first request: the cookie is HttpOnly, Secure, SameSite=Strict; the page
    // continues without carrying anything in its URL.
    let link = fx.link(&base(BOB, C_MAIN, P_PLAIN));
    let (status, headers, body) = http(fx.gw.addr, "GET", &format!("/start?{link}"), &[], "");
    assert_eq!(status, 200, "{body}");
    let cookie = headers
        .iter()
        .find(|(k, _)| k == "set-cookie")
        .map(|(_, v)| v.clone())
        .unwrap();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "referrer-policy" && v == "no-referrer")
    );
    let jar = cookie.split(';').next().unwrap().to_owned();
    let (status, _, page) = http(fx.gw.addr, "GET", "/flow", &[("Cookie", &jar)], "");
    assert_eq!(status, 200);
    assert!(
        page.contains("Recording agreement") && page.contains("name=\"csrf\""),
        "{page}"
    );
    // A form without the right CSRF token is refused.
    let (status, _, _) = http(
        fx.gw.addr,
        "POST",
        "/flow",
        &[
            ("Cookie", &jar),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "csrf=forged&step=agreement&accept=yes",
    );
    assert_eq!(status, 403);
    // An unsigned start page shows the refusal with a Close button.
    let (status, _, page) = http(fx.gw.addr, "GET", "/start?TargetPersonGuid=x", &[], "");
    assert_eq!(status, 403);
    assert!(
        page.contains(msg::LINK_UNSIGNED) && page.contains("id=\"close\""),
        "{page}"
    );

    let out = run(
        fx.s.path(),
        &["--config", fx.config.to_str().unwrap(), "audit", "verify"],
        &[],
    );
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let entries = fx.rt.block_on(fx.store.audit_entries(0, 100_000)).unwrap();
    for event in [
        "flow.started",
        "flow.agreement",
        "flow.checked_out",
        "flow.token_issued",
        "flow.refused",
        "link.refused",
        "flow.mfa",
    ] {
        assert!(
            entries.iter().any(|e| e.event == event),
            "no {event} in the audit log"
        );
    }
    let everything = entries
        .iter()
        .map(|e| format!("{} {}", e.actor, e.detail))
        .collect::<String>()
        + &fx.gw.stderr();
    assert!(
        !everything.contains(MASTER) && !everything.contains(SECRET),
        "a canary leaked into the audit log or the log"
    );
    let responses = fx.seen.lock().unwrap().clone();
    assert!(responses.len() > 10_000, "the responses were recorded");
    assert!(
        !responses.contains(MASTER) && !responses.contains(SECRET),
        "a canary came back in an API response"
    );
    // The database holds the credential sealed only.
    if let Ok(bytes) = std::fs::read(fx.s.path().join("data/openpsm.db")) {
        let db = String::from_utf8_lossy(&bytes);
        assert!(
            !db.contains(MASTER) && !db.contains(SECRET),
            "a canary is in the database in the clear"
        );
    }
}

fn all_scenarios(postgres: bool) {
    let Some(fx) = Fx::new(postgres) else { return };
    links_are_checked(&fx);
    availability_and_credentials(&fx);
    agreement_window_modes_levels(&fx);
    mfa_by_zone(&fx);
    master_password_and_launch(&fx);
    jit_computer(&fx);
    person_lockout(&fx);
    fifty_flows_race_for_two_credentials(&fx);
    pages_and_audit_and_canary(&fx);
    if !postgres {
        browser_walk(&fx);
    }
    let log = fx.gw.stderr();
    assert!(
        !log.contains(MASTER) && !log.contains(SECRET),
        "a canary leaked into the gateway's log"
    );
}

#[test]
fn workflow_on_sqlite() {
    all_scenarios(false);
}

#[test]
fn workflow_on_postgres() {
    all_scenarios(true);
}

/// Headless Chromium walks the pages from a start link to the launch page (SQLite run only).
fn browser_walk(fx: &Fx) {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/tests/walk-flow.mjs");
    let ready = std::path::Path::new("/usr/bin/chromium").exists()
        && std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../web/node_modules/playwright-core")
            .exists();
    if !ready {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium and web/node_modules are missing: run scripts/test.sh"
        );
        eprintln!(
            "note: chromium or playwright-core missing, browser walk skipped (scripts/test.sh installs them)"
        );
        return;
    }
    let query = fx.link(&base(BOB, C_MAIN, P_PLAIN));
    let shot = fx.s.path().join("launch.png");
    let out = std::process::Command::new("node")
        .arg(&script)
        .arg(format!("http://{}", fx.gw.addr))
        .arg(&query)
        .arg(MASTER)
        .arg(&shot)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)));
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(
        report["url"],
        format!("http://{}/flow", fx.gw.addr),
        "no secret in the URL"
    );
    assert_eq!(
        report["seen"],
        json!(["Recording agreement", "Master password", "Session"]),
        "{report}"
    );
    assert_eq!(
        report["cookie"],
        json!({"httpOnly": true, "secure": true, "sameSite": "Strict"})
    );
    assert_eq!(report["masterInPage"], false);
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 1000)
            .unwrap_or(false),
        "a screenshot was taken"
    );
    if let Ok(dir) = std::env::var("PSM_TEST_ARTIFACTS") {
        let _ = std::fs::copy(&shot, std::path::Path::new(&dir).join("launch-page.png"));
    }
    // The session page connects at once (and fails here: nothing listens for the example mode),
    // unless the End button is faster; either way the request ends.
    assert!(
        report["ended"]
            .as_str()
            .is_some_and(|e| e == msg::CANCELLED || e.starts_with("no server answered")),
        "{report}"
    );
    assert!(
        fx.leases().is_empty(),
        "ending from the page gives the lease back"
    );
}
