//! `/healthz`, `/readyz` (ready once every cache has synced) and `/metrics`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;

/// Serves the endpoints until the process ends.
pub async fn serve(addr: SocketAddr, ready: Arc<Mutex<bool>>) -> std::io::Result<()> {
    let app = Router::new().route("/healthz", get(|| async { "ok" })).route(
        "/readyz",
        get(move || {
            let ready = ready.lock().map(|r| *r).unwrap_or(false);
            async move {
                if ready {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /healthz and /readyz");
    axum::serve(listener, app).await
}
