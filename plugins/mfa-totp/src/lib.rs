//! The `mfa-totp` plugin of openpsm.
//!
//! Deliberately empty: its behaviour arrives with issue 6 (the mfa-totp plugin). Until then the crate registers
//! nothing, so the gateway neither lists nor offers it; nothing pretends to work that does not.
