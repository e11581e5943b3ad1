//! A mocked API server, after kube-rs' controller-rs: the client's requests
//! arrive at a tower-test handle, and a scenario task takes them one by one,
//! checks each against the next expected request (method, path, query,
//! content type, body) and answers it. Events, sent in the background, may
//! come later than expected, never earlier. A request beyond the expected
//! ones, or one never made, fails the scenario.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tower_test::mock;

/// How long a scenario may take before the test gives up on it (a guard:
/// every scenario ends as soon as its client is dropped).
const GUARD: Duration = Duration::from_secs(10);

/// Content type of a server-side apply.
const APPLY_PATCH: &str = "application/apply-patch+yaml";
/// Content type of a JSON patch.
const JSON_PATCH: &str = "application/json-patch+json";
/// Content type of a JSON body.
const JSON: &str = "application/json";
/// What a status write asks for in answer: the metadata alone.
const METADATA_ONLY: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";

/// What a request's body must be.
enum BodyCheck {
    /// Exactly this JSON.
    Exactly(Value),
    /// Whatever passes this check.
    Passes(Box<dyn FnOnce(&Value) + Send>),
}

/// One request the code under test must make next, and the answer to it.
pub struct Expected {
    method: Method,
    path: String,
    query: BTreeMap<String, String>,
    content_type: &'static str,
    body: BodyCheck,
    /// Whether it asks for the metadata alone in answer (Steward's own
    /// applies and creates: the object can be a megabyte).
    metadata_only: bool,
    answer: Option<(StatusCode, Value)>,
}

impl Expected {
    /// A server-side apply of exactly `body` to `path`, by Steward's field
    /// manager, forcing conflicts; answered with the body unless
    /// `answers` says otherwise.
    pub fn apply(path: impl Into<String>, body: Value) -> Self {
        Self {
            method: Method::PATCH,
            path: path.into(),
            query: query(&[("fieldManager", "steward"), ("force", "true")]),
            content_type: APPLY_PATCH,
            body: BodyCheck::Exactly(body),
            metadata_only: true,
            answer: None,
        }
    }

    /// A create of exactly `body` in the collection `path`, by Steward's
    /// field manager; answered with the body unless `answers` says
    /// otherwise.
    pub fn create(path: impl Into<String>, body: Value) -> Self {
        Self {
            method: Method::POST,
            path: path.into(),
            query: query(&[("fieldManager", "steward")]),
            content_type: JSON,
            body: BodyCheck::Exactly(body),
            metadata_only: true,
            answer: None,
        }
    }

    /// A server-side apply to `path` whose body passes `check`.
    pub fn apply_checked(path: impl Into<String>, check: impl FnOnce(&Value) + Send + 'static) -> Self {
        Self {
            body: BodyCheck::Passes(Box::new(check)),
            ..Self::apply(path, Value::Null)
        }
    }

    /// A JSON patch of exactly `body` to `path`.
    pub fn json_patch(path: impl Into<String>, body: Value) -> Self {
        Self {
            method: Method::PATCH,
            path: path.into(),
            query: BTreeMap::new(),
            content_type: JSON_PATCH,
            body: BodyCheck::Exactly(body),
            metadata_only: false,
            answer: None,
        }
    }

    /// A background delete of `path` on condition that the object still has
    /// `uid`; answered with a success Status unless `answers` says otherwise.
    pub fn delete(path: impl Into<String>, uid: &str) -> Self {
        Self {
            method: Method::DELETE,
            path: path.into(),
            query: BTreeMap::new(),
            content_type: JSON,
            body: BodyCheck::Exactly(json!({"propagationPolicy": "Background", "preconditions": {"uid": uid}})),
            metadata_only: false,
            answer: Some((StatusCode::OK, status(200, "Success"))),
        }
    }

    /// An Event created in `namespace` with this reason; answered with the
    /// Event itself.
    pub fn event(namespace: &str, reason: &'static str) -> Self {
        Self {
            method: Method::POST,
            path: format!("/apis/events.k8s.io/v1/namespaces/{namespace}/events"),
            query: BTreeMap::new(),
            content_type: JSON,
            body: BodyCheck::Passes(Box::new(move |b| assert_eq!(b["reason"], reason, "the Event's reason"))),
            metadata_only: false,
            answer: None,
        }
    }

    /// Whether this is an Event's create.
    fn is_event(&self) -> bool {
        self.method == Method::POST && self.path.ends_with("/events")
    }

    /// Answers with `code` and `body` instead.
    pub fn answers(mut self, code: StatusCode, body: Value) -> Self {
        self.answer = Some((code, body));
        self
    }

    /// Answers 200 OK with `obj`.
    pub fn answers_with(self, obj: &impl serde::Serialize) -> Self {
        self.answers(StatusCode::OK, serde_json::to_value(obj).expect("answer"))
    }

    /// Answers with the API server's Status for a missing object.
    pub fn answers_not_found(self) -> Self {
        self.answers(StatusCode::NOT_FOUND, status(404, "NotFound"))
    }

