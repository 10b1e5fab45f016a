//! `openpsm link`, `openpsm vault ...`, `openpsm audit ...`: administration without the server.

use std::io::Read as _;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use openpsm_gateway::app::App;
use openpsm_gateway::startlink;
use openpsm_gateway::store::unix_now;
use openpsm_gateway::vault::NewCredential;
use openpsm_plugin_api::{CredentialKind, SecretText};
use uuid::Uuid;

#[derive(Args)]
pub struct LinkArgs {
    /// TargetPersonGuid.
    #[arg(long)]
    person: Uuid,
    /// TargetComputerGuid.
    #[arg(long)]
    computer: Uuid,
    /// AccessRequestPolicyID.
    #[arg(long)]
    policy: Uuid,
    /// IsAdvanceMode=true (choose among shared and personal credentials).
    #[arg(long)]
    advanced: bool,
    /// Mode: RDP, SSH or Telnet.
    #[arg(long)]
    mode: Option<String>,
    /// ExternalCredentialGuid (a personal credential).
    #[arg(long)]
    credential: Option<Uuid>,
    /// CheckOutStartDate (RFC 3339).
    #[arg(long)]
    start: Option<String>,
    /// CheckOutEndDate (RFC 3339).
    #[arg(long)]
    end: Option<String>,
    /// PSM_Connection_Delay in seconds.
    #[arg(long)]
    delay: Option<u32>,
    /// Seconds the link stays valid.
    #[arg(long, default_value_t = 300)]
    ttl: i64,
}

#[derive(Subcommand)]
pub enum VaultCommand {
    /// Set a person's master password (read from the first line of standard input).
    SetMaster {
        #[arg(long)]
        person: Uuid,
    },
    /// Add a credential; its secret is read from standard input (for a personal one, the first
    /// line is the owner's master password and the rest the secret).
    Add {
        #[arg(long)]
        computer: Uuid,
        #[arg(long)]
        label: String,
        #[arg(long)]
        user: String,
        /// Make it a personal credential of this person.
        #[arg(long)]
        owner: Option<Uuid>,
        /// The secret is a private key (kept with its line breaks).
        #[arg(long)]
        key: bool,
    },
    /// List credentials (never their secrets).
    List {
        #[arg(long)]
        computer: Option<Uuid>,
        #[arg(long)]
        json: bool,
    },
    /// Remove a credential.
    Remove { id: String },
}

#[derive(Subcommand)]
pub enum SessionsCommand {
    /// Sessions not yet ended, on every node.
    List {
        #[arg(long)]
        json: bool,
    },
    /// End a session (its node notices within seconds and ends it through its one end path).
    Terminate { id: String },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Walk the audit chain; exit code 1 when an entry was edited, inserted, deleted or moved.
    Verify,
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::FAILURE
}

pub async fn link(app: &App, a: LinkArgs) -> ExitCode {
    let mut pairs = vec![
        ("TargetPersonGuid", a.person.to_string()),
        ("AccessRequestPolicyID", a.policy.to_string()),
        ("TargetComputerGuid", a.computer.to_string()),
        ("IsAdvanceMode", a.advanced.to_string()),
    ];
    let optional = [
        ("Mode", a.mode),
        (
            "ExternalCredentialGuid",
            a.credential.map(|c| c.to_string()),
        ),
        ("CheckOutStartDate", a.start),
        ("CheckOutEndDate", a.end),
        ("PSM_Connection_Delay", a.delay.map(|d| d.to_string())),
    ];
    pairs.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
    let expires_at = unix_now() + a.ttl.clamp(10, 86_400);
    let query = startlink::sign(&pairs, &app.keys.link, expires_at, &startlink::new_nonce());
    println!(
        "{}/start?{query}",
        app.config.links.public_url.trim_end_matches('/')
    );
    ExitCode::SUCCESS
}

fn read_stdin() -> Result<String, std::io::Error> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    Ok(text)
}

