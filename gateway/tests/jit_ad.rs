//! Just-in-time Active Directory accounts through the gateway, against a real Samba AD DC
//! (scripts/services.sh `start_samba_ad`): the account exists (in the access level's group) from
//! the master-password prompt through the session and is gone when the flow ends; killing the
//! gateway mid-session and starting it again removes it, and the sweeper removes a marked account
//! a crash left without a flow; the directory being down fails the flow cleanly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read as _, Write as _};
use std::process::Command;
use std::time::Duration;

use common::*;
use openpsm_gateway::messages as msg;
use openpsm_gateway::store::unix_now;
use serde_json::{Value, json};

const PERSON: &str = "b0b00000-0000-4000-8000-000000000002";
const COMPUTER: &str = "c0000000-0000-4000-8000-0000000000f1";
const POLICY: &str = "f0000000-0000-4000-8000-0000000000f2";
const MASTER: &str = "Master-Canary-jit-3e";

struct Ad {
    url: String,
    ca: String,
    bind_dn: String,
    password: String,
    base: String,
}

fn ad() -> Option<Ad> {
    let var = |k: &str| std::env::var(k).ok();
    match (
        var("PSM_TEST_AD_URL"),
        var("PSM_TEST_AD_CA"),
        var("PSM_TEST_AD_BIND_DN"),
        var("PSM_TEST_AD_PASSWORD"),
        var("PSM_TEST_AD_BASE"),
    ) {
        (Some(url), Some(ca), Some(bind_dn), Some(password), Some(base)) => Some(Ad {
            url,
            ca,
            bind_dn,
            password,
            base,
        }),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "PSM_TEST_AD_* missing under CI: run scripts/test.sh"
            );
            eprintln!("note: no Samba AD DC (PSM_TEST_AD_*), skipped");
            None
        }
    }
}

impl Ad {
    /// Runs an ldap-utils tool as the administrator over verified LDAPS.
    fn tool(&self, tool: &str, args: &[&str], input: &str) -> String {
        let mut child = Command::new(tool)
            .env("LDAPTLS_CACERT", &self.ca)
            .args([
                "-H",
                &self.url,
                "-x",
                "-D",
                &self.bind_dn,
                "-w",
                &self.password,
            ])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    fn add(&self, ldif: &str) {
        let out = self.tool("ldapadd", &[], ldif);
        assert!(out.contains("adding new entry"), "{out}");
    }

    /// The user entries under `base` (attribute lines).
    fn users(&self, base: &str) -> Vec<String> {
        let out = self.tool(
            "ldapsearch",
            &[
                "-LLL",
                "-o",
                "ldif-wrap=no",
                "-b",
                base,
                "(objectClass=user)",
                "sAMAccountName",
                "memberOf",
                "description",
            ],
            "",
        );
        out.split("\n\n")
            .filter(|e| e.contains("sAMAccountName"))
            .map(str::to_owned)
            .collect()
    }

    fn delete_tree(&self, base: &str) {
        let _ = self.tool("ldapdelete", &["-r", base], "");
    }
}

/// A TCP server that echoes what it gets: the target of the raw-TCP sessions.
fn echo_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

struct Fx {
    s: Scratch,
    config: std::path::PathBuf,
    gw: Gateway,
    keys: openpsm_gateway::keys::Keys,
}

fn setup(ad: &Ad, ou: &str, group: &str, url: &str, port: u16) -> Fx {
    let s = Scratch::new();
    let dir = s.write(
        "directory.toml",
        &format!(
            "[[person]]\nid = \"{PERSON}\"\nlogin = \"bob\"\nname = \"Bob\"\n\
             [[computer]]\nid = \"{COMPUTER}\"\ncomputer_id = \"77\"\nname = \"jit\"\nhosts = [\"127.0.0.1\"]\nport = {port}\nmodes = [\"example-raw-tcp\"]\njit = true\n\
             [[policy]]\nid = \"{POLICY}\"\nname = \"p\"\ncomputers = [\"{COMPUTER}\"]\n\
             [[policy.access_levels]]\nid = \"user\"\nlabel = \"User\"\ngroups = [{group:?}]\napproved = [\"{PERSON}\"]\n"
        ),
    );
    let config = s.write(
        "gw.toml",
        &format!(
            "[directory]\nfile = {:?}\n[plugins.ssh]\nenabled = false\n\
             [plugins.example-raw-tcp]\npath = {:?}\n\
             [plugins.jit-ad]\nenabled = true\n[plugins.jit-ad.settings]\nurl = {url:?}\nbind_dn = {:?}\nou = {ou:?}\nca_file = {:?}\ntimeout_secs = 5\n",
            dir.display().to_string(),
            lib("openpsm-example-raw-tcp").display().to_string(),
            ad.bind_dn,
            ad.ca,
        ),
    );
    let cfg = config.to_str().unwrap();
    assert!(
        run_input(
            s.path(),
            &["--config", cfg, "vault", "set-master", "--person", PERSON],
            &[],
            &format!("{MASTER}\n")
        )
        .status
        .success()
    );
    let added = run_input(
        s.path(),
        &[
            "--config",
            cfg,
            "vault",
            "add",
            "--computer",
            COMPUTER,
            "--label",
            "root",
            "--user",
            "root",
        ],
        &[],
        "unused-target-secret\n",
    );
    assert!(added.status.success(), "{}", text(&added.stderr));
    let env = [(
        "OPENPSM_PLUGINS__JIT_AD__SETTINGS__BIND_PASSWORD",
        ad.password.as_str(),
    )];
    let gw = Gateway::start(s.path(), &config, &env);
    let keys = openpsm_gateway::keys::Keys::load_or_create(&s.path().join("data")).unwrap();
    Fx {
        s,
        config,
        gw,
        keys,
    }
}

impl Fx {
    fn restart(&mut self, ad: &Ad) {
        let _ = self.gw.child.kill();
        let _ = self.gw.child.wait();
        let env = [(
            "OPENPSM_PLUGINS__JIT_AD__SETTINGS__BIND_PASSWORD",
            ad.password.as_str(),
        )];
        self.gw = Gateway::start(self.s.path(), &self.config, &env);
    }

