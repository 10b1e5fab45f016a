//! `GET /api/v1/tunnel`: the WebSocket of a live session. The browser proves it earned the launch
//! token with its flow cookie (or an API client with `Authorization: Bearer <flow_secret>`).
//!
//! Terminal channel: the first message is the sealed launch token (text); then binary messages
//! carry terminal bytes both ways and text messages JSON control (`{"resize": {"cols", "rows"}}`
//! in, notices and the end out).
//!
//! Display channel (subprotocol `guacamole`, for guacamole-common-js's `WebSocketTunnel`): the
//! gateway opens the tunnel with `0.,36.<uuid>;`, the page's first instruction is
//! `token,<launch token>` (never in the URL), then Guacamole instructions both ways.

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
    let guacamole = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == "guacamole");
    if guacamole {
        return ws
            .max_message_size(MAX_MESSAGE)
            .protocols(["guacamole"])
            .on_upgrade(move |socket| display(engine, live, secret, socket));
    }
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

/// The display channel's opening: tunnel id out, `token` instruction in (pings answered, other
/// instructions before it ignored), then the session.
async fn display(
    engine: std::sync::Arc<crate::workflow::Engine>,
    live: std::sync::Arc<crate::session::live::Live>,
    secret: String,
    mut socket: axum::extract::ws::WebSocket,
) {
    use openpsm_plugin_api::guac::{Instruction, Parser};
    let refuse = |message: &str| {
        Instruction::new("error", &[message, "769"]).encode()
            + &Instruction::new("disconnect", &[]).encode()
    };
    let id = uuid::Uuid::new_v4().to_string();
    if socket
        .send(Message::Text(Utf8Bytes::from(
            Instruction::new("", &[&id]).encode(),
        )))
        .await
        .is_err()
    {
        return;
    }
    let mut parser = Parser::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let token = 'wait: loop {
        let message = match tokio::time::timeout_at(deadline, socket.recv()).await {
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(_))) => continue,
            _ => return,
        };
        let Ok(instructions) = parser.feed(message.as_str()) else {
            let _ = socket
                .send(Message::Text(Utf8Bytes::from(refuse("protocol error"))))
                .await;
            return;
        };
        for i in instructions {
            match i.opcode.as_str() {
                "token" => break 'wait i.arg(0).unwrap_or_default().to_owned(),
                "" if i.arg(0) == Some("ping") => {
                    let _ = socket
                        .send(Message::Text(Utf8Bytes::from(i.encode())))
                        .await;
                }
                _ => {}
            }
        }
    };
    match engine.redeem(token.trim(), &secret).await {
        Ok(launch) => crate::session::run_display(engine, live, launch, socket).await,
        Err(e) => {
            tracing::info!("launch token refused: {e}");
            let _ = socket
                .send(Message::Text(Utf8Bytes::from(refuse(&e.to_string()))))
                .await;
            let _ = socket.send(Message::Close(None)).await;
        }
    }
}
