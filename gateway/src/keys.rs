//! The gateway's secret keys: generated into `<data_dir>/keys/` on first start (directory 0700,
//! files 0600), or copied there by the admin (every node of a cluster needs the same files).
//!
//! - `link.key`: HMAC key of start links, shared with the IAM portal.
//! - `token.key`: AES-256-GCM key of sealed launch tokens.
//! - `vault.key`: AES-256-GCM key of the embedded vault's shared credentials.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rand::RngCore as _;
use zeroize::Zeroizing;

use crate::startlink::LinkKey;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

/// A 256-bit key.
#[derive(Clone)]
pub struct Key256(pub Zeroizing<[u8; 32]>);

impl std::fmt::Debug for Key256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key256([redacted])")
    }
}

#[derive(Debug, Clone)]
pub struct Keys {
    pub link: LinkKey,
    pub token: Key256,
    pub vault: Key256,
}

impl Keys {
    /// Loads the keys below `data_dir`, creating any that do not exist yet.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, KeyError> {
        let dir = data_dir.join("keys");
        create_private_dir(&dir)?;
        let link = load_or_create_key(&dir.join("link.key"))?;
        Ok(Self {
            link: LinkKey::new(link.0.to_vec()),
            token: load_or_create_key(&dir.join("token.key"))?,
            vault: load_or_create_key(&dir.join("vault.key"))?,
        })
    }
}

fn err(path: &Path, reason: impl std::fmt::Display) -> KeyError {
    KeyError::File {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

fn create_private_dir(dir: &Path) -> Result<(), KeyError> {
    std::fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| err(dir, e))?;
    }
    Ok(())
}

fn load_or_create_key(path: &Path) -> Result<Key256, KeyError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_key(path, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_key(path),
        Err(e) => Err(err(path, e)),
    }
}

fn parse_key(path: &Path, text: &str) -> Result<Key256, KeyError> {
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| err(path, "not base64"))?,
    );
    let array: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| err(path, format!("holds {} bytes, a key has 32", bytes.len())))?;
    Ok(Key256(Zeroizing::new(array)))
}

fn create_key(path: &Path) -> Result<Key256, KeyError> {
    let mut key = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(key.as_mut());
    let text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(key.as_ref()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(text.as_bytes()).map_err(|e| err(path, e))?;
            file.sync_all().map_err(|e| err(path, e))?;
            Ok(Key256(key))
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path).map_err(|e| err(path, e))?;
            parse_key(path, &text)
        }
        Err(e) => Err(err(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_created_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = Keys::load_or_create(dir.path()).unwrap();
        let again = Keys::load_or_create(dir.path()).unwrap();
        assert_eq!(first.token.0.as_ref(), again.token.0.as_ref());
        assert_ne!(first.token.0.as_ref(), first.vault.0.as_ref());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join("keys/token.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join("keys/vault.key"), "c2hvcnQ=").unwrap();
        let e = Keys::load_or_create(dir.path()).unwrap_err().to_string();
        assert!(e.contains("vault.key") && e.contains("32"), "{e}");
        assert!(!format!("{first:?}").contains(&format!("{:?}", first.token.0.as_ref())));
    }
}
