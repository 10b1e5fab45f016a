//! Sealed launch tokens: what the session page hands the tunnel, valid once, for seconds, and
//! only for the browser that earned it.
//!
//! `base64url(nonce ‖ AES-256-GCM(claims JSON))`, a random 96-bit nonce, associated data =
//! token format version + cluster id. The claims carry an expiry, a one-time id (consumed in the
//! store by the tunnel) and a hash of the browser's flow cookie.

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use uuid::Uuid;

use crate::keys::Key256;

const VERSION: u8 = 1;
/// The largest token accepted (a token is a few hundred bytes; this bounds the work on junk).
pub const MAX_TOKEN: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the launch token is malformed")]
    Malformed,
    #[error("the launch token is not genuine")]
    NotGenuine,
    #[error("the launch token has expired")]
    Expired,
    #[error("the launch token belongs to another browser")]
    WrongBrowser,
    #[error("the launch token has already been used")]
    Replayed,
    #[error("the launch token could not be sealed")]
    Seal,
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchClaims {
    pub id: Uuid,
    pub flow: String,
    pub session: Uuid,
    /// SHA-256 of the flow cookie's secret, hex.
    pub browser: String,
    pub expires_at: i64,
    /// The connection object: mode, target, credential reference, display, recording plan, flags.
    pub connection: serde_json::Value,
}

/// The hash a token binds to, from the browser's flow secret.
pub fn browser_binding(flow_secret: &str) -> String {
    Sha256::digest(flow_secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub struct TokenSealer {
    cipher: Aes256Gcm,
    aad: Vec<u8>,
}

impl std::fmt::Debug for TokenSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSealer([redacted])")
    }
}

impl TokenSealer {
    pub fn new(key: &Key256, cluster_id: &str) -> Self {
        let cipher = Aes256Gcm::new(key.0.as_ref().into());
        let mut aad = vec![VERSION];
        aad.extend_from_slice(cluster_id.as_bytes());
        Self { cipher, aad }
    }

    pub fn seal(&self, claims: &LaunchClaims) -> Result<String, TokenError> {
        let plain = serde_json::to_vec(claims).map_err(|_| TokenError::Seal)?;
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: &self.aad,
                },
            )
            .map_err(|_| TokenError::Seal)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens and checks a token at `now` for the browser whose binding is `browser`. The caller
    /// then consumes `claims.id` in the store (a second use is [`TokenError::Replayed`]).
    pub fn open(&self, token: &str, now: i64, browser: &str) -> Result<LaunchClaims, TokenError> {
        if token.is_empty() || token.len() > MAX_TOKEN {
            return Err(TokenError::Malformed);
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| TokenError::Malformed)?;
        if raw.len() < 12 + 16 {
            return Err(TokenError::Malformed);
        }
        let (nonce, sealed) = raw.split_at(12);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &self.aad,
                },
            )
            .map_err(|_| TokenError::NotGenuine)?;
        let claims: LaunchClaims =
            serde_json::from_slice(&plain).map_err(|_| TokenError::Malformed)?;
        if claims.expires_at <= now {
            return Err(TokenError::Expired);
        }
        if !bool::from(claims.browser.as_bytes().ct_eq(browser.as_bytes())) {
            return Err(TokenError::WrongBrowser);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use zeroize::Zeroizing;

    use super::*;

    fn sealer(byte: u8, cluster: &str) -> TokenSealer {
        TokenSealer::new(&Key256(Zeroizing::new([byte; 32])), cluster)
    }

    fn claims() -> LaunchClaims {
        LaunchClaims {
            id: Uuid::from_u128(7),
            flow: "flow-1".into(),
            session: Uuid::from_u128(8),
            browser: browser_binding("cookie-secret"),
            expires_at: 1_000,
            connection: serde_json::json!({"mode": "ssh", "host": "127.0.0.1"}),
        }
    }

    #[test]
    fn round_trip_and_every_refusal() {
        let s = sealer(1, "cluster-a");
        let token = s.seal(&claims()).unwrap();
        let b = browser_binding("cookie-secret");
        assert_eq!(s.open(&token, 999, &b).unwrap(), claims());
        assert_eq!(s.open(&token, 1_000, &b), Err(TokenError::Expired));
        assert_eq!(
            s.open(&token, 10, &browser_binding("other")),
            Err(TokenError::WrongBrowser)
        );
        assert_eq!(
            sealer(2, "cluster-a").open(&token, 10, &b),
            Err(TokenError::NotGenuine)
        );
        assert_eq!(
            sealer(1, "cluster-b").open(&token, 10, &b),
            Err(TokenError::NotGenuine)
        );
        assert_eq!(s.open("", 10, &b), Err(TokenError::Malformed));
        assert_eq!(s.open("!!!", 10, &b), Err(TokenError::Malformed));
        assert_eq!(
            s.open(&"A".repeat(MAX_TOKEN + 1), 10, &b),
            Err(TokenError::Malformed)
        );
        assert_ne!(s.seal(&claims()).unwrap(), token, "fresh nonce every time");
    }

    proptest! {
        #[test]
        fn tampered_tokens_are_refused(at in 0usize..4096, flip in 1u8..=255) {
            let s = sealer(1, "c");
            let token = s.seal(&claims()).unwrap();
            let mut raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&token).unwrap();
            let at = at % raw.len();
            raw[at] ^= flip;
            let tampered = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
            prop_assert!(s.open(&tampered, 10, &browser_binding("cookie-secret")).is_err());
        }

        #[test]
        fn arbitrary_input_never_panics(junk in "\\PC{0,200}") {
            let _ = sealer(1, "c").open(&junk, 10, "x");
        }
    }
}
