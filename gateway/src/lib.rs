//! The openpsm gateway as a library: configuration, the plugin registry, the HTTP server.
//! The `openpsm` binary (`main.rs`) is a thin CLI over it.

pub mod app;
pub mod config;
pub mod directory;
pub mod keys;
pub mod logging;
pub mod messages;
pub mod mfa;
pub mod plugins;
pub mod recorder_local;
pub mod session;
pub mod startlink;
pub mod store;
pub mod token;
pub mod vault;
pub mod web;
pub mod workflow;

// Built-in plugins register through inventory: the crate must be linked to be found.
use openpsm_plugin_empowerid as _;
use openpsm_plugin_jit_ad as _;
use openpsm_plugin_mfa_totp as _;
use openpsm_plugin_rdp as _;
use openpsm_plugin_ssh as _;
use openpsm_plugin_telnet as _;
