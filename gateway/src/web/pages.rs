//! Server-rendered pages over the same engine as the JSON API: `/start` (sets the flow cookie),
//! `/flow` (the current step, one form per step), `/flow/cancel`. Forms carry a CSRF token; no
//! secret ever appears in a URL.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use openpsm_plugin_api::SecretText;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::AppState;
use crate::workflow::{Answer, FlowError, StepView};

pub const COOKIE: &str = "openpsm_flow";

/// The value of the cookie `name`, if the request carries it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_owned())
}

/// `<id>.<secret>` from the flow cookie.
pub fn cookie_flow(headers: &HeaderMap) -> Option<(String, String)> {
    cookie(headers, COOKIE)?
        .split_once('.')
        .map(|(id, secret)| (id.to_owned(), secret.to_owned()))
}

pub(crate) fn csrf_token(secret: &str) -> String {
    Sha256::new()
        .chain_update(b"openpsm-csrf\n")
        .chain_update(secret)
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · openpsm</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#1d2330}}\
         h1{{font-size:1.4rem}}.notice{{background:#fff4e5;border-left:4px solid #e8a33d;padding:.6rem 1rem}}\
         .error{{background:#fdecea;border-left:4px solid #d9534f;padding:.6rem 1rem}}\
         button{{padding:.5rem 1.2rem;margin:.3rem .3rem .3rem 0}}label{{display:block;margin:.4rem 0}}\
         input[type=password],input[type=text]{{padding:.4rem;width:16rem}}</style></head>\
         <body><h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    );
    let mut response = (status, html).into_response();
    secure_headers(response.headers_mut());
    response
}

fn secure_headers(h: &mut HeaderMap) {
    let pairs = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; style-src 'self' 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    ];
    for (k, v) in pairs {
        h.insert(k, HeaderValue::from_static(v));
    }
}

/// The live session: a full-width terminal (or the remote display), its status line, and the End
/// button.
fn session_page(channel: &str, token: &str, csrf: &str) -> Response {
    if channel == "display" {
        return display_page(token, csrf);
    }
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Session · openpsm</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"stylesheet\" href=\"/assets/xterm.css\">\
         <style>html,body{{margin:0;height:100%;background:#111;color:#ddd;font-family:system-ui,sans-serif}}\
         header{{display:flex;gap:1rem;align-items:center;padding:.4rem .8rem;background:#1d2330}}\
         #status{{flex:1}}#terminal{{position:absolute;top:2.6rem;bottom:0;left:0;right:0;padding:.3rem}}\
         form{{margin:0}}</style></head><body>\
         <header><span id=\"ready\">Your session is ready.</span><span id=\"status\"></span>\
         <form method=\"post\" action=\"/flow/cancel\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\" id=\"cancel\">End</button></form></header>\
         <div id=\"session\" data-channel=\"{channel}\" data-tunnel=\"/api/v1/tunnel\" data-token=\"{}\"></div>\
         <div id=\"terminal\"></div>\
         <script src=\"/assets/xterm.js\"></script><script src=\"/assets/addon-fit.js\"></script>\
         <script src=\"/assets/session.js\"></script></body></html>",
        escape(token)
    );
    let mut response = (StatusCode::OK, html).into_response();
    secure_headers(response.headers_mut());
    response
}

/// A graphical session: guacamole-common-js draws the Guacamole instructions in `#display`.
fn display_page(token: &str, csrf: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Session · openpsm</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <style>html,body{{margin:0;height:100%;background:#111;color:#ddd;font-family:system-ui,sans-serif;overflow:hidden}}\
         header{{display:flex;gap:1rem;align-items:center;padding:.4rem .8rem;background:#1d2330;height:1.8rem}}\
         #status{{flex:1}}#display{{position:absolute;top:2.6rem;bottom:0;left:0;right:0;overflow:hidden;z-index:0}}\
         form{{margin:0}}</style></head><body>\
         <header><span id=\"ready\">Your session is ready.</span><span id=\"status\"></span>\
         <form method=\"post\" action=\"/flow/cancel\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\" id=\"cancel\">End</button></form></header>\
         <div id=\"session\" data-channel=\"display\" data-tunnel=\"/api/v1/tunnel\" data-token=\"{}\"></div>\
         <div id=\"display\" tabindex=\"0\"></div>\
         <script type=\"module\" src=\"/assets/display.js\"></script></body></html>",
        escape(token)
    );
    let mut response = (StatusCode::OK, html).into_response();
    secure_headers(response.headers_mut());
    response
}

fn error_page(e: &FlowError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let message = match e {
        FlowError::Internal(detail) => {
            tracing::error!("flow page failed: {detail}");
            "The gateway could not complete the request.".to_owned()
        }
        other => other.to_string(),
    };
    page(
        status,
        "Session request",
        &close_block(&format!(
            "<p class=\"error\" id=\"error\">{}</p>",
            escape(&message)
        )),
    )
}

fn close_block(inner: &str) -> String {
    format!(
        "{inner}<p><button type=\"button\" id=\"close\">Close</button></p><script src=\"/assets/close.js\"></script>"
    )
}

/// `GET /start?...`: checks the link, sets the flow cookie, continues to `/flow`.
pub async fn start(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(engine) = &state.engine else {
        return (StatusCode::SERVICE_UNAVAILABLE, "workflow disabled").into_response();
    };
    let ip = super::client::client_ip(peer, &headers, &engine.app.config.server.trusted_proxies);
    match engine.start(query.as_deref().unwrap_or_default(), ip).await {
        Ok(started) => {
            // A page (not a redirect) continues: a SameSite=Strict cookie set on a cross-site
            // navigation is only sent by a navigation the gateway's own page starts.
            let mut response = page(
                StatusCode::OK,
                "Starting your session",
                "<meta http-equiv=\"refresh\" content=\"0;url=/flow\"><p><a id=\"continue\" href=\"/flow\">Continue</a></p>",
            );
            let cookie = format!(
                "{COOKIE}={}.{}; Path=/; HttpOnly; Secure; SameSite=Strict",
                started.flow, started.secret
            );
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, v);
            }
            response
        }
        Err(e) => error_page(&e),
    }
}

/// `GET /flow`: the current step.
pub async fn show(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let Some(engine) = &state.engine else {
        return (StatusCode::SERVICE_UNAVAILABLE, "workflow disabled").into_response();
    };
    let Some((id, secret)) = cookie_flow(&headers) else {
        return error_page(&FlowError::Forbidden);
    };
    match engine.view(&id, &secret).await {
        Ok(step) => render(&step, &csrf_token(&secret)),
        Err(e) => error_page(&e),
    }
}

#[derive(Deserialize)]
pub struct StepForm {
    csrf: String,
    step: String,
    credential: Option<String>,
    accept: Option<String>,
    mode: Option<String>,
    response: Option<SecretText>,
    access_level: Option<String>,
    master_password: Option<SecretText>,
}

fn answer_of(form: StepForm) -> Option<Answer> {
    Some(match form.step.as_str() {
        "choose_credential" => Answer::ChooseCredential {
            credential: form.credential?,
        },
        "agreement" => Answer::Agreement {
            accept: form.accept.as_deref() == Some("yes"),
        },
        "choose_mode" => Answer::ChooseMode { mode: form.mode? },
        "mfa" => Answer::Mfa {
            response: form.response?,
        },
        "choose_access_level" => Answer::ChooseAccessLevel {
            access_level: form.access_level?,
        },
        "master_password" => Answer::MasterPassword {
            master_password: form.master_password?,
        },
        _ => return None,
    })
}

fn see_flow() -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/flow"));
    r
}

/// `POST /flow`: answers the current step, then shows the next.
pub async fn submit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    form: Result<Form<StepForm>, FormRejection>,
) -> Response {
    let Some(engine) = &state.engine else {
        return (StatusCode::SERVICE_UNAVAILABLE, "workflow disabled").into_response();
    };
    let Some((id, secret)) = cookie_flow(&headers) else {
        return error_page(&FlowError::Forbidden);
    };
    let Ok(Form(form)) = form else {
        return error_page(&FlowError::BadAnswer("the form is incomplete".into()));
    };
    if !bool::from(form.csrf.as_bytes().ct_eq(csrf_token(&secret).as_bytes())) {
        return error_page(&FlowError::Forbidden);
    }
    let Some(answer) = answer_of(form) else {
        return error_page(&FlowError::BadAnswer("the form is incomplete".into()));
    };
    match engine.answer(&id, &secret, answer).await {
        Ok(_) | Err(FlowError::WrongStep { .. } | FlowError::Conflict) => see_flow(),
        Err(e) => error_page(&e),
    }
}

