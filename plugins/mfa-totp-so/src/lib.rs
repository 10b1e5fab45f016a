//! The `totp` provider as a shared library: configure `[plugins.totp] path = ".../libopenpsm_plugin_mfa_totp_so.so"`
//! and it replaces the built-in of the same id.

openpsm_plugin_api::export_plugin!(
    info: openpsm_plugin_mfa_totp::info,
    build: openpsm_plugin_mfa_totp::build
);
