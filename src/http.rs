//! `/healthz`, `/readyz` (ready once every cache this process serves from
//! has synced: the controllers' on the leader, the webhook's on every
//! replica that serves it) and `/metrics` (Prometheus text format).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

/// Serves the endpoints until the process ends.
pub async fn serve(
    addr: SocketAddr,
    ready: Arc<Mutex<bool>>,
    webhook_synced: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.lock().map(|r| *r).unwrap_or(false) && webhook_synced.load(Ordering::Acquire);
                async move {
                    if ready {
                        (StatusCode::OK, "ready")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let body = metrics.render(jiff::Timestamp::now());
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        body,
                    )
                        .into_response()
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
    axum::serve(listener, app).await
}