    fn post(&self, path: &str, secret: Option<&str>, body: Value) -> Value {
        let auth = secret.map(|s| format!("Bearer {s}")).unwrap_or_default();
        let mut headers = vec![("Content-Type", "application/json")];
        if secret.is_some() {
            headers.push(("Authorization", auth.as_str()));
        }
        let (_, _, body) = http(self.gw.addr, "POST", path, &headers, &body.to_string());
        serde_json::from_str(&body).unwrap()
    }

    /// Start link to the master-password step: (flow, secret, step).
    fn to_master(&self) -> (String, String, Value) {
        let pairs: Vec<(&str, String)> = vec![
            ("TargetPersonGuid", PERSON.into()),
            ("AccessRequestPolicyID", POLICY.into()),
            ("TargetComputerGuid", COMPUTER.into()),
            ("IsAdvanceMode", "false".into()),
            ("PSM_Connection_Delay", "0".into()),
        ];
        let link = openpsm_gateway::startlink::sign(
            &pairs,
            &self.keys.link,
            unix_now() + 60,
            &openpsm_gateway::startlink::new_nonce(),
        );
        let started = self.post("/api/v1/flows", None, json!({ "link": link }));
        let flow = started["flow"].as_str().unwrap().to_owned();
        let secret = started["flow_secret"].as_str().unwrap().to_owned();
        let step = self.post(
            &format!("/api/v1/flows/{flow}/answer"),
            Some(&secret),
            json!({"step": "agreement", "accept": true}),
        );
        (flow, secret, step["step"].clone())
    }

