//! The LDAP side: settings, one LDAPS connection per operation (verified TLS, simple bind), and
//! create / remove / owned with their errors.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ldap3::{
    Ldap, LdapConnAsync, LdapConnSettings, LdapError, Mod, Scope, SearchEntry, ldap_escape,
};
use openpsm_plugin_api::{
    ErrorKind, JitAccount, JitAccountRef, JitRequest, Origin, PluginError, PluginResult,
    PluginSettings, SecretText,
};
use serde::Deserialize;
use uuid::Uuid;

use crate::naming::{self, Pattern};

const MARKER: &str = "openpsm-jit session=";
/// userAccountControl: NORMAL_ACCOUNT, and with ACCOUNTDISABLE.
const UAC_ENABLED: &str = "512";
const UAC_DISABLED: &str = "514";
/// Seconds from 1601-01-01 (FILETIME's epoch) to 1970-01-01.
const FILETIME_OFFSET: u64 = 11_644_473_600;
const NAME_TRIES: usize = 5;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    url: String,
    bind_dn: String,
    bind_password: SecretText,
    ou: String,
    #[serde(default)]
    base: String,
    #[serde(default)]
    domain: String,
    #[serde(default)]
    upn_suffix: String,
    #[serde(default = "pattern")]
    name_pattern: String,
    #[serde(default = "six")]
    random_chars: usize,
    #[serde(default = "twenty_four")]
    password_length: usize,
    #[serde(default)]
    removal: Removal,
    #[serde(default)]
    ca_file: String,
    #[serde(default = "ten")]
    timeout_secs: u64,
    #[serde(default = "marker_attribute")]
    marker_attribute: String,
}

