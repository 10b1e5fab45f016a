//! The HTTP side: one reqwest client (rustls, timeouts, no redirects), the two seed endpoints, and
//! the mapping of answers onto `PluginError` kinds.

use std::net::IpAddr;
use std::time::Duration;

use openpsm_plugin_api::{
    ApiContext, CheckOut, CheckedOut, EndSession, ErrorKind, FlowSubject, Origin, PluginError,
    PluginResult, PluginSettings, SecretText,
};
use reqwest::header::{HeaderName, HeaderValue, WWW_AUTHENTICATE};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

pub const CHECK_OUT_PATH: &str = "/api/services/v1/secureaccessgateway/getcredential";
pub const END_SESSION_PATH: &str = "/api/services/v1/secureaccessgateway/endsession";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    api_url: String,
    #[serde(default)]
    application_key: SecretText,
    #[serde(default = "fifteen")]
    timeout_secs: u64,
    #[serde(default = "five")]
    connect_timeout_secs: u64,
    #[serde(default = "max_bytes")]
    max_response_bytes: usize,
    #[serde(default)]
    ca_file: String,
    #[serde(default = "token_header")]
    access_token_header: String,
    #[serde(default = "key_header")]
    application_key_header: String,
    #[serde(default)]
    session_check_path: String,
}

fn fifteen() -> u64 {
    15
}
fn five() -> u64 {
    5
}
fn max_bytes() -> usize {
    64 * 1024
}
fn token_header() -> String {
    "Authorization".into()
}
fn key_header() -> String {
    "X-EmpowerID-API-Key".into()
}

pub struct Api {
    client: reqwest::Client,
    default_url: Option<Url>,
    application_key: SecretText,
    max_response_bytes: usize,
    token_header: HeaderName,
    key_header: HeaderName,
    session_check_path: Option<String>,
}

/// Plain http only to this machine (tests, a local relay); everything else must be https.
fn check_scheme(url: &Url) -> Result<(), String> {
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
                Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                Err(format!(
                    "{url}: plain http is only allowed to loopback addresses"
                ))
            }
        }
        other => Err(format!("{url}: scheme {other} is not https")),
    }
}

fn parse_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("{text}: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the API URL must not carry a user name or password".into());
    }
    check_scheme(&url)?;
    Ok(url)
}