    fn launch(&self) -> (String, String, String) {
        let (flow, secret, step) = self.to_master();
        assert_eq!(step["name"], "master_password", "{step}");
        let step = self.post(
            &format!("/api/v1/flows/{flow}/answer"),
            Some(&secret),
            json!({"step": "master_password", "master_password": MASTER}),
        );
        assert_eq!(step["step"]["name"], "launch", "{step}");
        (
            flow,
            secret,
            step["step"]["token"].as_str().unwrap().to_owned(),
        )
    }
}

async fn connect(addr: std::net::SocketAddr, secret: &str, token: &str) -> common::ssh::Ws {
    use futures::SinkExt as _;
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest as _};
    let mut request = format!("ws://{addr}/api/v1/tunnel")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {secret}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    ws.send(Message::text(token.to_owned())).await.unwrap();
    ws
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool, state: impl Fn() -> String) {
    for _ in 0..200 {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting until {what}: {}", state());
}

#[test]
fn jit_accounts_in_active_directory() {
    let Some(ad) = ad() else { return };
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let ou = format!("OU=gw-{tag},{}", ad.base);
    let group = format!("CN=operators-{tag},{ou}");
    ad.add(&format!(
        "dn: {ou}\nobjectClass: top\nobjectClass: organizationalUnit\n"
    ));
    ad.add(&format!(
        "dn: {group}\nobjectClass: top\nobjectClass: group\nsAMAccountName: operators-{tag}\n"
    ));
    let port = echo_server();
    let mut fx = setup(&ad, &ou, &group, &ad.url, port);

    // A flow that ends normally: the account exists from the prompt on, in the level's group,
    // and is gone when the flow ends.
    let (flow, secret, step) = fx.to_master();
    assert_eq!(step["name"], "master_password", "{step}");
    let users = ad.users(&ou);
    assert_eq!(users.len(), 1, "{users:?}");
    assert!(
        users[0].contains("sAMAccountName: jit-bob-"),
        "{}",
        users[0]
    );
    assert!(
        users[0]
            .to_lowercase()
            .contains(&format!("memberof: {}", group.to_lowercase())),
        "{}",
        users[0]
    );
    let auth = format!("Bearer {secret}");
    http(
        fx.gw.addr,
        "DELETE",
        &format!("/api/v1/flows/{flow}"),
        &[("Authorization", &auth)],
        "",
    );
    assert!(
        ad.users(&ou).is_empty(),
        "the account is removed when the flow ends"
    );

    // A live session: the connection object names EXAMPLE\jit-bob-...; kill the gateway while
    // it runs, plant a marked account whose flow does not exist, start again: both are gone.
    let (_, secret, token) = fx.launch();
    let sealer = openpsm_gateway::token::TokenSealer::new(&fx.keys.token, "openpsm");
    let claims = sealer
        .open(
            &token,
            unix_now(),
            &openpsm_gateway::token::browser_binding(&secret),
        )
        .unwrap();
    let user = claims.connection["user"].as_str().unwrap().to_owned();
    assert!(user.starts_with("EXAMPLE\\jit-bob-"), "{user}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut ws = rt.block_on(connect(fx.gw.addr, &secret, &token));
    rt.block_on(async {
        use futures::SinkExt as _;
        use tokio_tungstenite::tungstenite::Message;
        ws.send(Message::binary(b"jit-echo-1\n".to_vec()))
            .await
            .unwrap();
        let (screen, _) = common::ssh::read_until(&mut ws, "jit-echo-1", 10).await;
        assert!(screen.contains("jit-echo-1"), "the session runs: {screen}");
    });
    assert_eq!(
        ad.users(&ou).len(),
        1,
        "the account exists during the session"
    );
    let leftover = format!("CN=jit-left-{tag},{ou}");
    ad.add(&format!(
        "dn: {leftover}\nobjectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: user\nsAMAccountName: jit-left-{tag}\ndescription: openpsm-jit session={}\n",
        uuid::Uuid::new_v4()
    ));
    assert_eq!(ad.users(&ou).len(), 2);
    drop(ws);
    fx.restart(&ad);
    wait_until(
        "the accounts are gone",
        || ad.users(&ou).is_empty(),
        || format!("{:?}\n{}", ad.users(&ou), fx.gw.stderr()),
    );
    let log = fx.gw.stderr();
    assert!(
        log.contains("removed just-in-time accounts left behind")
            || log.contains("ended the sessions"),
        "{log}"
    );

    // The directory is down: the flow fails cleanly at once, nothing is held.
    let down = setup(&ad, &ou, &group, "ldaps://127.0.0.1:1", port);
    let (_, _, step) = down.to_master();
    assert_eq!(
        (step["name"].as_str(), step["error"].as_str()),
        (Some("failed"), Some(msg::JIT_UNAVAILABLE)),
        "{step}"
    );
    assert!(ad.users(&ou).is_empty());
    let log = down.gw.stderr() + &fx.gw.stderr();
    assert!(
        !log.contains(&ad.password) && !log.contains(MASTER),
        "a secret in the log"
    );
    ad.delete_tree(&ou);
}
