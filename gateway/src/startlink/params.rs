//! The start parameters of the seed, parsed and validated.
//!
//! Every parameter the seed lists is accepted by its exact name; anything else, a repeated name,
//! or a value of the wrong shape is "Invalid request parameters."; a required one that is absent
//! or empty is "Missing request parameters.".

use openpsm_plugin_api::SecretText;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::messages;

/// The longest value any parameter may have.
pub const MAX_VALUE: usize = 2048;
/// The longest query string a start link may have.
pub const MAX_QUERY: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// A required parameter is absent or empty. The field is for logs, never for the page.
    #[error("{}", messages::MISSING_PARAMETERS)]
    Missing(&'static str),
    /// A parameter is malformed, repeated or unknown. The text is for logs only.
    #[error("{}", messages::INVALID_PARAMETERS)]
    Invalid(String),
}

impl ParamError {
    /// What went wrong, for the log (never contains a value: values may be secrets).
    pub fn detail(&self) -> String {
        match self {
            Self::Missing(name) => format!("missing {name}"),
            Self::Invalid(why) => why.clone(),
        }
    }
}

/// The connection types the seed's `Mode` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SeedMode {
    Rdp,
    Ssh,
    Telnet,
}

impl SeedMode {
    /// The connection-mode plugin id for this mode.
    pub fn plugin_id(self) -> &'static str {
        match self {
            Self::Rdp => "rdp",
            Self::Ssh => "ssh",
            Self::Telnet => "telnet",
        }
    }
}

/// Everything a start link carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StartParams {
    pub target_person: Uuid,
    pub access_request_policy: Uuid,
    pub target_computer: Uuid,
    pub is_advance_mode: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub check_out_start: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub check_out_end: Option<OffsetDateTime>,
    pub external_credential: Option<Uuid>,
    pub connection_delay_secs: Option<u32>,
    pub computer_id: Option<String>,
    pub is_personal_cred: Option<bool>,
    pub external_credential_check_out_id: Option<String>,
    pub login_session_id: Option<String>,
    pub api_url: Option<String>,
    pub mode: Option<SeedMode>,
    #[serde(skip)]
    pub api_key: Option<SecretText>,
    pub credential_id: Option<String>,
    #[serde(skip)]
    pub api_application_key: Option<SecretText>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub dpi: Option<u32>,
}

/// The parameter names, as the seed spells them.
pub const NAMES: &[&str] = &[
    "TargetPersonGuid",
    "AccessRequestPolicyID",
    "TargetComputerGuid",
    "IsAdvanceMode",
    "CheckOutStartDate",
    "CheckOutEndDate",
    "ExternalCredentialGuid",
    "PSM_Connection_Delay",
    "ComputerID",
    "IsPersonalCred",
    "ExternalCredentialCheckOutID",
    "LoginSessionID",
    "ApiUrl",
    "Mode",
    "ApiKey",
    "CredentialID",
    "ApiApplicationKey",
    "GUAC_WIDTH",
    "GUAC_HEIGHT",
    "GUAC_DPI",
];

fn invalid(name: &str, why: &str) -> ParamError {
    ParamError::Invalid(format!("{name}: {why}"))
}

fn guid(name: &str, v: &str) -> Result<Uuid, ParamError> {
    let trimmed = v.trim_start_matches('{').trim_end_matches('}');
    if trimmed.len() != 36 {
        return Err(invalid(name, "not a GUID"));
    }
    Uuid::parse_str(trimmed).map_err(|_| invalid(name, "not a GUID"))
}

fn boolean(name: &str, v: &str) -> Result<bool, ParamError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(invalid(name, "not a boolean")),
    }
}

fn integer(name: &str, v: &str, max: u32) -> Result<u32, ParamError> {
    if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(name, "not a non-negative integer"));
    }
    match v.parse::<u32>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(invalid(name, "out of range")),
    }
}

fn in_range(name: &str, v: &str, min: u32, max: u32) -> Result<u32, ParamError> {
    let n = integer(name, v, max)?;
    if n < min {
        return Err(invalid(name, "out of range"));
    }
    Ok(n)
}

/// RFC 3339, or ISO 8601 without an offset (taken as UTC, as the IAM sends it).
fn datetime(name: &str, v: &str) -> Result<OffsetDateTime, ParamError> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = OffsetDateTime::parse(v, &Rfc3339) {
        return Ok(t);
    }
    let naive = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let naive_frac = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]"
    );
    time::PrimitiveDateTime::parse(v, &naive)
        .or_else(|_| time::PrimitiveDateTime::parse(v, &naive_frac))
        .map(|t| t.assume_utc())
        .map_err(|_| invalid(name, "not a date and time"))
}

/// Printable text without control characters.
fn text(name: &str, v: &str) -> Result<String, ParamError> {
    if v.chars().any(char::is_control) {
        return Err(invalid(name, "contains control characters"));
    }
    Ok(v.to_owned())
}

