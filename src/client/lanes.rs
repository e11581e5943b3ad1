//! Two lanes of requests in flight: deletes, and everything else. A delete
//! is what revokes a grant (an expiry, a drift removal); it must never wait
//! behind a flood of other writes, such as finalizer patches on a hundred
//! hostile objects, that fill the shared bound. Each lane has its own bound,
//! held from the call until the response headers arrive, and the layer is
//! always ready, so the client's queue hands a delete on at once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::Semaphore;
use tower::{Layer, Service};

/// Bounds requests in flight per lane.
#[derive(Clone, Debug)]
pub struct LanesLayer {
    deletes: Arc<Semaphore>,
    others: Arc<Semaphore>,
}

impl LanesLayer {
    /// At most `deletes` deletes and `others` other requests in flight.
    pub fn new(deletes: usize, others: usize) -> Self {
        Self {
            deletes: Arc::new(Semaphore::new(deletes.max(1))),
            others: Arc::new(Semaphore::new(others.max(1))),
        }
    }
}

impl<S> Layer<S> for LanesLayer {
    type Service = Lanes<S>;

    fn layer(&self, inner: S) -> Lanes<S> {
        Lanes {
            inner,
            deletes: self.deletes.clone(),
            others: self.others.clone(),
        }
    }
}

/// The service of [`LanesLayer`].
#[derive(Clone, Debug)]
pub struct Lanes<S> {
    inner: S,
    deletes: Arc<Semaphore>,
    others: Arc<Semaphore>,
}

type Boxed<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> Service<http::Request<B>> for Lanes<S>
where
    S: Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Boxed<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let lane = if req.method() == http::Method::DELETE {
            self.deletes.clone()
        } else {
            self.others.clone()
        };
        // The inner future sends nothing until polled: it waits for a slot
        // of its lane first.
        let response = self.inner.call(req);
        Box::pin(async move {
            // The semaphore is never closed, so acquiring cannot fail; if it
            // ever did, sending unbounded is the safe side.
            let _slot = lane.acquire_owned().await.ok();
            response.await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tower::ServiceExt;

    /// A backend answering each request after `hold`, counting those in
    /// flight.
    fn backend(
        hold: Duration,
    ) -> impl Service<http::Request<()>, Response = &'static str, Error = std::convert::Infallible, Future = impl Send> + Clone
    {
        tower::service_fn(move |req: http::Request<()>| async move {
            tokio::time::sleep(hold).await;
            Ok::<_, std::convert::Infallible>(if req.method() == http::Method::DELETE {
                "delete"
            } else {
                "other"
            })
        })
    }

    fn request(method: http::Method) -> http::Request<()> {
        http::Request::builder()
            .method(method)
            .uri("/x")
            .body(())
            .expect("a request")
    }

    #[tokio::test(start_paused = true)]
    async fn a_delete_does_not_wait_behind_a_full_lane_of_other_writes() {
        let svc = LanesLayer::new(2, 4).layer(backend(Duration::from_secs(10)));
        let mut others = Vec::new();
        for _ in 0..40 {
            others.push(tokio::spawn(svc.clone().oneshot(request(http::Method::PATCH))));
        }
        tokio::task::yield_now().await;
        let started = tokio::time::Instant::now();
        let answer = svc.clone().oneshot(request(http::Method::DELETE)).await;
        assert_eq!(answer.ok(), Some("delete"));
        // One backend round, not the ten rounds the patches queue for.
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        for o in others {
            let _ = o.await;
        }
    }
}
