//! The abi_stable types of the boundary. Its macros generate `unsafe` impls (layout constants,
//! vtables): that generated code is the only `unsafe` this workspace allows, kept in this module.

#![allow(unsafe_code, non_camel_case_types, non_local_definitions)]

use abi_stable::{
    StableAbi, declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, RResult, RStr, RString, RVec},
};

use super::LogSink;

/// The root module every plugin library exports (through [`crate::export_plugin!`]).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginRoot_Ref)))]
#[sabi(missing_field(panic))]
pub struct PluginRoot {
    /// The plugin-api version the library was built against (also in the header's version strings).
    pub api_version: RStr<'static>,
    /// The plugin's `PluginInfo` as JSON.
    pub describe: extern "C" fn() -> RResult<RString, RString>,
    /// Builds an instance from `{"host": HostContext, "settings": ...}` (JSON). The error is a
    /// JSON `PluginError`.
    #[sabi(last_prefix_field)]
    pub instantiate: extern "C" fn(RStr<'_>, LogSink) -> RResult<FfiPluginBox, RString>,
}

impl RootModule for PluginRoot_Ref {
    declare_root_module_statics! {PluginRoot_Ref}
    const BASE_NAME: &'static str = "openpsm_plugin";
    const NAME: &'static str = "openpsm plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// One built plugin, across the boundary.
#[sabi_trait]
pub trait FfiPlugin: Send + Sync {
    /// JSON `InstanceInfo`: the plugin's identity and the sync parts of its trait.
    fn describe_instance(&self) -> RString;

    /// Calls one trait method: `method` names it (see [`super::codec::method`]), `payload` and the
    /// answer are JSON; the error is a JSON `PluginError`.
    fn call(&self, method: RStr<'_>, payload: RStr<'_>) -> RResult<RString, RString>;

    /// Runs one session of a connection mode (JSON `OpenRequest` in, JSON `SessionEnd` out).
    #[sabi(last_prefix_field)]
    fn run_session(&self, request: RStr<'_>, io: FfiSessionIoBox) -> RResult<RString, RString>;
}

/// The boxed trait object of a plugin instance.
pub type FfiPluginBox = FfiPlugin_TO<'static, RBox<()>>;

/// What [`FfiSessionIo::recv`] answers.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub enum FfiRecv {
    /// One encoded `Input` (see [`super::codec::encode_input`]).
    Input(RVec<u8>),
    /// Nothing arrived within the timeout.
    Timeout,
    /// The host closed the input side: the session is over.
    Closed,
}

/// A session's browser channels, implemented by the host, used by the library from its threads.
#[sabi_trait]
pub trait FfiSessionIo: Send + Sync {
    /// Sends one encoded `Frame`, blocking while the host's bounded channel is full. False when
    /// the host no longer reads (the session is over).
    fn send(&self, frame: RVec<u8>) -> bool;

    /// Waits up to `timeout_ms` for the next input.
    #[sabi(last_prefix_field)]
    fn recv(&self, timeout_ms: u64) -> FfiRecv;
}

/// The boxed trait object of a session's channels.
pub type FfiSessionIoBox = FfiSessionIo_TO<'static, RBox<()>>;
