//! Which step a flow is at, computed from its state; what each step shows; the answers.

use serde::{Deserialize, Serialize};

use super::state::{Flow, Outcome};
use openpsm_plugin_api::{Channel, CredentialKind, SecretText};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialOption {
    pub id: String,
    pub label: String,
    pub kind: CredentialKind,
    pub available: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LevelOption {
    pub id: String,
    pub label: String,
}

/// What the person sees; the JSON API's `Step`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum StepView {
    ChooseCredential {
        message: Option<String>,
        options: Vec<CredentialOption>,
    },
    Agreement {
        message: Option<String>,
        text: String,
    },
    ChooseMode {
        message: Option<String>,
        options: Vec<String>,
    },
    Mfa {
        message: Option<String>,
        provider: String,
        label: String,
        prompt: String,
        enrolled: bool,
    },
    ChooseAccessLevel {
        message: Option<String>,
        options: Vec<LevelOption>,
    },
    MasterPassword {
        message: Option<String>,
        delay_secs: u32,
    },
    Launch {
        channel: Channel,
        tunnel: String,
        token: String,
    },
    Ended {
        reason: String,
    },
    Failed {
        error: String,
    },
}

impl StepView {
    pub fn name(&self) -> &'static str {
        match self {
            Self::ChooseCredential { .. } => "choose_credential",
            Self::Agreement { .. } => "agreement",
            Self::ChooseMode { .. } => "choose_mode",
            Self::Mfa { .. } => "mfa",
            Self::ChooseAccessLevel { .. } => "choose_access_level",
            Self::MasterPassword { .. } => "master_password",
            Self::Launch { .. } => "launch",
            Self::Ended { .. } => "ended",
            Self::Failed { .. } => "failed",
        }
    }
}

/// An answer to the current step (`{"step": "<name>", ...}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case", deny_unknown_fields)]
pub enum Answer {
    ChooseCredential { credential: String },
    Agreement { accept: bool },
    ChooseMode { mode: String },
    Mfa { response: SecretText },
    ChooseAccessLevel { access_level: String },
    MasterPassword { master_password: SecretText },
}

impl Answer {
    pub fn step(&self) -> &'static str {
        match self {
            Self::ChooseCredential { .. } => "choose_credential",
            Self::Agreement { .. } => "agreement",
            Self::ChooseMode { .. } => "choose_mode",
            Self::Mfa { .. } => "mfa",
            Self::ChooseAccessLevel { .. } => "choose_access_level",
            Self::MasterPassword { .. } => "master_password",
        }
    }
}

/// The step a flow is at, before options are filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Current {
    ChooseCredential,
    Agreement,
    ChooseMode,
    Mfa(String),
    ChooseAccessLevel,
    MasterPassword,
    Done(Outcome),
}

impl Current {
    pub fn name(&self) -> &'static str {
        match self {
            Self::ChooseCredential => "choose_credential",
            Self::Agreement => "agreement",
            Self::ChooseMode => "choose_mode",
            Self::Mfa(_) => "mfa",
            Self::ChooseAccessLevel => "choose_access_level",
            Self::MasterPassword => "master_password",
            Self::Done(Outcome::Launched { .. }) => "launch",
            Self::Done(Outcome::Ended { .. }) => "ended",
            Self::Done(Outcome::Failed { .. }) => "failed",
        }
    }
}

/// The seed's order: credential (2-3), agreement (3), mode (6), MFA (7), access level (8),
/// master password and check-out (9), launch (10).
pub fn current(flow: &Flow, record: bool, mfa_required: &[String]) -> Current {
    if let Some(outcome) = &flow.outcome {
        return Current::Done(outcome.clone());
    }
    if flow.credential.is_none() {
        return Current::ChooseCredential;
    }
    if record && !flow.agreed {
        return Current::Agreement;
    }
    if flow.mode.is_none() {
        return Current::ChooseMode;
    }
    if let Some(p) = mfa_required.iter().find(|p| !flow.mfa_passed.contains(p)) {
        return Current::Mfa(p.clone());
    }
    if flow.access_level.is_none() {
        return Current::ChooseAccessLevel;
    }
    Current::MasterPassword
}
