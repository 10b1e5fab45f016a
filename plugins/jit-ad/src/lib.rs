//! Account provisioner "jit-ad": temporary Active Directory accounts over LDAPS for JIT-enabled
//! computers (the seed's JIT section).
//!
//! `create`: a name from `name_pattern` (person's login + random part, cut to sAMAccountName's 20
//! characters), checked free in the whole domain; the user is added in `ou` with a random strong
//! password (`unicodePwd`), enabled (`userAccountControl` 512), `accountExpires` at the end of the
//! access window, a marker in `marker_attribute` (`openpsm-jit session=<uuid>`), then put into the
//! groups of the chosen access level. Groups and the OU are checked before anything is written;
//! if anything fails after the add, the user is deleted again, so nothing is left behind.
//! `remove`: delete, or disable (`removal = "disable"`: `userAccountControl` 514, out of its
//! groups). `owned`: the marked accounts in `ou` that still work, for the host's sweeper.
//!
//! LDAPS only, certificate verified (system roots, or `ca_file` for a private CA).
//!
//! Settings: `url` ("ldaps://dc.example.com"), `bind_dn`, `bind_password` (better from the
//! environment: OPENPSM_PLUGINS__JIT_AD__SETTINGS__BIND_PASSWORD), `ou`, `base` (default: the
//! DC= part of `ou`), `domain` (NetBIOS name for `DOMAIN\user`; default: the first DC= label,
//! upper case), `upn_suffix` (default: the DC= labels joined by dots), `name_pattern`
//! ("jit-{login}-{rand}"), `random_chars` (6), `password_length` (24), `removal` ("delete" |
//! "disable"), `ca_file`, `timeout_secs` (10), `marker_attribute` ("description").

mod ad;
pub mod naming;

use std::sync::Arc;

use openpsm_plugin_api::{
    AccountProvisioner, BuiltinPlugin, JitAccount, JitAccountRef, JitRequest, Plugin, PluginInfo,
    PluginInstance, PluginKind, PluginResult, PluginSettings, async_trait,
};

pub const ID: &str = "jit-ad";

pub fn info() -> PluginInfo {
    PluginInfo::new(
        PluginKind::AccountProvisioner,
        ID,
        env!("CARGO_PKG_VERSION"),
        "just-in-time Active Directory accounts over LDAPS",
    )
}

pub fn build(settings: PluginSettings) -> PluginResult<PluginInstance> {
    Ok(PluginInstance::AccountProvisioner(Arc::new(JitAd {
        dir: ad::Directory::new(&settings)?,
    })))
}

inventory::submit! { BuiltinPlugin { info, build } }

pub struct JitAd {
    dir: ad::Directory,
}

#[async_trait]
impl Plugin for JitAd {
    fn info(&self) -> PluginInfo {
        info()
    }
}

#[async_trait]
impl AccountProvisioner for JitAd {
    async fn create(&self, req: JitRequest) -> PluginResult<JitAccount> {
        self.dir.create(&req).await
    }

    async fn remove(&self, account: &JitAccountRef) -> PluginResult<()> {
        self.dir.remove(account).await
    }

    async fn owned(&self) -> PluginResult<Vec<JitAccountRef>> {
        self.dir.owned().await
    }
}
