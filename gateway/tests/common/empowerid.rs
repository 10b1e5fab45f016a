//! A contract server for EmpowerID's secure-access-gateway API, as the seed documents it (no real
//! EmpowerID can run here): `getcredential` and `endsession`, plus the session check the plugin's
//! `session_check_path` names for IAM-authenticated links. It checks every request against the
//! contract (method, headers, exact payload fields and types) and answers like the API, and it
//! injects every documented fault on demand: 401, an expired access token, 500, slow answers,
//! malformed JSON, oversized bodies, once (queued) or for ever.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

pub const GET: &str = "/api/services/v1/secureaccessgateway/getcredential";
pub const END: &str = "/api/services/v1/secureaccessgateway/endsession";
pub const CHECK: &str = "/api/services/v1/secureaccessgateway/checksession";

#[derive(Debug, Clone)]
pub enum Fault {
    /// 401 Unauthorized (a wrong master password for getcredential).
    Unauthorized,
    /// The access token expired (RFC 6750 invalid_token).
    Expired,
    /// 500 Internal Server Error.
    ServerError,
    /// Answer normally, but only after this long.
    Slow(Duration),
    /// 200 with a body that is not JSON.
    Malformed,
    /// 200 with a body of this many bytes.
    Oversized(usize),
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub path: &'static str,
    pub body: Value,
    /// Why the request broke the contract, if it did.
    pub violation: Option<String>,
}

pub struct Api {
    pub token: String,
    pub app_key: String,
    pub login_session: String,
    pub master: String,
    pub credential: String,
    /// The success object getcredential returns (the seed's example, pointed at a real target).
    pub answer: Mutex<Value>,
    queued: Mutex<HashMap<&'static str, VecDeque<Fault>>>,
    forever: Mutex<HashMap<&'static str, Fault>>,
    pub calls: Mutex<Vec<Call>>,
}

impl Api {
    pub fn queue(&self, path: &'static str, faults: &[Fault]) {
        self.queued
            .lock()
            .unwrap()
            .entry(path)
            .or_default()
            .extend(faults.iter().cloned());
    }

    pub fn always(&self, path: &'static str, fault: Option<Fault>) {
        let mut forever = self.forever.lock().unwrap();
        match fault {
            Some(f) => forever.insert(path, f),
            None => forever.remove(path),
        };
    }

    pub fn calls_to(&self, path: &str) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.path == path)
            .cloned()
            .collect()
    }

    pub fn all_calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn next_fault(&self, path: &'static str) -> Option<Fault> {
        if let Some(f) = self
            .queued
            .lock()
            .unwrap()
            .get_mut(path)
            .and_then(VecDeque::pop_front)
        {
            return Some(f);
        }
        self.forever.lock().unwrap().get(path).cloned()
    }
}

impl std::ops::Deref for Contract {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

/// The server, on its own runtime thread (tests around it are blocking).
pub struct Contract {
    pub addr: SocketAddr,
    pub api: Arc<Api>,
    _rt: tokio::runtime::Runtime,
}

impl Contract {
    pub fn start(master: &str, credential: &str, answer: Value) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let api = Arc::new(Api {
            token: format!("token-{}", uuid::Uuid::new_v4().simple()),
            app_key: format!("app-{}", uuid::Uuid::new_v4().simple()),
            login_session: format!("ls-{}", uuid::Uuid::new_v4().simple()),
            master: master.to_owned(),
            credential: credential.to_owned(),
            answer: Mutex::new(answer),
            queued: Mutex::default(),
            forever: Mutex::default(),
            calls: Mutex::default(),
        });
        let app = Router::new()
            .route(GET, post(get_credential))
            .route(END, post(end_session))
            .route(CHECK, post(check_session))
            .fallback(|| async { StatusCode::NOT_FOUND })
            .with_state(api.clone());
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        rt.spawn(async move { axum::serve(listener, app).await });
        Self { addr, api, _rt: rt }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The start-link parameters that point the gateway at this API.
    pub fn link_params(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ApiUrl", self.url()),
            ("ApiKey", self.api.token.clone()),
            ("ApiApplicationKey", self.api.app_key.clone()),
            ("LoginSessionID", self.api.login_session.clone()),
            ("CredentialID", self.api.credential.clone()),
            ("ComputerID", "2331".into()),
            ("Mode", "SSH".into()),
        ]
    }
}

