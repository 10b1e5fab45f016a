//! Secrets as a type: redacted in `Debug`/`Display`, wiped from memory on drop.
//!
//! `SecretText` serializes to its plain value because it must cross the shared-library boundary and
//! reach the target; nothing in the host serializes it anywhere else (not into logs, pages or URLs).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// A password, key or token. Deliberately not `Display`: reading it takes `expose_secret`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretText(Zeroizing<String>);

impl SecretText {
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The plain value, for the one place that must use it (a handshake, a hash, a cipher).
    pub fn expose_secret(&self) -> &str {
        self.0.as_str()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretText([redacted])")
    }
}

impl From<String> for SecretText {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for SecretText {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl Serialize for SecretText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose_secret())
    }
}

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = SecretText::new("canary-Zx81");
        assert!(!format!("{s:?}").contains("canary"));
        assert_eq!(s.expose_secret(), "canary-Zx81");
        let json = serde_json::to_string(&s).unwrap();
        let back: SecretText = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }
}
