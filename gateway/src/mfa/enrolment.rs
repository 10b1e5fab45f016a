//! Enrolment: the provider creates a secret, the person sees it once (otpauth URI and QR code),
//! and it counts only when a first valid code confirms it. Until then it waits in `mfa_pending`
//! (sealed), reachable through an unguessable id (the enrolment link) that expires and is void
//! after too many wrong codes. Confirming replaces an earlier enrolment of the same provider.

use std::sync::Arc;
use std::time::SystemTime;

use openpsm_plugin_api::{EnrolledSecret, MfaProvider, PluginError, SecretText, Subject, Verdict};
use rand::RngCore as _;
use serde_json::json;
use sqlx::Row as _;
use uuid::Uuid;

use crate::app::App;
use crate::store::{AuditEvent, StoreError, unix_now};
use crate::vault::crypto;
use crate::workflow::mfa as stored;

#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    #[error("no person {0} in the directory")]
    UnknownPerson(String),
    #[error("no active MFA provider `{0}`")]
    UnknownProvider(String),
    #[error(
        "this enrolment link is not valid (it expired, was used, or had too many wrong codes); ask for a new one"
    )]
    NotFound,
    #[error("the MFA provider failed: {0}")]
    Provider(#[from] PluginError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the enrolment cannot be sealed or opened")]
    Crypto,
}

/// An enrolment waiting for its first code.
pub struct Pending {
    pub id: String,
    pub person: Uuid,
    pub login: String,
    pub provider: String,
    /// What to show once: for TOTP the otpauth URI (it contains the key).
    pub reveal: SecretText,
    pub instructions: String,
    pub expires_at: i64,
}

/// What a first code did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    Enrolled,
    Wrong {
        attempts_left: u32,
    },
    /// Too many wrong codes: the pending enrolment is gone.
    Void,
}

fn aad(id: &str, person: &Uuid, provider: &str, what: &str) -> String {
    format!("mfa-pending:{id}:{person}:{provider}:{what}")
}

fn subject(app: &App, person: &Uuid) -> Result<Subject, EnrolError> {
    let p = app
        .directory
        .person(person)
        .ok_or_else(|| EnrolError::UnknownPerson(person.to_string()))?;
    Ok(Subject {
        person: *person,
        login: p.login.clone(),
        display_name: p.name.clone(),
    })
}

/// A person by id or login name.
pub fn find_person(app: &App, who: &str) -> Result<Uuid, EnrolError> {
    if let Ok(id) = who.parse::<Uuid>()
        && app.directory.person(&id).is_some()
    {
        return Ok(id);
    }
    app.directory
        .persons()
        .find(|p| p.login == who)
        .map(|p| p.id)
        .ok_or_else(|| EnrolError::UnknownPerson(who.to_owned()))
}

async fn audit(
    app: &App,
    person: &Uuid,
    event: &str,
    detail: serde_json::Value,
) -> Result<(), EnrolError> {
    app.store
        .audit_append(
            unix_now(),
            &AuditEvent {
                actor: person.to_string(),
                event: event.to_owned(),
                detail,
            },
        )
        .await?;
    Ok(())
}

/// Creates a pending enrolment of `person` with `provider`. `by` names who asked (audit).
pub async fn begin(
    app: &App,
    provider_id: &str,
    provider: &Arc<dyn MfaProvider>,
    person: Uuid,
    by: &str,
) -> Result<Pending, EnrolError> {
    let who = subject(app, &person)?;
    let enrolment = provider.enroll(&who).await?;
    let mut raw = [0u8; 16];
    rand::rng().fill_bytes(&mut raw);
    let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let reveal = enrolment.reveal.unwrap_or_else(|| SecretText::new(""));
    let key = &app.keys.vault.0;
    let sealed = crypto::seal(
        key,
        &aad(&id, &person, provider_id, "secret"),
        enrolment.secret.0.expose_secret(),
    )
    .map_err(|_| EnrolError::Crypto)?;
    let sealed_reveal = crypto::seal(
        key,
        &aad(&id, &person, provider_id, "reveal"),
        reveal.expose_secret(),
    )
    .map_err(|_| EnrolError::Crypto)?;
    let now = unix_now();
    let expires_at =
        now.saturating_add(i64::try_from(app.config.mfa.enrolment_ttl_secs).unwrap_or(i64::MAX));
    sqlx::query(
        "INSERT INTO mfa_pending (id, person, provider, sealed, reveal, failures, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, 0, $6, $7)",
    )
    .bind(&id)
    .bind(person.to_string())
    .bind(provider_id)
    .bind(sealed)
    .bind(sealed_reveal)
    .bind(now)
    .bind(expires_at)
    .execute(app.store.pool())
    .await
    .map_err(StoreError::from)?;
    audit(
        app,
        &person,
        "mfa.enrolment_started",
        json!({"provider": provider_id, "by": by, "expires_at": expires_at}),
    )
    .await?;
    Ok(Pending {
        id,
        person,
        login: who.login,
        provider: provider_id.to_owned(),
        reveal,
        instructions: enrolment.instructions,
        expires_at,
    })
}