#[derive(Deserialize)]
pub struct CancelForm {
    csrf: String,
}

/// `POST /flow/cancel`.
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    form: Result<Form<CancelForm>, FormRejection>,
) -> Response {
    let Some(engine) = &state.engine else {
        return (StatusCode::SERVICE_UNAVAILABLE, "workflow disabled").into_response();
    };
    let Some((id, secret)) = cookie_flow(&headers) else {
        return error_page(&FlowError::Forbidden);
    };
    match form {
        Ok(Form(f)) if bool::from(f.csrf.as_bytes().ct_eq(csrf_token(&secret).as_bytes())) => {}
        _ => return error_page(&FlowError::Forbidden),
    }
    match engine.cancel(&id, &secret).await {
        Ok(_) => see_flow(),
        Err(e) => error_page(&e),
    }
}

fn form(step: &str, csrf: &str, fields: &str, submit: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/flow\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"step\" value=\"{step}\">{fields}<button type=\"submit\" id=\"submit\">{submit}</button></form>\
         <form method=\"post\" action=\"/flow/cancel\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\" id=\"cancel\">Cancel</button></form>"
    )
}

fn notice(message: &Option<String>) -> String {
    message
        .as_ref()
        .map(|m| format!("<p class=\"notice\" id=\"notice\">{}</p>", escape(m)))
        .unwrap_or_default()
}

