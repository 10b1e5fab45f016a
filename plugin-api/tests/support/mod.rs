//! Small real plugins of every kind for the codec tests (kept in memory where the trait allows).

#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use openpsm_plugin_api::mode::{
    CredentialSecret, DisplaySize, EndReason, InjectedCredential, Notice, SessionPolicy,
};
use openpsm_plugin_api::recorder::MAX_READ_CHUNK;
use openpsm_plugin_api::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use uuid::Uuid;

pub const MASTER: &str = "master-Canary-77";
pub const TARGET_PASSWORD: &str = "target-Canary-88";
pub const PERSON: Uuid = Uuid::from_u128(0x1111);

fn info(kind: PluginKind, id: &str) -> PluginInfo {
    PluginInfo::new(kind, id, "1.0.0", "test plugin")
}

pub fn subject() -> Subject {
    Subject {
        person: PERSON,
        login: "alice".into(),
        display_name: "Alice".into(),
    }
}

pub fn flow_subject() -> FlowSubject {
    FlowSubject {
        person: PERSON,
        computer: Uuid::from_u128(0x2222),
        computer_id: Some("2331".into()),
        policy: Uuid::from_u128(0x3333),
        login_session_id: Some("login-1".into()),
        api: None,
        credential_id: None,
        is_personal_cred: None,
        external_credential: None,
    }
}

