//! MFA around the providers: enrolment with confirmation, QR codes, and the per-person lockout.
//! Providers only do their method's cryptography (plugin-api `MfaProvider`); storage, replay and
//! limits are here and in the workflow's MFA step.

pub mod enrolment;
pub mod lockout;
pub mod qr;
