//! The embedded vault: a `CredentialSource` built into the gateway, keeping credentials in the
//! store. Shared credentials are sealed with the gateway's vault key and checked out after the
//! person's master password is verified; personal ones are sealed with a key derived from the
//! owner's master password, so a wrong master password cannot open them (the seed's 401).

pub mod crypto;

use openpsm_plugin_api::{
    CheckOut, CheckedOut, CredentialKind, CredentialRef, CredentialSource, EndSession, ErrorKind,
    FlowSubject, Origin, Plugin, PluginError, PluginInfo, PluginKind, PluginResult, SecretText,
    async_trait,
};
use serde::Serialize;
use sqlx::Row as _;
use uuid::Uuid;

use crate::keys::Key256;
use crate::store::{Store, StoreError, unix_now};

pub const ID: &str = "vault";

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the master password is wrong")]
    WrongMasterPassword,
    #[error("{0}")]
    Invalid(String),
    #[error("no credential {0}")]
    NotFound(String),
    #[error("vault crypto: {0}")]
    Crypto(#[from] crypto::CryptoError),
}

impl From<sqlx::Error> for VaultError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// A credential as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub id: String,
    pub label: String,
    pub kind: CredentialKind,
    pub owner: Option<Uuid>,
    pub computer: Uuid,
    pub user_name: String,
    pub is_key: bool,
}

/// What to add.
pub struct NewCredential {
    pub computer: Uuid,
    pub label: String,
    pub user_name: String,
    pub secret: SecretText,
    pub is_key: bool,
    /// Personal: the owner and their master password; shared: None.
    pub personal: Option<(Uuid, SecretText)>,
}

#[derive(Clone)]
pub struct Vault {
    store: Store,
    key: Key256,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault")
    }
}

fn kind_str(kind: CredentialKind) -> &'static str {
    match kind {
        CredentialKind::Personal => "personal",
        CredentialKind::Shared => "shared",
    }
}

fn entry(row: &sqlx::any::AnyRow) -> Result<Entry, VaultError> {
    let kind: String = row.try_get("kind")?;
    let owner: String = row.try_get("owner")?;
    let computer: String = row.try_get("computer")?;
    let is_key: i64 = row.try_get("is_key")?;
    Ok(Entry {
        id: row.try_get("id")?,
        label: row.try_get("label")?,
        kind: if kind == "personal" {
            CredentialKind::Personal
        } else {
            CredentialKind::Shared
        },
        owner: Uuid::parse_str(&owner).ok(),
        computer: Uuid::parse_str(&computer)
            .map_err(|_| VaultError::Invalid("stored computer id is not a GUID".into()))?,
        user_name: row.try_get("user_name")?,
        is_key: is_key != 0,
    })
}

const COLUMNS: &str = "id, label, kind, owner, computer, user_name, is_key, salt, sealed";

impl Vault {
    pub fn new(store: Store, key: Key256) -> Self {
        Self { store, key }
    }

    /// Sets (or replaces) a person's master password.
    pub async fn set_master_password(
        &self,
        person: Uuid,
        password: &SecretText,
    ) -> Result<(), VaultError> {
        if password.len() < 8 {
            return Err(VaultError::Invalid(
                "a master password needs at least 8 characters".into(),
            ));
        }
        let verifier = crypto::verifier(password.expose_secret())?;
        let pool = self.store.pool();
        sqlx::query("DELETE FROM master_passwords WHERE person = $1")
            .bind(person.to_string())
            .execute(pool)
            .await?;
        sqlx::query(
            "INSERT INTO master_passwords (person, verifier, updated_at) VALUES ($1, $2, $3)",
        )
        .bind(person.to_string())
        .bind(verifier)
        .bind(unix_now())
        .execute(pool)
        .await?;
        Ok(())
    }

    /// Checks a person's master password against its verifier.
    pub async fn check_master_password(
        &self,
        person: Uuid,
        password: &SecretText,
    ) -> Result<(), VaultError> {
        let row = sqlx::query("SELECT verifier FROM master_passwords WHERE person = $1")
            .bind(person.to_string())
            .fetch_optional(self.store.pool())
            .await?;
        let verifier: Option<String> = row.map(|r| r.try_get("verifier")).transpose()?;
        let password = password.clone();
        // Argon2 takes tens of milliseconds of CPU: keep it off the async workers.
        let ok = tokio::task::spawn_blocking(move || {
            verifier.is_some_and(|v| crypto::verify(password.expose_secret(), &v))
        })
        .await
        .unwrap_or(false);
        if ok {
            Ok(())
        } else {
            Err(VaultError::WrongMasterPassword)
        }
    }

