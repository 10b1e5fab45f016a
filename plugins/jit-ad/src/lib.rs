//! The `jit-ad` plugin of openpsm.
//!
//! Deliberately empty: its behaviour arrives with issue 8 (the jit-ad plugin). Until then the crate registers
//! nothing, so the gateway neither lists nor offers it; nothing pretends to work that does not.
