//! `/healthz` (alive: see `health`), `/readyz` (ready once every cache of
//! the process has listed, on the leader and on a standby alike: both
//! serve from them) and `/metrics` (Prometheus text format). Served from a
//! thread and a runtime of their own, so they answer even when every worker
//! of the main runtime is busy, and `/healthz` can say so.

pub mod health;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::cache::Caches;
use crate::metrics::Metrics;
use health::Health;

/// Serves the endpoints on a thread of its own; resolves if serving fails.
pub async fn serve(
    addr: SocketAddr,
    caches: Arc<Caches>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> std::io::Result<()> {
    let (done, failed) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("steward-http".into()).spawn(move || {
        let served = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .and_then(|rt| rt.block_on(serve_here(addr, caches, metrics, health)));
        let _ = done.send(served);
    })?;
    // The sender is dropped only if the thread panicked.
    failed
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("the HTTP thread panicked")))
}

async fn serve_here(
    addr: SocketAddr,
    caches: Arc<Caches>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route(
            "/healthz",
            get(move || {
                let alive = health.check();
                async move {
                    match alive {
                        Ok(()) => (StatusCode::OK, "ok".to_string()),
                        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
                    }
                }
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let ready = caches.synced();
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
