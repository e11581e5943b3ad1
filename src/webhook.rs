//! The validating admission webhook (`--webhook-addr`): refuses invalid
//! Steward objects and undeclared bindings to identities of controls in
//! Enforce mode, with the same messages the status would show. Handlers are
//! pure functions of the request and the caches (safe under dry-run). Every
//! replica serves it, leader or not, from the process's shared caches, and
//! never from a cache that has not listed yet: until then a request waits
//! briefly, then gets 503, so the API server applies the webhook's
//! failurePolicy (Fail for Steward objects, Ignore for bindings) instead of
//! a verdict from nothing. Objects in namespaces outside `--namespace` are
//! not Steward's to judge and are admitted. A change to the grant ceiling
//! ClusterRole is always admitted, with warnings naming what it takes away.
//!
//! Callers are authenticated by client certificate (`--webhook-client-ca`),
//! and the TLS files are read again when they change (`tls`). Reviews are
//! read within bounds, large ones one at a time (`review`), and verdicts run
//! on the blocking pool: a burst of large requests must not hold every
//! runtime worker, which the reconcilers and the watchdog also need.

mod ceiling;
mod mutate;
mod review;
mod tls;

pub use tls::{Files, TlsError};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::routing::post;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use thiserror::Error;

use crate::api::{BindingKind, ControlOwnership, PolicyException};
use crate::cache::Caches;
use crate::decide::Ceiling;
use crate::decide::admission::{self, Binding, Verdict};
use crate::decide::approval::Trust;

/// How the webhook is served.
#[derive(Clone, Debug)]
pub struct Config {
    /// Listen address.
    pub addr: SocketAddr,
    /// Certificate, key and the client CA.
    pub tls: Files,
    /// The controller's own user name: its writes are always admitted.
    pub controller_user: Option<String>,
    /// Signs approval records.
    pub key: crate::decide::approval::Key,
}

/// Why the webhook could not be served.
#[derive(Debug, Error)]
pub enum WebhookError {
    /// Certificate, key or client CA unusable.
    #[error("webhook TLS")]
    Tls(#[source] TlsError),
    /// Neither a client CA nor the unauthenticated mode was chosen.
    #[error(
        "the webhook needs --webhook-client-ca (callers must present a client certificate), or --webhook-unauthenticated to accept any caller"
    )]
    NoClientAuth,
    /// Serving failed.
    #[error("webhook server")]
    Serve(#[source] std::io::Error),
}

/// An error and its sources on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// What the handlers read.
pub struct Judge {
    /// The process's caches.
    pub caches: Arc<Caches>,
    /// The controller's own user.
    pub controller_user: Option<String>,
    /// Signs and verifies approval records.
    pub key: crate::decide::approval::Key,
    /// The bounds on large reviews (`review`): an exception may be
    /// megabytes, and a flood of them must leave a core to the reconcilers
    /// (in this process, or beside it) so expiries stay on time, and must
    /// not buffer more than the process can hold.
    pub reviews: review::Bounds,
}

/// How long a request that arrives before the caches have listed waits for
/// them: below the webhook's 5 s timeout, so the API server gets our 503
/// rather than its own timeout.
const SYNC_WAIT: Duration = Duration::from_secs(3);

impl Judge {
    /// Whether the caches have listed, waiting at most `SYNC_WAIT`.
    async fn wait_synced(&self) -> bool {
        self.caches.synced()
            || tokio::time::timeout(SYNC_WAIT, self.caches.wait_synced())
                .await
                .unwrap_or(false)
    }
}

