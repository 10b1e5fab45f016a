//! The `AccountProvisioner` suite.

use super::{Report, common};
use crate::info::PluginKind;
use crate::provisioner::{AccountProvisioner, JitRequest};

pub async fn check(provisioner: &dyn AccountProvisioner, request: &JitRequest) -> Report {
    let mut r = Report::default();
    common(&mut r, provisioner, PluginKind::AccountProvisioner).await;
    let account = match provisioner.create(request.clone()).await {
        Ok(a) => a,
        Err(e) => {
            r.fail(format!("create() succeeds: {e}"));
            return r;
        }
    };
    r.check(
        account.password.len() >= 16,
        "the account's password has at least 16 characters",
    );
    r.check(
        account.groups == request.groups,
        "the account is in the access level's groups",
    );
    r.check(
        account.not_after <= request.not_after,
        "the account ends with the access window",
    );
    r.check(
        account.account.session == request.session,
        "the account is tied to the session",
    );
    let other = provisioner.create(request.clone()).await;
    r.check(
        matches!(&other, Ok(o) if o.user_name != account.user_name && o.password != account.password),
        "two accounts for the same person get different names and passwords",
    );
    let owned = provisioner.owned().await.unwrap_or_default();
    r.check(
        owned.contains(&account.account),
        "owned() lists a created account",
    );
    r.check(
        provisioner.remove(&account.account).await.is_ok(),
        "remove() succeeds",
    );
    let owned = provisioner.owned().await.unwrap_or_default();
    r.check(
        !owned.contains(&account.account),
        "owned() no longer lists a removed account",
    );
    r.check(
        provisioner.remove(&account.account).await.is_ok(),
        "removing an account that is gone is not an error",
    );
    if let Ok(o) = other {
        let _ = provisioner.remove(&o.account).await;
    }
    r
}
