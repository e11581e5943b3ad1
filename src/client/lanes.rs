//! Two lanes of requests in flight: deletes, and everything else. A delete
//! is what revokes a grant (an expiry, a drift removal); it must never wait
//! behind a flood of other writes, such as finalizer patches on a hundred
//! hostile objects, that fill the shared bound. Each lane has its own bound,
//! held from the call until the response headers arrive, and the layer is
//! always ready, so the client's queue hands a delete on at once.
//!
//! In front of the lanes, writes go in order of what they are for
//! (`Class`): revocations (deleting a RoleBinding or ClusterRoleBinding)
//! first, then status writes, then every other write. While one of an
//! earlier class is queued or in flight, a write waits, except that a few of
//! each class (`TRICKLE`) may still be in flight, so no class starves.
//! With a thousand exceptions expiring together, their bindings were
//! revoked while the status writes, Role deletes, Events and reports of the
//! first ones loaded the API server, and the status waited behind the Role
//! deletes: now the bindings go nearly alone, then the statuses, then the
//! rest. (A first version released every waiting write after a second;
//! at a thousand, all of them then went at once, bindings still pending.)
//! Reads (lists, watches) never wait.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{Notify, Semaphore};
use tower::{Layer, Service};

/// How many writes of a class may be in flight while one of an earlier
/// class is pending: enough that none starves, few enough that a burst of
/// one (a thousand Events) does not load the API server while grants are
/// revoked.
const TRICKLE: usize = 4;

/// What a request is for, in the order writes are sent when many wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// Deleting a RoleBinding or ClusterRoleBinding: what revokes a grant.
    Revocation = 0,
    /// A status write: what tells users and tools that it happened.
    Status = 1,
    /// Every other write.
    Other = 2,
    /// Gets, lists and watches: never held back.
    Read = 3,
}

impl Class {
    fn of(method: &http::Method, path: &str) -> Self {
        let binding = path.contains("/rolebindings/") || path.contains("/clusterrolebindings/");
        match *method {
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS => Class::Read,
            http::Method::DELETE if binding => Class::Revocation,
            http::Method::PATCH | http::Method::PUT if path.ends_with("/status") => Class::Status,
            _ => Class::Other,
        }
    }
}

/// Writes of the first two classes queued or in flight, writes admitted
/// beside them, and a signal when one of either ends.
#[derive(Debug)]
struct Order {
    pending: [AtomicUsize; 2],
    trickling: [AtomicUsize; 3],
    trickle: usize,
    ended: Notify,
}

impl Order {
    fn new(trickle: usize) -> Self {
        Self {
            pending: Default::default(),
            trickling: Default::default(),
            trickle,
            ended: Notify::new(),
        }
    }

    /// Whether a write of an earlier class than `class` is pending.
    fn blocked(&self, class: Class) -> bool {
        let before = (class as usize).min(2);
        self.pending[..before].iter().any(|n| n.load(Ordering::Acquire) > 0)
    }

    /// Waits until no write of a class before `class` is pending, or a
    /// place among the few admitted beside them is free (held by the
    /// returned guard until the answer).
    async fn wait_turn(self: &Arc<Self>, class: Class) -> Option<Ended> {
        loop {
            // Registered before the checks, so an end between a check and
            // the wait still wakes us.
            let ended = self.ended.notified();
            let mut ended = std::pin::pin!(ended);
            ended.as_mut().enable();
            if !self.blocked(class) {
                return None;
            }
            let slot = self.trickling.get(class as usize)?;
            let admitted = slot
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < self.trickle).then_some(n + 1)
                })
                .is_ok();
            if admitted {
                return Some(Ended {
                    order: self.clone(),
                    counter: Counter::Trickling(class),
                });
            }
            ended.await;
        }
    }

    /// Counts a write of `class` as pending until the guard is dropped.
    fn pending(self: &Arc<Self>, class: Class) -> Option<Ended> {
        let slot = self.pending.get(class as usize)?;
        slot.fetch_add(1, Ordering::AcqRel);
        Some(Ended {
            order: self.clone(),
            counter: Counter::Pending(class),
        })
    }
}

