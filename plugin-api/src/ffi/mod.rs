//! The stable ABI between the gateway and a plugin shipped as a shared library.
//!
//! Shape: the library exports one abi_stable root module ([`PluginRoot`]) with two functions,
//! `describe` (who the plugin is) and `instantiate` (build it from settings). An instance is a
//! [`FfiPlugin`] trait object with one generic `call` (method name + JSON payload, the request and
//! response types of the Rust traits) and `run_session` for connection modes, whose browser
//! channels cross the boundary as a [`FfiSessionIo`] object of blocking send/receive functions.
//!
//! Why JSON inside an abi_stable frame: the trait types evolve with every issue; abi_stable checks
//! the frame's layout, the version check refuses a library built against another 0.x minor, and
//! serde checks every payload, so a mismatch is an error value, never undefined behaviour.
//!
//! Both sides of every function catch panics (a panic crossing `extern "C"` aborts the process).
//! The library runs its async work on a tokio runtime it owns ([`guest`]); the host calls from
//! blocking threads with a timeout ([`host`]). The library's `tracing` events reach the host's
//! subscriber through [`LogSink`].

mod abi;
pub mod codec;
pub mod guest;
pub mod host;
pub mod log;

pub use abi::*;
pub use log::LogSink;
