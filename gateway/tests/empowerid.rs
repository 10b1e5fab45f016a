//! The gateway with `credentials.source = "empowerid"` against a contract server of the seed's
//! secure-access-gateway API (tests/common/empowerid.rs): the exact check-out and end payloads,
//! the seed's branches (401 asks again, an expired token ends the flow and closes the tab, other
//! errors show an error page with Close), every injected fault, the endsession retry rules (a 401
//! exactly 7 times), pending ends finished by a restarted gateway, the ApiUrl allow-list (no
//! request ever reaches a server off the list), IAM-authenticated links, and a real SSH session.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/empowerid.rs"]
mod contract;

use std::time::Duration;

use common::*;
use contract::{CHECK, Contract, END, Fault, GET};
use openpsm_gateway::keys::Keys;
use openpsm_gateway::messages as msg;
use openpsm_gateway::store::{Store, unix_now};
use serde_json::{Value, json};

const PERSON: &str = "a11ce000-0000-4000-8000-000000000001";
const COMPUTER: &str = "c0000000-0000-4000-8000-0000000000e1";
const POLICY: &str = "f0000000-0000-4000-8000-0000000000e2";
const MASTER: &str = "Master-Canary-eid-5c";
const TARGET: &str = "Target-Canary-eid-9d";
const CREDENTIAL: &str = "cred-7";

fn answer(user: &str, password: &str, port: u16, record: bool) -> Value {
    json!({
        "IsPasswordSSHKey": false,
        "UserName": user,
        "Password": password,
        "Notes": null,
        "Server": "127.0.0.1",
        "Server2": null,
        "Server3": null,
        "GatewayServerDNSHostName": "gateway.example.test",
        "ManagementPort": port,
        "AllowLiveSnooping": true,
        "AllowJoinRequests": false,
        "AllowJoinInvites": true,
        "RecordPSMSession": record
    })
}

struct Fx {
    s: Scratch,
    config: std::path::PathBuf,
    gw: Gateway,
    api: Contract,
    keys: Keys,
    rt: tokio::runtime::Runtime,
    /// Every response body, to look for the canaries at the end.
    seen: std::sync::Mutex<String>,
}

impl Fx {
    fn new(port: u16, answer: Value, env: &[(&str, &str)]) -> Self {
        let api = Contract::start(MASTER, CREDENTIAL, answer);
        let s = Scratch::new();
        let dir = s.write(
            "directory.toml",
            &format!(
                "[[person]]\nid = \"{PERSON}\"\nlogin = \"alice\"\nname = \"Alice\"\n\
                 [[computer]]\nid = \"{COMPUTER}\"\ncomputer_id = \"2331\"\nname = \"target\"\nhosts = [\"127.0.0.1\"]\nport = {port}\nmodes = [\"ssh\"]\n\
                 [[policy]]\nid = \"{POLICY}\"\nname = \"p\"\ncomputers = [\"{COMPUTER}\"]\n\
                 [[policy.access_levels]]\nid = \"user\"\nlabel = \"User\"\napproved = [\"{PERSON}\"]\n"
            ),
        );
        let config = s.write(
            "gw.toml",
            &format!(
                "[directory]\nfile = {:?}\n[links]\napi_urls = [{:?}]\n\
                 [credentials]\nsource = \"empowerid\"\nend_retry_secs = 1\nend_retry_max_secs = 2\n\
                 [plugins.empowerid.settings]\ntimeout_secs = 2\nconnect_timeout_secs = 1\nmax_response_bytes = 4096\nsession_check_path = {CHECK:?}\n",
                dir.display().to_string(),
                api.url(),
            ),
        );
        let gw = Gateway::start(s.path(), &config, env);
        let keys = Keys::load_or_create(&s.path().join("data")).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Self {
            s,
            config,
            gw,
            api,
            keys,
            rt,
            seen: Default::default(),
        }
    }

    fn base(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![
            ("TargetPersonGuid", PERSON.to_owned()),
            ("AccessRequestPolicyID", POLICY.to_owned()),
            ("TargetComputerGuid", COMPUTER.to_owned()),
            ("IsAdvanceMode", "false".to_owned()),
        ];
        pairs.extend(self.api.link_params());
        pairs
    }

