//! The `ssh` plugin of openpsm.
//!
//! Deliberately empty: its behaviour arrives with issue 4 (live SSH sessions). Until then the crate registers
//! nothing, so the gateway neither lists nor offers it; nothing pretends to work that does not.
