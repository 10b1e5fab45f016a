//! Connection mode "rdp": the gateway connects to the RDP server itself with IronRDP, injects the
//! credential, and serves the picture to the browser in the Guacamole display protocol.

pub mod guac;