    fn signed(&self, pairs: &[(&'static str, String)]) -> String {
        openpsm_gateway::startlink::sign(
            pairs,
            &self.keys.link,
            unix_now() + 120,
            &openpsm_gateway::startlink::new_nonce(),
        )
    }

    fn post(&self, path: &str, secret: Option<&str>, body: &Value) -> (u16, Value) {
        let auth = secret.map(|s| format!("Bearer {s}")).unwrap_or_default();
        let mut headers = vec![("Content-Type", "application/json")];
        if secret.is_some() {
            headers.push(("Authorization", auth.as_str()));
        }
        let (status, _, body) = http(self.gw.addr, "POST", path, &headers, &body.to_string());
        self.seen.lock().unwrap().push_str(&body);
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    fn start_query(&self, query: &str) -> (u16, Value) {
        self.post("/api/v1/flows", None, &json!({ "link": query }))
    }

    /// A flow through to the master-password step: (flow, secret).
    fn to_master(&self) -> (String, String) {
        let (status, body) = self.start_query(&self.signed(&self.base()));
        assert_eq!(status, 201, "{body}");
        let (flow, secret) = (
            body["flow"].as_str().unwrap().to_owned(),
            body["flow_secret"].as_str().unwrap().to_owned(),
        );
        let step = self.answer(&flow, &secret, json!({"step": "agreement", "accept": true}));
        assert_eq!(step["name"], "master_password", "{step}");
        (flow, secret)
    }

    fn answer(&self, flow: &str, secret: &str, answer: Value) -> Value {
        let (status, body) = self.post(
            &format!("/api/v1/flows/{flow}/answer"),
            Some(secret),
            &answer,
        );
        assert_eq!(status, 200, "{body}");
        body["step"].clone()
    }

    fn master(&self, flow: &str, secret: &str, password: &str) -> Value {
        self.answer(
            flow,
            secret,
            json!({"step": "master_password", "master_password": password}),
        )
    }

    fn cancel(&self, flow: &str, secret: &str) {
        let auth = format!("Bearer {secret}");
        let (status, _, _) = http(
            self.gw.addr,
            "DELETE",
            &format!("/api/v1/flows/{flow}"),
            &[("Authorization", &auth)],
            "",
        );
        assert_eq!(status, 200);
    }

    /// Kills the gateway (no clean shutdown) and starts it again on the same data.
    fn restart(&mut self, env: &[(&str, &str)]) {
        let _ = self.gw.child.kill();
        let _ = self.gw.child.wait();
        self.gw = Gateway::start(self.s.path(), &self.config, env);
    }

    /// The page the person's browser shows for this flow.
    fn page(&self, flow: &str, secret: &str) -> String {
        let cookie = format!("openpsm_flow={flow}.{secret}");
        let (_, _, body) = http(self.gw.addr, "GET", "/flow", &[("Cookie", &cookie)], "");
        body
    }

    fn store(&self) -> Store {
        self.rt
            .block_on(Store::open(&format!(
                "sqlite://{}",
                self.s.path().join("data/openpsm.db").display()
            )))
            .unwrap()
    }

    fn audit(&self) -> Vec<(String, Value)> {
        let store = self.store();
        let entries = self.rt.block_on(store.audit_entries(0, 100_000)).unwrap();
        self.rt.block_on(store.close());
        entries
            .into_iter()
            .map(|e| (e.event, serde_json::from_str(&e.detail).unwrap()))
            .collect()
    }

    /// Waits (up to 30 s) for an audit event about `session`.
    fn wait_for(&self, event: &str, session: &str) -> Value {
        for _ in 0..300 {
            if let Some((_, d)) = self
                .audit()
                .into_iter()
                .find(|(e, d)| e == event && d["session"] == session)
            {
                return d;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no {event} for session {session}");
    }

    fn pending_ends(&self) -> i64 {
        use sqlx::Row as _;
        sqlx::any::install_default_drivers();
        let url = format!(
            "sqlite://{}",
            self.s.path().join("data/openpsm.db").display()
        );
        self.rt.block_on(async {
            let pool = sqlx::AnyPool::connect(&url).await.unwrap();
            let n = sqlx::query("SELECT COUNT(*) AS n FROM pending_ends")
                .fetch_one(&pool)
                .await
                .unwrap()
                .try_get::<i64, _>("n")
                .unwrap();
            pool.close().await;
            n
        })
    }

    /// The session id of the last getcredential call.
    fn last_session(&self) -> String {
        self.api.calls_to(GET).last().unwrap().body["session"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn ends_for(&self, session: &str) -> usize {
        self.api
            .calls_to(END)
            .iter()
            .filter(|c| c.body["session"] == session)
            .count()
    }

    /// Launches a flow (to the token) and cancels it: the session ends at the source.
    fn launch_and_cancel(&self) -> String {
        let (flow, secret) = self.to_master();
        assert_eq!(self.master(&flow, &secret, MASTER)["name"], "launch");
        let session = self.last_session();
        self.cancel(&flow, &secret);
        session
    }
}

fn check_out_and_its_branches(fx: &Fx) {
    // A wrong master password is the seed's 401: asked again, with a message.
    let (flow, secret) = fx.to_master();
    let step = fx.master(&flow, &secret, "not the master password");
    assert_eq!(
        (step["name"].as_str(), step["message"].as_str()),
        (Some("master_password"), Some(msg::MASTER_WRONG))
    );
    // A 401 once, then the right password goes through.
    fx.api.queue(GET, &[Fault::Unauthorized]);
    assert_eq!(
        fx.master(&flow, &secret, MASTER)["message"],
        msg::MASTER_WRONG
    );
    let step = fx.master(&flow, &secret, MASTER);
    assert_eq!(step["name"], "launch", "{step}\n{}", fx.gw.stderr());
    // The payload is the seed's, field by field.
    let call = fx.api.calls_to(GET).last().unwrap().clone();
    assert_eq!(call.violation, None);
    let session = call.body["session"].as_str().unwrap().to_owned();
    assert_eq!(
        call.body,
        json!({"computer": "2331", "credential": CREDENTIAL, "password": MASTER, "mode": "SSH",
               "session": session, "loginsessionid": fx.api.login_session})
    );
    // The IAM's monitoring flags travel with the session (never its secret).
    let token = step["token"].as_str().unwrap();
    let sealer = openpsm_gateway::token::TokenSealer::new(&fx.keys.token, "openpsm");
    let claims = sealer
        .open(
            token,
            unix_now(),
            &openpsm_gateway::token::browser_binding(&secret),
        )
        .unwrap();
    assert_eq!(claims.connection["allow_live_snooping"], true);
    assert_eq!(claims.connection["allow_join_requests"], false);
    assert_eq!(claims.connection["allow_join_invites"], true);
    assert_eq!(claims.connection["record"], true);
    assert!(!claims.connection.to_string().contains(TARGET));
    // Ending the flow ends the session at the source, once, with the seed's fields.
    fx.cancel(&flow, &secret);
    fx.wait_for("session.ended_at_source", &session);
    let ends: Vec<_> = fx
        .api
        .calls_to(END)
        .into_iter()
        .filter(|c| c.body["session"] == session.as_str())
        .collect();
    assert_eq!(ends.len(), 1);
    assert_eq!(
        ends[0].body,
        json!({"computer": "2331", "credential": CREDENTIAL, "session": session,
               "loginsessionid": fx.api.login_session})
    );
    assert_eq!(fx.pending_ends(), 0);

    // The access token expired: the flow ends, the page says start over and closes the tab.
    let (flow, secret) = fx.to_master();
    fx.api.queue(GET, &[Fault::Expired]);
    let step = fx.master(&flow, &secret, MASTER);
    assert_eq!(
        (step["name"].as_str(), step["reason"].as_str()),
        (Some("ended"), Some(msg::TOKEN_EXPIRED))
    );
    let page = fx.page(&flow, &secret);
    assert!(
        page.contains(msg::TOKEN_EXPIRED.split('.').next().unwrap()),
        "{page}"
    );
    assert!(page.contains("id=\"autoclose\"") && page.contains("/assets/close.js"));

    // Any other failure: the error page with a Close button; the lease is back each time.
    for fault in [
        Fault::ServerError,
        Fault::Slow(Duration::from_secs(4)),
        Fault::Malformed,
        Fault::Oversized(10_000),
    ] {
        let (flow, secret) = fx.to_master();
        fx.api.queue(GET, std::slice::from_ref(&fault));
        let step = fx.master(&flow, &secret, MASTER);
        assert_eq!(
            (step["name"].as_str(), step["error"].as_str()),
            (Some("failed"), Some(msg::CHECKOUT_FAILED)),
            "{fault:?}: {step}"
        );
        let page = fx.page(&flow, &secret);
        assert!(
            page.contains("id=\"close\"") && !page.contains("autoclose"),
            "{page}"
        );
    }
    // Nothing is held: a new flow checks out again.
    let (flow, secret) = fx.to_master();
    assert_eq!(fx.master(&flow, &secret, MASTER)["name"], "launch");
    fx.cancel(&flow, &secret);
    assert!(fx.api.all_calls().iter().all(|c| c.violation.is_none()));
}

fn end_session_retries(fx: &Fx) {
    // 401 for ever: exactly 7 tries, then given up (audited).
    fx.api.always(END, Some(Fault::Unauthorized));
    let session = fx.launch_and_cancel();
    let abandoned = fx.wait_for("session.end_at_source_abandoned", &session);
    assert_eq!(abandoned["tries"], 7);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(fx.ends_for(&session), 7, "exactly 7 endsession calls");
    // 500 twice, then it works: three calls.
    fx.api.always(END, None);
    fx.api.queue(END, &[Fault::ServerError, Fault::ServerError]);
    let session = fx.launch_and_cancel();
    let done = fx.wait_for("session.ended_at_source", &session);
    assert_eq!(
        (done["tries"].as_i64(), fx.ends_for(&session)),
        (Some(3), 3)
    );
    // A slow answer counts as a failure and is tried again.
    fx.api.queue(END, &[Fault::Slow(Duration::from_secs(4))]);
    let session = fx.launch_and_cancel();
    fx.wait_for("session.ended_at_source", &session);
    assert_eq!(fx.pending_ends(), 0);
}

#[test]
fn empowerid_contract() {
    let mut fx = Fx::new(22, answer("root", TARGET, 22, true), &[]);
    // A link whose ApiUrl is off the allow-list is refused before any request is made to it.
    let evil = Contract::start(MASTER, CREDENTIAL, json!({}));
    let mut pairs = fx.base();
    pairs.retain(|(k, _)| *k != "ApiUrl");
    pairs.push(("ApiUrl", evil.url()));
    let (status, body) = fx.start_query(&fx.signed(&pairs));
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (400, Some(msg::INVALID_PARAMETERS))
    );
    check_out_and_its_branches(&fx);
    end_session_retries(&fx);

    // A pending end survives the gateway: killed while the source fails, the next start finishes it.
    fx.api.always(END, Some(Fault::ServerError));
    let session = fx.launch_and_cancel();
    fx.wait_for("session.end_at_source_failed", &session);
    assert_eq!(fx.pending_ends(), 1);
    let mut log = fx.gw.stderr();
    fx.restart(&[]);
    fx.api.always(END, None);
    fx.wait_for("session.ended_at_source", &session);
    assert_eq!(fx.pending_ends(), 0);
    log.push_str(&fx.gw.stderr());

    // IAM-authenticated links: unsigned, confirmed with the API before anything is shown.
    fx.restart(&[("OPENPSM_LINKS__AUTHENTICATION", "iam")]);
    let unsigned = |pairs: &[(&str, String)]| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
        q.finish()
    };
    let checks_before = fx.api.calls_to(CHECK).len();
    let (status, body) = fx.start_query(&unsigned(&fx.base()));
    assert_eq!(status, 201, "{body}");
    assert_eq!(fx.api.calls_to(CHECK).len(), checks_before + 1);
    let mut wrong = fx.base();
    wrong.retain(|(k, _)| *k != "LoginSessionID");
    wrong.push(("LoginSessionID", "ls-somebody-else".into()));
    let (status, body) = fx.start_query(&unsigned(&wrong));
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (403, Some(msg::IAM_REFUSED))
    );
    fx.api.always(CHECK, Some(Fault::Expired));
    let (status, body) = fx.start_query(&unsigned(&fx.base()));
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (403, Some(msg::TOKEN_EXPIRED))
    );
    let mut no_key = fx.base();
    no_key.retain(|(k, _)| *k != "ApiKey");
    let (status, body) = fx.start_query(&unsigned(&no_key));
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (400, Some(msg::MISSING_PARAMETERS))
    );
    log.push_str(&fx.gw.stderr());

    assert!(
        evil.api.all_calls().is_empty(),
        "the server off the allow-list was never asked"
    );
    // The canaries: neither the master password nor the target's password nor the access token
    // in the log, the audit chain or any response.
    let audit: String = fx
        .audit()
        .iter()
        .map(|(e, d)| format!("{e} {d}\n"))
        .collect();
    for canary in [
        MASTER,
        TARGET,
        fx.api.token.as_str(),
        fx.api.app_key.as_str(),
    ] {
        assert!(!log.contains(canary), "{canary} in the gateway's log");
        assert!(!audit.contains(canary), "{canary} in the audit log");
        assert!(
            !fx.seen.lock().unwrap().contains(canary),
            "{canary} in a response"
        );
    }
}

/// The whole workflow against the contract server into a real sshd session; with
/// RecordPSMSession = false nothing is recorded.
#[test]
fn empowerid_into_a_real_ssh_session() {
    let Some((user, password)) = common::ssh::account() else {
        return;
    };
    let port: u16 = std::env::var("PSM_TEST_SSHD_PORT")
        .unwrap()
        .parse()
        .unwrap();
    let fx = Fx::new(port, answer(&user, &password, port, true), &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let lab = |record: bool| {
        *fx.api.answer.lock().unwrap() = answer(&user, &password, port, record);
        let (flow, secret) = fx.to_master();
        let step = fx.master(&flow, &secret, MASTER);
        assert_eq!(step["name"], "launch", "{step}");
        let token = step["token"].as_str().unwrap().to_owned();
        let session = fx.last_session();
        rt.block_on(async {
            use futures::SinkExt as _;
            use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest as _};
            let mut request = format!("ws://{}/api/v1/tunnel", fx.gw.addr)
                .into_client_request()
                .unwrap();
            request
                .headers_mut()
                .insert("Authorization", format!("Bearer {secret}").parse().unwrap());
            let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
            ws.send(Message::text(token)).await.unwrap();
            ws.send(Message::binary(b"echo eid-$((6*7))-ok\n".to_vec()))
                .await
                .unwrap();
            let (screen, _) = common::ssh::read_until(&mut ws, "eid-42-ok", 20).await;
            assert!(screen.contains("eid-42-ok"), "{screen}");
            ws.send(Message::binary(b"exit\n".to_vec())).await.unwrap();
            let (_, texts) = common::ssh::read_until(&mut ws, "", 20).await;
            assert!(common::ssh::ended(&texts).is_some(), "{texts:?}");
        });
        fx.wait_for("session.ended_at_source", &session);
        session
    };
    let recorded = lab(true);
    let unrecorded = lab(false);
    let audit = fx.audit();
    let started = |s: &str| {
        audit
            .iter()
            .find(|(e, d)| e == "session.started" && d["session"] == s)
            .map(|(_, d)| d.clone())
            .unwrap()
    };
    assert_eq!(started(&recorded)["record"], true);
    assert_eq!(started(&unrecorded)["record"], false);
    let sealed: Vec<&Value> = audit
        .iter()
        .filter(|(e, _)| e == "recording.sealed")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(
        sealed.len(),
        1,
        "only the session the IAM wants recorded is: {sealed:?}"
    );
    let log = fx.gw.stderr();
    assert!(!log.contains(MASTER) && !log.contains(&password));
}
