//! Ending a session at the credential source (the seed's endsession) so that no end is lost: the
//! request is written to the store (sealed: it carries the IAM access token) before the first try
//! and stays there until the source confirms it or the retry rules give up. Every node's retry loop
//! takes due ends (claiming each so only one node tries it at a time), so a restart or a crash
//! finishes what was pending. The seed's rules: a 401 is tried up to 7 times in all; other errors
//! are tried again with exponential backoff (`credentials.end_retry_secs` doubling up to
//! `end_retry_max_secs`) until `end_give_up_secs` after the end. Every give-up is audited.

use openpsm_plugin_api::{EndSession, ErrorKind};
use serde_json::json;
use sqlx::Row as _;
use uuid::Uuid;

use super::{Engine, FlowError, internal};
use crate::config::CredentialsConfig;
use crate::store::unix_now;
use crate::vault::crypto;

/// The seed's 401 rule: at most this many tries in all.
pub const UNAUTHORIZED_TRIES: u32 = 7;
/// How long a node holds a claimed end before another node may try it (a node that died while
/// trying must not block it for ever).
const CLAIM_SECS: i64 = 120;

/// Failed tries so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tries {
    pub unauthorized: u32,
    pub others: u32,
}

/// What to do after a failed try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    RetryAt(i64),
    GiveUp,
}

/// The retry rules, as a pure function of the failure, the tries so far (this one included), the
/// time, and when the end was first asked for.
pub fn after_failure(
    kind: ErrorKind,
    tries: Tries,
    now: i64,
    created_at: i64,
    c: &CredentialsConfig,
) -> Next {
    let base = i64::try_from(c.end_retry_secs).unwrap_or(5);
    if kind == ErrorKind::Unauthorized {
        return if tries.unauthorized >= UNAUTHORIZED_TRIES {
            Next::GiveUp
        } else {
            Next::RetryAt(now + base)
        };
    }
    let give_up_at = created_at.saturating_add(i64::try_from(c.end_give_up_secs).unwrap_or(86_400));
    if now >= give_up_at {
        return Next::GiveUp;
    }
    let max = i64::try_from(c.end_retry_max_secs).unwrap_or(600);
    let doublings = tries.others.saturating_sub(1).min(30);
    let delay = base.saturating_mul(1_i64 << doublings).min(max);
    Next::RetryAt((now + delay).min(give_up_at))
}

fn aad(session: &Uuid) -> String {
    format!("pending-end:{session}")
}

