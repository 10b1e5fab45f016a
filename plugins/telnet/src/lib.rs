//! The `telnet` plugin of openpsm: telnet option negotiation (`negotiation`). The connection
//! mode itself (login automation, relay) is not finished: the crate registers nothing yet.

pub mod negotiation;
