//! `GET /api/v1/tunnel`: the WebSocket of a live session. The first message is the sealed launch
//! token (text); the browser proves it earned it with its flow cookie (or an API client with
//! `Authorization: Bearer <flow_secret>`). Then binary messages carry terminal bytes both ways and
//! text messages JSON control (`{"resize": {"cols", "rows"}}` in, notices and the end out).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::pages::cookie_flow;

/// The largest message a browser may send (keystrokes and pastes; a paste larger than this is cut).
const MAX_MESSAGE: usize = 1 << 20;

/// Cross-site WebSocket hijacking: a browser always sends Origin; it must be this gateway.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true; // not a browser
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest == host)
}

pub async fn tunnel(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(engine) = state.engine.clone() else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "cross-origin WebSocket refused").into_response();
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|s| s.trim().to_owned());
    let Some(secret) = bearer.or_else(|| cookie_flow(&headers).map(|(_, s)| s)) else {
        return (
            StatusCode::UNAUTHORIZED,
            "a flow cookie or bearer secret is required",
        )
            .into_response();
    };
    let live = state.live.clone();
    ws.max_message_size(MAX_MESSAGE)
        .on_upgrade(move |mut socket| async move {
            let token = match tokio::time::timeout(Duration::from_secs(10), socket.recv()).await {
                Ok(Some(Ok(Message::Text(t)))) => t.to_string(),
                _ => {
                    let _ = socket
                        .send(Message::Text(Utf8Bytes::from(
                            json!({"error": "the launch token must come first"}).to_string(),
                        )))
                        .await;
                    return;
                }
            };
            match engine.redeem(token.trim(), &secret).await {
                Ok(launch) => crate::session::run_terminal(engine, live, launch, socket).await,
                Err(e) => {
                    tracing::info!("launch token refused: {e}");
                    let _ = socket
                        .send(Message::Text(Utf8Bytes::from(
                            json!({"error": e.to_string()}).to_string(),
                        )))
                        .await;
                    let _ = socket.send(Message::Close(None)).await;
                }
            }
        })
}