fn pattern() -> String {
    "jit-{login}-{rand}".into()
}
fn six() -> usize {
    6
}
fn twenty_four() -> usize {
    24
}
fn ten() -> u64 {
    10
}
fn marker_attribute() -> String {
    "description".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Removal {
    #[default]
    Delete,
    Disable,
}

pub struct Directory {
    url: String,
    bind_dn: String,
    bind_password: SecretText,
    ou: String,
    base: String,
    domain: String,
    upn_suffix: String,
    pattern: Pattern,
    password_length: usize,
    removal: Removal,
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
    marker_attribute: String,
}

/// The `DC=` components of a DN, in order.
fn dc_labels(dn: &str) -> Vec<String> {
    dn.split(',')
        .filter_map(|rdn| {
            let (k, v) = rdn.trim().split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("dc")
                .then(|| v.trim().to_owned())
        })
        .collect()
}

fn tls_config(ca_file: &str) -> PluginResult<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let pem = std::fs::read(ca_file)
        .map_err(|e| PluginError::settings(format!("ca_file {ca_file}: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| PluginError::settings(format!("ca_file {ca_file}: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| PluginError::settings(format!("ca_file {ca_file}: {e}")))?;
    }
    if roots.is_empty() {
        return Err(PluginError::settings(format!(
            "ca_file {ca_file} holds no certificate"
        )));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PluginError::settings(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn backend(kind: ErrorKind, message: String) -> PluginError {
    PluginError::new(Origin::Backend, kind, message)
}

/// The LDAP result code of an error, if it is one.
fn rc(e: &LdapError) -> Option<u32> {
    match e {
        LdapError::LdapResult { result } => Some(result.rc),
        _ => None,
    }
}

impl Directory {
    pub fn new(settings: &PluginSettings) -> PluginResult<Self> {
        let s: Settings = settings.parse()?;
        let url = url_checked(&s.url)?;
        if s.bind_dn.is_empty() || s.bind_password.expose_secret().is_empty() {
            return Err(PluginError::settings(
                "bind_dn and bind_password must be set",
            ));
        }
        let labels = dc_labels(&s.ou);
        if s.ou.is_empty() || labels.is_empty() {
            return Err(PluginError::settings(
                "ou must be a DN ending in DC= components, e.g. OU=PSM JIT,DC=example,DC=com",
            ));
        }
        let pattern = naming::parse_pattern(&s.name_pattern, s.random_chars)
            .map_err(PluginError::settings)?;
        if !(14..=128).contains(&s.password_length) || !(1..=120).contains(&s.timeout_secs) {
            return Err(PluginError::settings(
                "password_length must be 14 to 128 and timeout_secs 1 to 120",
            ));
        }
        if s.marker_attribute.is_empty()
            || !s
                .marker_attribute
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(PluginError::settings(
                "marker_attribute must be an attribute name",
            ));
        }
        let tls = if s.ca_file.is_empty() {
            None
        } else {
            Some(tls_config(&s.ca_file)?)
        };
        Ok(Self {
            url,
            bind_dn: s.bind_dn,
            bind_password: s.bind_password,
            base: if s.base.is_empty() {
                labels
                    .iter()
                    .map(|l| format!("DC={l}"))
                    .collect::<Vec<_>>()
                    .join(",")
            } else {
                s.base
            },
            domain: if s.domain.is_empty() {
                labels[0].to_ascii_uppercase()
            } else {
                s.domain
            },
            upn_suffix: if s.upn_suffix.is_empty() {
                labels.join(".").to_ascii_lowercase()
            } else {
                s.upn_suffix
            },
            ou: s.ou,
            pattern,
            password_length: s.password_length,
            removal: s.removal,
            tls,
            timeout: Duration::from_secs(s.timeout_secs),
            marker_attribute: s.marker_attribute,
        })
    }

    /// A bound connection.
    async fn connect(&self) -> PluginResult<Ldap> {
        let mut settings = LdapConnSettings::new().set_conn_timeout(self.timeout);
        if let Some(config) = &self.tls {
            settings = settings.set_config(config.clone());
        }
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.url)
            .await
            .map_err(|e| {
                backend(
                    ErrorKind::Unreachable,
                    format!("cannot reach the directory at {}: {e}", self.url),
                )
                .with_retryable(true)
            })?;
        ldap3::drive!(conn);
        ldap.with_timeout(self.timeout);
        match ldap
            .simple_bind(&self.bind_dn, self.bind_password.expose_secret())
            .await
            .and_then(|r| r.success())
        {
            Ok(_) => Ok(ldap),
            Err(e) if rc(&e) == Some(49) => Err(PluginError::unauthorized(
                Origin::Backend,
                format!("the directory refused the bind of {}", self.bind_dn),
            )),
            Err(e) => Err(self.failed("binding", &e)),
        }
    }

    fn failed(&self, doing: &str, e: &LdapError) -> PluginError {
        let kind = match e {
            LdapError::Timeout { .. } => ErrorKind::Timeout,
            LdapError::Io { .. } => ErrorKind::Unreachable,
            _ => ErrorKind::Internal,
        };
        backend(kind, format!("{doing} in the directory failed: {e}"))
    }

    /// The DNs of entries matching `filter` under `base` (`scope`).
    async fn dns(
        &self,
        ldap: &mut Ldap,
        base: &str,
        scope: Scope,
        filter: &str,
        doing: &str,
    ) -> PluginResult<Vec<String>> {
        match ldap
            .search(base, scope, filter, vec!["1.1"])
            .await
            .and_then(|r| r.success())
        {
            Ok((entries, _)) => Ok(entries
                .into_iter()
                .map(|e| SearchEntry::construct(e).dn)
                .collect()),
            Err(e) if rc(&e) == Some(32) => Ok(Vec::new()),
            Err(e) => Err(self.failed(doing, &e)),
        }
    }

    /// The DN of each group (a DN, or a name looked up by cn / sAMAccountName).
    async fn groups(&self, ldap: &mut Ldap, groups: &[String]) -> PluginResult<Vec<String>> {
        let mut dns = Vec::with_capacity(groups.len());
        for group in groups {
            let found = if group.contains('=') {
                self.dns(
                    ldap,
                    group,
                    Scope::Base,
                    "(objectClass=group)",
                    "looking up a group",
                )
                .await?
            } else {
                let name = ldap_escape(group);
                self.dns(
                    ldap,
                    &self.base,
                    Scope::Subtree,
                    &format!("(&(objectClass=group)(|(cn={name})(sAMAccountName={name})))"),
                    "looking up a group",
                )
                .await?
            };
            match found.as_slice() {
                [dn] => dns.push(dn.clone()),
                [] => {
                    return Err(backend(
                        ErrorKind::NotFound,
                        format!("the group {group} does not exist in the directory"),
                    ));
                }
                _ => {
                    return Err(backend(
                        ErrorKind::InvalidInput,
                        format!("the group name {group} is ambiguous: give its DN"),
                    ));
                }
            }
        }
        Ok(dns)
    }

    pub async fn create(&self, req: &JitRequest) -> PluginResult<JitAccount> {
        let mut ldap = self.connect().await?;
        let result = self.create_on(&mut ldap, req).await;
        let _ = ldap.unbind().await;
        result
    }

    async fn create_on(&self, ldap: &mut Ldap, req: &JitRequest) -> PluginResult<JitAccount> {
        // Everything that can be checked is checked before anything is written.
        let ou = self
            .dns(
                ldap,
                &self.ou,
                Scope::Base,
                "(objectClass=*)",
                "looking up the OU",
            )
            .await?;
        if ou.is_empty() {
            return Err(backend(
                ErrorKind::NotFound,
                format!("the OU {} does not exist in the directory", self.ou),
            ));
        }
        let groups = self.groups(ldap, &req.groups).await?;
        let password = SecretText::new(naming::password(self.password_length));
        let expires = req
            .not_after
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let account_expires = ((expires + FILETIME_OFFSET) * 10_000_000).to_string();
        let tries = if self.pattern.is_random() {
            NAME_TRIES
        } else {
            1
        };
        let mut last = String::new();
        for _ in 0..tries {
            let name = self.pattern.render(&req.person.login);
            last.clone_from(&name);
            let taken = self
                .dns(
                    ldap,
                    &self.base,
                    Scope::Subtree,
                    &format!("(sAMAccountName={})", ldap_escape(&name)),
                    "checking the account name",
                )
                .await?;
            if !taken.is_empty() {
                continue;
            }
            let dn = format!("CN={name},{}", self.ou);
            match self
                .add_user(ldap, &dn, &name, req, &password, &account_expires)
                .await
            {
                Ok(()) => {}
                // Taken meanwhile (by cn or sAMAccountName): another name.
                Err(e) if rc(&e) == Some(68) => continue,
                Err(e) => return Err(self.failed(&format!("creating {dn}"), &e)),
            }
            if let Err(e) = self.join(ldap, &dn, &groups).await {
                // Leave nothing behind.
                if let Err(undo) = ldap.delete(&dn).await.and_then(|r| r.success()) {
                    tracing::error!(dn, "removing a half-made JIT account failed: {undo}");
                }
                return Err(e);
            }
            return Ok(JitAccount {
                account: JitAccountRef {
                    id: dn,
                    session: req.session,
                },
                user_name: name,
                domain: Some(self.domain.clone()),
                password,
                groups: req.groups.clone(),
                not_after: req.not_after,
            });
        }
        Err(backend(
            ErrorKind::Unavailable,
            if tries == 1 {
                format!("the account name {last} is already taken in the directory")
            } else {
                format!(
                    "no free account name for {} after {tries} tries",
                    req.person.login
                )
            },
        ))
    }

    async fn add_user(
        &self,
        ldap: &mut Ldap,
        dn: &str,
        name: &str,
        req: &JitRequest,
        password: &SecretText,
        account_expires: &str,
    ) -> Result<(), LdapError> {
        // unicodePwd: the password in double quotes, UTF-16LE.
        let quoted: Vec<u8> = format!("\"{}\"", password.expose_secret())
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let one = |v: &str| HashSet::from([v.as_bytes().to_vec()]);
        let display = if req.person.display_name.is_empty() {
            req.person.login.clone()
        } else {
            req.person.display_name.clone()
        };
        let attrs: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = vec![
            (
                b"objectClass".to_vec(),
                ["top", "person", "organizationalPerson", "user"]
                    .iter()
                    .map(|c| c.as_bytes().to_vec())
                    .collect(),
            ),
            (b"cn".to_vec(), one(name)),
            (b"sAMAccountName".to_vec(), one(name)),
            (
                b"userPrincipalName".to_vec(),
                one(&format!("{name}@{}", self.upn_suffix)),
            ),
            (
                b"displayName".to_vec(),
                one(&format!("{display} (openpsm just-in-time)")),
            ),
            (
                self.marker_attribute.as_bytes().to_vec(),
                one(&format!("{MARKER}{}", req.session)),
            ),
            (b"unicodePwd".to_vec(), HashSet::from([quoted])),
            (b"userAccountControl".to_vec(), one(UAC_ENABLED)),
            (b"accountExpires".to_vec(), one(account_expires)),
        ];
        ldap.add(dn, attrs).await?.success().map(|_| ())
    }

    async fn join(&self, ldap: &mut Ldap, dn: &str, groups: &[String]) -> PluginResult<()> {
        for group in groups {
            let change = vec![Mod::Add(
                "member".as_bytes(),
                HashSet::from([dn.as_bytes()]),
            )];
            ldap.modify(group, change)
                .await
                .and_then(|r| r.success())
                .map_err(|e| self.failed(&format!("adding {dn} to {group}"), &e))?;
        }
        Ok(())
    }

    pub async fn remove(&self, account: &JitAccountRef) -> PluginResult<()> {
        let mut ldap = self.connect().await?;
        let result = match self.removal {
            Removal::Delete => match ldap.delete(&account.id).await.and_then(|r| r.success()) {
                Ok(_) => Ok(()),
                Err(e) if rc(&e) == Some(32) => Ok(()),
                Err(e) => Err(self.failed(&format!("deleting {}", account.id), &e)),
            },
            Removal::Disable => self.disable(&mut ldap, &account.id).await,
        };
        let _ = ldap.unbind().await;
        result
    }

    async fn disable(&self, ldap: &mut Ldap, dn: &str) -> PluginResult<()> {
        let change = vec![Mod::Replace(
            "userAccountControl".as_bytes(),
            HashSet::from([UAC_DISABLED.as_bytes()]),
        )];
        match ldap.modify(dn, change).await.and_then(|r| r.success()) {
            Ok(_) => {}
            Err(e) if rc(&e) == Some(32) => return Ok(()),
            Err(e) => return Err(self.failed(&format!("disabling {dn}"), &e)),
        }
        // Out of every group, so a disabled account holds no rights if it is re-enabled by mistake.
        let groups = self
            .dns(
                ldap,
                &self.base,
                Scope::Subtree,
                &format!("(&(objectClass=group)(member={}))", ldap_escape(dn)),
                "looking up the account's groups",
            )
            .await?;
        for group in groups {
            let change = vec![Mod::Delete(
                "member".as_bytes(),
                HashSet::from([dn.as_bytes()]),
            )];
            if let Err(e) = ldap.modify(&group, change).await.and_then(|r| r.success()) {
                return Err(self.failed(&format!("removing {dn} from {group}"), &e));
            }
        }
        Ok(())
    }

    pub async fn owned(&self) -> PluginResult<Vec<JitAccountRef>> {
        let mut ldap = self.connect().await?;
        // With removal = "disable", a disabled account is already removed; with "delete" every
        // marked account still there is ours to remove.
        let enabled_only = match self.removal {
            Removal::Disable => "(!(userAccountControl:1.2.840.113556.1.4.803:=2))",
            Removal::Delete => "",
        };
        let filter = format!(
            "(&(objectClass=user)({}={}*){enabled_only})",
            self.marker_attribute,
            ldap_escape(MARKER)
        );
        let found = ldap
            .search(
                &self.ou,
                Scope::Subtree,
                &filter,
                vec![self.marker_attribute.as_str()],
            )
            .await
            .and_then(|r| r.success());
        let _ = ldap.unbind().await;
        let (entries, _) = found.map_err(|e| self.failed("listing JIT accounts", &e))?;
        Ok(entries
            .into_iter()
            .map(SearchEntry::construct)
            .filter_map(|e| {
                let session = e
                    .attrs
                    .get(&self.marker_attribute)?
                    .iter()
                    .find_map(|v| v.strip_prefix(MARKER))?
                    .parse::<Uuid>()
                    .ok()?;
                Some(JitAccountRef { id: e.dn, session })
            })
            .collect())
    }
}

/// `ldaps://host[:port]`, nothing else (a simple bind over plain LDAP would send the password in
/// the clear, and AD refuses it anyway).
fn url_checked(url: &str) -> PluginResult<String> {
    let rest = url
        .strip_prefix("ldaps://")
        .ok_or_else(|| PluginError::settings("url must be ldaps://host[:port]"))?;
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
        return Err(PluginError::settings("url must be ldaps://host[:port]"));
    }
    Ok(format!("ldaps://{host}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn settings_derive_base_domain_and_upn_from_the_ou() {
        assert_eq!(
            dc_labels("OU=PSM JIT,DC=Example,DC=test"),
            ["Example", "test"]
        );
        assert!(url_checked("ldap://dc.example.test").is_err());
        assert!(url_checked("ldaps://").is_err());
        assert!(url_checked("ldaps://u@dc").is_err());
        assert_eq!(
            url_checked("ldaps://127.0.0.1:636/").unwrap(),
            "ldaps://127.0.0.1:636"
        );
    }
}
