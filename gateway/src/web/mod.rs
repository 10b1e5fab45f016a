//! The HTTP server: health, readiness, metrics (and, with later issues, the pages and the API).

mod health;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::plugins::SharedRegistry;

#[derive(Clone)]
pub struct AppState {
    pub registry: SharedRegistry,
    pub metrics: Option<PrometheusHandle>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .with_state(Arc::new(state))
}

/// Serves until SIGTERM or Ctrl-C, then lets open requests finish within `grace`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    grace: Duration,
) -> std::io::Result<()> {
    let app = router(state);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
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
