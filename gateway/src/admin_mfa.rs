//! `openpsm mfa ...`: enrol a person (interactively, or by printing an enrolment link), list
//! enrolments, remove one, lift a lock.

use std::io::{BufRead as _, Write as _};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use openpsm_gateway::app::App;
use openpsm_gateway::mfa::enrolment::{self, Confirmation};
use openpsm_gateway::mfa::{lockout, qr};
use openpsm_gateway::plugins::Registry;
use openpsm_gateway::store::{AuditEvent, unix_now};
use openpsm_plugin_api::{MfaProvider, PluginInstance, SecretText};
use serde_json::json;

#[derive(Subcommand)]
pub enum MfaCommand {
    /// Enrol PERSON (id or login): shows the otpauth URI and its QR code, then asks for the first
    /// code from the app; the enrolment counts only once that code is right.
    Enroll {
        person: String,
        #[arg(long, default_value = "totp")]
        provider: String,
        /// Print an enrolment link for the person to open instead (valid mfa.enrolment_ttl_secs).
        #[arg(long)]
        link: bool,
        /// Also write the QR code as an SVG file.
        #[arg(long)]
        qr_svg: Option<std::path::PathBuf>,
    },
    /// List enrolments (never their secrets) and locks.
    List,
    /// Remove PERSON's enrolment (they must enrol again).
    Remove {
        person: String,
        #[arg(long, default_value = "totp")]
        provider: String,
    },
    /// Lift PERSON's MFA lock now.
    Unlock { person: String },
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::FAILURE
}

fn provider(registry: &Registry, id: &str) -> Option<Arc<dyn MfaProvider>> {
    match registry.get(id) {
        Some(PluginInstance::MfaProvider(p)) => Some(p.clone()),
        _ => None,
    }
}

pub async fn mfa(app: &App, registry: &Registry, command: MfaCommand) -> ExitCode {
    let admin = format!("cli:{}", whoami());
    match command {
        MfaCommand::Enroll {
            person,
            provider: id,
            link,
            qr_svg,
        } => {
            let Some(p) = provider(registry, &id) else {
                return fail(enrolment::EnrolError::UnknownProvider(id));
            };
            let person = match enrolment::find_person(app, &person) {
                Ok(p) => p,
                Err(e) => return fail(e),
            };
            let pending = match enrolment::begin(app, &id, &p, person, &admin).await {
                Ok(pending) => pending,
                Err(e) => return fail(e),
            };
            if link {
                println!(
                    "{}/mfa/enroll/{}",
                    app.config.links.public_url.trim_end_matches('/'),
                    pending.id
                );
                return ExitCode::SUCCESS;
            }
            let uri = pending.reveal.expose_secret().to_owned();
            if let Some(path) = qr_svg {
                let written = qr::svg(&uri)
                    .map_err(|e| e.to_string())
                    .and_then(|svg| std::fs::write(&path, svg).map_err(|e| e.to_string()));
                if let Err(e) = written {
                    return fail(format!("cannot write {}: {e}", path.display()));
                }
            }
            println!("{}", pending.instructions);
            if let Ok(code) = qr::terminal(&uri) {
                println!("{code}");
            }
            println!("{uri}");
            confirm_interactively(app, &p, &pending.id).await
        }
        MfaCommand::List => {
            let rows = match openpsm_gateway::workflow::mfa::list(&app.store).await {
                Ok(rows) => rows,
                Err(e) => return fail(e),
            };
            let now = unix_now();
            for (person, provider, at) in rows {
                let login = person
                    .parse()
                    .ok()
                    .and_then(|id| app.directory.person(&id))
                    .map(|p| p.login.clone())
                    .unwrap_or_default();
                let locked = match person.parse() {
                    Ok(id) => lockout::locked_until(&app.store, &id, now)
                        .await
                        .ok()
                        .flatten(),
                    Err(_) => None,
                };
                let state = locked.map_or("ok".to_owned(), |u| format!("locked for {}s", u - now));
                println!("{person}\t{login}\t{provider}\tenrolled {at}\t{state}");
            }
            ExitCode::SUCCESS
        }
        MfaCommand::Remove {
            person,
            provider: id,
        } => {
            let person = match enrolment::find_person(app, &person) {
                Ok(p) => p,
                Err(e) => return fail(e),
            };
            match enrolment::remove(app, &person, &id, &admin).await {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => fail(format!("{person} is not enrolled for {id}")),
                Err(e) => fail(e),
            }
        }
        MfaCommand::Unlock { person } => {
            let person = match enrolment::find_person(app, &person) {
                Ok(p) => p,
                Err(e) => return fail(e),
            };
            let now = unix_now();
            match lockout::unlock(&app.store, &person, now).await {
                Ok(true) => {
                    let event = AuditEvent {
                        actor: person.to_string(),
                        event: "mfa.unlocked".into(),
                        detail: json!({"by": admin}),
                    };
                    match app.store.audit_append(now, &event).await {
                        Ok(_) => ExitCode::SUCCESS,
                        Err(e) => fail(e),
                    }
                }
                Ok(false) => fail(format!("{person} is not locked")),
                Err(e) => fail(e),
            }
        }
    }
}

/// Reads codes from standard input until one is right, the enrolment is void, or input ends.
async fn confirm_interactively(app: &App, p: &Arc<dyn MfaProvider>, id: &str) -> ExitCode {
    let stdin = std::io::stdin();
    loop {
        eprint!("Code from the app: ");
        let _ = std::io::stderr().flush();
        let _ = std::io::stdout().flush();
        let mut line = String::new();
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => {
                let _ = enrolment::cancel(app, id).await;
                return fail("no code given: the enrolment was not saved");
            }
            Ok(_) => {}
        }
        match enrolment::confirm(app, p, id, &SecretText::new(line.trim())).await {
            Ok(Confirmation::Enrolled) => {
                println!("enrolled");
                return ExitCode::SUCCESS;
            }
            Ok(Confirmation::Wrong { attempts_left }) => {
                eprintln!("That code was not accepted ({attempts_left} tries left).");
            }
            Ok(Confirmation::Void) => {
                return fail("too many wrong codes: the enrolment was not saved");
            }
            Err(e) => return fail(e),
        }
    }
}

fn whoami() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into())
}