#[derive(Debug)]
enum Counter {
    Pending(Class),
    Trickling(Class),
}

/// A write counted in `Order`, until its answer (or until it is dropped).
struct Ended {
    order: Arc<Order>,
    counter: Counter,
}

impl Drop for Ended {
    fn drop(&mut self) {
        let n = match self.counter {
            Counter::Pending(c) => &self.order.pending[c as usize],
            Counter::Trickling(c) => &self.order.trickling[c as usize],
        };
        n.fetch_sub(1, Ordering::AcqRel);
        self.order.ended.notify_waiters();
    }
}

/// Bounds requests in flight per lane.
#[derive(Clone, Debug)]
pub struct LanesLayer {
    deletes: Arc<Semaphore>,
    others: Arc<Semaphore>,
    order: Arc<Order>,
}

impl LanesLayer {
    /// At most `deletes` deletes and `others` other requests in flight.
    pub fn new(deletes: usize, others: usize) -> Self {
        Self {
            deletes: Arc::new(Semaphore::new(deletes.max(1))),
            others: Arc::new(Semaphore::new(others.max(1))),
            order: Arc::new(Order::new(TRICKLE)),
        }
    }

    /// The same with `trickle` writes of a class admitted beside an
    /// earlier class (tests show the order with none).
    #[cfg(test)]
    fn with_trickle(mut self, trickle: usize) -> Self {
        self.order = Arc::new(Order::new(trickle));
        self
    }
}

impl<S> Layer<S> for LanesLayer {
    type Service = Lanes<S>;

    fn layer(&self, inner: S) -> Lanes<S> {
        Lanes {
            inner,
            deletes: self.deletes.clone(),
            others: self.others.clone(),
            order: self.order.clone(),
        }
    }
}