/// Serves the webhook until the process ends.
pub async fn serve(caches: Arc<Caches>, config: Config) -> Result<(), WebhookError> {
    let judge = Arc::new(Judge {
        caches,
        controller_user: config.controller_user.clone(),
        key: config.key.clone(),
        reviews: review::Bounds::default(),
    });
    let authenticated = config.tls.client_ca.is_some();
    let reloader = tls::Reloader::load(config.tls).map_err(WebhookError::Tls)?;
    let tls = reloader.tls.clone();
    tokio::spawn(reloader.watch());
    let app = Router::new()
        .route("/validate", post(validate))
        .route("/mutate", post(mutate::mutate))
        .with_state(judge);
    if authenticated {
        tracing::info!(addr = %config.addr, "serving the admission webhook to callers with a client certificate");
    } else {
        tracing::warn!(
            addr = %config.addr,
            "serving the admission webhook WITHOUT authenticating callers (--webhook-unauthenticated): \
             anything that reaches the port can ask for verdicts; restrict it with a NetworkPolicy"
        );
    }
    let mut server = axum_server::bind_rustls(config.addr, tls);
    review::http2(server.http_builder());
    server.serve(app.into_make_service()).await.map_err(WebhookError::Serve)
}

async fn validate(
    State(judge): State<Arc<Judge>>,
    request: Request,
) -> Result<Json<AdmissionReview<DynamicObject>>, review::Refusal> {
    let review::Read { review, _held } = review::read::<DynamicObject>(&judge.reviews, request).await?;
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(e) => return Ok(Json(AdmissionResponse::invalid(e.to_string()).into_review())),
    };
    let response = AdmissionResponse::from(&request);
    if ceiling::is_ceiling(&request, &judge) {
        let mut response = response;
        response.warnings = Some(ceiling::warnings(request, judge).await);
        return Ok(Json(response.into_review()));
    }
    // Deletes and the controller's own writes (finalizer patches) need no
    // cache: they are answered at once even before the first list.
    if !needs_caches(&request, &judge) {
        return Ok(Json(response.into_review()));
    }
    if !judge.wait_synced().await {
        return Err((StatusCode::SERVICE_UNAVAILABLE, "admission caches not synced yet"));
    }
    let now = jiff::Timestamp::now();
    let verdict = tokio::task::spawn_blocking(move || decide(&request, &judge, now))
        .await
        .map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, "the verdict failed"))?;
    let response = match verdict {
        Verdict::Allow => response,
        Verdict::Deny(message) => response.deny(message),
    };
    Ok(Json(response.into_review()))
}

fn typed<K: serde::de::DeserializeOwned>(obj: &DynamicObject) -> Result<K, serde_json::Error> {
    serde_json::to_value(obj).and_then(serde_json::from_value)
}

fn unreadable(e: serde_json::Error) -> Verdict {
    Verdict::Deny(format!("cannot read the object: {e}"))
}

/// Whether the request is the controller's own write (always admitted).
fn is_own<T: kube::Resource>(request: &AdmissionRequest<T>, judge: &Judge) -> bool {
    judge
        .controller_user
        .as_deref()
        .is_some_and(|u| request.user_info.username.as_deref() == Some(u))
}

/// Whether the verdict reads the caches: not for deletes, connects or the
/// controller's own writes, which are always admitted.
fn needs_caches(request: &AdmissionRequest<DynamicObject>, judge: &Judge) -> bool {
    !is_own(request, judge) && !matches!(request.operation, Operation::Delete | Operation::Connect)
}

/// The verdict for one request (pure apart from reading the caches).
pub fn decide(request: &AdmissionRequest<DynamicObject>, judge: &Judge, now: jiff::Timestamp) -> Verdict {
    if !needs_caches(request, judge) {
        return Verdict::Allow;
    }
    let Some(obj) = &request.object else {
        return Verdict::Allow;
    };
    let caches = &judge.caches;
    if request.namespace.as_deref().is_some_and(|ns| !caches.covers(ns)) {
        return Verdict::Allow;
    }
    let ceiling = caches.ceiling();
    match request.kind.kind.as_str() {
        "ControlOwnership" => match typed::<ControlOwnership>(obj) {
            Ok(co) => {
                let rivals = caches.controls_sharing(&co);
                let rivals: Vec<&ControlOwnership> = rivals.iter().map(|r| r.as_ref()).collect();
                admission::control(&co, &rivals, &ceiling)
            }
            Err(e) => unreadable(e),
        },
        "PolicyException" => match typed::<PolicyException>(obj) {
            Ok(pe) => exception_verdict(request, &pe, caches, &ceiling, now),
            Err(e) => unreadable(e),
        },
        "RoleBinding" | "ClusterRoleBinding" => binding_verdict(request, obj, caches, &ceiling, &judge.key, now),
        _ => Verdict::Allow,
    }
}