impl Engine {
    /// Records the end of `end.session` at the source and tries it once now; what fails is
    /// retried by [`Engine::retry_pending_ends`].
    pub(crate) async fn end_at_source(
        &self,
        end: &EndSession,
        person: &Uuid,
        flow: &str,
    ) -> Result<(), FlowError> {
        let plain = serde_json::to_string(end).map_err(internal)?;
        let sealed = crypto::seal(&self.app.keys.vault.0, &aad(&end.session), &plain)
            .map_err(|_| internal("cannot seal an end request"))?;
        let now = unix_now();
        sqlx::query(
            "INSERT INTO pending_ends (session, person, flow, sealed, unauthorized, others, next_at, created_at) \
             VALUES ($1, $2, $3, $4, 0, 0, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(end.session.to_string())
        .bind(person.to_string())
        .bind(flow)
        .bind(sealed)
        .bind(now + CLAIM_SECS)
        .bind(now)
        .execute(self.app.store.pool())
        .await
        .map_err(internal)?;
        self.try_end(&end.session.to_string(), now + CLAIM_SECS)
            .await
    }

    /// Tries every due pending end once (those another node holds excepted). Returns how many
    /// were tried.
    pub async fn retry_pending_ends(&self) -> Result<usize, FlowError> {
        let now = unix_now();
        let due = sqlx::query("SELECT session, next_at FROM pending_ends WHERE next_at <= $1 ORDER BY next_at LIMIT 100")
            .bind(now)
            .fetch_all(self.app.store.pool())
            .await
            .map_err(internal)?;
        let mut tried = 0;
        for row in due {
            let session: String = row.try_get("session").map_err(internal)?;
            let was: i64 = row.try_get("next_at").map_err(internal)?;
            // Claim it: only the node whose update matched the old time tries.
            let claimed = sqlx::query(
                "UPDATE pending_ends SET next_at = $1 WHERE session = $2 AND next_at = $3",
            )
            .bind(now + CLAIM_SECS)
            .bind(&session)
            .bind(was)
            .execute(self.app.store.pool())
            .await
            .map_err(internal)?;
            if claimed.rows_affected() == 1 {
                self.try_end(&session, now + CLAIM_SECS).await?;
                tried += 1;
            }
        }
        Ok(tried)
    }

    /// One try of a claimed pending end (its `next_at` is `claim`).
    async fn try_end(&self, session: &str, claim: i64) -> Result<(), FlowError> {
        let pool = self.app.store.pool();
        let Some(row) = sqlx::query("SELECT person, flow, sealed, unauthorized, others, created_at FROM pending_ends WHERE session = $1 AND next_at = $2")
            .bind(session)
            .bind(claim)
            .fetch_optional(pool)
            .await
            .map_err(internal)?
        else {
            return Ok(());
        };
        let get_i64 = |name: &str| row.try_get::<i64, _>(name).map_err(internal);
        let person: Uuid = row
            .try_get::<String, _>("person")
            .map_err(internal)?
            .parse()
            .unwrap_or_default();
        let flow: String = row.try_get("flow").map_err(internal)?;
        let sealed: String = row.try_get("sealed").map_err(internal)?;
        let session_id: Uuid = session.parse().map_err(internal)?;
        let end: EndSession = crypto::open(&self.app.keys.vault.0, &aad(&session_id), &sealed)
            .ok()
            .and_then(|plain| serde_json::from_str(&plain).ok())
            .ok_or_else(|| internal(format!("pending end {session} cannot be opened")))?;
        let mut tries = Tries {
            unauthorized: u32::try_from(get_i64("unauthorized")?).unwrap_or(0),
            others: u32::try_from(get_i64("others")?).unwrap_or(0),
        };
        let created_at = get_i64("created_at")?;
        let result = self.source()?.end_session(end).await;
        let now = unix_now();
        let total = tries.unauthorized + tries.others + 1;
        let error = match result {
            Ok(()) => {
                self.forget_end(session).await?;
                self.audit(
                    &person,
                    "session.ended_at_source",
                    json!({"session": session, "flow": flow, "tries": total}),
                )
                .await?;
                return Ok(());
            }
            Err(e) => e,
        };
        if error.kind == ErrorKind::Unauthorized {
            tries.unauthorized += 1;
        } else {
            tries.others += 1;
        }
        tracing::warn!(
            session,
            tries = total,
            "ending the session at the credential source failed: {error}"
        );
        match after_failure(
            error.kind,
            tries,
            now,
            created_at,
            &self.app.config.credentials,
        ) {
            Next::RetryAt(at) => {
                sqlx::query("UPDATE pending_ends SET unauthorized = $1, others = $2, next_at = $3 WHERE session = $4")
                    .bind(i64::from(tries.unauthorized))
                    .bind(i64::from(tries.others))
                    .bind(at)
                    .bind(session)
                    .execute(pool)
                    .await
                    .map_err(internal)?;
                self.audit(
                    &person,
                    "session.end_at_source_failed",
                    json!({"session": session, "flow": flow, "tries": total, "kind": error.kind, "retry_at": at}),
                )
                .await
            }
            Next::GiveUp => {
                self.forget_end(session).await?;
                self.audit(
                    &person,
                    "session.end_at_source_abandoned",
                    json!({"session": session, "flow": flow, "tries": total, "kind": error.kind}),
                )
                .await
            }
        }
    }

    async fn forget_end(&self, session: &str) -> Result<(), FlowError> {
        sqlx::query("DELETE FROM pending_ends WHERE session = $1")
            .bind(session)
            .execute(self.app.store.pool())
            .await
            .map_err(internal)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> CredentialsConfig {
        CredentialsConfig {
            source: "empowerid".into(),
            end_retry_secs: 5,
            end_retry_max_secs: 60,
            end_give_up_secs: 3600,
        }
    }

    #[test]
    fn a_401_is_tried_seven_times_in_all() {
        let c = config();
        for n in 1..UNAUTHORIZED_TRIES {
            let tries = Tries {
                unauthorized: n,
                others: 0,
            };
            assert_eq!(
                after_failure(ErrorKind::Unauthorized, tries, 1000, 1000, &c),
                Next::RetryAt(1005)
            );
        }
        let seventh = Tries {
            unauthorized: 7,
            others: 2,
        };
        assert_eq!(
            after_failure(ErrorKind::Unauthorized, seventh, 1000, 1000, &c),
            Next::GiveUp
        );
    }

    #[test]
    fn other_errors_back_off_until_the_give_up_time() {
        let c = config();
        let delays: Vec<Next> = (1..=6)
            .map(|n| {
                after_failure(
                    ErrorKind::Internal,
                    Tries {
                        unauthorized: 0,
                        others: n,
                    },
                    1000,
                    1000,
                    &c,
                )
            })
            .collect();
        assert_eq!(
            delays,
            [1005, 1010, 1020, 1040, 1060, 1060].map(Next::RetryAt)
        );
        let late = Tries {
            unauthorized: 0,
            others: 40,
        };
        assert_eq!(
            after_failure(ErrorKind::Unreachable, late, 1000 + 3590, 1000, &c),
            Next::RetryAt(1000 + 3600),
            "never past the give-up time"
        );
        assert_eq!(
            after_failure(ErrorKind::Unreachable, late, 1000 + 3600, 1000, &c),
            Next::GiveUp
        );
    }
}