/// Checks headers and the exact payload shape; the violation, if any.
fn violation(api: &Api, headers: &HeaderMap, body: &Value, fields: &[&str]) -> Option<String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("content-type") != Some("application/json") {
        return Some("content-type is not application/json".into());
    }
    let Some(object) = body.as_object() else {
        return Some("the body is not a JSON object".into());
    };
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut wanted = fields.to_vec();
    wanted.sort_unstable();
    if keys != wanted {
        return Some(format!(
            "payload fields {keys:?}, the contract has {wanted:?}"
        ));
    }
    for (k, v) in object {
        if !v.is_string() {
            return Some(format!("{k} is not a string"));
        }
    }
    if let Some(s) = object.get("session").and_then(Value::as_str)
        && uuid::Uuid::parse_str(s).is_err()
    {
        return Some("session is not a UUID".into());
    }
    if let Some(m) = object.get("mode").and_then(Value::as_str)
        && !["RDP", "SSH", "Telnet"].contains(&m)
    {
        return Some(format!("mode {m:?} is not RDP, SSH or Telnet"));
    }
    let _ = api;
    None
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn expired() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            "Bearer error=\"invalid_token\", error_description=\"The access token expired\"",
        )],
        json!({"Message": "Authorization has been denied: the access token expired."}).to_string(),
    )
        .into_response()
}

/// What every endpoint does first: record, check the contract and the caller, apply a fault.
/// `Err` is the answer to send instead of the endpoint's own.
async fn prelude(
    api: &Api,
    path: &'static str,
    headers: &HeaderMap,
    raw: &Bytes,
    fields: &[&str],
) -> Result<Value, Response> {
    let body: Value = serde_json::from_slice(raw).unwrap_or(Value::Null);
    let broken = violation(api, headers, &body, fields);
    api.calls.lock().unwrap().push(Call {
        path,
        body: body.clone(),
        violation: broken.clone(),
    });
    if let Some(v) = broken {
        return Err(json_response(
            StatusCode::BAD_REQUEST,
            json!({"Message": v}),
        ));
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("authorization") != Some(format!("Bearer {}", api.token).as_str()) {
        return Err(expired());
    }
    if header("x-empowerid-api-key") != Some(api.app_key.as_str()) {
        return Err(json_response(
            StatusCode::FORBIDDEN,
            json!({"Message": "Invalid application key."}),
        ));
    }
    match api.next_fault(path) {
        None => {}
        Some(Fault::Slow(d)) => tokio::time::sleep(d).await,
        Some(Fault::Unauthorized) => {
            return Err(json_response(
                StatusCode::UNAUTHORIZED,
                json!({"Message": "Unauthorized."}),
            ));
        }
        Some(Fault::Expired) => return Err(expired()),
        Some(Fault::ServerError) => {
            return Err(json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"Message": "An error has occurred."}),
            ));
        }
        Some(Fault::Malformed) => {
            return Err((StatusCode::OK, "{\"IsPasswordSSHKey\": fal").into_response());
        }
        Some(Fault::Oversized(n)) => {
            let filler = "x".repeat(n);
            return Err(json_response(StatusCode::OK, json!({"Notes": filler})));
        }
    }
    if body["loginsessionid"] != api.login_session.as_str() {
        return Err(json_response(
            StatusCode::UNAUTHORIZED,
            json!({"Message": "Unknown login session."}),
        ));
    }
    Ok(body)
}

async fn get_credential(State(api): State<Arc<Api>>, headers: HeaderMap, raw: Bytes) -> Response {
    let fields = [
        "computer",
        "credential",
        "password",
        "mode",
        "session",
        "loginsessionid",
    ];
    let body = match prelude(&api, GET, &headers, &raw, &fields).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if body["password"] != api.master.as_str() {
        return json_response(
            StatusCode::UNAUTHORIZED,
            json!({"Message": "The master password is not correct."}),
        );
    }
    if body["credential"] != api.credential.as_str() {
        return json_response(
            StatusCode::NOT_FOUND,
            json!({"Message": "No such credential."}),
        );
    }
    let answer = api.answer.lock().unwrap().clone();
    json_response(StatusCode::OK, answer)
}

async fn end_session(State(api): State<Arc<Api>>, headers: HeaderMap, raw: Bytes) -> Response {
    let fields = ["computer", "credential", "session", "loginsessionid"];
    match prelude(&api, END, &headers, &raw, &fields).await {
        Ok(_) => json_response(StatusCode::OK, json!({})),
        Err(r) => r,
    }
}

async fn check_session(State(api): State<Arc<Api>>, headers: HeaderMap, raw: Bytes) -> Response {
    // The session check's body is the plugin's own (the seed names no such endpoint); its
    // loginsessionid is checked like the others'.
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let person_ok = body["person"].as_str().is_some();
    let fields = ["loginsessionid", "person"];
    match prelude(&api, CHECK, &headers, &raw, &fields).await {
        Ok(_) if person_ok => json_response(StatusCode::OK, json!({})),
        Ok(_) => json_response(StatusCode::BAD_REQUEST, json!({})),
        Err(r) => r,
    }
}
