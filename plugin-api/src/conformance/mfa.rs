//! The `MfaProvider` suite.

use std::time::{Duration, SystemTime};

use uuid::Uuid;

use super::{Report, common};
use crate::info::PluginKind;
use crate::mfa::{EnrolledSecret, Enrollment, MfaProvider, Verdict};
use crate::secret::SecretText;
use crate::types::Subject;

/// How a person would answer, knowing what enrolment showed them (`Enrollment::reveal`): the
/// suite asks it for a right response at a given time.
pub struct MfaFixture {
    pub respond: Box<Respond>,
}

/// Given what enrolment showed and the time, the right response (None if there is none).
pub type Respond = dyn Fn(&Enrollment, SystemTime) -> Option<SecretText> + Send + Sync;

fn subject() -> Subject {
    Subject {
        person: Uuid::from_u128(0x00c0_ffee),
        login: "conformance".into(),
        display_name: "Conformance Suite".into(),
    }
}

pub async fn check(provider: &dyn MfaProvider, fixture: &MfaFixture) -> Report {
    let mut r = Report::default();
    common(&mut r, provider, PluginKind::MfaProvider).await;
    let p = provider.provider_info();
    r.check(
        p.id == provider.info().id,
        "provider_info().id equals info().id",
    );
    r.check(
        !p.label.is_empty() && !p.prompt.is_empty(),
        "provider_info has a label and a prompt",
    );
    let who = subject();
    let (a, b) = match (provider.enroll(&who).await, provider.enroll(&who).await) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            r.fail(format!("enroll() succeeds: {e}"));
            return r;
        }
    };
    r.check(!a.secret.0.is_empty(), "enrolment yields a secret");
    r.check(
        a.secret != b.secret,
        "two enrolments yield different secrets",
    );
    let now = SystemTime::now();
    let Some(good) = (fixture.respond)(&a, now) else {
        r.fail("the fixture can answer for an enrolled secret");
        return r;
    };
    let first = provider.verify(&who, &a.secret, &good, now).await;
    r.check(
        matches!(first, Ok(Verdict::Accepted { .. })),
        format!("a right response is accepted, got {first:?}"),
    );
    let again = provider.verify(&who, &a.secret, &good, now).await;
    r.check(
        matches!((&first, &again), (Ok(x), Ok(y)) if x == y),
        "the same response verifies to the same step (the host refuses replays by step)",
    );
    let other = provider.verify(&who, &b.secret, &good, now).await;
    r.check(
        !matches!(other, Ok(Verdict::Accepted { .. })),
        "a response for one secret is not accepted for another",
    );
    let late = now + Duration::from_secs(3600);
    let stale = provider.verify(&who, &a.secret, &good, late).await;
    let still_good = (fixture.respond)(&a, late).as_ref() == Some(&good);
    r.check(
        still_good || !matches!(stale, Ok(Verdict::Accepted { .. })),
        "a response expires when the provider's responses change with time",
    );
    for junk in [
        "",
        "0",
        "not a code",
        "１２３４５６",
        &"9".repeat(10_000),
        "\u{0}\u{7f}",
    ] {
        let got = provider
            .verify(&who, &a.secret, &SecretText::new(junk), now)
            .await;
        r.check(
            !matches!(got, Ok(Verdict::Accepted { .. })),
            format!("junk response ({} bytes) is not accepted", junk.len()),
        );
    }
    let garbage = EnrolledSecret(SecretText::new("\u{1}garbage"));
    let got = provider.verify(&who, &garbage, &good, now).await;
    r.check(
        !matches!(got, Ok(Verdict::Accepted { .. })),
        "a corrupted enrolled secret never accepts",
    );
    r
}
