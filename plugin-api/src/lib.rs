//! The contract every openpsm plugin implements, and the stable ABI around it.
//!
//! Five extension points, each a plain object-safe async trait: [`ConnectionMode`],
//! [`MfaProvider`], [`CredentialSource`], [`Recorder`], [`AccountProvisioner`]. A built-in
//! implements one and registers a [`BuiltinPlugin`]; a vendor implements the same trait in a
//! `cdylib` crate and calls [`export_plugin!`]; the host wraps a loaded library in the adapters
//! of [`ffi::host`], so both look alike to it. [`conformance`] holds the suites every plugin runs.
//!
//! **API boundary**: changing a type here changes the wire format of shared-library plugins:
//! bump this crate's 0.x minor, which makes the loader refuse libraries built against the old one.

pub mod conformance;
pub mod connect;
pub mod credential;
pub mod error;
pub mod ffi;
pub mod guac;
pub mod info;
pub mod mfa;
pub mod mode;
pub mod plugin;
pub mod provisioner;
pub mod recorder;
pub mod secret;
pub mod types;

pub use async_trait::async_trait;
pub use credential::{
    ApiContext, CheckOut, CheckedOut, CredentialKind, CredentialRef, CredentialSource, EndSession,
    FlowSubject,
};
pub use error::{ErrorKind, Origin, PluginError, PluginResult};
pub use info::{API_VERSION, HostContext, PluginInfo, PluginKind};
pub use mfa::{EnrolledSecret, Enrollment, MfaProvider, ProviderInfo, Verdict};
pub use mode::{
    Channel, ConnectionMode, Frame, Input, ModeInfo, OpenRequest, SessionEnd, SessionIo,
};
pub use plugin::{BuiltinPlugin, Plugin, PluginInstance, PluginSettings, builtins};
pub use provisioner::{AccountProvisioner, JitAccount, JitAccountRef, JitRequest};
pub use recorder::{Recorder, RecordingFile, SealedRecording, StoredRecording};
pub use secret::SecretText;
pub use types::Subject;

#[doc(hidden)]
pub use inventory;
