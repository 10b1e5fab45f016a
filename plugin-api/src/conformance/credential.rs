//! The `CredentialSource` suite.

use uuid::Uuid;

use super::{Report, common};
use crate::credential::{CheckOut, CredentialSource, EndSession, FlowSubject};
use crate::error::ErrorKind;
use crate::info::PluginKind;
use crate::secret::SecretText;

pub struct CredentialFixture {
    /// A person and computer with at least one credential.
    pub subject: FlowSubject,
    /// The person's master password.
    pub master_password: SecretText,
    /// The credential to check out and the password it must yield.
    pub credential: String,
    pub expected_password: SecretText,
}

pub async fn check(source: &dyn CredentialSource, fx: &CredentialFixture) -> Report {
    let mut r = Report::default();
    common(&mut r, source, PluginKind::CredentialSource).await;
    match source.list(&fx.subject).await {
        Ok(list) => {
            r.check(
                list.iter().any(|c| c.id == fx.credential),
                "list() includes the fixture's credential",
            );
            let debug = format!("{list:?}");
            r.check(
                !debug.contains(fx.expected_password.expose_secret()),
                "list() never carries a secret",
            );
        }
        Err(e) => r.fail(format!("list() succeeds: {e}")),
    }
    let stranger = FlowSubject {
        person: Uuid::new_v4(),
        ..fx.subject.clone()
    };
    match source.list(&stranger).await {
        Ok(list) => r.check(
            list.iter()
                .all(|c| c.owner.is_none() || c.owner == Some(stranger.person)),
            "list() never offers someone else's personal credential",
        ),
        Err(e) => r.check(
            e.kind != ErrorKind::Panicked,
            "list() for an unknown person does not panic",
        ),
    }
    let request = |password: SecretText| CheckOut {
        computer: fx
            .subject
            .computer_id
            .clone()
            .unwrap_or_else(|| fx.subject.computer.to_string()),
        credential: fx.credential.clone(),
        password,
        mode: "SSH".into(),
        session: Uuid::new_v4(),
        loginsessionid: fx.subject.login_session_id.clone(),
        subject: fx.subject.clone(),
    };
    let wrong = source
        .check_out(request(SecretText::new("not-the-master-password")))
        .await;
    r.check(
        matches!(&wrong, Err(e) if e.kind == ErrorKind::Unauthorized && !e.retryable),
        format!(
            "a wrong master password is Unauthorized (the seed's 401), got {:?}",
            wrong.as_ref().err()
        ),
    );
    let req = request(fx.master_password.clone());
    let session = req.session;
    match source.check_out(req.clone()).await {
        Ok(out) => {
            r.check(
                out.password == fx.expected_password,
                "check_out yields the credential's password",
            );
            r.check(!out.user_name.is_empty(), "check_out yields a user name");
        }
        Err(e) => r.fail(format!(
            "check_out with the right master password succeeds: {e}"
        )),
    }
    let end = EndSession {
        session,
        computer: req.computer.clone(),
        credential: req.credential.clone(),
        loginsessionid: req.loginsessionid.clone(),
        subject: fx.subject.clone(),
    };
    let first = source.end_session(end.clone()).await;
    r.check(first.is_ok(), format!("end_session succeeds: {first:?}"));
    let second = source.end_session(end).await;
    r.check(
        second.is_ok(),
        format!("end_session is idempotent (the host retries it): {second:?}"),
    );
    r
}
