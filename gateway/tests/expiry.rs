//! Flows that outlive `flows.ttl_secs` are ended by the sweeper (or when next touched), and give
//! back everything they hold.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::*;
use openpsm_gateway::app::App;
use openpsm_gateway::config::Config;
use openpsm_gateway::plugins::Registry;
use openpsm_gateway::workflow::{Answer, Engine, StepView};
use openpsm_gateway::{messages, startlink, store::unix_now};
use openpsm_plugin_api::SecretText;

const PERSON: &str = "6f1c2b8e-3a4d-4e5f-8a9b-0c1d2e3f4a5b";
const COMPUTER: &str = "11111111-2222-4333-8444-555555555555";
const POLICY: &str = "0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d";

#[tokio::test(flavor = "multi_thread")]
async fn expired_flows_are_ended_and_give_back_their_lease() {
    let s = Scratch::new();
    // The embedded demo directory, with its computer reachable through the example mode.
    let directory = openpsm_gateway::directory::DEMO
        .replace("modes = [\"ssh\"]", "modes = [\"example-raw-tcp\"]");
    let dir = s.write("directory.toml", &directory);
    let file = s.write(
        "gw.toml",
        &format!(
            "data_dir = {:?}\n[directory]\nfile = {:?}\n[plugins.example-raw-tcp]\npath = {:?}\n",
            s.path().join("data").display().to_string(),
            dir.display().to_string(),
            lib("openpsm-example-raw-tcp").display().to_string()
        ),
    );
    let config = Config::load(Some(&file)).unwrap();
    let registry = Arc::new(Registry::load(&config).await.unwrap());
    let app = Arc::new(App::open(config).await.unwrap());
    let person = PERSON.parse().unwrap();
    let master = SecretText::new("demo-master-pw");
    app.vault
        .set_master_password(person, &master)
        .await
        .unwrap();
    app.vault
        .add(openpsm_gateway::vault::NewCredential {
            computer: COMPUTER.parse().unwrap(),
            label: "root".into(),
            user_name: "root".into(),
            secret: SecretText::new("target"),
            is_key: false,
            personal: None,
        })
        .await
        .unwrap();
    let engine = Engine::new(app.clone(), registry);
    let pairs = [
        ("TargetPersonGuid", PERSON.to_owned()),
        ("AccessRequestPolicyID", POLICY.to_owned()),
        ("TargetComputerGuid", COMPUTER.to_owned()),
        ("IsAdvanceMode", "false".to_owned()),
    ];
    let mut flows = Vec::new();
    for _ in 0..2 {
        let link = startlink::sign(
            &pairs,
            &app.keys.link,
            unix_now() + 60,
            &startlink::new_nonce(),
        );
        let started = engine
            .start(&link, "127.0.0.1".parse().unwrap())
            .await
            .unwrap();
        engine
            .answer(
                &started.flow,
                &started.secret,
                Answer::Agreement { accept: true },
            )
            .await
            .unwrap();
        flows.push(started);
    }
    let step = engine
        .answer(
            &flows[0].flow,
            &flows[0].secret,
            Answer::MasterPassword {
                master_password: master.clone(),
            },
        )
        .await
        .unwrap();
    assert!(matches!(step, StepView::Launch { .. }), "{step:?}");
    assert_eq!(app.store.leases(unix_now()).await.unwrap().len(), 1);
    // Both flows reach their end of life.
    let url = format!("sqlite://{}", s.path().join("data/openpsm.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("UPDATE flows SET expires_at = 0")
        .execute(&pool)
        .await
        .unwrap();
    // Touching one ends it at once; the sweeper ends the other.
    let touched = engine.view(&flows[1].flow, &flows[1].secret).await;
    assert!(
        matches!(touched, Err(openpsm_gateway::workflow::FlowError::NotFound)),
        "{touched:?}"
    );
    assert_eq!(engine.sweep().await.unwrap(), 1);
    assert!(
        app.store.leases(unix_now()).await.unwrap().is_empty(),
        "the launched flow's lease is given back"
    );
    let remaining: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM flows")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(remaining, 0);
    let entries = app.store.audit_entries(0, 1000).await.unwrap();
    let expired = entries
        .iter()
        .filter(|e| e.event == "flow.ended" && e.detail.contains(messages::EXPIRED))
        .count();
    assert_eq!(expired, 2, "both ends are audited");
    assert!(app.store.audit_verify().await.unwrap().problems.is_empty());
}