/// An exception: a record once its window ended, else judged as the
/// controller would judge it.
fn exception_verdict(
    request: &AdmissionRequest<DynamicObject>,
    pe: &PolicyException,
    caches: &Caches,
    ceiling: &Ceiling,
    now: jiff::Timestamp,
) -> Verdict {
    let old = request
        .old_object
        .as_ref()
        .and_then(|o| typed::<PolicyException>(o).ok());
    if let Some(deny @ Verdict::Deny(_)) = old.map(|old| admission::expired_is_record(&old, pe, now)) {
        return deny;
    }
    let ns = pe.namespace().or_else(|| request.namespace.clone()).unwrap_or_default();
    let control = caches.control_for_exceptions(&ns, &pe.spec.control);
    admission::exception(pe, control.as_deref(), ceiling, now)
}

/// A binding: refused when it reaches an enforced identity undeclared.
/// Bindings fail open, like their failurePolicy, when unreadable.
fn binding_verdict(
    request: &AdmissionRequest<DynamicObject>,
    obj: &DynamicObject,
    caches: &Caches,
    ceiling: &Ceiling,
    key: &crate::decide::approval::Key,
    now: jiff::Timestamp,
) -> Verdict {
    let read = if request.kind.kind == "RoleBinding" {
        typed::<RoleBinding>(obj)
            .ok()
            .map(|rb| (rb.subjects.unwrap_or_default(), rb.role_ref, BindingKind::RoleBinding))
    } else {
        typed::<ClusterRoleBinding>(obj).ok().map(|crb| {
            (
                crb.subjects.unwrap_or_default(),
                crb.role_ref,
                BindingKind::ClusterRoleBinding,
            )
        })
    };
    let Some((subjects, role_ref, kind)) = read else {
        return Verdict::Allow;
    };
    let b = Binding {
        kind,
        name: &request.name,
        namespace: request.namespace.as_deref(),
        subjects: &subjects,
        role_ref: &role_ref,
    };
    let controls = caches.controls.state();
    let exceptions = caches.exceptions.state();
    let controls: Vec<&ControlOwnership> = controls.iter().map(|c| c.as_ref()).collect();
    let exceptions: Vec<&PolicyException> = exceptions.iter().map(|e| e.as_ref()).collect();
    admission::binding(&b, &controls, &exceptions, ceiling, Trust::Verify(key), now)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request the API server would send with `review`.
    fn post(review: &serde_json::Value) -> Request {
        let body = serde_json::to_vec(review).expect("review JSON");
        Request::builder()
            .method("POST")
            .header(axum::http::header::CONTENT_LENGTH, body.len())
            .body(axum::body::Body::from(body))
            .expect("request")
    }

    fn exception_review() -> Request {
        post(&exception_review_json())
    }

    fn exception_review_json() -> serde_json::Value {
        review_json(
            "CREATE",
            "alice",
            "policyexceptions",
            serde_json::json!({
                "apiVersion": "steward.dev/v1alpha1",
                "kind": "PolicyException",
                "metadata": {"name": "debug", "namespace": "shop"},
                "spec": {
                    "control": "payments", "ticket": "SEC-1", "approver": "alice@example.com",
                    "reason": "debug", "expiresAt": "2999-01-01T00:00:00Z"
                }
            }),
        )
    }

    /// The AdmissionReview the API server sends for `operation` by `user`
    /// on `object` (of the plural `resource`): kind, name and namespace
    /// are the object's; a DELETE carries it as the old object.
    fn review_json(operation: &str, user: &str, resource: &str, object: serde_json::Value) -> serde_json::Value {
        let api_version = object["apiVersion"].as_str().expect("apiVersion");
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let mut request = serde_json::json!({
            "uid": format!("{operation}-{resource}"),
            "kind": {"group": group, "version": version, "kind": object["kind"]},
            "resource": {"group": group, "version": version, "resource": resource},
            "name": object["metadata"]["name"],
            "operation": operation,
            "userInfo": {"username": user},
            "dryRun": false
        });
        if let Some(ns) = object["metadata"]["namespace"].as_str() {
            request["namespace"] = ns.into();
        }
        let key = if operation == "DELETE" { "oldObject" } else { "object" };
        request[key] = object;
        serde_json::json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
    }

    fn judge(caches: Caches, controller_user: Option<&str>) -> State<Arc<Judge>> {
        State(Arc::new(Judge {
            caches: Arc::new(caches),
            controller_user: controller_user.map(String::from),
            key: crate::decide::approval::Key::new(&[7; 32]).expect("a 32-byte key"),
            reviews: review::Bounds::default(),
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn before_the_caches_list_the_answer_is_503_not_a_verdict() {
        let (caches, _writers) = Caches::unlisted();
        let started = tokio::time::Instant::now();
        let answer = validate(judge(caches, None), exception_review()).await;
        assert!(matches!(answer, Err((StatusCode::SERVICE_UNAVAILABLE, _))));
        assert!(started.elapsed() >= SYNC_WAIT);
    }

    #[tokio::test(start_paused = true)]
    async fn the_controllers_own_writes_need_no_cache() {
        let (caches, _writers) = Caches::unlisted();
        let started = tokio::time::Instant::now();
        let Ok(Json(review)) = validate(judge(caches, Some("alice")), exception_review()).await else {
            panic!("the controller's own write waited for the caches");
        };
        assert!(review.response.expect("response").allowed);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_waiting_for_the_list_gets_the_real_verdict() {
        let (caches, mut writers) = Caches::unlisted();
        let waiting = tokio::spawn(validate(judge(caches, None), exception_review()));
        tokio::time::sleep(Duration::from_secs(1)).await;
        writers.list(true);
        let Ok(Json(review)) = waiting.await.expect("handler") else {
            panic!("answered 503 although the caches listed within the wait");
        };
        // Listed and empty: the control really does not exist.
        let response = review.response.expect("response");
        assert!(!response.allowed);
        assert!(
            response.result.message.contains("ControlNotFound"),
            "{:?}",
            response.result
        );
    }

    #[tokio::test(start_paused = true)]
    async fn every_cache_must_have_listed_not_only_the_ones_the_verdict_reads() {
        let (caches, mut writers) = Caches::unlisted();
        writers.list(false);
        let answer = validate(judge(caches, None), exception_review()).await;
        assert!(matches!(answer, Err((StatusCode::SERVICE_UNAVAILABLE, _))));
    }

    fn ceiling_delete_review() -> Request {
        post(&review_json(
            "DELETE",
            "platform-admin",
            "clusterroles",
            serde_json::json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "steward-grantable"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]
            }),
        ))
    }

    fn payments() -> ControlOwnership {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "steward.dev/v1alpha1",
            "kind": "ControlOwnership",
            "metadata": {"name": "payments", "namespace": "shop"},
            "spec": {
                "layer": "Identity",
                "owner": {"name": "payments-team"},
                "backupOwner": {"name": "security-team"},
                "approvers": ["alice@example.com"],
                "review": {"interval": "30d", "lastReviewed": "2026-11-20T00:00:00Z"},
                "workloadIdentities": [{"serviceAccount": "api", "task": "Serves",
                    "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}]
            }
        }))
        .expect("control")
    }

    #[tokio::test]
    async fn the_approvals_webhook_records_the_requester_of_a_new_exception() {
        let caches = Caches::fed(vec![payments()], vec![]);
        let State(judge) = judge(caches, None);
        let Ok(Json(review)) = mutate::mutate(State(judge), exception_review()).await else {
            panic!("no answer");
        };
        let response = review.response.expect("response");
        assert!(response.allowed, "{:?}", response.result);
        let patch = String::from_utf8(response.patch.expect("a patch")).expect("UTF-8");
        assert!(patch.contains("steward.dev/requested-by"), "{patch}");
        assert!(patch.contains(r#"\"user\":\"alice\""#), "{patch}");
    }

    /// An update of the exception whose object and old object each carry
    /// `pad` bytes in an annotation: the review is about twice that.
    fn large_update_json(pad: usize) -> serde_json::Value {
        let mut review = exception_review_json();
        let request = &mut review["request"];
        request["operation"] = "UPDATE".into();
        request["object"]["metadata"]["annotations"] = serde_json::json!({"pad": "x".repeat(pad)});
        request["oldObject"] = request["object"].clone();
        review
    }

    /// A RoleBinding created by a person: a small review.
    fn binding_review() -> Request {
        post(&review_json(
            "CREATE",
            "erin",
            "rolebindings",
            serde_json::json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "readers", "namespace": "shop"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "User", "name": "erin", "apiGroup": "rbac.authorization.k8s.io"}]
            }),
        ))
    }

    /// The verdict `answer` carries, failing if it is an HTTP refusal.
    fn judged(answer: Result<Json<AdmissionReview<DynamicObject>>, review::Refusal>, what: &str) -> AdmissionResponse {
        match answer {
            Ok(Json(review)) => review.response.expect("response"),
            Err(refusal) => panic!("{what}: answered {refusal:?}"),
        }
    }

    fn allowed(answer: Result<Json<AdmissionReview<DynamicObject>>, review::Refusal>, what: &str) {
        let response = judged(answer, what);
        assert!(response.allowed, "{what}: {:?}", response.result);
    }

    /// The validating webhook's verdict on the test exception: refused for
    /// its window (it ends in 2999), which only a judged review says.
    fn window_too_long(answer: Result<Json<AdmissionReview<DynamicObject>>, review::Refusal>, what: &str) {
        let response = judged(answer, what);
        assert!(
            !response.allowed && response.result.message.contains("WindowTooLong"),
            "{what}: {:?}",
            response.result
        );
    }

    /// The API server stores objects up to 1.5 MiB and sends an update's
    /// review with two copies: both webhooks read such a review and judge
    /// it (the write would otherwise be refused, failurePolicy Fail).
    #[tokio::test]
    async fn a_review_of_an_update_to_the_largest_object_is_judged_not_refused_for_its_size() {
        let review = large_update_json(3 << 19);
        assert!(serde_json::to_vec(&review).expect("JSON").len() > 3 << 20);
        let State(judge) = judge(Caches::fed(vec![payments()], vec![]), None);
        allowed(mutate::mutate(State(judge.clone()), post(&review)).await, "mutate");
        window_too_long(validate(State(judge), post(&review)).await, "validate");
    }

    #[tokio::test]
    async fn a_review_larger_than_the_api_server_sends_is_refused_for_its_size() {
        let review = large_update_json(review::REVIEW_LIMIT / 2);
        let State(judge) = judge(Caches::fed(vec![payments()], vec![]), None);
        let stated = validate(State(judge.clone()), post(&review)).await;
        assert!(
            matches!(stated, Err((StatusCode::PAYLOAD_TOO_LARGE, _))),
            "stated length"
        );
        // A body that does not state its length is cut off at the limit.
        let unstated = Request::builder()
            .method("POST")
            .body(axum::body::Body::from(serde_json::to_vec(&review).expect("JSON")))
            .expect("request");
        let answer = mutate::mutate(State(judge), unstated).await;
        assert!(
            matches!(answer, Err((StatusCode::PAYLOAD_TOO_LARGE, _))),
            "unstated length"
        );
    }

    /// Large reviews are read one at a time and give up before the API
    /// server would; a RoleBinding a person writes (failurePolicy Ignore)
    /// and a small exception never wait behind them.
    #[tokio::test(start_paused = true)]
    async fn a_large_review_waits_its_turn_and_small_ones_do_not() {
        let caches = Caches::fed(vec![payments()], vec![]);
        let State(judge) = judge(caches, None);
        let large = large_update_json(1 << 20);
        let busy = judge.reviews.take_turn().await;
        let started = tokio::time::Instant::now();
        allowed(validate(State(judge.clone()), binding_review()).await, "a binding");
        allowed(
            mutate::mutate(State(judge.clone()), exception_review()).await,
            "a small exception",
        );
        assert_eq!(started.elapsed(), Duration::ZERO, "a small review waited");
        let answer = mutate::mutate(State(judge.clone()), post(&large)).await;
        assert!(matches!(answer, Err((StatusCode::SERVICE_UNAVAILABLE, _))));
        assert_eq!(started.elapsed(), review::TURN_WAIT);
        let answer = validate(State(judge.clone()), post(&large)).await;
        assert!(matches!(answer, Err((StatusCode::SERVICE_UNAVAILABLE, _))));
        drop(busy);
        allowed(
            mutate::mutate(State(judge.clone()), post(&large)).await,
            "mutate in its turn",
        );
        window_too_long(validate(State(judge), post(&large)).await, "validate in its turn");
    }

    /// Past the budget of large reviews read at once (the API server may
    /// send hundreds together), a large review waits for room, unread, and
    /// gives up before the API server would; small ones pass at once.
    #[tokio::test(start_paused = true)]
    async fn past_the_budget_a_large_review_waits_for_room_and_small_ones_pass() {
        let State(judge) = judge(Caches::fed(vec![payments()], vec![]), None);
        let large = large_update_json(1 << 20);
        let spent = judge.reviews.spend_budget().await;
        let started = tokio::time::Instant::now();
        allowed(validate(State(judge.clone()), binding_review()).await, "a binding");
        allowed(
            mutate::mutate(State(judge.clone()), exception_review()).await,
            "a small exception",
        );
        assert_eq!(started.elapsed(), Duration::ZERO, "a small review waited");
        let answer = mutate::mutate(State(judge.clone()), post(&large)).await;
        assert!(matches!(answer, Err((StatusCode::SERVICE_UNAVAILABLE, _))), "mutate");
        assert_eq!(started.elapsed(), review::TURN_WAIT);
        // Room made while one waits: it is read and judged.
        let waiting = tokio::spawn(validate(State(judge.clone()), post(&large)));
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(spent);
        window_too_long(waiting.await.expect("handler"), "validate once there is room");
        allowed(
            mutate::mutate(State(judge), post(&large)).await,
            "mutate within the budget",
        );
    }

    #[tokio::test]
    async fn deleting_the_ceiling_is_admitted_with_the_controls_it_invalidates() {
        let caches = Caches::fed(vec![payments()], vec![]);
        let Ok(Json(review)) = validate(judge(caches, None), ceiling_delete_review()).await else {
            panic!("the ceiling's change was not answered");
        };
        let response = review.response.expect("response");
        assert!(response.allowed);
        let warnings = response.warnings.unwrap_or_default();
        assert!(warnings[0].starts_with("Deleting the grant ceiling"), "{warnings:?}");
        assert!(
            warnings[1].starts_with("ControlOwnership shop/payments would become Invalid"),
            "{warnings:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_ceiling_change_before_the_caches_list_is_admitted_saying_it_cannot_tell() {
        let (caches, _writers) = Caches::unlisted();
        let Ok(Json(review)) = validate(judge(caches, None), ceiling_delete_review()).await else {
            panic!("the ceiling's change got a 503, not an admission");
        };
        let response = review.response.expect("response");
        assert!(response.allowed);
        assert!(
            response.warnings.unwrap_or_default()[0].contains("cannot tell"),
            "no warning"
        );
    }
}
