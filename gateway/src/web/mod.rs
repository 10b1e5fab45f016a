//! The HTTP server: health, readiness, metrics (and, with later issues, the pages and the API).

pub mod api;
pub mod assets;
pub mod client;
mod enrol;
mod health;
pub mod pages;
mod tunnel;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::plugins::SharedRegistry;
use crate::workflow::Engine;

/// The largest request body accepted anywhere (answers and start links are small).
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub registry: SharedRegistry,
    pub metrics: Option<PrometheusHandle>,
    pub engine: Option<Arc<Engine>>,
    /// The browser files' directory (see `assets::web_dir`).
    pub web_dir: std::path::PathBuf,
    /// The sessions running on this node.
    pub live: Arc<crate::session::live::Live>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/start", get(pages::start))
        .route("/flow", get(pages::show).post(pages::submit))
        .route("/flow/cancel", post(pages::cancel))
        .route("/mfa/enroll", get(enrol::show).post(enrol::submit))
        .route("/mfa/enroll/{id}", get(enrol::arrive))
        .route("/api/v1/openapi.json", get(api::openapi))
        .route("/api/v1/flows", post(api::start))
        .route("/api/v1/flows/{id}", get(api::get).delete(api::cancel))
        .route("/api/v1/flows/{id}/answer", post(api::answer))
        .route("/api/v1/tunnel", get(tunnel::tunnel))
        .route("/assets/{name}", get(assets::asset))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Arc::new(state))
}

/// Serves until SIGTERM or Ctrl-C, then lets open requests finish within `grace`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    grace: Duration,
) -> std::io::Result<()> {
    let live = state.live.clone();
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!(sessions = live.count(), "shutting down");
        // Live sessions end through their one end path (recording sealed, lease given back,
        // audited) before the process goes.
        live.stop_all(crate::session::live::SHUTDOWN);
        let waited = tokio::time::Instant::now();
        while live.count() > 0 && waited.elapsed() < grace {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = stop_tx.send(true);
    });
    let mut stop_rx = stop_rx;
    let forced = async move {
        let _ = stop_rx.wait_for(|stopped| *stopped).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server.into_future() => result,
        () = forced => {
            tracing::warn!("requests still open after the grace period; stopping anyway");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => futures::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = futures::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
