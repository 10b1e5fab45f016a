//! The `empowerid` plugin of openpsm.
//!
//! Deliberately empty: its behaviour arrives with issue 7 (the empowerid plugin). Until then the crate registers
//! nothing, so the gateway neither lists nor offers it; nothing pretends to work that does not.
