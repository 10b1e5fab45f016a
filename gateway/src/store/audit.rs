//! The audit log as a hash chain. Each entry's hash covers the previous entry's hash and all of
//! its own fields, so `verify` finds an edited, inserted, deleted or reordered entry.
//!
//! What a chain alone cannot show: entries cut off at the end (the last entries deleted). The
//! count and head hash printed by `openpsm audit verify` are what to keep elsewhere to notice that.

use serde::Serialize;
use sha2::{Digest as _, Sha256};
use sqlx::Row as _;

use super::{Store, StoreError, is_unique_violation};

/// The previous hash of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Something to record. `detail` must never hold a secret.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub actor: String,
    pub event: String,
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub event: String,
    /// JSON text.
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// What `verify` found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "problem")]
pub enum ChainProblem {
    /// The entry's fields do not give its hash: it was edited.
    Edited { seq: i64 },
    /// The entry does not follow the one before it: something was inserted, deleted or moved.
    Broken { seq: i64 },
    /// Sequence numbers jump: entries between were deleted.
    Gap { after: i64, next: i64 },
}

impl std::fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Edited { seq } => write!(
                f,
                "entry {seq} was edited (its hash does not match its content)"
            ),
            Self::Broken { seq } => write!(
                f,
                "entry {seq} does not follow the entry before it (inserted, deleted or reordered)"
            ),
            Self::Gap { after, next } => {
                write!(f, "entries between {after} and {next} are missing")
            }
        }
    }
}

/// The result of a verification.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub entries: u64,
    pub head: Option<(i64, String)>,
    pub problems: Vec<ChainProblem>,
}

fn field(out: &mut Vec<u8>, value: &str) {
    out.extend_from_slice(value.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

/// The hash of an entry: SHA-256 over length-prefixed fields (no two entries encode alike).
pub fn entry_hash(
    prev_hash: &str,
    seq: i64,
    at: i64,
    actor: &str,
    event: &str,
    detail: &str,
) -> String {
    let mut data = Vec::with_capacity(128 + detail.len());
    field(&mut data, prev_hash);
    field(&mut data, &seq.to_string());
    field(&mut data, &at.to_string());
    field(&mut data, actor);
    field(&mut data, event);
    field(&mut data, detail);
    Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn entry_from_row(row: &sqlx::any::AnyRow) -> Result<AuditEntry, sqlx::Error> {
    Ok(AuditEntry {
        seq: row.try_get("seq")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        event: row.try_get("event")?,
        detail: row.try_get("detail")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

const PAGE: i64 = 1000;

impl Store {
    /// Appends one entry at time `at`. Concurrent appends (also from other nodes) are ordered by
    /// the sequence number's uniqueness: the loser reads the new head and tries again.
    pub async fn audit_append(
        &self,
        at: i64,
        event: &AuditEvent,
    ) -> Result<AuditEntry, StoreError> {
        let detail = event.detail.to_string();
        for _ in 0..100 {
            let head = sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
                .fetch_optional(self.pool())
                .await?;
            let (prev_seq, prev_hash) = match head {
                Some(row) => (
                    row.try_get::<i64, _>("seq")?,
                    row.try_get::<String, _>("hash")?,
                ),
                None => (0, GENESIS.to_owned()),
            };
            let seq = prev_seq + 1;
            let hash = entry_hash(&prev_hash, seq, at, &event.actor, &event.event, &detail);
            let inserted = sqlx::query(
                "INSERT INTO audit (seq, at, actor, event, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(seq)
            .bind(at)
            .bind(&event.actor)
            .bind(&event.event)
            .bind(&detail)
            .bind(&prev_hash)
            .bind(&hash)
            .execute(self.pool())
            .await;
            match inserted {
                Ok(_) => {
                    return Ok(AuditEntry {
                        seq,
                        at,
                        actor: event.actor.clone(),
                        event: event.event.clone(),
                        detail,
                        prev_hash,
                        hash,
                    });
                }
                Err(e) if is_unique_violation(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Corrupt(
            "could not append to the audit log after 100 tries".into(),
        ))
    }

    /// Entries with `seq > after`, at most `limit`, in order.
    pub async fn audit_entries(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, event, detail, prev_hash, hash FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(entry_from_row)
            .collect::<Result<_, _>>()
            .map_err(StoreError::from)
    }

    /// Walks the whole chain and reports every problem.
    pub async fn audit_verify(&self) -> Result<Verification, StoreError> {
        let mut problems = Vec::new();
        let mut entries = 0u64;
        let mut last: Option<(i64, String)> = None;
        loop {
            let after = last.as_ref().map_or(i64::MIN, |(seq, _)| *seq);
            let page = self.audit_entries(after, PAGE).await?;
            if page.is_empty() {
                break;
            }
            for e in page {
                entries += 1;
                let expected_prev = last.as_ref().map_or(GENESIS, |(_, h)| h.as_str());
                let expected_seq = last.as_ref().map_or(1, |(seq, _)| seq + 1);
                if e.seq != expected_seq {
                    problems.push(ChainProblem::Gap {
                        after: expected_seq - 1,
                        next: e.seq,
                    });
                }
                if e.prev_hash != expected_prev {
                    problems.push(ChainProblem::Broken { seq: e.seq });
                }
                if entry_hash(&e.prev_hash, e.seq, e.at, &e.actor, &e.event, &e.detail) != e.hash {
                    problems.push(ChainProblem::Edited { seq: e.seq });
                }
                last = Some((e.seq, e.hash));
            }
        }
        Ok(Verification {
            entries,
            head: last,
            problems,
        })
    }
}