/// Ids are 32 lower-case hex digits; anything else is refused before the store is asked.
fn well_formed(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The pending enrolment behind `id`, if it exists and has not expired.
pub async fn load(app: &App, id: &str) -> Result<(Pending, EnrolledSecret), EnrolError> {
    if !well_formed(id) {
        return Err(EnrolError::NotFound);
    }
    let row = sqlx::query(
        "SELECT person, provider, sealed, reveal, expires_at FROM mfa_pending WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(app.store.pool())
    .await
    .map_err(StoreError::from)?
    .ok_or(EnrolError::NotFound)?;
    let get = |name: &str| row.try_get::<String, _>(name).map_err(StoreError::from);
    let expires_at: i64 = row.try_get("expires_at").map_err(StoreError::from)?;
    if expires_at <= unix_now() {
        return Err(EnrolError::NotFound);
    }
    let person: Uuid = get("person")?.parse().map_err(|_| EnrolError::NotFound)?;
    let provider = get("provider")?;
    let key = &app.keys.vault.0;
    let secret = crypto::open(key, &aad(id, &person, &provider, "secret"), &get("sealed")?)
        .map_err(|_| EnrolError::Crypto)?;
    let reveal = crypto::open(key, &aad(id, &person, &provider, "reveal"), &get("reveal")?)
        .map_err(|_| EnrolError::Crypto)?;
    let who = subject(app, &person)?;
    Ok((
        Pending {
            id: id.to_owned(),
            person,
            login: who.login,
            provider,
            reveal: SecretText::new(reveal.as_str()),
            instructions: String::new(),
            expires_at,
        },
        EnrolledSecret(SecretText::new(secret.as_str())),
    ))
}

/// Drops a pending enrolment (it was not confirmed).
pub async fn cancel(app: &App, id: &str) -> Result<(), EnrolError> {
    sqlx::query("DELETE FROM mfa_pending WHERE id = $1")
        .bind(id)
        .execute(app.store.pool())
        .await
        .map_err(StoreError::from)?;
    Ok(())
}

/// Checks a first code against the pending enrolment `id`; a valid one makes it the person's
/// enrolment (and its time step is used up, so the same code cannot also pass an MFA step).
pub async fn confirm(
    app: &App,
    provider: &Arc<dyn MfaProvider>,
    id: &str,
    code: &SecretText,
) -> Result<Confirmation, EnrolError> {
    let (pending, secret) = load(app, id).await?;
    let who = subject(app, &pending.person)?;
    let verdict = provider
        .verify(&who, &secret, code, SystemTime::now())
        .await?;
    let accepted = match verdict {
        Verdict::Accepted { step: Some(step) } => {
            let key = format!("{}:{}:{step}", pending.person, pending.provider);
            app.store
                .consume_once("mfa", &key, unix_now() + 86_400 * 366)
                .await?
        }
        Verdict::Accepted { step: None } => true,
        Verdict::Rejected => false,
    };
    if accepted {
        // Only one confirmation wins, even if two arrive at once.
        let claimed = sqlx::query("DELETE FROM mfa_pending WHERE id = $1")
            .bind(id)
            .execute(app.store.pool())
            .await
            .map_err(StoreError::from)?;
        if claimed.rows_affected() != 1 {
            return Err(EnrolError::NotFound);
        }
        stored::save(
            &app.store,
            &app.keys.vault,
            &pending.person,
            &pending.provider,
            &secret,
        )
        .await?;
        audit(
            app,
            &pending.person,
            "mfa.enrolled",
            json!({"provider": pending.provider}),
        )
        .await?;
        return Ok(Confirmation::Enrolled);
    }
    sqlx::query("UPDATE mfa_pending SET failures = failures + 1 WHERE id = $1")
        .bind(id)
        .execute(app.store.pool())
        .await
        .map_err(StoreError::from)?;
    let failures: i64 = sqlx::query("SELECT failures FROM mfa_pending WHERE id = $1")
        .bind(id)
        .fetch_optional(app.store.pool())
        .await
        .map_err(StoreError::from)?
        .map(|r| r.try_get::<i64, _>("failures"))
        .transpose()
        .map_err(StoreError::from)?
        .unwrap_or(i64::MAX);
    let allowed = i64::from(app.config.mfa.enrolment_attempts);
    audit(
        app,
        &pending.person,
        "mfa.enrolment_code_wrong",
        json!({"provider": pending.provider, "failures": failures}),
    )
    .await?;
    if failures >= allowed {
        cancel(app, id).await?;
        audit(
            app,
            &pending.person,
            "mfa.enrolment_void",
            json!({"provider": pending.provider}),
        )
        .await?;
        return Ok(Confirmation::Void);
    }
    Ok(Confirmation::Wrong {
        attempts_left: u32::try_from(allowed - failures).unwrap_or(0),
    })
}

/// Removes a person's enrolment (an administrator's reset). True if there was one.
pub async fn remove(
    app: &App,
    person: &Uuid,
    provider: &str,
    by: &str,
) -> Result<bool, EnrolError> {
    let removed = stored::remove(&app.store, person, provider).await?;
    if removed {
        audit(
            app,
            person,
            "mfa.removed",
            json!({"provider": provider, "by": by}),
        )
        .await?;
    }
    Ok(removed)
}
