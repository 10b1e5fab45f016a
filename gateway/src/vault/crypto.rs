//! The vault's cryptography: AES-256-GCM sealing (the credential id as associated data, so a
//! sealed secret cannot be moved to another row), Argon2id key derivation and verifiers.

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use rand::RngCore as _;
use zeroize::Zeroizing;

/// OWASP's Argon2id minimum: 19 MiB, 2 passes, 1 lane.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, Some(32)).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the secret could not be opened (wrong key or damaged)")]
    Open,
    #[error("the secret could not be sealed")]
    Seal,
    #[error("key derivation failed")]
    Derive,
}

pub fn random_salt() -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(salt)
}

/// A 256-bit key from a master password and a salt.
pub fn derive_key(password: &str, salt: &str) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
    let mut key = Zeroizing::new([0u8; 32]);
    argon2()
        .hash_password_into(password.as_bytes(), salt.as_bytes(), key.as_mut())
        .map_err(|_| CryptoError::Derive)?;
    Ok(key)
}

/// A verifier (PHC string) for a master password.
pub fn verifier(password: &str) -> Result<String, CryptoError> {
    let salt = SaltString::encode_b64(random_salt().as_bytes()).map_err(|_| CryptoError::Derive)?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| CryptoError::Derive)
}

pub fn verify(password: &str, verifier: &str) -> bool {
    PasswordHash::new(verifier)
        .is_ok_and(|hash| argon2().verify_password(password.as_bytes(), &hash).is_ok())
}

pub fn seal(key: &[u8; 32], aad: &str, plain: &str) -> Result<String, CryptoError> {
    let cipher = Aes256Gcm::new(key.into());
    let mut nonce = [0u8; 12];
    rand::rng().fill_bytes(&mut nonce);
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plain.as_bytes(),
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| CryptoError::Seal)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(base64::engine::general_purpose::STANDARD.encode(out))
}

pub fn open(key: &[u8; 32], aad: &str, sealed: &str) -> Result<Zeroizing<String>, CryptoError> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(sealed)
        .map_err(|_| CryptoError::Open)?;
    if raw.len() < 28 {
        return Err(CryptoError::Open);
    }
    let (nonce, body) = raw.split_at(12);
    let plain = Aes256Gcm::new(key.into())
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: body,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| CryptoError::Open)?;
    String::from_utf8(plain)
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_derive_verify() {
        let key = derive_key("master", "salt-salt-salt").unwrap();
        let again = derive_key("master", "salt-salt-salt").unwrap();
        assert_eq!(key.as_ref(), again.as_ref());
        assert_ne!(
            derive_key("master!", "salt-salt-salt").unwrap().as_ref(),
            key.as_ref()
        );
        let sealed = seal(&key, "cred-1", "Pa55-Canary").unwrap();
        assert_eq!(
            open(&key, "cred-1", &sealed).unwrap().as_str(),
            "Pa55-Canary"
        );
        assert_eq!(
            open(&key, "cred-2", &sealed),
            Err(CryptoError::Open),
            "bound to its row"
        );
        let other = derive_key("wrong", "salt-salt-salt").unwrap();
        assert_eq!(open(&other, "cred-1", &sealed), Err(CryptoError::Open));
        assert_eq!(open(&key, "cred-1", "junk"), Err(CryptoError::Open));
        let v = verifier("master").unwrap();
        assert!(verify("master", &v));
        assert!(!verify("Master", &v));
        assert!(!verify("master", "not a phc string"));
    }
}
