//! The embedded directory: persons, computers and access request policies, keyed by the IAM's
//! GUIDs, loaded from a TOML file and validated as a whole.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The demo directory, used when no file is configured.
pub const DEMO: &str = include_str!("../../config/directory.toml");

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("directory {0}: {1}")]
    Read(String, String),
    #[error("directory: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub id: Uuid,
    pub login: String,
    pub name: String,
    #[serde(default)]
    pub admin: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Computer {
    pub id: Uuid,
    /// The IAM's internal id (`ComputerID`, e.g. 2331).
    pub computer_id: String,
    pub name: String,
    /// Server, Server2, Server3: tried in order.
    pub hosts: Vec<String>,
    /// The management port; each mode's default port when absent.
    #[serde(default)]
    pub port: Option<u16>,
    /// Connection modes (plugin ids) this computer allows.
    pub modes: Vec<String>,
    /// Sessions use a just-in-time account.
    #[serde(default)]
    pub jit: bool,
    /// Pinned host keys or certificate fingerprints.
    #[serde(default)]
    pub pinned_keys: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfaRule {
    /// Client networks this rule applies to; empty means everywhere.
    #[serde(default)]
    pub zone: Vec<IpNet>,
    /// MFA providers (plugin ids) required, in order; empty means none.
    pub providers: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLevel {
    pub id: String,
    pub label: String,
    /// Directory groups the level maps to (for JIT accounts).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Persons pre-approved for this level.
    #[serde(default)]
    pub approved: Vec<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub id: Uuid,
    pub name: String,
    /// Sessions under this policy are recorded (and the person must agree first).
    #[serde(default = "yes")]
    pub record: bool,
    /// Terminal sessions are also recorded in the seed's typescript form (`script`/`scriptreplay`).
    #[serde(default)]
    pub typescript: bool,
    /// Graphical sessions: the `.guac` recording also holds the keys typed (off: only what was shown).
    #[serde(default)]
    pub record_keys: bool,
    /// Graphical sessions: text may be copied out of the session to the browser.
    #[serde(default = "yes")]
    pub clipboard_copy: bool,
    /// Graphical sessions: text may be pasted from the browser into the session.
    #[serde(default = "yes")]
    pub clipboard_paste: bool,
    /// MFA points: the first rule whose zone holds the client address applies.
    #[serde(default)]
    pub mfa: Vec<MfaRule>,
    /// The longest session, in minutes, even when the link gives a later CheckOutEndDate.
    #[serde(default)]
    pub max_session_minutes: Option<u32>,
    /// Computers this policy covers.
    pub computers: Vec<Uuid>,
    #[serde(default)]
    pub access_levels: Vec<AccessLevel>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    person: Vec<Person>,
    #[serde(default)]
    computer: Vec<Computer>,
    #[serde(default)]
    policy: Vec<Policy>,
}

#[derive(Debug, Clone, Default)]
pub struct Directory {
    persons: BTreeMap<Uuid, Person>,
    computers: BTreeMap<Uuid, Computer>,
    policies: BTreeMap<Uuid, Policy>,
}

impl Directory {
    pub fn load(path: &Path) -> Result<Self, DirectoryError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| DirectoryError::Read(path.display().to_string(), e.to_string()))?;
        Self::parse(&text).map_err(|e| match e {
            DirectoryError::Invalid(m) => DirectoryError::Read(path.display().to_string(), m),
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Self, DirectoryError> {
        let file: File =
            toml::from_str(text).map_err(|e| DirectoryError::Invalid(e.message().to_owned()))?;
        let mut dir = Self::default();
        for p in file.person {
            if p.login.is_empty() || dir.persons.insert(p.id, p.clone()).is_some() {
                return Err(DirectoryError::Invalid(format!(
                    "person {}: duplicate id or empty login",
                    p.id
                )));
            }
        }
        for c in file.computer {
            if c.hosts.is_empty()
                || c.hosts.len() > 3
                || c.hosts.iter().any(|h| h.trim().is_empty())
            {
                return Err(DirectoryError::Invalid(format!(
                    "computer {}: needs 1 to 3 hosts",
                    c.name
                )));
            }
            if c.modes.is_empty() {
                return Err(DirectoryError::Invalid(format!(
                    "computer {}: allows no connection mode",
                    c.name
                )));
            }
            if dir.computers.insert(c.id, c.clone()).is_some() {
                return Err(DirectoryError::Invalid(format!(
                    "computer {}: duplicate id",
                    c.id
                )));
            }
        }
        for p in file.policy {
            for c in &p.computers {
                if !dir.computers.contains_key(c) {
                    return Err(DirectoryError::Invalid(format!(
                        "policy {}: unknown computer {c}",
                        p.name
                    )));
                }
            }
            let mut levels = BTreeSet::new();
            for level in &p.access_levels {
                if !levels.insert(level.id.as_str()) {
                    return Err(DirectoryError::Invalid(format!(
                        "policy {}: access level {} twice",
                        p.name, level.id
                    )));
                }
                if let Some(who) = level.approved.iter().find(|a| !dir.persons.contains_key(a)) {
                    return Err(DirectoryError::Invalid(format!(
                        "policy {}: access level {} approves unknown person {who}",
                        p.name, level.id
                    )));
                }
            }
            if dir.policies.insert(p.id, p.clone()).is_some() {
                return Err(DirectoryError::Invalid(format!(
                    "policy {}: duplicate id",
                    p.id
                )));
            }
        }
        Ok(dir)
    }

    pub fn person(&self, id: &Uuid) -> Option<&Person> {
        self.persons.get(id)
    }

    pub fn computer(&self, id: &Uuid) -> Option<&Computer> {
        self.computers.get(id)
    }

    pub fn policy(&self, id: &Uuid) -> Option<&Policy> {
        self.policies.get(id)
    }

    pub fn persons(&self) -> impl Iterator<Item = &Person> {
        self.persons.values()
    }

    pub fn computers(&self) -> impl Iterator<Item = &Computer> {
        self.computers.values()
    }
}

impl Policy {
    /// The MFA providers required for a client at `addr`.
    pub fn mfa_for(&self, addr: IpAddr) -> &[String] {
        self.mfa
            .iter()
            .find(|rule| rule.zone.is_empty() || rule.zone.iter().any(|net| net.contains(&addr)))
            .map(|rule| rule.providers.as_slice())
            .unwrap_or(&[])
    }

    /// The access levels `person` is pre-approved for.
    pub fn levels_for(&self, person: &Uuid) -> Vec<&AccessLevel> {
        self.access_levels
            .iter()
            .filter(|l| l.approved.contains(person))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_directory_is_valid() {
        let d = Directory::parse(DEMO).unwrap();
        assert!(d.persons().count() >= 1);
        assert!(d.computers().count() >= 1);
    }

    #[test]
    fn zones_pick_the_first_matching_rule() {
        let text = r#"
            [[person]]
            id = "00000000-0000-4000-8000-000000000001"
            login = "a"
            name = "A"
            [[computer]]
            id = "00000000-0000-4000-8000-0000000000c1"
            computer_id = "1"
            name = "c"
            hosts = ["127.0.0.1"]
            modes = ["ssh"]
            [[policy]]
            id = "00000000-0000-4000-8000-0000000000f1"
            name = "p"
            computers = ["00000000-0000-4000-8000-0000000000c1"]
            [[policy.mfa]]
            zone = ["10.0.0.0/8", "127.0.0.0/8"]
            providers = []
            [[policy.mfa]]
            providers = ["totp"]
            [[policy.access_levels]]
            id = "admin"
            label = "Admin"
            approved = ["00000000-0000-4000-8000-000000000001"]
        "#;
        let d = Directory::parse(text).unwrap();
        let p = d
            .policy(&"00000000-0000-4000-8000-0000000000f1".parse().unwrap())
            .unwrap();
        assert!(p.mfa_for("127.0.0.1".parse().unwrap()).is_empty());
        assert_eq!(p.mfa_for("192.0.2.7".parse().unwrap()), ["totp".to_owned()]);
        assert_eq!(
            p.levels_for(&"00000000-0000-4000-8000-000000000001".parse().unwrap())
                .len(),
            1
        );
        assert!(p.levels_for(&Uuid::nil()).is_empty());
        let bad = text.replace(
            "approved = [\"00000000-0000-4000-8000-000000000001\"]",
            "approved = [\"00000000-0000-4000-8000-000000000009\"]",
        );
        assert!(
            Directory::parse(&bad)
                .unwrap_err()
                .to_string()
                .contains("unknown person")
        );
        let bad = text.replace("hosts = [\"127.0.0.1\"]", "hosts = []");
        assert!(Directory::parse(&bad).is_err());
        let bad = text.replace("zone = [\"10.0.0.0/8\"", "zone = [\"10.0.0.0/99\"");
        assert!(Directory::parse(&bad).is_err());
    }
}
