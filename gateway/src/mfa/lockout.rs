//! Brute-force protection for MFA, per person across flows and gateway nodes: every wrong code is
//! recorded (and audited); `max_failures` within `failure_window_secs` lock MFA for the person for
//! `lockout_secs` (audited). Failures from before the last lock ended do not count again.

use serde_json::json;
use sqlx::Row as _;
use uuid::Uuid;

use crate::config::MfaConfig;
use crate::store::{AuditEvent, Store, StoreError};

const KIND: &str = "mfa";

/// The end (unix seconds) of the person's MFA lock, if one is in force at `now`.
pub async fn locked_until(
    store: &Store,
    person: &Uuid,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let row = sqlx::query("SELECT until_at FROM mfa_locks WHERE person = $1")
        .bind(person.to_string())
        .fetch_optional(store.pool())
        .await?;
    let until = match row {
        Some(row) => row.try_get::<i64, _>("until_at")?,
        None => return Ok(None),
    };
    Ok((until > now).then_some(until))
}

/// Why a response was not accepted (recorded in the audit log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Wrong,
    Replayed,
    ProviderError,
}

impl Failure {
    fn as_str(self) -> &'static str {
        match self {
            Self::Wrong => "wrong",
            Self::Replayed => "replayed",
            Self::ProviderError => "provider_error",
        }
    }
}

/// Records one failure, audits it, and locks the person when the limit is reached. Returns the
/// end of the lock when this failure caused one.
pub async fn record_failure(
    store: &Store,
    config: &MfaConfig,
    person: &Uuid,
    provider: &str,
    why: Failure,
    flow: Option<&str>,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let subject = person.to_string();
    store.record_failure(KIND, &subject, now).await?;
    let previous_lock_end = sqlx::query("SELECT until_at FROM mfa_locks WHERE person = $1")
        .bind(&subject)
        .fetch_optional(store.pool())
        .await?
        .map(|row| row.try_get::<i64, _>("until_at"))
        .transpose()?
        .unwrap_or(i64::MIN);
    let window_start =
        now.saturating_sub(i64::try_from(config.failure_window_secs).unwrap_or(i64::MAX));
    let since = window_start.max(previous_lock_end);
    let failures = store.failures_since(KIND, &subject, since).await?;
    store
        .audit_append(
            now,
            &AuditEvent {
                actor: subject.clone(),
                event: "mfa.failed".into(),
                detail: json!({"provider": provider, "reason": why.as_str(), "flow": flow, "failures_in_window": failures}),
            },
        )
        .await?;
    if failures < i64::from(config.max_failures) {
        return Ok(None);
    }
    let until = now.saturating_add(i64::try_from(config.lockout_secs).unwrap_or(i64::MAX));
    sqlx::query("DELETE FROM mfa_locks WHERE person = $1")
        .bind(&subject)
        .execute(store.pool())
        .await?;
    sqlx::query("INSERT INTO mfa_locks (person, until_at, created_at) VALUES ($1, $2, $3)")
        .bind(&subject)
        .bind(until)
        .bind(now)
        .execute(store.pool())
        .await?;
    store
        .audit_append(
            now,
            &AuditEvent {
                actor: subject,
                event: "mfa.locked".into(),
                detail: json!({"provider": provider, "until": until, "failures": failures, "flow": flow}),
            },
        )
        .await?;
    Ok(Some(until))
}

/// Lifts a lock early (an administrator's decision, audited by the caller). True if there was one.
pub async fn unlock(store: &Store, person: &Uuid, now: i64) -> Result<bool, StoreError> {
    let done =
        sqlx::query("UPDATE mfa_locks SET until_at = $1 WHERE person = $2 AND until_at > $1")
            .bind(now)
            .bind(person.to_string())
            .execute(store.pool())
            .await?;
    Ok(done.rows_affected() > 0)
}
