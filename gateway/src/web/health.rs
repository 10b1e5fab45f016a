//! `/healthz` (the process answers), `/readyz` (every active plugin answers its health probe),
//! `/metrics` (Prometheus text format).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::AppState;

pub async fn healthz() -> &'static str {
    "ok\n"
}

pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let probes = state
        .registry
        .active()
        .iter()
        .map(|(id, plugin)| async move {
            // The registry's guard bounds each probe by the plugin's call timeout.
            (id.clone(), plugin.plugin().health().await)
        });
    let results = futures::future::join_all(probes).await;
    let mut plugins = Map::new();
    let mut ready = true;
    let mut store = json!("not used");
    if let Some(engine) = &state.engine {
        store = match engine.app.store.ping().await {
            Ok(()) => json!("ok"),
            Err(e) => {
                ready = false;
                json!({"status": "failing", "error": e.to_string()})
            }
        };
    }
    for (id, result) in results {
        let entry = match result {
            Ok(()) => json!({"status": "ok"}),
            Err(e) => {
                ready = false;
                json!({"status": "failing", "kind": e.kind, "error": e.message})
            }
        };
        plugins.insert(id, entry);
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({"status": if ready { "ready" } else { "not_ready" }, "store": store, "plugins": Value::Object(plugins)});
    (status, Json(body)).into_response()
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    match &state.metrics {
        Some(handle) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            handle.render(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are not enabled\n").into_response(),
    }
}
