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
pub const WINDOW_NOT_STARTED: &str = "Your access to this computer has not started yet.";
pub const WINDOW_OVER: &str = "Your access to this computer has ended.";
pub const DECLINED: &str = "You did not accept the recording agreement, so no session was started.";
pub const NO_MODE: &str = "None of the connection types this computer allows is available.";
pub const MFA_WRONG: &str = "That code was not accepted. Try again.";
pub const MFA_TOO_MANY: &str = "Too many wrong codes. Start again from the portal.";
pub const NO_ACCESS_LEVEL: &str = "You are not pre-approved for any access level on this computer.";
pub const MASTER_WRONG: &str = "The master password is not correct. Try again.";
pub const MASTER_TOO_MANY: &str = "Too many wrong master passwords. Start again from the portal.";
pub const MASTER_TOO_EARLY: &str = "Please wait until the account is ready.";
pub const TOKEN_EXPIRED: &str =
    "Your session with the portal has expired. Close this tab and start again.";
pub const IAM_REFUSED: &str = "Your session with the portal could not be confirmed. Close this tab and start again from the portal.";
pub const IAM_UNAVAILABLE: &str = "The identity service could not be reached to confirm your session. Close this page and try again later.";
pub const CHECKOUT_FAILED: &str =
    "The credential could not be checked out. Close this page and try again later.";
pub const JIT_UNAVAILABLE: &str =
    "A just-in-time account is required for this computer, but none can be created now.";
pub const CANCELLED: &str = "The session request was cancelled.";
pub const EXPIRED: &str = "This session request has expired. Start again from the portal.";
pub const AGREEMENT: &str = "This session will be recorded. The recording, including everything shown on the screen and typed, is kept and may be reviewed by your organisation's auditors. Do you agree?";

/// The message for a person who must enrol in an MFA method first.
pub fn not_enrolled(label: &str) -> String {
    format!(
        "You are not enrolled for {label}. Ask your administrator for an enrolment link, enrol, then start again."
    )
}
pub const PERSON_LOCKED: &str =
    "Too many wrong attempts for your account. Wait 15 minutes, then start again from the portal.";

/// The message for a person whose MFA is locked after too many wrong codes.
pub fn mfa_locked(secs_left: i64) -> String {
    let minutes = (secs_left.max(1) + 59) / 60;
    let unit = if minutes == 1 { "minute" } else { "minutes" };
    format!(
        "Too many wrong codes for your account: MFA is locked for {minutes} more {unit}. Start again from the portal after that."
    )
}
