//! A valid shared library that exports no openpsm root module.

/// Something to export, so the library is not empty.
pub extern "C" fn not_a_plugin_answer() -> u32 {
    42
}
