//! jit-ad against a real Samba AD DC on loopback (scripts/services.sh `start_samba_ad`), LDAPS
//! verified with the test CA: the conformance suite; the account binds with its password and is in
//! its groups; a past accountExpires cannot bind; removal deletes or disables; and every error
//! (OU missing, group missing, bind refused, directory unreachable, name taken) is clear and
//! leaves nothing behind. Each test works in an OU of its own.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use openpsm_plugin_api::{
    AccountProvisioner, ErrorKind, HostContext, JitRequest, PluginInstance, PluginSettings,
    Subject, conformance,
};
use serde_json::{Value, json};
use uuid::Uuid;

struct Ad {
    url: String,
    ca: String,
    bind_dn: String,
    password: String,
    base: String,
}

fn ad() -> Option<Ad> {
    let var = |k: &str| std::env::var(k).ok();
    match (
        var("PSM_TEST_AD_URL"),
        var("PSM_TEST_AD_CA"),
        var("PSM_TEST_AD_BIND_DN"),
        var("PSM_TEST_AD_PASSWORD"),
        var("PSM_TEST_AD_BASE"),
    ) {
        (Some(url), Some(ca), Some(bind_dn), Some(password), Some(base)) => Some(Ad {
            url,
            ca,
            bind_dn,
            password,
            base,
        }),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "PSM_TEST_AD_* missing under CI: run scripts/test.sh"
            );
            eprintln!("note: no Samba AD DC (PSM_TEST_AD_*), skipped");
            None
        }
    }
}

async fn connect(ad: &Ad, dn: &str, password: &str) -> Result<Ldap, ldap3::LdapError> {
    use rustls::pki_types::pem::PemObject as _;
    let pem = std::fs::read(&ad.ca).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let settings = LdapConnSettings::new().set_config(std::sync::Arc::new(config));
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &ad.url).await?;
    ldap3::drive!(conn);
    ldap.simple_bind(dn, password).await?.success()?;
    Ok(ldap)
}

/// An OU of this test's own with two groups in it; deleted (with everything in it) on drop.
struct Scope_ {
    ou: String,
    users: String,
    admins: String,
}