fn api_url(v: &str) -> Result<String, ParamError> {
    let ok = (v.starts_with("https://") || v.starts_with("http://"))
        && !v.chars().any(|c| c.is_control() || c.is_whitespace());
    if ok {
        Ok(v.trim_end_matches('/').to_owned())
    } else {
        Err(invalid("ApiUrl", "not an http(s) URL"))
    }
}

fn mode(v: &str) -> Result<SeedMode, ParamError> {
    match v.to_ascii_lowercase().as_str() {
        "rdp" => Ok(SeedMode::Rdp),
        "ssh" => Ok(SeedMode::Ssh),
        "telnet" => Ok(SeedMode::Telnet),
        _ => Err(invalid("Mode", "not RDP, SSH or Telnet")),
    }
}

/// Parses decoded (name, value) pairs. Names outside [`NAMES`] are refused, except those in
/// `extra`, which the caller handles (the link's `exp`, `nonce` and `sig`).
pub fn parse_pairs(pairs: &[(String, String)], extra: &[&str]) -> Result<StartParams, ParamError> {
    let mut seen = std::collections::BTreeMap::new();
    for (name, value) in pairs {
        if !NAMES.contains(&name.as_str()) && !extra.contains(&name.as_str()) {
            return Err(ParamError::Invalid(format!(
                "unknown parameter {:?}",
                truncate(name)
            )));
        }
        if value.len() > MAX_VALUE {
            return Err(invalid(name, "too long"));
        }
        if seen.insert(name.as_str(), value.as_str()).is_some() {
            return Err(invalid(name, "given more than once"));
        }
    }
    let get = |name: &str| seen.get(name).copied().filter(|v| !v.is_empty());
    let required = |name: &'static str| get(name).ok_or(ParamError::Missing(name));
    // All required ones first: a link missing one is "Missing", even if another is malformed.
    let person = required("TargetPersonGuid")?;
    let policy = required("AccessRequestPolicyID")?;
    let computer = required("TargetComputerGuid")?;
    let advance = required("IsAdvanceMode")?;
    let opt = |name: &'static str| get(name);
    let params = StartParams {
        target_person: guid("TargetPersonGuid", person)?,
        access_request_policy: guid("AccessRequestPolicyID", policy)?,
        target_computer: guid("TargetComputerGuid", computer)?,
        is_advance_mode: boolean("IsAdvanceMode", advance)?,
        check_out_start: opt("CheckOutStartDate")
            .map(|v| datetime("CheckOutStartDate", v))
            .transpose()?,
        check_out_end: opt("CheckOutEndDate")
            .map(|v| datetime("CheckOutEndDate", v))
            .transpose()?,
        external_credential: opt("ExternalCredentialGuid")
            .map(|v| guid("ExternalCredentialGuid", v))
            .transpose()?,
        connection_delay_secs: opt("PSM_Connection_Delay")
            .map(|v| integer("PSM_Connection_Delay", v, 3600))
            .transpose()?,
        computer_id: opt("ComputerID")
            .map(|v| text("ComputerID", v))
            .transpose()?,
        is_personal_cred: opt("IsPersonalCred")
            .map(|v| boolean("IsPersonalCred", v))
            .transpose()?,
        external_credential_check_out_id: opt("ExternalCredentialCheckOutID")
            .map(|v| text("ExternalCredentialCheckOutID", v))
            .transpose()?,
        login_session_id: opt("LoginSessionID")
            .map(|v| text("LoginSessionID", v))
            .transpose()?,
        api_url: opt("ApiUrl").map(api_url).transpose()?,
        mode: opt("Mode").map(mode).transpose()?,
        api_key: opt("ApiKey")
            .map(|v| text("ApiKey", v).map(SecretText::new))
            .transpose()?,
        credential_id: opt("CredentialID")
            .map(|v| text("CredentialID", v))
            .transpose()?,
        api_application_key: opt("ApiApplicationKey")
            .map(|v| text("ApiApplicationKey", v).map(SecretText::new))
            .transpose()?,
        width: opt("GUAC_WIDTH")
            .map(|v| in_range("GUAC_WIDTH", v, 320, 8192))
            .transpose()?,
        height: opt("GUAC_HEIGHT")
            .map(|v| in_range("GUAC_HEIGHT", v, 200, 8192))
            .transpose()?,
        dpi: opt("GUAC_DPI")
            .map(|v| in_range("GUAC_DPI", v, 48, 480))
            .transpose()?,
    };
    if let (Some(start), Some(end)) = (params.check_out_start, params.check_out_end)
        && end <= start
    {
        return Err(invalid("CheckOutEndDate", "not after CheckOutStartDate"));
    }
    Ok(params)
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Splits a raw query string into decoded pairs, refusing one that is too long.
pub fn decode_query(raw: &str) -> Result<Vec<(String, String)>, ParamError> {
    if raw.len() > MAX_QUERY {
        return Err(ParamError::Invalid("query string too long".into()));
    }
    Ok(form_urlencoded::parse(raw.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect())
}
