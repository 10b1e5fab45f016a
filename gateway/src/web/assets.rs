//! Browser files: xterm.js and its fit addon from npm (`web/node_modules`, installed by
//! `npm ci` in `web/`), and the gateway's own page scripts. Only the files named here are served.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;

const FILES: &[(&str, &str, &str)] = &[
    (
        "xterm.js",
        "node_modules/@xterm/xterm/lib/xterm.js",
        "text/javascript",
    ),
    (
        "xterm.css",
        "node_modules/@xterm/xterm/css/xterm.css",
        "text/css",
    ),
    (
        "addon-fit.js",
        "node_modules/@xterm/addon-fit/lib/addon-fit.js",
        "text/javascript",
    ),
    ("session.js", "session.js", "text/javascript"),
    ("close.js", "close.js", "text/javascript"),
    ("display.js", "display.js", "text/javascript"),
    (
        "guacamole-common.js",
        "node_modules/guacamole-common-js/dist/esm/guacamole-common.js",
        "text/javascript",
    ),
];

/// Where the `web/` directory is: `web.dir` when set, else `./web`, else the source tree's.
pub fn web_dir(configured: &str) -> PathBuf {
    if !configured.is_empty() {
        return PathBuf::from(configured);
    }
    let local = PathBuf::from("web");
    if local.join("session.js").is_file() {
        return local;
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../web"))
}

pub async fn asset(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    let Some((_, relative, mime)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let path = state.web_dir.join(relative);
    match tokio::fs::read(&path).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, *mime),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(path = %path.display(), "browser asset missing (run `npm ci` in web/): {e}");
            (StatusCode::NOT_FOUND, "asset missing on the gateway").into_response()
        }
    }
}
