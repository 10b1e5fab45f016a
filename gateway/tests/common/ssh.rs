//! A lab for session tests: the gateway with one ssh computer, its credential in the vault, and
//! a private sshd the test may stop. Needs the test account from scripts/test.sh (PSM_TEST_SSHD_*).

use std::path::Path;
use std::process::{Child, Command, Stdio};

use futures::SinkExt as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest as _};

use super::*;

pub const PERSON: &str = "a11ce000-0000-4000-8000-000000000001";
pub const COMPUTER: &str = "c0000000-0000-4000-8000-0000000000e1";
pub const POLICY: &str = "f0000000-0000-4000-8000-0000000000e2";
pub const MASTER: &str = "Master-Canary-lab-31";

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The test account, or None outside scripts/test.sh (and a failure under CI).
pub fn account() -> Option<(String, String)> {
    match (
        std::env::var("PSM_TEST_SSHD_USER"),
        std::env::var("PSM_TEST_SSHD_PASSWORD"),
    ) {
        (Ok(u), Ok(p)) => Some((u, p)),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "PSM_TEST_SSHD_* missing under CI: run scripts/test.sh"
            );
            None
        }
    }
}

/// An sshd of the test's own on a free port, stopped when dropped.
pub struct PrivateSshd {
    pub port: u16,
    child: Child,
}

impl PrivateSshd {
    pub fn start(dir: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let key = dir.join("host_key");
        assert!(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&key)
                .status()
                .unwrap()
                .success()
        );
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\nPasswordAuthentication yes\nKbdInteractiveAuthentication yes\nUsePAM yes\nPermitRootLogin no\n",
                key.display(),
                dir.join("sshd.pid").display()
            ),
        )
        .unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .arg("-D")
            .arg("-f")
            .arg(&config)
            .arg("-E")
            .arg(dir.join("sshd.log"))
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self { port, child }
    }

    /// Kills the connections' processes, as if the target dropped every session.
    pub fn drop_sessions(&self) {
        let _ = Command::new("pkill")
            .args(["-KILL", "-P", &self.child.id().to_string()])
            .status();
    }
}

impl Drop for PrivateSshd {
    fn drop(&mut self) {
        self.drop_sessions();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Lab {
    pub s: Scratch,
    pub gw: Gateway,
    pub keys: openpsm_gateway::keys::Keys,
}

/// The gateway with computer COMPUTER at 127.0.0.1:`port` and `secret` as its shared credential.
pub fn lab(port: u16, user: &str, secret: &str, env: &[(&str, &str)]) -> Lab {
    lab_with(port, user, secret, env, "")
}

/// `lab`, with more keys for the policy (e.g. `typescript = true`).
pub fn lab_with(port: u16, user: &str, secret: &str, env: &[(&str, &str)], policy: &str) -> Lab {
    lab_for("ssh", port, user, secret, env, policy)
}

/// The lab with a computer reached through connection mode `mode`.
pub fn lab_for(
    mode: &str,
    port: u16,
    user: &str,
    secret: &str,
    env: &[(&str, &str)],
    policy: &str,
) -> Lab {
    let s = Scratch::new();
    let dir = s.write(
        "directory.toml",
        &format!(
            "[[person]]\nid = \"{PERSON}\"\nlogin = \"alice\"\nname = \"Alice\"\n\
             [[computer]]\nid = \"{COMPUTER}\"\ncomputer_id = \"9\"\nname = \"sshd\"\nhosts = [\"127.0.0.1\"]\nport = {port}\nmodes = [\"{mode}\"]\n\
             [[policy]]\nid = \"{POLICY}\"\nname = \"p\"\n{policy}\ncomputers = [\"{COMPUTER}\"]\n\
             [[policy.access_levels]]\nid = \"user\"\nlabel = \"User\"\napproved = [\"{PERSON}\"]\n"
        ),
    );
    let config = s.write(
        "gw.toml",
        &format!("[directory]\nfile = {:?}\n", dir.display().to_string()),
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
            "t",
            "--user",
            user,
        ],
        &[],
        &format!("{secret}\n"),
    );
    assert!(added.status.success(), "{}", text(&added.stderr));
    let gw = Gateway::start(s.path(), &config, env);
    let keys = openpsm_gateway::keys::Keys::load_or_create(&s.path().join("data")).unwrap();
    Lab { s, gw, keys }
}

impl Lab {
    pub fn link(&self, extra: &[(&str, String)]) -> String {
        let mut pairs: Vec<(&str, String)> = vec![
            ("TargetPersonGuid", PERSON.into()),
            ("AccessRequestPolicyID", POLICY.into()),
            ("TargetComputerGuid", COMPUTER.into()),
            ("IsAdvanceMode", "false".into()),
        ];
        pairs.extend(extra.iter().cloned());
        openpsm_gateway::startlink::sign(
            &pairs,
            &self.keys.link,
            openpsm_gateway::store::unix_now() + 60,
            &openpsm_gateway::startlink::new_nonce(),
        )
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

    /// Walks the workflow through the API: (flow secret, launch token).
    pub fn launch(&self, extra: &[(&str, String)]) -> (String, String) {
        let started = self.post("/api/v1/flows", None, json!({"link": self.link(extra)}));
        let (flow, secret) = (
            started["flow"].as_str().unwrap().to_owned(),
            started["flow_secret"].as_str().unwrap().to_owned(),
        );
        self.post(
            &format!("/api/v1/flows/{flow}/answer"),
            Some(&secret),
            json!({"step": "agreement", "accept": true}),
        );
        let step = self.post(
            &format!("/api/v1/flows/{flow}/answer"),
            Some(&secret),
            json!({"step": "master_password", "master_password": MASTER}),
        );
        assert_eq!(step["step"]["name"], "launch", "{step}");
        (secret, step["step"]["token"].as_str().unwrap().to_owned())
    }

    pub async fn connect(&self, secret: &str, token: &str) -> Ws {
        let mut request = format!("ws://{}/api/v1/tunnel", self.gw.addr)
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("Authorization", format!("Bearer {secret}").parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        ws.send(Message::text(token.to_owned())).await.unwrap();
        ws
    }

    pub async fn store(&self) -> openpsm_gateway::store::Store {
        openpsm_gateway::store::Store::open(&format!(
            "sqlite://{}",
            self.s.path().join("data/openpsm.db").display()
        ))
        .await
        .unwrap()
    }
}

/// Reads the socket until `until` is in the terminal output or a text message matches `stop`;
/// returns (terminal text, text messages).
pub async fn read_until(ws: &mut Ws, until: &str, secs: u64) -> (String, Vec<Value>) {
    use futures::StreamExt as _;
    let mut screen = String::new();
    let mut texts = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if !until.is_empty() && screen.contains(until) {
            break;
        }
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => screen.push_str(&String::from_utf8_lossy(&b)),
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                let ended = v.get("ended").is_some();
                texts.push(v);
                if ended {
                    break;
                }
            }
            Ok(Some(Ok(_))) => {}
            _ => break,
        }
    }
    (screen, texts)
}

pub fn ended(texts: &[Value]) -> Option<String> {
    texts
        .iter()
        .find_map(|t| t.get("ended").and_then(|e| e.as_str()).map(str::to_owned))
}
