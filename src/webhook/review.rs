//! Reading an AdmissionReview off the wire, within bounds. A review of an
//! update carries the object twice, so a Steward object as large as the
//! API server stores (etcd's 1.5 MiB) arrives as over 3 MiB; anything the
//! API server can send is read, anything larger is refused for its size.
//!
//! Large reviews are bounded twice. The bytes of those read at once have a
//! budget, because the API server may send hundreds together (one per
//! write in flight) and a flood of megabyte objects would otherwise be
//! buffered whole; a review waits for room before its body is read. And
//! they are parsed and judged one at a time, so a flood holds one core, not
//! every one. A review that gets neither within `TURN_WAIT` is answered
//! 503. Small reviews (every RoleBinding a person writes, most exceptions)
//! count against neither and never wait behind them.
//!
//! A body left unread must not hold up the others'. The API server sends
//! its webhook calls over one HTTP/2 connection, and unread data counts
//! against the connection's flow-control window as well as its stream's:
//! with the HTTP library's defaults (1 MiB each) one waiting megabyte
//! review stalled every other body on the connection. So each stream's
//! window is `STREAM_WINDOW` and the connection's is that times the
//! streams it allows (`http2`): the connection is never the limit, and
//! what waits unread is at most a window per request.

use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::http::header::CONTENT_LENGTH;
use kube::core::admission::AdmissionReview;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The largest review read: above the 3 MiB request body the API server
/// itself accepts, with room for the review's own fields around two copies
/// of the largest object it stores.
pub(super) const REVIEW_LIMIT: usize = 8 << 20;

/// Reviews up to this size are read and parsed at once, on the runtime
/// worker: that costs less than handing them to another thread would.
pub(super) const SMALL_REVIEW: u64 = 64 << 10;

/// The bytes of large reviews read at once, in KiB: a few dozen of the
/// largest objects, well within the controller's memory limit beside its
/// caches.
const BUDGET_KIB: usize = 32 << 10;

/// Each HTTP/2 stream's flow-control window: a small review arrives in one.
const STREAM_WINDOW: u32 = SMALL_REVIEW as u32;

/// Requests in flight on one HTTP/2 connection; the API server opens
/// another connection for more.
const STREAMS: u32 = 256;

/// Sets the HTTP/2 windows described in the module header.
pub(super) fn http2(builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>) {
    builder
        .http2()
        .max_concurrent_streams(STREAMS)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(STREAM_WINDOW * STREAMS);
}

/// How long a large review waits for room and its turn to be parsed and judged:
/// below the webhook's 5 s timeout, so a review the API server would give
/// up on anyway gets a 503 at once instead of costing CPU after nobody
/// waits for it. The write is then refused or admitted as the webhook's
/// failurePolicy says, and the client may send it again.
pub(super) const TURN_WAIT: Duration = Duration::from_secs(3);

/// An HTTP answer instead of a verdict.
pub(super) type Refusal = (StatusCode, &'static str);

/// The bounds on large reviews, shared by both webhooks of a process.
#[derive(Debug)]
pub struct Bounds {
    /// KiB of large reviews that may be read at once.
    budget: Arc<Semaphore>,
    /// One large review parsed and judged at a time.
    turn: Arc<Semaphore>,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            budget: Arc::new(Semaphore::new(BUDGET_KIB)),
            turn: Arc::new(Semaphore::new(1)),
        }
    }
}

impl Bounds {
    /// Takes the whole budget, as a flood would (tests).
    #[cfg(test)]
    pub(super) async fn spend_budget(&self) -> OwnedSemaphorePermit {
        self.budget
            .clone()
            .acquire_many_owned(BUDGET_KIB as u32)
            .await
            .expect("the budget is never closed")
    }

    /// Takes the turn, as a review being judged would (tests).
    #[cfg(test)]
    pub(super) async fn take_turn(&self) -> OwnedSemaphorePermit {
        self.turn
            .clone()
            .acquire_owned()
            .await
            .expect("the turn is never closed")
    }
}

/// A review as read, and what it holds of the bounds (large reviews only)
/// until the verdict is given.
pub(super) struct Read<T: kube::Resource> {
    pub review: AdmissionReview<T>,
    pub _held: Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)>,
}

/// Reads one review of `T` from `request`: small ones at once; large ones
/// (or of unstated length) within the budget, then parsed in their turn on
/// the blocking pool.
pub(super) async fn read<T>(bounds: &Bounds, request: Request) -> Result<Read<T>, Refusal>
where
    T: kube::Resource + DeserializeOwned + Send + 'static,
{
    let length = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|n| n > REVIEW_LIMIT as u64) {
        return Err(too_large());
    }
    if length.is_some_and(|n| n <= SMALL_REVIEW) {
        let body = body(request).await?;
        let review = serde_json::from_slice::<AdmissionReview<T>>(&body).map_err(|_| not_a_review())?;
        return Ok(Read { review, _held: None });
    }
    // Reserved for the stated length, or the most that may come. (At most
    // REVIEW_LIMIT, checked above: the count fits a u32.)
    let kib = (length.unwrap_or(REVIEW_LIMIT as u64).div_ceil(1024)) as u32;
    let deadline = tokio::time::Instant::now() + TURN_WAIT;
    let budget = wait(deadline, bounds.budget.clone().acquire_many_owned(kib)).await?;
    let body = body(request).await?;
    let turn = wait(deadline, bounds.turn.clone().acquire_owned()).await?;
    let review = tokio::task::spawn_blocking(move || serde_json::from_slice::<AdmissionReview<T>>(&body))
        .await
        .map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, "reading the review failed"))?
        .map_err(|_| not_a_review())?;
    Ok(Read {
        review,
        _held: Some((budget, turn)),
    })
}

/// A share of the bounds, if it comes by `deadline`.
async fn wait(
    deadline: tokio::time::Instant,
    share: impl Future<Output = Result<OwnedSemaphorePermit, tokio::sync::AcquireError>>,
) -> Result<OwnedSemaphorePermit, Refusal> {
    match tokio::time::timeout_at(deadline, share).await {
        Ok(Ok(permit)) => Ok(permit),
        Ok(Err(_)) => Err((StatusCode::SERVICE_UNAVAILABLE, "shutting down")),
        Err(_) => Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "busy with other large reviews; send it again",
        )),
    }
}

/// The body, at most `REVIEW_LIMIT` bytes whatever its stated length.
async fn body(request: Request) -> Result<axum::body::Bytes, Refusal> {
    axum::body::to_bytes(request.into_body(), REVIEW_LIMIT)
        .await
        .map_err(|_| too_large())
}

fn not_a_review() -> Refusal {
    (
        StatusCode::BAD_REQUEST,
        "not an AdmissionReview of this webhook's kinds",
    )
}

fn too_large() -> Refusal {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        "the review is larger than the webhook reads (8 MiB), or was cut off",
    )
}
