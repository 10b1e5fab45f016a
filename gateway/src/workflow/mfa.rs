//! MFA enrolments kept by the host: the provider's secret per person, sealed with the vault key.

use openpsm_plugin_api::{EnrolledSecret, SecretText};
use sqlx::Row as _;
use uuid::Uuid;

use crate::keys::Key256;
use crate::store::{Store, StoreError, unix_now};
use crate::vault::crypto;

fn aad(person: &Uuid, provider: &str) -> String {
    format!("mfa:{person}:{provider}")
}

pub async fn enrolled(
    store: &Store,
    key: &Key256,
    person: &Uuid,
    provider: &str,
) -> Result<Option<EnrolledSecret>, StoreError> {
    let row = sqlx::query("SELECT sealed FROM mfa_enrollments WHERE person = $1 AND provider = $2")
        .bind(person.to_string())
        .bind(provider)
        .fetch_optional(store.pool())
        .await?;
    let Some(row) = row else { return Ok(None) };
    let sealed: String = row.try_get("sealed")?;
    let plain = crypto::open(&key.0, &aad(person, provider), &sealed).map_err(|_| {
        StoreError::Corrupt(format!(
            "MFA enrolment of {person} for {provider} cannot be opened"
        ))
    })?;
    Ok(Some(EnrolledSecret(SecretText::new(plain.as_str()))))
}

pub async fn save(
    store: &Store,
    key: &Key256,
    person: &Uuid,
    provider: &str,
    secret: &EnrolledSecret,
) -> Result<(), StoreError> {
    let sealed = crypto::seal(&key.0, &aad(person, provider), secret.0.expose_secret())
        .map_err(|_| StoreError::Corrupt("cannot seal an MFA secret".into()))?;
    let pool = store.pool();
    sqlx::query("DELETE FROM mfa_enrollments WHERE person = $1 AND provider = $2")
        .bind(person.to_string())
        .bind(provider)
        .execute(pool)
        .await?;
    sqlx::query("INSERT INTO mfa_enrollments (person, provider, sealed, created_at) VALUES ($1, $2, $3, $4)")
        .bind(person.to_string())
        .bind(provider)
        .bind(sealed)
        .bind(unix_now())
        .execute(pool)
        .await?;
    Ok(())
}

/// Deletes a person's enrolment for `provider`. True if there was one.
pub async fn remove(store: &Store, person: &Uuid, provider: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM mfa_enrollments WHERE person = $1 AND provider = $2")
        .bind(person.to_string())
        .bind(provider)
        .execute(store.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Every enrolment: (person, provider, created_at).
pub async fn list(store: &Store) -> Result<Vec<(String, String, i64)>, StoreError> {
    let rows = sqlx::query(
        "SELECT person, provider, created_at FROM mfa_enrollments ORDER BY person, provider",
    )
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("person")?,
                r.try_get("provider")?,
                r.try_get("created_at")?,
            ))
        })
        .collect()
}
