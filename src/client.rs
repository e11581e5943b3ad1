//! The API client: kube's default stack (kubeconfig or in-cluster config,
//! rustls) with a bound on requests in flight. Without it, a burst of
//! reconciles (a thousand exceptions expiring in the same second) opens a
//! connection per request and the pool keeps them all, each with its TLS
//! buffers. The bound covers a request until its response headers arrive,
//! so long-running watches do not hold a slot. Waiting requests are served
//! in order, so the first writes of a burst (revocations) go first.

use kube::client::ClientBuilder;
use tower::limit::ConcurrencyLimitLayer;

/// Builds the client from the inferred configuration.
pub async fn build(max_in_flight: u16) -> Result<kube::Client, kube::Error> {
    let config = kube::Config::infer().await.map_err(kube::Error::InferConfig)?;
    Ok(ClientBuilder::try_from(config)?
        .with_layer(&ConcurrencyLimitLayer::new(usize::from(max_in_flight)))
        .build())
}
