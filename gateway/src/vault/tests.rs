#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use openpsm_plugin_api::conformance::{self, credential::CredentialFixture};

use super::*;
use crate::store::tests::engines;

const ALICE: Uuid = Uuid::from_u128(0xa11ce);
const BOB: Uuid = Uuid::from_u128(0xb0b);
const COMPUTER: Uuid = Uuid::from_u128(0xc0);
const CANARY: &str = "Target-Canary-73f1";

fn key() -> Key256 {
    Key256(zeroize::Zeroizing::new([9u8; 32]))
}

fn subject(person: Uuid) -> FlowSubject {
    FlowSubject {
        person,
        computer: COMPUTER,
        computer_id: Some("2331".into()),
        policy: Uuid::nil(),
        login_session_id: None,
        api: None,
        credential_id: None,
        is_personal_cred: None,
        external_credential: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_vault_passes_the_credential_suite_on_both_engines() {
    for t in engines().await {
        let vault = Vault::new(t.store.clone(), key());
        let master = SecretText::new("alice-master-pw");
        vault.set_master_password(ALICE, &master).await.unwrap();
        let personal = vault
            .add(NewCredential {
                computer: COMPUTER,
                label: "alice@server".into(),
                user_name: "alice".into(),
                secret: SecretText::new(CANARY),
                is_key: false,
                personal: Some((ALICE, master.clone())),
            })
            .await
            .unwrap();
        let fixture = CredentialFixture {
            subject: subject(ALICE),
            master_password: master.clone(),
            credential: personal.id.clone(),
            expected_password: SecretText::new(CANARY),
        };
        let report = conformance::credential::check(&vault, &fixture).await;
        assert!(report.passed(), "{report}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_and_personal_rules() {
    for t in engines().await {
        let vault = Vault::new(t.store.clone(), key());
        let alice_pw = SecretText::new("alice-master-pw");
        vault.set_master_password(ALICE, &alice_pw).await.unwrap();
        vault
            .set_master_password(BOB, &SecretText::new("bob-master-pw"))
            .await
            .unwrap();
        assert!(
            vault
                .set_master_password(BOB, &SecretText::new("short"))
                .await
                .is_err()
        );
        let shared = vault
            .add(NewCredential {
                computer: COMPUTER,
                label: "root".into(),
                user_name: "root".into(),
                secret: SecretText::new(CANARY),
                is_key: false,
                personal: None,
            })
            .await
            .unwrap();
        // Wrong master password on the way in: nothing is added.
        let refused = vault
            .add(NewCredential {
                computer: COMPUTER,
                label: "x".into(),
                user_name: "x".into(),
                secret: SecretText::new("y"),
                is_key: false,
                personal: Some((ALICE, SecretText::new("wrong-password"))),
            })
            .await;
        assert!(matches!(refused, Err(VaultError::WrongMasterPassword)));
        assert_eq!(vault.entries(None).await.unwrap().len(), 1);

        let (_, secret) = vault
            .open(&shared.id, BOB, &SecretText::new("bob-master-pw"))
            .await
            .unwrap();
        assert_eq!(secret.expose_secret(), CANARY);
        assert!(matches!(
            vault.open(&shared.id, BOB, &alice_pw).await,
            Err(VaultError::WrongMasterPassword)
        ));
        let nobody = Uuid::from_u128(0xdead);
        assert!(matches!(
            vault.open(&shared.id, nobody, &alice_pw).await,
            Err(VaultError::WrongMasterPassword)
        ));

        let alices = vault
            .add(NewCredential {
                computer: COMPUTER,
                label: "alice".into(),
                user_name: "alice".into(),
                secret: SecretText::new("p"),
                is_key: true,
                personal: Some((ALICE, alice_pw.clone())),
            })
            .await
            .unwrap();
        assert!(matches!(
            vault
                .open(&alices.id, BOB, &SecretText::new("bob-master-pw"))
                .await,
            Err(VaultError::Invalid(_))
        ));
        let bob_sees = vault.list(&subject(BOB)).await.unwrap();
        assert_eq!(bob_sees.len(), 1, "Bob sees the shared one only");
        let alice_sees = vault.list(&subject(ALICE)).await.unwrap();
        assert_eq!(alice_sees.len(), 2);

        // The secret is stored sealed, never in the clear.
        let rows = sqlx::query("SELECT sealed, label, user_name FROM vault_credentials")
            .fetch_all(t.store.pool())
            .await
            .unwrap();
        for row in rows {
            let sealed: String = row.try_get("sealed").unwrap();
            assert!(!sealed.contains(CANARY));
        }
        vault.remove(&alices.id).await.unwrap();
        assert!(matches!(
            vault.remove(&alices.id).await,
            Err(VaultError::NotFound(_))
        ));
    }
}
