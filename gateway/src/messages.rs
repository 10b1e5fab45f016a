//! Every user-facing text the seed fixes, verbatim, in one place (tests assert these strings).

pub const INVALID_PARAMETERS: &str = "Invalid request parameters.";
pub const MISSING_PARAMETERS: &str = "Missing request parameters.";
pub const NO_CREDENTIALS: &str = "No shared or personal credentials are available.";
pub const SOMEONE_ELSES_CREDENTIAL: &str =
    "Invalid Credential. You cannot use someone else's personal credential.";
pub const SHARED_IN_USE: &str = "None of the shared credentials are available.";

// Texts of our own, where the seed has none.
pub const LINK_UNSIGNED: &str = "This start link is not signed. Start again from the portal.";
pub const LINK_BAD_SIGNATURE: &str = "This start link is not valid. Start again from the portal.";
pub const LINK_EXPIRED: &str = "This start link has expired. Start again from the portal.";
pub const LINK_REPLAYED: &str =
    "This start link has already been used. Start again from the portal.";
