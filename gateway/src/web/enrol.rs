//! The enrolment page. `GET /mfa/enroll/{id}` (the link from `openpsm mfa enroll --link`) moves
//! the id into a cookie and continues to `/mfa/enroll`, so the id does not stay in the address
//! bar or history; `/mfa/enroll` shows the QR code (SVG drawn here) and the otpauth URI and takes
//! the first code. The enrolment counts only once that code is right.

use std::sync::Arc;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use openpsm_plugin_api::{MfaProvider, PluginInstance, SecretText};
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use super::AppState;
use super::pages::{csrf_token, escape, page};
use crate::mfa::enrolment::{self, Confirmation, EnrolError};
use crate::mfa::qr;
use crate::workflow::Engine;

const COOKIE: &str = "openpsm_enrol";
const TITLE: &str = "Set up your authenticator";

fn cookie_id(headers: &HeaderMap) -> Option<String> {
    super::pages::cookie(headers, COOKIE)
}

fn problem(status: StatusCode, message: &str) -> Response {
    page(
        status,
        TITLE,
        &format!("<p class=\"error\" id=\"error\">{}</p>", escape(message)),
    )
}

fn from_error(e: &EnrolError) -> Response {
    match e {
        EnrolError::NotFound => problem(StatusCode::NOT_FOUND, &e.to_string()),
        other => {
            tracing::error!("enrolment page failed: {other}");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The gateway could not complete the request.",
            )
        }
    }
}

fn provider(engine: &Engine, id: &str) -> Option<Arc<dyn MfaProvider>> {
    match engine.registry.get(id) {
        Some(PluginInstance::MfaProvider(p)) => Some(p.clone()),
        _ => None,
    }
}

/// `GET /mfa/enroll/{id}`: sets the cookie, continues with a page (a redirect would not carry a
/// SameSite=Strict cookie set on a cross-site arrival).
pub async fn arrive(Path(id): Path<String>) -> Response {
    let mut response = page(
        StatusCode::OK,
        TITLE,
        "<meta http-equiv=\"refresh\" content=\"0;url=/mfa/enroll\"><p><a id=\"continue\" href=\"/mfa/enroll\">Continue</a></p>",
    );
    let well_formed = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let cookie = format!(
        "{COOKIE}={}; Path=/mfa; HttpOnly; Secure; SameSite=Strict; Max-Age=86400",
        if well_formed { id.as_str() } else { "invalid" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// `GET /mfa/enroll`: the QR code, the URI, the code form.
pub async fn show(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let Some(engine) = &state.engine else {
        return (StatusCode::SERVICE_UNAVAILABLE, "workflow disabled").into_response();
    };
    let Some(id) = cookie_id(&headers) else {
        return from_error(&EnrolError::NotFound);
    };
    match enrolment::load(&engine.app, &id).await {
        Ok((pending, _)) => render(&pending, &csrf_token(&id), None),
        Err(e) => from_error(&e),
    }
}

fn render(pending: &enrolment::Pending, csrf: &str, notice: Option<&str>) -> Response {
    let uri = pending.reveal.expose_secret();
    let image = if uri.starts_with("otpauth://") {
        qr::svg(uri).unwrap_or_default()
    } else {
        String::new()
    };
    let notice = notice
        .map(|n| format!("<p class=\"notice\" id=\"message\">{}</p>", escape(n)))
        .unwrap_or_default();
    let body = format!(
        "{notice}<p>Account <b>{login}</b>. Scan the code with your authenticator app (or enter the key \
         shown below), then type the code the app shows. Nothing is saved until the code is right.</p>\
         <div id=\"qr\" style=\"width:240px\">{image}</div>\
         <details><summary>Cannot scan?</summary><p><code id=\"uri\" style=\"word-break:break-all\">{uri}</code></p></details>\
         <form method=\"post\" action=\"/mfa/enroll\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label>Code from the app <input type=\"text\" name=\"code\" id=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" required></label>\
         <button type=\"submit\" id=\"submit\">Confirm</button></form>",
        login = escape(&pending.login),
        uri = escape(uri),
    );
    let mut response = page(StatusCode::OK, TITLE, &body);
    // The page holds a secret: never cached.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Deserialize)]
pub struct CodeForm {
    csrf: String,
    code: SecretText,
}

/// `POST /mfa/enroll`: the first code.
pub async fn submit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    form: Result<Form<CodeForm>, FormRejection>,
) -> Response {
    let Some(engine) = &state.engine else {
        return (StatusCode::SERVICE_UNAVAILABLE, "workflow disabled").into_response();
    };
    let Some(id) = cookie_id(&headers) else {
        return from_error(&EnrolError::NotFound);
    };
    let Ok(Form(form)) = form else {
        return problem(StatusCode::BAD_REQUEST, "The form is incomplete.");
    };
    if !bool::from(form.csrf.as_bytes().ct_eq(csrf_token(&id).as_bytes())) {
        return problem(StatusCode::FORBIDDEN, "This form is not valid here.");
    }
    let (pending, _) = match enrolment::load(&engine.app, &id).await {
        Ok(p) => p,
        Err(e) => return from_error(&e),
    };
    let Some(p) = provider(engine, &pending.provider) else {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("The MFA method {} is not available.", pending.provider),
        );
    };
    match enrolment::confirm(&engine.app, &p, &id, &form.code).await {
        Ok(Confirmation::Enrolled) => page(
            StatusCode::OK,
            TITLE,
            "<p id=\"done\">Your authenticator is set up. You can close this page; the gateway will ask for its code when you start a session.</p>",
        ),
        Ok(Confirmation::Wrong { attempts_left }) => render(
            &pending,
            &csrf_token(&id),
            Some(&format!(
                "That code was not accepted. Check the time on your device and try again ({attempts_left} tries left)."
            )),
        ),
        Ok(Confirmation::Void) => problem(
            StatusCode::FORBIDDEN,
            "Too many wrong codes: this enrolment link is void. Ask your administrator for a new one.",
        ),
        Err(e) => from_error(&e),
    }
}