impl Api {
    pub fn new(settings: &PluginSettings) -> PluginResult<Self> {
        let s: Settings = settings.parse()?;
        if !(1..=300).contains(&s.timeout_secs) || !(1..=60).contains(&s.connect_timeout_secs) {
            return Err(PluginError::settings(
                "timeout_secs must be 1 to 300 and connect_timeout_secs 1 to 60",
            ));
        }
        if !(1024..=16 * 1024 * 1024).contains(&s.max_response_bytes) {
            return Err(PluginError::settings(
                "max_response_bytes must be 1024 to 16777216",
            ));
        }
        let default_url = if s.api_url.is_empty() {
            None
        } else {
            Some(parse_url(&s.api_url).map_err(|e| PluginError::settings(format!("api_url {e}")))?)
        };
        let header = |name: &str, what: &str| {
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| PluginError::settings(format!("{what} is not a header name")))
        };
        let token_header = header(&s.access_token_header, "access_token_header")?;
        let key_header = header(&s.application_key_header, "application_key_header")?;
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(s.timeout_secs))
            .connect_timeout(Duration::from_secs(s.connect_timeout_secs))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("openpsm/", env!("CARGO_PKG_VERSION")));
        if !s.ca_file.is_empty() {
            let pem = std::fs::read(&s.ca_file)
                .map_err(|e| PluginError::settings(format!("ca_file {}: {e}", s.ca_file)))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                PluginError::settings(format!("ca_file {}: not PEM certificates: {e}", s.ca_file))
            })?;
            if certs.is_empty() {
                return Err(PluginError::settings(format!(
                    "ca_file {} holds no certificate",
                    s.ca_file
                )));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|e| PluginError::settings(format!("cannot build the HTTP client: {e}")))?;
        let session_check_path = Some(s.session_check_path)
            .filter(|p| !p.is_empty())
            .map(|p| {
                if p.starts_with('/') {
                    Ok(p)
                } else {
                    Err(PluginError::settings(
                        "session_check_path must start with /",
                    ))
                }
            })
            .transpose()?;
        Ok(Self {
            client,
            default_url,
            application_key: s.application_key,
            max_response_bytes: s.max_response_bytes,
            token_header,
            key_header,
            session_check_path,
        })
    }

    fn endpoint(&self, ctx: Option<&ApiContext>, path: &str) -> PluginResult<Url> {
        let base = match ctx.map(|c| c.url.as_str()).filter(|u| !u.is_empty()) {
            Some(u) => parse_url(u).map_err(PluginError::invalid_input)?,
            None => self.default_url.clone().ok_or_else(|| {
                PluginError::invalid_input("the start link carried no ApiUrl and no api_url is set")
            })?,
        };
        let joined = format!("{}{path}", base.as_str().trim_end_matches('/'));
        Url::parse(&joined).map_err(|e| PluginError::invalid_input(format!("{joined}: {e}")))
    }

    /// POSTs `body`; returns the status, whether the API said the access token expired, and the
    /// body (at most `max_response_bytes`).
    async fn post(
        &self,
        ctx: Option<&ApiContext>,
        path: &str,
        body: &Value,
    ) -> PluginResult<(u16, bool, Vec<u8>)> {
        let url = self.endpoint(ctx, path)?;
        let ctx = ctx.ok_or_else(|| {
            PluginError::invalid_input("the start link carried no ApiKey (access token)")
        })?;
        let bearer = format!("Bearer {}", ctx.api_key.expose_secret());
        let app_key = if ctx.application_key.expose_secret().is_empty() {
            &self.application_key
        } else {
            &ctx.application_key
        };
        let mut token = HeaderValue::from_str(&bearer)
            .map_err(|_| PluginError::invalid_input("ApiKey is not a valid header value"))?;
        token.set_sensitive(true);
        let mut key = HeaderValue::from_str(app_key.expose_secret()).map_err(|_| {
            PluginError::invalid_input("ApiApplicationKey is not a valid header value")
        })?;
        key.set_sensitive(true);
        let mut response = self
            .client
            .post(url)
            .header(self.token_header.clone(), token)
            .header(self.key_header.clone(), key)
            .json(body)
            .send()
            .await
            .map_err(|e| transport(&e))?;
        let status = response.status().as_u16();
        let invalid_token = response
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("invalid_token"));
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| transport(&e))? {
            if bytes.len() + chunk.len() > self.max_response_bytes {
                return Err(PluginError::new(
                    Origin::Backend,
                    ErrorKind::Protocol,
                    format!(
                        "the credential API answered with more than {} bytes",
                        self.max_response_bytes
                    ),
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        let expired = invalid_token || mentions_expired_token(&bytes);
        Ok((status, expired, bytes))
    }

    pub async fn get_credential(&self, req: &CheckOut) -> PluginResult<CheckedOut> {
        let body = json!({
            "computer": req.computer,
            "credential": req.credential,
            "password": req.password.expose_secret(),
            "mode": req.mode,
            "session": req.session,
            "loginsessionid": req.loginsessionid,
        });
        let (status, expired, bytes) = self
            .post(req.subject.api.as_ref(), CHECK_OUT_PATH, &body)
            .await?;
        match status {
            200 => serde_json::from_slice::<CheckedOut>(&bytes).map_err(|e| {
                PluginError::new(
                    Origin::Backend,
                    ErrorKind::Protocol,
                    format!("the credential API's answer is not the expected object: {e}"),
                )
            }),
            _ => Err(refusal(status, expired, "getcredential")),
        }
    }

    pub async fn end_session(&self, req: &EndSession) -> PluginResult<()> {
        let body = json!({
            "computer": req.computer,
            "credential": req.credential,
            "session": req.session,
            "loginsessionid": req.loginsessionid,
        });
        let (status, expired, _) = self
            .post(req.subject.api.as_ref(), END_SESSION_PATH, &body)
            .await?;
        match status {
            200..=299 => Ok(()),
            _ => Err(refusal(status, expired, "endsession")),
        }
    }

    /// `authenticate`: POSTs `loginsessionid` to `session_check_path`; 2xx confirms.
    pub async fn check_session(&self, who: &FlowSubject) -> PluginResult<()> {
        let Some(path) = &self.session_check_path else {
            return Err(PluginError::settings(
                "session_check_path is not set: start links cannot be authenticated by the IAM's parameters",
            ));
        };
        let Some(session) = &who.login_session_id else {
            return Err(PluginError::unauthorized(
                Origin::Host,
                "the start link carried no LoginSessionID",
            ));
        };
        let body = json!({"loginsessionid": session, "person": who.person});
        let (status, expired, _) = self.post(who.api.as_ref(), path, &body).await?;
        match status {
            200..=299 => Ok(()),
            _ => Err(refusal(status, expired, "session check")),
        }
    }
}

/// RFC 6750's `invalid_token` may also come as a JSON or text body naming an expired token.
fn mentions_expired_token(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]).to_ascii_lowercase();
    text.contains("token") && text.contains("expired")
}