pub fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("openpsm-api-test-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---- MFA: one-time codes -------------------------------------------------------------------

struct Codes;

#[async_trait]
impl Plugin for Codes {
    fn info(&self) -> PluginInfo {
        info(PluginKind::MfaProvider, "codes")
    }
}

#[async_trait]
impl MfaProvider for Codes {
    fn provider_info(&self) -> ProviderInfo {
        ProviderInfo {
            id: "codes".into(),
            label: "Codes".into(),
            prompt: "the code".into(),
        }
    }
    async fn enroll(&self, _: &Subject) -> PluginResult<Enrollment> {
        let code = Uuid::new_v4().simple().to_string();
        Ok(Enrollment {
            secret: EnrolledSecret(SecretText::new(format!("code:{code}"))),
            instructions: "keep it".into(),
            reveal: Some(SecretText::new(code)),
        })
    }
    async fn verify(
        &self,
        _: &Subject,
        secret: &EnrolledSecret,
        response: &SecretText,
        _: SystemTime,
    ) -> PluginResult<Verdict> {
        let Some(code) = secret.0.expose_secret().strip_prefix("code:") else {
            return Err(PluginError::invalid_input("not a code secret"));
        };
        Ok(if code == response.expose_secret() {
            Verdict::Accepted { step: Some(0) }
        } else {
            Verdict::Rejected
        })
    }
}

pub fn mfa() -> PluginInstance {
    PluginInstance::MfaProvider(Arc::new(Codes))
}

struct Faulty {
    hang: bool,
}

#[async_trait]
impl Plugin for Faulty {
    fn info(&self) -> PluginInfo {
        info(PluginKind::MfaProvider, "faulty")
    }
    async fn health(&self) -> PluginResult<()> {
        if self.hang {
            futures::future::pending::<()>().await;
        }
        panic!("faulty plugin panics on purpose")
    }
}

#[async_trait]
impl MfaProvider for Faulty {
    fn provider_info(&self) -> ProviderInfo {
        ProviderInfo {
            id: "faulty".into(),
            label: "Faulty".into(),
            prompt: "x".into(),
        }
    }
    async fn enroll(&self, _: &Subject) -> PluginResult<Enrollment> {
        panic!("faulty plugin panics on purpose")
    }
    async fn verify(
        &self,
        _: &Subject,
        _: &EnrolledSecret,
        _: &SecretText,
        _: SystemTime,
    ) -> PluginResult<Verdict> {
        panic!("faulty plugin panics on purpose")
    }
}

pub fn panicking() -> PluginInstance {
    PluginInstance::MfaProvider(Arc::new(Faulty { hang: false }))
}

pub fn hanging() -> PluginInstance {
    PluginInstance::MfaProvider(Arc::new(Faulty { hang: true }))
}

// ---- Credentials: one personal credential ----------------------------------------------------

struct Vault {
    ended: Mutex<BTreeSet<Uuid>>,
}

#[async_trait]
impl Plugin for Vault {
    fn info(&self) -> PluginInfo {
        info(PluginKind::CredentialSource, "vault")
    }
}

#[async_trait]
impl CredentialSource for Vault {
    async fn list(&self, who: &FlowSubject) -> PluginResult<Vec<CredentialRef>> {
        Ok(if who.person == PERSON {
            vec![CredentialRef {
                id: "cred-1".into(),
                label: "alice@server".into(),
                kind: CredentialKind::Personal,
                owner: Some(PERSON),
                available: true,
            }]
        } else {
            vec![]
        })
    }
    async fn check_out(&self, req: CheckOut) -> PluginResult<CheckedOut> {
        if req.password.expose_secret() != MASTER {
            return Err(PluginError::unauthorized(
                Origin::User,
                "wrong master password",
            ));
        }
        Ok(CheckedOut {
            is_password_ssh_key: false,
            user_name: "EXAMPLE\\alice".into(),
            password: SecretText::new(TARGET_PASSWORD),
            notes: None,
            server: Some("127.0.0.1".into()),
            server2: None,
            server3: None,
            gateway_server_dns_host_name: None,
            management_port: Some(22),
            allow_live_snooping: true,
            allow_join_requests: false,
            allow_join_invites: false,
            record_psm_session: true,
        })
    }
    async fn end_session(&self, req: EndSession) -> PluginResult<()> {
        self.ended.lock().unwrap().insert(req.session);
        Ok(())
    }
}

pub fn credentials() -> PluginInstance {
    PluginInstance::CredentialSource(Arc::new(Vault {
        ended: Mutex::new(BTreeSet::new()),
    }))
}

// ---- Recorder: in memory ------------------------------------------------------------------

#[derive(Default)]
struct Memory {
    files: Mutex<BTreeMap<(Uuid, String), Vec<u8>>>,
}

#[async_trait]
impl Plugin for Memory {
    fn info(&self) -> PluginInfo {
        info(PluginKind::Recorder, "memory")
    }
}

#[async_trait]
impl Recorder for Memory {
    async fn store(&self, rec: SealedRecording) -> PluginResult<StoredRecording> {
        for f in &rec.files {
            let data = std::fs::read(rec.dir.join(&f.name))
                .map_err(|e| PluginError::internal(e.to_string()))?;
            self.files
                .lock()
                .unwrap()
                .insert((rec.session, f.name.clone()), data);
        }
        Ok(StoredRecording {
            session: rec.session,
            location: "memory".into(),
            files: rec.files,
        })
    }
    async fn read(
        &self,
        rec: &StoredRecording,
        file: &str,
        offset: u64,
        max_len: u32,
    ) -> PluginResult<Vec<u8>> {
        let files = self.files.lock().unwrap();
        let data = files
            .get(&(rec.session, file.to_owned()))
            .ok_or_else(|| PluginError::not_found(format!("no file {file:?}")))?;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let end = start
            .saturating_add(max_len.min(MAX_READ_CHUNK) as usize)
            .min(data.len());
        Ok(data[start..end].to_vec())
    }
}

pub fn recorder() -> PluginInstance {
    PluginInstance::Recorder(Arc::new(Memory::default()))
}

// ---- Provisioner: in memory -----------------------------------------------------------------

#[derive(Default)]
struct Accounts {
    live: Mutex<BTreeMap<String, Uuid>>,
}

#[async_trait]
impl Plugin for Accounts {
    fn info(&self) -> PluginInfo {
        info(PluginKind::AccountProvisioner, "accounts")
    }
}

#[async_trait]
impl AccountProvisioner for Accounts {
    async fn create(&self, req: JitRequest) -> PluginResult<JitAccount> {
        let name = format!(
            "{}-{}",
            req.person.login,
            &Uuid::new_v4().simple().to_string()[..6]
        );
        self.live.lock().unwrap().insert(name.clone(), req.session);
        Ok(JitAccount {
            account: JitAccountRef {
                id: name.clone(),
                session: req.session,
            },
            user_name: name,
            domain: None,
            password: SecretText::new(Uuid::new_v4().to_string()),
            groups: req.groups,
            not_after: req.not_after,
        })
    }
    async fn remove(&self, account: &JitAccountRef) -> PluginResult<()> {
        self.live.lock().unwrap().remove(&account.id);
        Ok(())
    }
    async fn owned(&self) -> PluginResult<Vec<JitAccountRef>> {
        Ok(self
            .live
            .lock()
            .unwrap()
            .iter()
            .map(|(id, session)| JitAccountRef {
                id: id.clone(),
                session: *session,
            })
            .collect())
    }
}

pub fn provisioner() -> PluginInstance {
    PluginInstance::AccountProvisioner(Arc::new(Accounts::default()))
}

pub fn jit_request() -> JitRequest {
    JitRequest {
        person: subject(),
        computer: Uuid::from_u128(0x2222),
        session: Uuid::from_u128(0x4444),
        groups: vec!["CN=Admins".into()],
        not_after: SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000),
    }
}

