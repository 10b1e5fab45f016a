//! An account provisioner shipped as a shared library: just-in-time local accounts on the
//! gateway's own Unix host (for targets that are the gateway machine or share its accounts).
//!
//! `create` runs `useradd` with an expiry date and a marker in the comment field
//! (`openpsm-jit session=<uuid>`), sets a random password with `chpasswd` and adds the account to
//! the access level's groups, which must exist locally. Any failure removes what was made.
//! `remove` runs `userdel -r`; `owned` lists marked accounts for the sweeper. Needs root.
//! Settings: `prefix` (default "psm-"), `shell` (default "/bin/bash").

use std::sync::Arc;
use std::time::SystemTime;

use openpsm_plugin_api::{
    AccountProvisioner, ErrorKind, JitAccount, JitAccountRef, JitRequest, Origin, Plugin,
    PluginError, PluginInfo, PluginInstance, PluginKind, PluginResult, PluginSettings, SecretText,
    async_trait,
};
use rand::Rng as _;
use serde::Deserialize;
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;
use uuid::Uuid;

pub const ID: &str = "example-jit-unix";
const MARKER: &str = "openpsm-jit session=";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "default_prefix")]
    prefix: String,
    #[serde(default = "default_shell")]
    shell: String,
}

fn default_prefix() -> String {
    "psm-".into()
}

fn default_shell() -> String {
    "/bin/bash".into()
}

struct UnixAccounts {
    prefix: String,
    shell: String,
}

pub fn info() -> PluginInfo {
    PluginInfo::new(
        PluginKind::AccountProvisioner,
        ID,
        env!("CARGO_PKG_VERSION"),
        "just-in-time local Unix accounts (example)",
    )
}

pub fn build(settings: PluginSettings) -> PluginResult<PluginInstance> {
    let s: Settings = settings.parse()?;
    let ok_prefix = !s.prefix.is_empty()
        && s.prefix.len() <= 8
        && s.prefix.starts_with(|c: char| c.is_ascii_lowercase())
        && s.prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok_prefix {
        return Err(PluginError::settings(
            "prefix must be 1-8 characters of a-z, 0-9, '-', '_', starting with a letter",
        ));
    }
    Ok(PluginInstance::AccountProvisioner(Arc::new(UnixAccounts {
        prefix: s.prefix,
        shell: s.shell,
    })))
}

openpsm_plugin_api::export_plugin!(info: info, build: build);

fn backend(message: impl Into<String>) -> PluginError {
    PluginError::new(Origin::Backend, ErrorKind::Internal, message)
}

/// Runs a tool, trying again while another process holds the account database's lock.
async fn run(program: &str, args: &[&str], stdin: Option<&str>) -> PluginResult<String> {
    let mut tries = 0;
    loop {
        match run_once(program, args, stdin).await {
            Err(e) if tries < 50 && e.message.contains("lock") => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

async fn run_once(program: &str, args: &[&str], stdin: Option<&str>) -> PluginResult<String> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        std::process::Stdio::piped()
    } else {
        std::process::Stdio::null()
    });
    let mut child = cmd
        .spawn()
        .map_err(|e| backend(format!("{program}: {e}")))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .await
            .map_err(|e| backend(format!("{program}: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| backend(format!("{program}: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        // stderr of these tools names the account or group, never the password (it goes in on stdin).
        let err = String::from_utf8_lossy(&out.stderr);
        Err(backend(format!("{program} failed: {}", err.trim())))
    }
}

fn name_for(prefix: &str, login: &str) -> String {
    let base: String = login
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(12)
        .collect::<String>()
        .to_ascii_lowercase();
    let suffix: String = (0..6)
        .map(|_| char::from(b'a' + rand::rng().random_range(0..26u8)))
        .collect();
    format!("{prefix}{base}-{suffix}")
}

fn password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789-_.!";
    let mut rng = rand::rng();
    (0..24)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// The day after `t` (useradd's expiry is a date: the account stops working at its start).
fn expiry_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let date = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(0) + 86_400)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .date();
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

impl UnixAccounts {
    async fn create_inner(&self, req: &JitRequest, name: &str, secret: &str) -> PluginResult<()> {
        for group in &req.groups {
            if run("getent", &["group", group], None).await.is_err() {
                return Err(PluginError::new(
                    Origin::Backend,
                    ErrorKind::NotFound,
                    format!("group {group} does not exist on this host"),
                ));
            }
        }
        let comment = format!("{MARKER}{}", req.session);
        let expire = expiry_date(req.not_after);
        run(
            "useradd",
            &["-m", "-s", &self.shell, "-e", &expire, "-c", &comment, name],
            None,
        )
        .await?;
        run("chpasswd", &[], Some(&format!("{name}:{secret}\n"))).await?;
        if !req.groups.is_empty() {
            run("usermod", &["-a", "-G", &req.groups.join(","), name], None).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Plugin for UnixAccounts {
    fn info(&self) -> PluginInfo {
        info()
    }

    async fn health(&self) -> PluginResult<()> {
        run("getent", &["passwd", "root"], None).await.map(|_| ())
    }
}

#[async_trait]
impl AccountProvisioner for UnixAccounts {
    async fn create(&self, req: JitRequest) -> PluginResult<JitAccount> {
        let name = name_for(&self.prefix, &req.person.login);
        let secret = password();
        if let Err(e) = self.create_inner(&req, &name, &secret).await {
            // Leave nothing behind.
            let _ = run("userdel", &["-r", &name], None).await;
            return Err(e);
        }
        tracing::info!(account = %name, session = %req.session, "JIT account created");
        Ok(JitAccount {
            account: JitAccountRef {
                id: name.clone(),
                session: req.session,
            },
            user_name: name,
            domain: None,
            password: SecretText::new(secret),
            groups: req.groups,
            not_after: req.not_after,
        })
    }

    async fn remove(&self, account: &JitAccountRef) -> PluginResult<()> {
        let entry = run("getent", &["passwd", &account.id], None).await;
        match entry {
            // Only ever remove accounts this provisioner marked.
            Ok(line) if line.contains(MARKER) => {
                run("userdel", &["-r", &account.id], None).await?;
                tracing::info!(account = %account.id, "JIT account removed");
                Ok(())
            }
            Ok(_) => Err(PluginError::new(
                Origin::Backend,
                ErrorKind::InvalidInput,
                format!("{} is not a JIT account", account.id),
            )),
            Err(_) => Ok(()),
        }
    }

    async fn owned(&self) -> PluginResult<Vec<JitAccountRef>> {
        let passwd = run("getent", &["passwd"], None).await?;
        Ok(passwd
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                let (name, gecos) = (fields.first()?, fields.get(4)?);
                let session = gecos.strip_prefix(MARKER)?;
                Some(JitAccountRef {
                    id: (*name).to_owned(),
                    session: Uuid::parse_str(session).ok()?,
                })
            })
            .filter(|a| a.id.starts_with(&self.prefix))
            .collect())
    }
}
