//! The store on both engines: SQLite always, PostgreSQL when `PSM_TEST_POSTGRES_URL` names a
//! server (scripts/test.sh starts one; under CI it must be there).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use super::*;

pub(crate) struct TestStore {
    pub store: Store,
    _dir: Option<tempfile::TempDir>,
}

/// A fresh store on each engine available.
pub(crate) async fn engines() -> Vec<TestStore> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("openpsm.db").display());
    let mut out = vec![TestStore {
        store: Store::open(&url).await.unwrap(),
        _dir: Some(dir),
    }];
    match std::env::var("PSM_TEST_POSTGRES_URL") {
        Ok(base) => out.push(TestStore {
            store: fresh_postgres(&base).await,
            _dir: None,
        }),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!(
                "PSM_TEST_POSTGRES_URL is not set: run the tests through scripts/test.sh, which starts PostgreSQL"
            )
        }
        Err(_) => eprintln!(
            "note: PSM_TEST_POSTGRES_URL not set, PostgreSQL part skipped (scripts/test.sh sets it)"
        ),
    }
    out
}

/// A new, empty database on the test server.
async fn fresh_postgres(base: &str) -> Store {
    install_default_drivers();
    let name = format!("openpsm_test_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::AnyPool::connect(&format!("{base}/postgres"))
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let store = Store::open(&format!("{base}/{name}")).await.unwrap();
    assert_eq!(store.engine(), Engine::Postgres);
    store
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_are_idempotent_and_checked() {
    for t in engines().await {
        migrations::run(&t.store).await.unwrap();
        t.store.ping().await.unwrap();
        sqlx::query("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
            .execute(t.store.pool())
            .await
            .unwrap();
        let err = migrations::run(&t.store).await.unwrap_err();
        assert!(err.to_string().contains("differs"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_time_ids_are_used_once() {
    for t in engines().await {
        let s = &t.store;
        assert!(s.consume_once("nonce", "n-1", 100).await.unwrap());
        assert!(!s.consume_once("nonce", "n-1", 100).await.unwrap());
        assert!(
            s.consume_once("token", "n-1", 100).await.unwrap(),
            "kinds are separate"
        );
        assert_eq!(s.purge_consumed(101).await.unwrap(), 2);
        assert!(s.consume_once("nonce", "n-1", 300).await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn leases_are_exclusive_until_released_or_expired() {
    for t in engines().await {
        let s = &t.store;
        assert!(s.acquire_lease("c1", "flow-a", 10, 100).await.unwrap());
        assert!(!s.acquire_lease("c1", "flow-b", 20, 200).await.unwrap());
        assert_eq!(
            s.lease_holder("c1", 20).await.unwrap().as_deref(),
            Some("flow-a")
        );
        assert!(
            s.acquire_lease("c1", "flow-a", 30, 150).await.unwrap(),
            "the holder may extend"
        );
        assert!(!s.release_lease("c1", "flow-b").await.unwrap());
        assert!(s.release_lease("c1", "flow-a").await.unwrap());
        assert!(s.acquire_lease("c1", "flow-b", 40, 50).await.unwrap());
        assert!(
            s.acquire_lease("c1", "flow-c", 50, 90).await.unwrap(),
            "an expired lease can be taken"
        );
        assert_eq!(
            s.leases(60).await.unwrap(),
            vec![("c1".to_owned(), "flow-c".to_owned())]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_racers_two_credentials_two_winners() {
    for t in engines().await {
        let s = Arc::new(t.store.clone());
        let racers = (0..50).map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                for cred in ["shared-1", "shared-2"] {
                    if s.acquire_lease(cred, &format!("flow-{i}"), 1, 1000)
                        .await
                        .unwrap()
                    {
                        return Some(cred);
                    }
                }
                None
            })
        });
        let won: Vec<_> = futures::future::join_all(racers)
            .await
            .into_iter()
            .filter_map(|r| r.unwrap())
            .collect();
        assert_eq!(won.len(), 2, "{won:?}");
        assert!(won.contains(&"shared-1") && won.contains(&"shared-2"));
    }
}

fn ev(i: usize) -> AuditEvent {
    AuditEvent {
        actor: format!("person-{i}"),
        event: "flow.step".into(),
        detail: serde_json::json!({"i": i}),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_chain_detects_edits_inserts_deletes_and_reorders() {
    for t in engines().await {
        let s = &t.store;
        for i in 1..=10 {
            s.audit_append(1000 + i as i64, &ev(i)).await.unwrap();
        }
        let ok = s.audit_verify().await.unwrap();
        assert!(ok.problems.is_empty(), "{:?}", ok.problems);
        assert_eq!(ok.entries, 10);
        let pool = s.pool();

        // Edited.
        sqlx::query("UPDATE audit SET detail = '{\"i\":99}' WHERE seq = 4")
            .execute(pool)
            .await
            .unwrap();
        let v = s.audit_verify().await.unwrap();
        assert_eq!(v.problems, vec![ChainProblem::Edited { seq: 4 }]);
        sqlx::query("UPDATE audit SET detail = '{\"i\":4}' WHERE seq = 4")
            .execute(pool)
            .await
            .unwrap();
        assert!(s.audit_verify().await.unwrap().problems.is_empty());

        // Reordered: two entries swap their content.
        let rows = s.audit_entries(0, 100).await.unwrap();
        let (a, b) = (&rows[2], &rows[6]);
        for (seq, from) in [(a.seq, b), (b.seq, a)] {
            sqlx::query("UPDATE audit SET actor = $1, detail = $2, at = $3 WHERE seq = $4")
                .bind(&from.actor)
                .bind(&from.detail)
                .bind(from.at)
                .bind(seq)
                .execute(pool)
                .await
                .unwrap();
        }
        let v = s.audit_verify().await.unwrap();
        assert!(
            v.problems.contains(&ChainProblem::Edited { seq: a.seq }),
            "{:?}",
            v.problems
        );
        assert!(
            v.problems.contains(&ChainProblem::Edited { seq: b.seq }),
            "{:?}",
            v.problems
        );
        for e in [a, b] {
            sqlx::query("UPDATE audit SET actor = $1, detail = $2, at = $3 WHERE seq = $4")
                .bind(&e.actor)
                .bind(&e.detail)
                .bind(e.at)
                .bind(e.seq)
                .execute(pool)
                .await
                .unwrap();
        }
        assert!(s.audit_verify().await.unwrap().problems.is_empty());

        // Deleted from the middle.
        sqlx::query("DELETE FROM audit WHERE seq = 5")
            .execute(pool)
            .await
            .unwrap();
        let v = s.audit_verify().await.unwrap();
        assert!(
            v.problems
                .contains(&ChainProblem::Gap { after: 4, next: 6 }),
            "{:?}",
            v.problems
        );
        assert!(
            v.problems.contains(&ChainProblem::Broken { seq: 6 }),
            "{:?}",
            v.problems
        );

        // Inserted: a forged entry with a valid hash of its own in the gap still breaks the next link.
        let prev = &rows[3];
        let hash = audit::entry_hash(&prev.hash, 5, 1, "intruder", "flow.step", "{}");
        sqlx::query("INSERT INTO audit (seq, at, actor, event, detail, prev_hash, hash) VALUES (5, 1, 'intruder', 'flow.step', '{}', $1, $2)")
            .bind(&prev.hash)
            .bind(&hash)
            .execute(pool)
            .await
            .unwrap();
        let v = s.audit_verify().await.unwrap();
        assert_eq!(v.problems, vec![ChainProblem::Broken { seq: 6 }]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_appends_keep_one_chain() {
    for t in engines().await {
        let s = Arc::new(t.store.clone());
        let writers = (0..40).map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.audit_append(i as i64, &ev(i)).await.unwrap() })
        });
        futures::future::join_all(writers).await;
        let v = s.audit_verify().await.unwrap();
        assert!(v.problems.is_empty(), "{:?}", v.problems);
        assert_eq!(v.entries, 40);
        assert_eq!(v.head.map(|(seq, _)| seq), Some(40));
    }
}