// ---- Connection mode: TCP relay -------------------------------------------------------------

struct Relay;

#[async_trait]
impl Plugin for Relay {
    fn info(&self) -> PluginInfo {
        info(PluginKind::ConnectionMode, "relay")
    }
}

fn ended(reason: EndReason) -> PluginResult<SessionEnd> {
    Ok(SessionEnd {
        reason,
        message: None,
    })
}

#[async_trait]
impl ConnectionMode for Relay {
    fn mode_info(&self) -> ModeInfo {
        ModeInfo {
            id: "relay".into(),
            label: "Relay".into(),
            channel: Channel::Terminal,
            default_port: 7,
        }
    }
    async fn run(&self, req: OpenRequest, mut io: SessionIo) -> PluginResult<SessionEnd> {
        if req.hosts.is_empty() {
            return Err(PluginError::invalid_input("no hosts"));
        }
        let mut found = None;
        for host in &req.hosts {
            if let Ok(s) = tokio::net::TcpStream::connect((host.as_str(), req.port)).await {
                found = Some((s, host.clone()));
                break;
            }
        }
        let Some((stream, host)) = found else {
            return Err(PluginError::unreachable(Origin::Target, "nothing answers"));
        };
        if io
            .to_browser
            .send(Frame::Notice(Notice::Connected { host }))
            .await
            .is_err()
        {
            return ended(EndReason::ClosedByUser);
        }
        let (mut rd, mut wr) = stream.into_split();
        let mut buf = vec![0u8; 4096];
        loop {
            tokio::select! {
                n = rd.read(&mut buf) => match n {
                    Ok(0) | Err(_) => return ended(EndReason::TargetClosed),
                    Ok(n) => if io.to_browser.send(Frame::Terminal(buf[..n].to_vec())).await.is_err() {
                        return ended(EndReason::ClosedByUser);
                    },
                },
                input = io.from_browser.recv() => match input {
                    None => return ended(EndReason::ClosedByHost),
                    Some(Input::Close) => return ended(EndReason::ClosedByUser),
                    Some(Input::Bytes(b)) => { let _ = wr.write_all(&b).await; }
                    Some(_) => {}
                },
                () = io.to_browser.closed() => return ended(EndReason::ClosedByUser),
            }
        }
    }
}

pub fn mode() -> PluginInstance {
    PluginInstance::ConnectionMode(Arc::new(Relay))
}

pub fn open_request(host: &str, port: u16) -> OpenRequest {
    OpenRequest {
        session: Uuid::new_v4(),
        hosts: vec![host.into()],
        port,
        credential: InjectedCredential {
            user: "alice".into(),
            domain: None,
            secret: CredentialSecret::Password(SecretText::new(TARGET_PASSWORD)),
        },
        display: DisplaySize::default(),
        policy: SessionPolicy::default(),
        pinned_keys: vec![],
        settings: serde_json::Value::Null,
    }
}

/// A TCP echo server on 127.0.0.1, stopped when dropped.
pub struct EchoServer {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl EchoServer {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        Self { port, task }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
