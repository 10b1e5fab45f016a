//! The JSON API under `/api/v1`: flows (start, read, answer, cancel) and the OpenAPI document.
//! Errors are `{"error": {"code", "message"}}` with a 4xx status; the seed's texts where it has one.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use crate::workflow::{Answer, FlowError};

pub const OPENAPI: &str = include_str!("openapi.json");

pub fn error(status: u16, code: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

pub fn flow_error(e: &FlowError) -> Response {
    if let FlowError::Internal(detail) = e {
        tracing::error!("flow request failed: {detail}");
        return error(
            500,
            "internal",
            "The gateway could not complete the request.",
        );
    }
    error(e.status(), e.code(), &e.to_string())
}

fn bad_json(e: &JsonRejection) -> Response {
    error(
        400,
        "bad_request",
        &format!(
            "the request body is not valid: {}",
            e.body_text().chars().take(200).collect::<String>()
        ),
    )
}

/// The flow secret from `Authorization: Bearer ...` or the flow cookie (`<id>.<secret>`).
pub fn flow_secret(headers: &HeaderMap, id: &str) -> Option<String> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(token) = value.strip_prefix("Bearer ")
    {
        return Some(token.trim().to_owned());
    }
    super::pages::cookie_flow(headers)
        .filter(|(cid, _)| cid == id)
        .map(|(_, secret)| secret)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    link: String,
}

pub async fn start(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<StartRequest>, JsonRejection>,
) -> Response {
    let Some(engine) = &state.engine else {
        return error(503, "unavailable", "the workflow is not enabled");
    };
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return bad_json(&e),
    };
    let query = body
        .link
        .split_once('?')
        .map_or(body.link.as_str(), |(_, q)| q);
    let ip = super::client::client_ip(peer, &headers, &engine.app.config.server.trusted_proxies);
    match engine.start(query, ip).await {
        Ok(started) => (
            StatusCode::CREATED,
            Json(
                json!({"flow": started.flow, "flow_secret": started.secret, "step": started.step}),
            ),
        )
            .into_response(),
        Err(e) => flow_error(&e),
    }
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(engine) = &state.engine else {
        return error(503, "unavailable", "the workflow is not enabled");
    };
    let Some(secret) = flow_secret(&headers, &id) else {
        return error(401, "unauthorized", "a flow secret is required");
    };
    match engine.view(&id, &secret).await {
        Ok(step) => Json(json!({"flow": id, "step": step})).into_response(),
        Err(e) => flow_error(&e),
    }
}

pub async fn answer(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<Answer>, JsonRejection>,
) -> Response {
    let Some(engine) = &state.engine else {
        return error(503, "unavailable", "the workflow is not enabled");
    };
    let Some(secret) = flow_secret(&headers, &id) else {
        return error(401, "unauthorized", "a flow secret is required");
    };
    let Json(answer) = match body {
        Ok(b) => b,
        Err(e) => return bad_json(&e),
    };
    match engine.answer(&id, &secret, answer).await {
        Ok(step) => Json(json!({"flow": id, "step": step})).into_response(),
        Err(e) => flow_error(&e),
    }
}

pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(engine) = &state.engine else {
        return error(503, "unavailable", "the workflow is not enabled");
    };
    let Some(secret) = flow_secret(&headers, &id) else {
        return error(401, "unauthorized", "a flow secret is required");
    };
    match engine.cancel(&id, &secret).await {
        Ok(step) => Json(json!({"flow": id, "step": step})).into_response(),
        Err(e) => flow_error(&e),
    }
}

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}
