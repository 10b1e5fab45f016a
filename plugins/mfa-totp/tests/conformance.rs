//! The TOTP provider passes the MFA conformance suite, answering as an authenticator app would
//! from the otpauth URI shown at enrolment; codes from the independent `oathtool` are accepted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::SystemTime;

use openpsm_plugin_api::conformance::{self, mfa::MfaFixture};
use openpsm_plugin_api::{
    HostContext, MfaProvider as _, PluginSettings, SecretText, Subject, Verdict,
};
use openpsm_plugin_mfa_totp::{Totp, totp};

fn provider(settings: serde_json::Value) -> Totp {
    Totp::new(&PluginSettings {
        host: HostContext::default(),
        settings,
    })
    .unwrap()
}

/// What an authenticator app does with the otpauth URI: the code for `now`.
fn app_code(uri: &str, now: SystemTime) -> Option<SecretText> {
    let query = uri.split_once('?')?.1;
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
    };
    let key = data_encoding_decode(param("secret")?)?;
    let alg = match param("algorithm")? {
        "SHA1" => totp::Algorithm::Sha1,
        "SHA256" => totp::Algorithm::Sha256,
        _ => totp::Algorithm::Sha512,
    };
    let digits: u32 = param("digits")?.parse().ok()?;
    let period: u64 = param("period")?.parse().ok()?;
    let t = now.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
    Some(SecretText::new(totp::code(alg, &key, t / period, digits)))
}

fn data_encoding_decode(b32: &str) -> Option<Vec<u8>> {
    // RFC 4648 base32 without padding, decoded by hand so the test does not share the plugin's decoder.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut value, mut out) = (0u32, 0u32, Vec::new());
    for c in b32.bytes() {
        let v = alphabet.iter().position(|a| *a == c)? as u32;
        value = (value << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((value >> bits) as u8);
            value &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[tokio::test]
async fn passes_the_mfa_suite_with_every_algorithm() {
    for (alg, digits) in [("sha1", 6), ("sha256", 8), ("sha512", 6)] {
        let p = provider(serde_json::json!({"algorithm": alg, "digits": digits}));
        let fixture = MfaFixture {
            respond: Box::new(|e, now| app_code(e.reveal.as_ref()?.expose_secret(), now)),
        };
        let report = conformance::mfa::check(&p, &fixture).await;
        assert!(report.passed(), "{alg}: {report}");
    }
}

#[tokio::test]
async fn the_window_and_oathtool() {
    let p = provider(serde_json::Value::Null);
    let who = Subject {
        person: uuid::Uuid::nil(),
        login: "alice@example".into(),
        display_name: "A".into(),
    };
    let e = p.enroll(&who).await.unwrap();
    let uri = e.reveal.clone().unwrap();
    assert!(
        uri.expose_secret()
            .starts_with("otpauth://totp/openpsm:alice%40example?secret="),
        "{}",
        uri.expose_secret()
    );
    let now = SystemTime::now();
    let step = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30;
    // One step either side is accepted (clock drift), two are not.
    for (delta, ok) in [
        (-60i64, false),
        (-30, true),
        (0, true),
        (30, true),
        (60, false),
    ] {
        let at = if delta < 0 {
            now - std::time::Duration::from_secs((-delta) as u64)
        } else {
            now + std::time::Duration::from_secs(delta as u64)
        };
        let code = app_code(uri.expose_secret(), at).unwrap();
        let verdict = p.verify(&who, &e.secret, &code, now).await.unwrap();
        assert_eq!(
            matches!(verdict, Verdict::Accepted { .. }),
            ok,
            "offset {delta}: {verdict:?}"
        );
        if let Verdict::Accepted { step: Some(s) } = verdict {
            assert_eq!(
                s as i64,
                step as i64 + delta / 30,
                "the matched step is reported for the replay cache"
            );
        }
    }
    // An independent generator agrees.
    if std::path::Path::new("/usr/bin/oathtool").exists() {
        let secret = uri
            .expose_secret()
            .split("secret=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_owned();
        let out = std::process::Command::new("oathtool")
            .args(["--totp", "--base32", &secret])
            .output()
            .unwrap();
        let code = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let verdict = p
            .verify(&who, &e.secret, &SecretText::new(code), SystemTime::now())
            .await
            .unwrap();
        assert!(
            matches!(verdict, Verdict::Accepted { .. }),
            "oathtool's code: {verdict:?}"
        );
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "oathtool missing under CI: run scripts/test.sh"
        );
    }
}

#[test]
fn bad_settings_are_refused() {
    for bad in [
        serde_json::json!({"digits": 7}),
        serde_json::json!({"algorithm": "md5"}),
        serde_json::json!({"step_secs": 5}),
        serde_json::json!({"issuer": "a:b"}),
    ] {
        assert!(
            Totp::new(&PluginSettings {
                host: HostContext::default(),
                settings: bad.clone()
            })
            .is_err(),
            "{bad}"
        );
    }
}