/// The service of [`LanesLayer`].
#[derive(Clone, Debug)]
pub struct Lanes<S> {
    inner: S,
    deletes: Arc<Semaphore>,
    others: Arc<Semaphore>,
    order: Arc<Order>,
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
        let class = Class::of(req.method(), req.uri().path());
        // Counted from now, so a write of a later class arriving after this
        // one already waits for it.
        let pending = self.order.pending(class);
        let order = self.order.clone();
        // The inner future sends nothing until polled: it waits for its
        // turn and a slot of its lane first.
        let response = self.inner.call(req);
        Box::pin(async move {
            let _trickling = if class == Class::Read {
                None
            } else {
                order.wait_turn(class).await
            };
            // The semaphore is never closed, so acquiring cannot fail; if it
            // ever did, sending unbounded is the safe side.
            let _slot = lane.acquire_owned().await.ok();
            let answer = response.await;
            drop(pending);
            answer
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

    fn to(method: http::Method, path: &str) -> http::Request<()> {
        http::Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .expect("a request")
    }

    #[test]
    fn writes_are_classed_by_what_they_do() {
        use http::Method;
        let table = [
            (
                Method::DELETE,
                "/apis/rbac.authorization.k8s.io/v1/namespaces/a/rolebindings/x",
                Class::Revocation,
            ),
            (
                Method::DELETE,
                "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/x",
                Class::Revocation,
            ),
            (
                Method::DELETE,
                "/apis/rbac.authorization.k8s.io/v1/namespaces/a/roles/x",
                Class::Other,
            ),
            (
                Method::PATCH,
                "/apis/steward.dev/v1alpha1/namespaces/a/policyexceptions/x/status",
                Class::Status,
            ),
            (
                Method::PUT,
                "/apis/steward.dev/v1alpha1/namespaces/a/controlownerships/x/status",
                Class::Status,
            ),
            (
                Method::PATCH,
                "/apis/steward.dev/v1alpha1/namespaces/a/policyexceptions/x",
                Class::Other,
            ),
            (Method::POST, "/apis/events.k8s.io/v1/namespaces/a/events", Class::Other),
            (
                Method::GET,
                "/apis/rbac.authorization.k8s.io/v1/namespaces/a/rolebindings/x",
                Class::Read,
            ),
            (
                Method::GET,
                "/apis/rbac.authorization.k8s.io/v1/rolebindings?watch=true",
                Class::Read,
            ),
        ];
        for (method, path, want) in table {
            assert_eq!(Class::of(&method, path), want, "{method} {path}");
        }
    }

    /// A backend answering each request after `hold`, recording the order
    /// in which requests reached it.
    fn recording(
        hold: Duration,
        log: Arc<std::sync::Mutex<Vec<String>>>,
    ) -> impl Service<http::Request<()>, Response = (), Error = std::convert::Infallible, Future = impl Send> + Clone
    {
        tower::service_fn(move |req: http::Request<()>| {
            let log = log.clone();
            async move {
                log.lock().expect("not poisoned").push(req.uri().path().to_string());
                tokio::time::sleep(hold).await;
                Ok::<_, std::convert::Infallible>(())
            }
        })
    }

    #[tokio::test(start_paused = true)]
    async fn bindings_go_first_then_statuses_then_the_rest() {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        // None admitted beside an earlier class: the order alone.
        let svc = LanesLayer::new(1, 8)
            .with_trickle(0)
            .layer(recording(Duration::from_millis(10), log.clone()));
        let binding = "/apis/rbac.authorization.k8s.io/v1/namespaces/a/rolebindings/x";
        let status = "/apis/steward.dev/v1alpha1/namespaces/a/policyexceptions/x/status";
        let event = "/apis/events.k8s.io/v1/namespaces/a/events";
        let read = "/api/v1/namespaces/a/configmaps";
        let mut calls = Vec::new();
        // The bindings arrive first and queue for their one lane slot; the
        // Event arrives before the status.
        for (method, path) in [
            (http::Method::DELETE, binding),
            (http::Method::DELETE, binding),
            (http::Method::DELETE, binding),
            (http::Method::POST, event),
            (http::Method::PATCH, status),
        ] {
            calls.push(svc.clone().oneshot(to(method, path)));
        }
        let reads = svc.clone().oneshot(to(http::Method::GET, read));
        let (answers, read_answer) = tokio::join!(futures::future::join_all(calls), reads);
        assert!(answers.iter().chain([&read_answer]).all(Result::is_ok));
        let order = log.lock().expect("not poisoned").clone();
        // The read never waited; the Event waited for the bindings and for
        // the status that came after it.
        assert_eq!(order, [binding, read, binding, binding, status, event]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_of_revocations_lets_a_few_other_writes_through() {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let svc = LanesLayer::new(1, 8)
            .with_trickle(1)
            .layer(recording(Duration::from_millis(100), log.clone()));
        let binding = "/apis/rbac.authorization.k8s.io/v1/namespaces/a/rolebindings/x";
        // Fifty deletes of 100 ms each, one at a time: five seconds of them.
        let deletes: Vec<_> = (0..50)
            .map(|_| tokio::spawn(svc.clone().oneshot(to(http::Method::DELETE, binding))))
            .collect();
        tokio::task::yield_now().await;
        let status = "/apis/steward.dev/v1alpha1/namespaces/a/policyexceptions/x/status";
        // Two statuses: one is admitted beside the deletes at once, the
        // other when that one is answered.
        let started = tokio::time::Instant::now();
        let first = svc.clone().oneshot(to(http::Method::PATCH, status));
        let second = svc.clone().oneshot(to(http::Method::PATCH, status));
        let (a, b) = tokio::join!(first, second);
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(200),
            "one at a time, not after the deletes"
        );
        let sent_while_deleting = log
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|p| p.as_str() == status)
            .count();
        assert_eq!(sent_while_deleting, 2);
        for d in deletes {
            let _ = d.await;
        }
    }
}