async fn scope(ad: &Ad) -> Scope_ {
    let tag = Uuid::new_v4().simple().to_string()[..8].to_owned();
    let ou = format!("OU=psm-{tag},{}", ad.base);
    let mut ldap = connect(ad, &ad.bind_dn, &ad.password).await.unwrap();
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<HashSet<String>>();
    ldap.add(
        &ou,
        vec![(
            "objectClass".to_string(),
            set(&["top", "organizationalUnit"]),
        )],
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    let group = |name: &str| format!("CN={name}-{tag},{ou}");
    for g in ["users", "admins"] {
        ldap.add(
            &group(g),
            vec![
                ("objectClass".to_string(), set(&["top", "group"])),
                ("sAMAccountName".to_string(), set(&[&format!("{g}-{tag}")])),
            ],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    }
    let _ = ldap.unbind().await;
    Scope_ {
        users: group("users"),
        admins: group("admins"),
        ou,
    }
}

async fn entries(ad: &Ad, base: &str, filter: &str, attrs: Vec<&str>) -> Vec<SearchEntry> {
    let mut ldap = connect(ad, &ad.bind_dn, &ad.password).await.unwrap();
    let found = match ldap
        .search(base, Scope::Subtree, filter, attrs)
        .await
        .unwrap()
        .success()
    {
        Ok((e, _)) => e.into_iter().map(SearchEntry::construct).collect(),
        Err(_) => Vec::new(),
    };
    let _ = ldap.unbind().await;
    found
}

async fn cleanup(ad: &Ad, ou: &str) {
    let mut ldap = connect(ad, &ad.bind_dn, &ad.password).await.unwrap();
    let (all, _) = ldap
        .search(ou, Scope::Subtree, "(objectClass=*)", vec!["1.1"])
        .await
        .unwrap()
        .success()
        .unwrap();
    let mut dns: Vec<String> = all
        .into_iter()
        .map(|e| SearchEntry::construct(e).dn)
        .collect();
    // Children before parents.
    dns.sort_by_key(|d| std::cmp::Reverse(d.len()));
    for dn in dns {
        let _ = ldap.delete(&dn).await;
    }
    let _ = ldap.unbind().await;
}

fn plugin(
    settings: Value,
) -> Result<std::sync::Arc<dyn AccountProvisioner>, openpsm_plugin_api::PluginError> {
    match openpsm_plugin_jit_ad::build(PluginSettings {
        host: HostContext::default(),
        settings,
    })? {
        PluginInstance::AccountProvisioner(p) => Ok(p),
        _ => panic!("not a provisioner"),
    }
}

fn settings(ad: &Ad, ou: &str) -> Value {
    json!({"url": ad.url, "bind_dn": ad.bind_dn, "bind_password": ad.password, "ou": ou,
           "ca_file": ad.ca})
}

fn request(groups: Vec<String>, not_after: SystemTime) -> JitRequest {
    JitRequest {
        person: Subject {
            person: Uuid::new_v4(),
            login: "Alice.Longname".into(),
            display_name: "Alice".into(),
        },
        computer: Uuid::new_v4(),
        session: Uuid::new_v4(),
        groups,
        not_after,
    }
}

fn in_an_hour() -> SystemTime {
    SystemTime::now() + Duration::from_secs(3600)
}

#[tokio::test]
async fn accounts_in_a_real_active_directory() {
    let Some(ad) = ad() else { return };
    let s = scope(&ad).await;
    let p = plugin(settings(&ad, &s.ou)).unwrap();

    let report =
        conformance::provisioner::check(p.as_ref(), &request(vec![s.users.clone()], in_an_hour()))
            .await;
    assert!(report.passed(), "{:?}", report.failures);

    // The account: named after the person within 20 characters, binds with its password, in its
    // groups (by DN and by name), expires with the window, carries the marker.
    let req = request(
        vec![s.users.clone(), format!("admins-{}", &s.ou[7..15])],
        in_an_hour(),
    );
    let account = p.create(req.clone()).await.unwrap();
    assert!(
        account.user_name.starts_with("jit-alice.lon"),
        "{}",
        account.user_name
    );
    assert!(account.user_name.len() <= 20);
    assert_eq!(account.domain.as_deref(), Some("EXAMPLE"));
    let mut own = connect(&ad, &account.account.id, account.password.expose_secret())
        .await
        .expect("the JIT account binds with its password");
    let _ = own.unbind().await;
    let found = entries(
        &ad,
        &account.account.id,
        "(objectClass=user)",
        vec![
            "memberOf",
            "accountExpires",
            "description",
            "userAccountControl",
        ],
    )
    .await;
    let attrs = &found[0].attrs;
    let member_of: HashSet<String> = attrs["memberOf"].iter().map(|g| g.to_lowercase()).collect();
    assert!(
        member_of.contains(&s.users.to_lowercase()) && member_of.contains(&s.admins.to_lowercase()),
        "{member_of:?}"
    );
    assert_eq!(
        attrs["description"],
        [format!("openpsm-jit session={}", req.session)]
    );
    assert_eq!(attrs["userAccountControl"], ["512"]);
    let expires: u64 = attrs["accountExpires"][0].parse().unwrap();
    let unix = req
        .not_after
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(expires / 10_000_000 - 11_644_473_600, unix);
    p.remove(&account.account).await.unwrap();
    assert!(
        entries(&ad, &s.ou, "(objectClass=user)", vec!["1.1"])
            .await
            .is_empty()
    );

    // Past its accountExpires an account cannot bind (AD's "data 701").
    let expired = p
        .create(request(
            vec![],
            SystemTime::now() - Duration::from_secs(3600),
        ))
        .await
        .unwrap();
    let refused = connect(&ad, &expired.account.id, expired.password.expose_secret()).await;
    let text = format!(
        "{:?}",
        match refused {
            Ok(_) => panic!("an expired account cannot bind"),
            Err(e) => e,
        }
    );
    assert!(text.contains("701"), "{text}");
    p.remove(&expired.account).await.unwrap();

    // removal = "disable": the account stays, cannot bind ("data 533"), is out of its groups and
    // no longer owned.
    let mut disabling = settings(&ad, &s.ou);
    disabling["removal"] = json!("disable");
    let d = plugin(disabling).unwrap();
    let account = d
        .create(request(vec![s.users.clone()], in_an_hour()))
        .await
        .unwrap();
    d.remove(&account.account).await.unwrap();
    let refused = connect(&ad, &account.account.id, account.password.expose_secret()).await;
    let text = format!(
        "{:?}",
        match refused {
            Ok(_) => panic!("a disabled account cannot bind"),
            Err(e) => e,
        }
    );
    assert!(text.contains("533"), "{text}");
    let left = entries(
        &ad,
        &account.account.id,
        "(objectClass=user)",
        vec!["memberOf", "userAccountControl"],
    )
    .await;
    assert_eq!(left[0].attrs["userAccountControl"], ["514"]);
    assert!(
        !left[0].attrs.contains_key("memberOf"),
        "{:?}",
        left[0].attrs
    );
    assert!(!d.owned().await.unwrap().contains(&account.account));
    p.remove(&account.account).await.unwrap();

    // Errors, each clear, each leaving nothing behind.
    let missing_group = p
        .create(request(
            vec![format!("CN=no-such-group,{}", s.ou)],
            in_an_hour(),
        ))
        .await
        .unwrap_err();
    assert_eq!(missing_group.kind, ErrorKind::NotFound);
    assert!(
        missing_group.message.contains("group CN=no-such-group"),
        "{missing_group}"
    );
    let no_ou = plugin(settings(&ad, &format!("OU=no-such-ou,{}", ad.base)))
        .unwrap()
        .create(request(vec![], in_an_hour()))
        .await
        .unwrap_err();
    assert_eq!(no_ou.kind, ErrorKind::NotFound);
    assert!(no_ou.message.contains("OU=no-such-ou"), "{no_ou}");
    let mut wrong = settings(&ad, &s.ou);
    wrong["bind_password"] = json!("not-the-password");
    let refused = plugin(wrong)
        .unwrap()
        .create(request(vec![], in_an_hour()))
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Unauthorized);
    assert!(refused.message.contains("refused the bind"), "{refused}");
    let mut down = settings(&ad, &s.ou);
    down["url"] = json!("ldaps://127.0.0.1:1");
    let unreachable = plugin(down)
        .unwrap()
        .create(request(vec![], in_an_hour()))
        .await
        .unwrap_err();
    assert_eq!(unreachable.kind, ErrorKind::Unreachable);
    assert!(
        unreachable.message.contains("cannot reach the directory"),
        "{unreachable}"
    );
    // A fixed name per person: a second account at the same time is a name collision.
    let mut fixed = settings(&ad, &s.ou);
    fixed["name_pattern"] = json!("adm-{login}");
    let f = plugin(fixed).unwrap();
    let first = f.create(request(vec![], in_an_hour())).await.unwrap();
    let taken = f.create(request(vec![], in_an_hour())).await.unwrap_err();
    assert_eq!(taken.kind, ErrorKind::Unavailable);
    assert!(taken.message.contains("already taken"), "{taken}");
    f.remove(&first.account).await.unwrap();
    assert!(
        entries(&ad, &s.ou, "(objectClass=user)", vec!["1.1"])
            .await
            .is_empty(),
        "no failed creation left an account"
    );
    // Verification is on: without the test CA the DC's certificate is refused.
    let mut unverified = settings(&ad, &s.ou);
    unverified["ca_file"] = json!("");
    let untrusted = plugin(unverified).unwrap().owned().await.unwrap_err();
    assert_eq!(untrusted.kind, ErrorKind::Unreachable, "{untrusted}");
    cleanup(&ad, &s.ou).await;
}
