//! Connection mode "rdp": the gateway connects to the RDP server itself with IronRDP, injects the
//! credential, and serves the picture to the browser in the Guacamole display protocol.

/// The Guacamole instruction codec lives in plugin-api (the display channel's format); re-exported
/// here for this crate's modules.
pub use openpsm_plugin_api::guac;