fn radios(name: &str, options: impl Iterator<Item = (String, String, bool)>) -> String {
    let mut out = String::new();
    for (i, (value, label, enabled)) in options.enumerate() {
        let _ = write!(
            out,
            "<label><input type=\"radio\" name=\"{name}\" value=\"{}\"{}{}> {}</label>",
            escape(&value),
            if i == 0 { " checked" } else { "" },
            if enabled { "" } else { " disabled" },
            escape(&label)
        );
    }
    out
}

fn render(step: &StepView, csrf: &str) -> Response {
    let ok = StatusCode::OK;
    match step {
        StepView::ChooseCredential { message, options } => {
            let items = options.iter().map(|o| {
                let kind = if o.kind == openpsm_plugin_api::CredentialKind::Personal {
                    "personal"
                } else {
                    "shared"
                };
                let suffix = if o.available { "" } else { " (in use)" };
                (
                    o.id.clone(),
                    format!("{} ({kind}){suffix}", o.label),
                    o.available,
                )
            });
            page(
                ok,
                "Choose a credential",
                &(notice(message)
                    + &form(
                        "choose_credential",
                        csrf,
                        &radios("credential", items),
                        "Continue",
                    )),
            )
        }
        StepView::Agreement { message, text } => {
            let fields = format!(
                "<p id=\"agreement\">{}</p><label><input type=\"radio\" name=\"accept\" value=\"yes\" id=\"accept-yes\"> I agree</label>\
                 <label><input type=\"radio\" name=\"accept\" value=\"no\" id=\"accept-no\" checked> I do not agree</label>",
                escape(text)
            );
            page(
                ok,
                "Recording agreement",
                &(notice(message) + &form("agreement", csrf, &fields, "Continue")),
            )
        }
        StepView::ChooseMode { message, options } => {
            let items = options.iter().map(|m| (m.clone(), m.to_uppercase(), true));
            page(
                ok,
                "Connection type",
                &(notice(message) + &form("choose_mode", csrf, &radios("mode", items), "Continue")),
            )
        }
        StepView::Mfa {
            message,
            label,
            prompt,
            ..
        } => {
            let fields = format!(
                "<label>{}: <input type=\"text\" name=\"response\" id=\"response\" autocomplete=\"one-time-code\" inputmode=\"numeric\" autofocus></label>",
                escape(prompt)
            );
            page(
                ok,
                &format!("Verify with {label}"),
                &(notice(message) + &form("mfa", csrf, &fields, "Verify")),
            )
        }
        StepView::ChooseAccessLevel { message, options } => {
            let items = options
                .iter()
                .map(|o| (o.id.clone(), o.label.clone(), true));
            page(
                ok,
                "Access level",
                &(notice(message)
                    + &form(
                        "choose_access_level",
                        csrf,
                        &radios("access_level", items),
                        "Continue",
                    )),
            )
        }
        StepView::MasterPassword {
            message,
            delay_secs,
        } => {
            let wait = if *delay_secs > 0 {
                format!(
                    "<meta http-equiv=\"refresh\" content=\"{delay_secs};url=/flow\"><p class=\"notice\" id=\"wait\">Your account is being prepared; the prompt appears in {delay_secs} seconds.</p>"
                )
            } else {
                String::new()
            };
            let fields = "<label>Master password: <input type=\"password\" name=\"master_password\" id=\"master_password\" autocomplete=\"current-password\" autofocus></label>";
            let body = if *delay_secs > 0 {
                notice(message) + &wait
            } else {
                notice(message) + &form("master_password", csrf, fields, "Connect")
            };
            page(ok, "Master password", &body)
        }
        StepView::Launch { channel, token, .. } => {
            let channel = match channel {
                openpsm_plugin_api::Channel::Terminal => "terminal",
                openpsm_plugin_api::Channel::Display => "display",
            };
            session_page(channel, token, csrf)
        }
        StepView::Ended { reason } => page(
            ok,
            "Session request ended",
            &close_block(&format!(
                "<p id=\"ended\">{}</p>{}",
                escape(reason),
                // The portal session expired: nothing here can continue, close the tab.
                if reason == crate::messages::TOKEN_EXPIRED {
                    "<span id=\"autoclose\" hidden></span>"
                } else {
                    ""
                }
            )),
        ),
        StepView::Failed { error } => page(
            ok,
            "Session request failed",
            &close_block(&format!(
                "<p class=\"error\" id=\"error\">{}</p>",
                escape(error)
            )),
        ),
    }
}
