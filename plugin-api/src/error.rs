//! The one error type every plugin returns.
//!
//! It records where a fault came from and whether trying again can help, so the host can decide
//! between "ask the user again", "retry with backoff" and "give up" without parsing messages
//! (the seed's credential API has exactly those three answers).

use serde::{Deserialize, Serialize};

/// Where a fault came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The plugin's own code or settings.
    Plugin,
    /// The computer a session goes to (sshd, telnetd, an RDP server).
    Target,
    /// A service the plugin talks to on the host's behalf (the IAM's API, a directory).
    Backend,
    /// The person's input (a wrong code, a wrong master password).
    User,
    /// The host around the plugin: the shared-library boundary, a timeout, a panic guard.
    Host,
}

/// What kind of fault it is. The host branches on this, never on the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Settings handed to the plugin are invalid.
    InvalidSettings,
    /// A request the plugin received is invalid.
    InvalidInput,
    /// A secret was refused: the seed's 401 (wrong master password, wrong target password).
    Unauthorized,
    /// The access token of the IAM expired: the flow must start over.
    TokenExpired,
    /// The target's host key or certificate is not the pinned one (a changed key is refused).
    HostKeyMismatch,
    /// The thing asked for is busy or taken (a shared credential in use).
    Unavailable,
    /// The thing asked for does not exist.
    NotFound,
    /// A host or service could not be reached.
    Unreachable,
    /// A peer broke its protocol.
    Protocol,
    /// The call took longer than the host allows.
    Timeout,
    /// The plugin panicked; the host turned the panic into this error.
    Panicked,
    /// The plugin is not answering any more (earlier calls are stuck) and calls fail fast.
    Unresponsive,
    /// Anything else.
    Internal,
}

/// A plugin's error: origin, kind, whether a retry can help, and a message for people.
///
/// The message must never contain a secret: the host logs it and may show it on an error page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct PluginError {
    pub origin: Origin,
    pub kind: ErrorKind,
    /// True when the same call, made again later, may succeed.
    pub retryable: bool,
    pub message: String,
}

impl PluginError {
    pub fn new(origin: Origin, kind: ErrorKind, message: impl Into<String>) -> Self {
        let retryable = matches!(
            kind,
            ErrorKind::Unavailable | ErrorKind::Unreachable | ErrorKind::Timeout
        );
        Self {
            origin,
            kind,
            retryable,
            message: message.into(),
        }
    }

    pub fn settings(message: impl Into<String>) -> Self {
        Self::new(Origin::Plugin, ErrorKind::InvalidSettings, message)
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(Origin::Host, ErrorKind::InvalidInput, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Origin::Plugin, ErrorKind::Internal, message)
    }

    pub fn unauthorized(origin: Origin, message: impl Into<String>) -> Self {
        Self::new(origin, ErrorKind::Unauthorized, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Origin::Plugin, ErrorKind::NotFound, message)
    }

    pub fn unreachable(origin: Origin, message: impl Into<String>) -> Self {
        Self::new(origin, ErrorKind::Unreachable, message)
    }

    /// Overrides whether a retry makes sense.
    #[must_use]
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// Prefixes the message with context ("checking out credential X: ...").
    #[must_use]
    pub fn context(mut self, context: impl std::fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

/// The result type of every plugin call.
pub type PluginResult<T> = Result<T, PluginError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_follows_kind_and_round_trips_json() {
        let e = PluginError::unreachable(Origin::Target, "no route");
        assert!(e.retryable);
        assert!(!PluginError::settings("bad").retryable);
        let json = serde_json::to_string(&e).unwrap_or_default();
        let back: PluginError =
            serde_json::from_str(&json).unwrap_or_else(|_| PluginError::internal("x"));
        assert_eq!(back, e);
        assert_eq!(e.context("host a").to_string(), "host a: no route");
    }
}