    /// Checks one request; panics on the first difference.
    fn check(self, n: usize, parts: &http::request::Parts, body: &Value) {
        let (method, path) = (&parts.method, parts.uri.path());
        let what = format!("request {n} ({method} {path})");
        assert_eq!(
            (method, path),
            (&self.method, self.path.as_str()),
            "{what}: not the expected request"
        );
        assert_eq!(query_of(parts), self.query, "{what}: query");
        assert_eq!(
            header(parts, http::header::CONTENT_TYPE),
            self.content_type,
            "{what}: content type"
        );
        let accept = header(parts, http::header::ACCEPT);
        assert_eq!(
            accept == METADATA_ONLY,
            self.metadata_only,
            "{what}: accept {accept:?} (the metadata alone for Steward's applies and creates)"
        );
        match self.body {
            BodyCheck::Exactly(want) => assert_eq!(body, &want, "{what}: body"),
            BodyCheck::Passes(check) => check(body),
        }
    }
}

/// A bare answer of `code` with a Status body, for tests that drive a
/// `tower_test` handle themselves (an order of answers `Mock` cannot script).
pub fn status_response(code: StatusCode) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, JSON)
        .body(Body::from(
            serde_json::to_vec(&status(code.as_u16(), "x")).expect("status"),
        ))
        .expect("response")
}

/// A Status object as the API server sends it.
pub fn status(code: u16, reason: &str) -> Value {
    let failed = code >= 400;
    json!({
        "apiVersion": "v1",
        "kind": "Status",
        "status": if failed { "Failure" } else { "Success" },
        "reason": if failed { reason } else { "" },
        "code": code,
        "message": reason,
    })
}

/// A request's query as pairs.
fn query_of(parts: &http::request::Parts) -> BTreeMap<String, String> {
    parts
        .uri
        .query()
        .map(|q| {
            q.split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (k.to_string(), v.to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A request header's value, empty when absent.
fn header(parts: &http::request::Parts, name: http::header::HeaderName) -> &str {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn query(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The running scenario.
pub struct Scenario(JoinHandle<()>);

/// A client, and the scenario its requests must follow.
pub type Mock = (Client, Scenario);

/// A client whose requests must be exactly `expected`, in order.
pub fn expect(expected: Vec<Expected>) -> Mock {
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let task = tokio::spawn(async move {
        // Events are sent by tasks of their own (`apply::Writer::event_on`):
        // they come in their order among themselves, but anywhere among the
        // other requests after the point they were expected.
        let (mut events, mut others): (VecDeque<_>, VecDeque<_>) =
            expected.into_iter().enumerate().partition(|(_, e)| e.is_event());
        while !events.is_empty() || !others.is_empty() {
            let Some((request, send)) = handle.next_request().await else {
                let missing: Vec<String> = others
                    .iter()
                    .chain(&events)
                    .map(|(n, e)| format!("request {n} ({} {})", e.method, e.path))
                    .collect();
                panic!("never made: {}", missing.join(", "));
            };
            let is_event = request.method() == Method::POST && request.uri().path().ends_with("/events");
            let queue = if is_event && !events.is_empty() {
                &mut events
            } else {
                &mut others
            };
            let Some((n, mut want)) = queue.pop_front() else {
                panic!("unexpected request: {} {}", request.method(), request.uri());
            };
            // An Event is sent once what caused it was answered: every
            // other request expected before it has come.
            if let Some((before, e)) = others.front().filter(|(m, _)| is_event && *m < n) {
                panic!(
                    "request {n} (an Event) came before request {before} ({} {})",
                    e.method, e.path
                );
            }
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.expect("request body");
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).expect("a JSON request body")
            };
            let (code, mut answer) = want.answer.take().unwrap_or_else(|| (StatusCode::OK, body.clone()));
            want.check(n, &parts, &body);
            // As the API server does: an object asked for as its metadata
            // comes back as PartialObjectMetadata.
            if header(&parts, http::header::ACCEPT) == METADATA_ONLY && code.is_success() {
                answer = json!({
                    "apiVersion": "meta.k8s.io/v1",
                    "kind": "PartialObjectMetadata",
                    "metadata": answer.get("metadata").cloned().unwrap_or_else(|| json!({})),
                });
            }
            let response = Response::builder()
                .status(code)
                .header(http::header::CONTENT_TYPE, JSON)
                .body(Body::from(serde_json::to_vec(&answer).expect("answer")))
                .expect("response");
            send.send_response(response);
        }
        // Every client is gone once the code under test is done with it:
        // anything still queued is a request it should not have made.
        if let Some((request, _)) = handle.next_request().await {
            panic!("unexpected request: {} {}", request.method(), request.uri());
        }
    });
    (Client::new(service, "default"), Scenario(task))
}

impl Scenario {
    /// Waits for the scenario's end, which comes when every client made
    /// from it is dropped, and fails the test if the requests were not
    /// exactly the expected ones.
    pub async fn verify(self) {
        match tokio::time::timeout(GUARD, self.0).await {
            Err(_) => panic!("the scenario did not end: is a client still alive?"),
            Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Ok(Err(e)) => panic!("the scenario task failed: {e}"),
            Ok(Ok(())) => {}
        }
    }
}

/// A client that must make no request at all.
pub fn no_requests() -> Mock {
    expect(Vec::new())
}
