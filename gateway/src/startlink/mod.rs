//! Start links: the seed's parameters, authenticated with HMAC-SHA256 by a key the IAM portal
//! shares with the gateway, with an expiry and a one-time nonce.
//!
//! Format: `/start?<parameters>&exp=<unix seconds>&nonce=<random>&sig=<hex>`, where `sig` is the
//! last parameter and `HMAC-SHA256(key, "openpsm-start-v1\n" + <everything before "&sig=">)`, over
//! the query exactly as sent. The nonce is consumed in the store, so a link works once.

pub mod allow;
pub mod params;

use hmac::{Hmac, Mac as _};
use rand::RngCore as _;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

pub use params::{ParamError, SeedMode, StartParams};

use crate::messages;

const CONTEXT: &[u8] = b"openpsm-start-v1\n";
const SIG: &str = "&sig=";

/// The key shared with the IAM portal.
#[derive(Clone)]
pub struct LinkKey(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey([redacted])")
    }
}

impl LinkKey {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    fn mac(&self, message: &str) -> Hmac<Sha256> {
        // HMAC takes keys of any length; new_from_slice cannot fail for it.
        let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| <Hmac<Sha256> as hmac::digest::KeyInit>::new(&Default::default()));
        mac.update(CONTEXT);
        mac.update(message.as_bytes());
        mac
    }
}

/// Why a start link was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("{}", messages::LINK_UNSIGNED)]
    Unsigned,
    #[error("{}", messages::LINK_BAD_SIGNATURE)]
    BadSignature,
    #[error("{}", messages::LINK_EXPIRED)]
    Expired,
    #[error("{}", messages::LINK_REPLAYED)]
    Replayed,
    #[error("{0}")]
    Params(#[from] ParamError),
}

/// A verified link, before its nonce is consumed.
#[derive(Debug, Clone)]
pub struct VerifiedLink {
    pub params: StartParams,
    pub nonce: String,
    pub expires_at: i64,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Verifies the raw query string of a start link at time `now`. Links valid for longer than
/// `max_lifetime` seconds from now are refused (a leaked link must not work for days).
pub fn verify(
    raw: &str,
    key: &LinkKey,
    now: i64,
    max_lifetime: i64,
) -> Result<VerifiedLink, LinkError> {
    let raw = raw.strip_prefix('?').unwrap_or(raw);
    if raw.len() > params::MAX_QUERY {
        return Err(ParamError::Invalid("query string too long".into()).into());
    }
    let Some((message, sig)) = raw.rsplit_once(SIG) else {
        return Err(LinkError::Unsigned);
    };
    let wanted = key.mac(message).finalize().into_bytes();
    if sig.len() != 64 || !bool::from(hex(&wanted).as_bytes().ct_eq(sig.as_bytes())) {
        return Err(LinkError::BadSignature);
    }
    let pairs = params::decode_query(message)?;
    let find = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let expires_at = find("exp")
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or_else(|| ParamError::Invalid("exp: absent or not a number".into()))?;
    let nonce = find("nonce")
        .filter(|n| {
            (16..=128).contains(&n.len())
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .ok_or_else(|| ParamError::Invalid("nonce: absent or malformed".into()))?
        .to_owned();
    let params = params::parse_pairs(&pairs, &["exp", "nonce"])?;
    if expires_at <= now {
        return Err(LinkError::Expired);
    }
    if expires_at > now.saturating_add(max_lifetime) {
        return Err(
            ParamError::Invalid("exp: further in the future than links may live".into()).into(),
        );
    }
    Ok(VerifiedLink {
        params,
        nonce,
        expires_at,
    })
}

/// Parses an unsigned start link (`links.authentication = "iam"`): the seed's parameters only; the
/// caller confirms LoginSessionID and ApiKey with the IAM before anything is shown.
pub fn parse_unsigned(raw: &str) -> Result<StartParams, LinkError> {
    let raw = raw.strip_prefix('?').unwrap_or(raw);
    if raw.len() > params::MAX_QUERY {
        return Err(ParamError::Invalid("query string too long".into()).into());
    }
    let pairs = params::decode_query(raw)?;
    let params = params::parse_pairs(&pairs, &[])?;
    if params.login_session_id.is_none() || params.api_key.is_none() {
        return Err(
            ParamError::Missing("LoginSessionID and ApiKey (they authenticate this link)").into(),
        );
    }
    Ok(params)
}

/// A fresh nonce: 128 random bits, hex.
pub fn new_nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex(&bytes)
}

/// Builds a signed query string from seed parameters (as the IAM portal would).
pub fn sign(pairs: &[(&str, String)], key: &LinkKey, expires_at: i64, nonce: &str) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        query.append_pair(k, v);
    }
    query.append_pair("exp", &expires_at.to_string());
    query.append_pair("nonce", nonce);
    let message = query.finish();
    let sig = hex(&key.mac(&message).finalize().into_bytes());
    format!("{message}{SIG}{sig}")
}

#[cfg(test)]
mod tests;