    pub async fn add(&self, new: NewCredential) -> Result<Entry, VaultError> {
        if new.label.trim().is_empty() || new.user_name.trim().is_empty() || new.secret.is_empty() {
            return Err(VaultError::Invalid(
                "label, user name and secret must not be empty".into(),
            ));
        }
        let id = Uuid::new_v4().to_string();
        let salt = crypto::random_salt();
        let (kind, owner, sealed) = match &new.personal {
            None => (
                CredentialKind::Shared,
                String::new(),
                crypto::seal(&self.key.0, &id, new.secret.expose_secret())?,
            ),
            Some((owner, master)) => {
                self.check_master_password(*owner, master).await?;
                let key = derive(master, &salt).await?;
                (
                    CredentialKind::Personal,
                    owner.to_string(),
                    crypto::seal(&key, &id, new.secret.expose_secret())?,
                )
            }
        };
        sqlx::query(&format!(
            "INSERT INTO vault_credentials ({COLUMNS}, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(&id)
        .bind(&new.label)
        .bind(kind_str(kind))
        .bind(&owner)
        .bind(new.computer.to_string())
        .bind(&new.user_name)
        .bind(i64::from(new.is_key))
        .bind(&salt)
        .bind(&sealed)
        .bind(unix_now())
        .execute(self.store.pool())
        .await?;
        Ok(Entry {
            id,
            label: new.label,
            kind,
            owner: new.personal.map(|(o, _)| o),
            computer: new.computer,
            user_name: new.user_name,
            is_key: new.is_key,
        })
    }

    /// Every credential, or those of one computer.
    pub async fn entries(&self, computer: Option<Uuid>) -> Result<Vec<Entry>, VaultError> {
        let rows =
            match computer {
                Some(c) => sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM vault_credentials WHERE computer = $1 ORDER BY label, id"
                ))
                .bind(c.to_string())
                .fetch_all(self.store.pool())
                .await?,
                None => {
                    sqlx::query(&format!(
                        "SELECT {COLUMNS} FROM vault_credentials ORDER BY computer, label, id"
                    ))
                    .fetch_all(self.store.pool())
                    .await?
                }
            };
        rows.iter().map(entry).collect()
    }

    pub async fn entry(&self, id: &str) -> Result<Entry, VaultError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM vault_credentials WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.store.pool())
        .await?
        .ok_or_else(|| VaultError::NotFound(id.to_owned()))?;
        entry(&row)
    }

    pub async fn remove(&self, id: &str) -> Result<(), VaultError> {
        let done = sqlx::query("DELETE FROM vault_credentials WHERE id = $1")
            .bind(id)
            .execute(self.store.pool())
            .await?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(VaultError::NotFound(id.to_owned()))
        }
    }

    /// Opens one credential for `person` with their master password.
    pub async fn open(
        &self,
        id: &str,
        person: Uuid,
        master: &SecretText,
    ) -> Result<(Entry, SecretText), VaultError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM vault_credentials WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.store.pool())
        .await?
        .ok_or_else(|| VaultError::NotFound(id.to_owned()))?;
        let e = entry(&row)?;
        let salt: String = row.try_get("salt")?;
        let sealed: String = row.try_get("sealed")?;
        let plain = match e.kind {
            CredentialKind::Shared => {
                self.check_master_password(person, master).await?;
                crypto::open(&self.key.0, id, &sealed)?
            }
            CredentialKind::Personal => {
                if e.owner != Some(person) {
                    return Err(VaultError::Invalid(
                        "someone else's personal credential".into(),
                    ));
                }
                let key = derive(master, &salt).await?;
                crypto::open(&key, id, &sealed).map_err(|_| VaultError::WrongMasterPassword)?
            }
        };
        Ok((e, SecretText::new(plain.as_str())))
    }
}

async fn derive(
    master: &SecretText,
    salt: &str,
) -> Result<zeroize::Zeroizing<[u8; 32]>, VaultError> {
    let (master, salt) = (master.clone(), salt.to_owned());
    tokio::task::spawn_blocking(move || crypto::derive_key(master.expose_secret(), &salt))
        .await
        .map_err(|_| VaultError::Crypto(crypto::CryptoError::Derive))?
        .map_err(VaultError::from)
}

fn plugin_error(e: VaultError) -> PluginError {
    match e {
        VaultError::WrongMasterPassword => {
            PluginError::unauthorized(Origin::User, "the master password is wrong")
        }
        VaultError::NotFound(id) => PluginError::not_found(format!("no credential {id}")),
        VaultError::Invalid(m) => PluginError::new(Origin::User, ErrorKind::InvalidInput, m),
        other => PluginError::internal(other.to_string()),
    }
}

#[async_trait]
impl Plugin for Vault {
    fn info(&self) -> PluginInfo {
        PluginInfo::new(
            PluginKind::CredentialSource,
            ID,
            env!("CARGO_PKG_VERSION"),
            "the embedded vault",
        )
    }

    async fn health(&self) -> PluginResult<()> {
        self.store
            .ping()
            .await
            .map_err(|e| PluginError::internal(e.to_string()))
    }
}

#[async_trait]
impl CredentialSource for Vault {
    async fn list(&self, who: &FlowSubject) -> PluginResult<Vec<CredentialRef>> {
        let entries = self
            .entries(Some(who.computer))
            .await
            .map_err(plugin_error)?;
        Ok(entries
            .into_iter()
            .filter(|e| e.kind == CredentialKind::Shared || e.owner == Some(who.person))
            .map(|e| CredentialRef {
                id: e.id,
                label: e.label,
                kind: e.kind,
                owner: e.owner,
                available: true,
            })
            .collect())
    }

    async fn check_out(&self, req: CheckOut) -> PluginResult<CheckedOut> {
        let (e, secret) = self
            .open(&req.credential, req.subject.person, &req.password)
            .await
            .map_err(plugin_error)?;
        if e.computer != req.subject.computer {
            return Err(PluginError::invalid_input(
                "the credential belongs to another computer",
            ));
        }
        Ok(CheckedOut {
            is_password_ssh_key: e.is_key,
            user_name: e.user_name,
            password: secret,
            notes: None,
            server: None,
            server2: None,
            server3: None,
            gateway_server_dns_host_name: None,
            management_port: None,
            allow_live_snooping: false,
            allow_join_requests: false,
            allow_join_invites: false,
            record_psm_session: true,
        })
    }

    async fn end_session(&self, _req: EndSession) -> PluginResult<()> {
        // The vault holds nothing per session: the host releases the lease.
        Ok(())
    }
}

#[cfg(test)]
mod tests;