pub async fn vault(app: &App, command: VaultCommand) -> ExitCode {
    match command {
        VaultCommand::SetMaster { person } => {
            let input = match read_stdin() {
                Ok(t) => zeroize::Zeroizing::new(t),
                Err(e) => return fail(e),
            };
            let password = SecretText::new(input.lines().next().unwrap_or_default());
            match app.vault.set_master_password(person, &password).await {
                Ok(()) => {
                    println!("master password set for {person}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        VaultCommand::Add {
            computer,
            label,
            user,
            owner,
            key,
        } => {
            let input = match read_stdin() {
                Ok(t) => zeroize::Zeroizing::new(t),
                Err(e) => return fail(e),
            };
            let (master, rest) = match owner {
                Some(_) => match input.split_once('\n') {
                    Some((m, r)) => (Some(m), r),
                    None => {
                        return fail(
                            "a personal credential needs two parts on standard input: master password line, then the secret",
                        );
                    }
                },
                None => (None, input.as_str()),
            };
            let secret = if key {
                rest.to_owned()
            } else {
                rest.trim_end_matches(['\r', '\n']).to_owned()
            };
            let new = NewCredential {
                computer,
                label,
                user_name: user,
                secret: SecretText::new(secret),
                is_key: key,
                personal: owner.zip(master.map(SecretText::new)),
            };
            match app.vault.add(new).await {
                Ok(entry) => {
                    println!("{}", entry.id);
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        VaultCommand::List { computer, json } => match app.vault.entries(computer).await {
            Ok(entries) if json => match serde_json::to_string_pretty(&entries) {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            },
            Ok(entries) => {
                println!(
                    "{:<36} {:<8} {:<36} {:<16} {:<20} OWNER",
                    "ID", "KIND", "COMPUTER", "USER", "LABEL"
                );
                for e in entries {
                    let kind = if e.kind == CredentialKind::Shared {
                        "shared"
                    } else {
                        "personal"
                    };
                    let owner = e.owner.map(|o| o.to_string()).unwrap_or_else(|| "-".into());
                    println!(
                        "{:<36} {:<8} {:<36} {:<16} {:<20} {owner}",
                        e.id, kind, e.computer, e.user_name, e.label
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        VaultCommand::Remove { id } => match app.vault.remove(&id).await {
            Ok(()) => {
                println!("removed {id}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
    }
}

pub async fn audit(app: &App, command: AuditCommand) -> ExitCode {
    match command {
        AuditCommand::Verify => match app.store.audit_verify().await {
            Ok(v) if v.problems.is_empty() => {
                match &v.head {
                    Some((seq, hash)) => println!(
                        "audit chain intact: {} entries, head {seq} {hash}",
                        v.entries
                    ),
                    None => println!("audit chain intact: empty"),
                }
                ExitCode::SUCCESS
            }
            Ok(v) => {
                for p in &v.problems {
                    println!("{p}");
                }
                eprintln!(
                    "error: the audit chain is broken: {} problem(s) in {} entries",
                    v.problems.len(),
                    v.entries
                );
                ExitCode::FAILURE
            }
            Err(e) => fail(e),
        },
    }
}

pub async fn sessions(app: &App, command: SessionsCommand) -> ExitCode {
    match command {
        SessionsCommand::List { json } => match app.store.open_sessions().await {
            Ok(rows) if json => {
                let list: Vec<_> = rows
                    .iter()
                    .map(|(id, person, computer, mode, state, started)| {
                        serde_json::json!({"id": id, "person": person, "computer": computer, "mode": mode, "state": state, "started_at": started})
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(list));
                ExitCode::SUCCESS
            }
            Ok(rows) => {
                println!(
                    "{:<36} {:<36} {:<36} {:<8} {:<10} STARTED",
                    "ID", "PERSON", "COMPUTER", "MODE", "STATE"
                );
                for (id, person, computer, mode, state, started) in rows {
                    println!(
                        "{id:<36} {person:<36} {computer:<36} {mode:<8} {state:<10} {started}"
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        SessionsCommand::Terminate { id } => match app.store.request_termination(&id).await {
            Ok(true) => {
                let _ = app
                    .store
                    .audit_append(
                        unix_now(),
                        &openpsm_gateway::store::AuditEvent {
                            actor: "admin-cli".into(),
                            event: "session.terminate_requested".into(),
                            detail: serde_json::json!({"session": id}),
                        },
                    )
                    .await;
                println!("termination of {id} requested");
                ExitCode::SUCCESS
            }
            Ok(false) => fail(format!("no running session {id}")),
            Err(e) => fail(e),
        },
    }
}