fn refusal(status: u16, expired: bool, call: &str) -> PluginError {
    match status {
        401 | 403 if expired => PluginError::new(
            Origin::Backend,
            ErrorKind::TokenExpired,
            format!("{call}: the access token expired"),
        ),
        401 => PluginError::unauthorized(Origin::Backend, format!("{call}: 401 Unauthorized")),
        429 | 502..=504 => PluginError::new(
            Origin::Backend,
            ErrorKind::Unavailable,
            format!("{call}: the credential API answered {status}"),
        ),
        _ => PluginError::new(
            Origin::Backend,
            ErrorKind::Internal,
            format!("{call}: the credential API answered {status}"),
        )
        .with_retryable(status >= 500),
    }
}

fn transport(e: &reqwest::Error) -> PluginError {
    // reqwest's errors name the URL but never headers or bodies, so no secret is in them.
    if e.is_timeout() {
        PluginError::new(
            Origin::Backend,
            ErrorKind::Timeout,
            format!("the credential API did not answer in time: {e}"),
        )
    } else if e.is_connect() {
        PluginError::unreachable(
            Origin::Backend,
            format!("cannot reach the credential API: {e}"),
        )
    } else {
        PluginError::new(
            Origin::Backend,
            ErrorKind::Protocol,
            format!("talking to the credential API failed: {e}"),
        )
        .with_retryable(true)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_or_loopback_http_without_userinfo() {
        assert!(parse_url("https://iam.example.test").is_ok());
        assert!(parse_url("http://127.0.0.1:9000").is_ok());
        assert!(parse_url("http://[::1]:9000/x").is_ok());
        assert!(parse_url("http://localhost:9000").is_ok());
        assert!(parse_url("http://iam.example.test").is_err());
        assert!(parse_url("ftp://iam.example.test").is_err());
        assert!(parse_url("https://user:pw@iam.example.test").is_err());
        assert!(parse_url("not a url").is_err());
    }

    #[test]
    fn answers_map_onto_the_seeds_branches() {
        assert_eq!(refusal(401, false, "x").kind, ErrorKind::Unauthorized);
        assert_eq!(refusal(401, true, "x").kind, ErrorKind::TokenExpired);
        assert_eq!(refusal(403, true, "x").kind, ErrorKind::TokenExpired);
        assert_eq!(refusal(500, false, "x").kind, ErrorKind::Internal);
        assert!(refusal(500, false, "x").retryable);
        assert!(!refusal(400, false, "x").retryable);
        assert!(mentions_expired_token(
            br#"{"Message":"The access token has expired."}"#
        ));
        assert!(!mentions_expired_token(
            br#"{"Message":"Invalid master password."}"#
        ));
    }
}
