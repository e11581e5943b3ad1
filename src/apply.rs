//! Every write Steward makes, in one place: server-side apply with one field
//! manager (or a plain create where the cache shows the object absent),
//! deletes with a uid precondition, status applies, the
//! PolicyReport and Events. Writes to a cached kind record themselves in
//! that kind's view, so the next decision knows what the server holds before
//! the watch shows it. Callers compare before writing; these just write.
//! (Finalizer patches are kube's `finalizer` helper's own.)

use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, DeleteParams, DynamicObject, PartialObjectMeta, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use crate::cache::{Cached, View, fingerprint};
use crate::compact::{CachedRole, CachedRoleBinding, Compact};
use crate::decide::notice::Notice;

/// The field manager of every write Steward makes.
pub const FIELD_MANAGER: &str = "steward";

/// Asks the API server to answer a write with the object's metadata only
/// (as kube's own metadata requests do).
const METADATA_ONLY: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";

/// Events longer than this are cut (the API server refuses over 1 KiB).
const EVENT_NOTE_MAX: usize = 1000;

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// A namespaced kind Steward server-side applies and caches: the Roles and
/// RoleBindings it manages.
pub trait Namespaced:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The form its view keeps.
    type Cached: Cached<Api = Self> + Compact;
}

impl Namespaced for k8s_openapi::api::rbac::v1::Role {
    type Cached = CachedRole;
}
impl Namespaced for k8s_openapi::api::rbac::v1::RoleBinding {
    type Cached = CachedRoleBinding;
}

/// The key of `obj` in its view.
fn key_of<K: Namespaced>(obj: &K) -> ObjectRef<K::Cached> {
    ObjectRef::new(&obj.name_any()).within(&obj.namespace().unwrap_or_default())
}

/// How many Events may be on their way at once. A caller waits for a
/// place only beyond that many, so a burst of a thousand expiries, or a
/// tenant's flood of rejected exceptions, holds a bounded number of Events
/// (about a kilobyte each) in memory.
const EVENTS_IN_FLIGHT: usize = 256;

/// Writes as the controller's identity.
pub struct Writer {
    client: Client,
    reporter: Reporter,
    events: Arc<Semaphore>,
}

impl Writer {
    /// A writer whose Events name `reporter`.
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self::with_events_in_flight(client, reporter, EVENTS_IN_FLIGHT)
    }

    /// The same with at most `events` Events on their way at once.
    fn with_events_in_flight(client: Client, reporter: Reporter, events: usize) -> Self {
        Self {
            reporter,
            client,
            events: Arc::new(Semaphore::new(events.max(1))),
        }
    }

    /// The client, for reads and kube's finalizer helper.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sends write `req` (kube's request `verb`, for its traces) and reads
    /// only the metadata of the answer: the resourceVersion is all a write
    /// records, and the whole object can be a megabyte (a tenant's largest
    /// exception, whose status is written). The API server then encodes no
    /// copy of the object, and the reconcile parses none on its
    /// controller's task, which polls every other reconcile of that kind,
    /// an expiry due meanwhile among them.
    async fn write(&self, mut req: http::Request<Vec<u8>>, verb: &'static str) -> Result<ObjectMeta, kube::Error> {
        req.headers_mut()
            .insert(http::header::ACCEPT, http::HeaderValue::from_static(METADATA_ONLY));
        req.extensions_mut().insert(verb);
        let written: PartialObjectMeta = self.client.request(req).await?;
        Ok(written.metadata)
    }

    /// Server-side applies a namespaced object and records it in `view`.
    pub async fn apply<K: Namespaced>(&self, view: &View<K::Cached>, obj: &K) -> Result<(), kube::Error> {
        let api: Api<K> = Api::namespaced(self.client.clone(), &obj.namespace().unwrap_or_default());
        let mut value = serde_json::to_value(obj).map_err(kube::Error::SerdeError)?;
        value["apiVersion"] = K::api_version(&()).into();
        value["kind"] = K::kind(&()).into();
        let req = kube::core::Request::new(api.resource_url())
            .patch(&obj.name_any(), &apply_params(), &Patch::Apply(value))
            .map_err(kube::Error::BuildRequest)?;
        let applied = self.write(req, "patch").await?;
        view.record(&key_of(obj), applied.resource_version.as_deref(), fingerprint(obj));
        Ok(())
    }

    /// Creates a namespaced object the cache shows absent and records it in
    /// `view`. A plain create costs the API server less than an apply that
    /// creates (no field-set merge). If the object exists after all (the
    /// cache was a step behind), it is applied instead. The create records
    /// Steward's field manager as an update, beside its applies: every
    /// apply sends the whole desired object, so no field we set stays
    /// behind.
    pub async fn create<K: Namespaced>(&self, view: &View<K::Cached>, obj: &K) -> Result<(), kube::Error> {
        let api: Api<K> = Api::namespaced(self.client.clone(), &obj.namespace().unwrap_or_default());
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        let body = serde_json::to_vec(obj).map_err(kube::Error::SerdeError)?;
        let req = kube::core::Request::new(api.resource_url())
            .create(&params, body)
            .map_err(kube::Error::BuildRequest)?;
        match self.write(req, "create").await {
            Ok(created) => {
                view.record(&key_of(obj), created.resource_version.as_deref(), fingerprint(obj));
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 409 => self.apply(view, obj).await,
            Err(e) => Err(e),
        }
    }

    /// Server-side applies the status of a custom resource and records it
    /// in `view` (fingerprint of the status).
    pub async fn status<K, S>(&self, view: &View<K>, obj: &K, status: &S) -> Result<(), kube::Error>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Cached
            + Clone
            + DeserializeOwned
            + Debug
            + Send
            + Sync
            + 'static,
        S: Serialize,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), &obj.namespace().unwrap_or_default());
        let patch = serde_json::json!({
            "apiVersion": <K as Resource>::api_version(&()),
            "kind": <K as Resource>::kind(&()),
            "status": status,
        });
        let req = kube::core::Request::new(api.resource_url())
            .patch_subresource("status", &obj.name_any(), &apply_params(), &Patch::Apply(patch))
            .map_err(kube::Error::BuildRequest)?;
        let rv = self.write(req, "patch_status").await?.resource_version;
        tracing::debug!(
            from_version = obj.meta().resource_version.as_deref().unwrap_or_default(),
            written_version = rv.as_deref().unwrap_or_default(),
            "status written"
        );
        view.record(&ObjectRef::from_obj(obj), rv.as_deref(), fingerprint(status));
        Ok(())
    }

    /// Deletes `name` in `namespace` if it still has `uid`.
    pub async fn delete_namespaced<K>(
        &self,
        namespace: &str,
        name: &str,
        uid: Option<String>,
    ) -> Result<(), kube::Error>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + DeserializeOwned + Debug,
    {
        delete(&Api::<K>::namespaced(self.client.clone(), namespace), name, uid).await
    }

    /// Server-side applies a PolicyReport (a dynamic kind, not cached here).
    pub async fn policy_report(
        &self,
        api: &Api<DynamicObject>,
        name: &str,
        body: serde_json::Value,
    ) -> Result<(), kube::Error> {
        let req = kube::core::Request::new(api.resource_url())
            .patch(name, &apply_params(), &Patch::Apply(body))
            .map_err(kube::Error::BuildRequest)?;
        self.write(req, "patch").await.map(|_| ())
    }

    /// Deletes a PolicyReport.
    pub async fn delete_policy_report(&self, api: &Api<DynamicObject>, name: &str) -> Result<(), kube::Error> {
        delete(api, name, None).await
    }

    /// Records the Event a decision asked for about `obj`; failures are
    /// logged, never fatal. Returns once the Event is on its way, not when
    /// it is stored (`event_on`).
    pub async fn event<K: Resource<DynamicType = ()>>(&self, obj: &K, notice: &Notice) {
        self.event_on(&obj.object_ref(&()), notice).await;
    }

    /// Records an Event about the object `reference` names, which may
    /// already be deleted. The create is sent by a task of its own: Events
    /// are the lowest class of write (`client::lanes`), and a reconcile
    /// awaiting one held its object's next reconcile behind every slow
    /// write of the other classes. Under a tenant's flood of megabyte
    /// exceptions, a control's Event about a drift it had removed waited
    /// seconds for a place beside their status writes, and the removal of
    /// the next drifting binding waited for that Event. The caller waits
    /// only while `EVENTS_IN_FLIGHT` are already on their way.
    pub async fn event_on(&self, reference: &ObjectReference, notice: &Notice) {
        // A plain create, not kube's Recorder: the Recorder keeps every Event
        // of the last six minutes in memory to count repeats into a series,
        // and prunes that map only when it publishes the next one, so after
        // a burst of ten thousand grants it held them all until the next
        // Event (tens of MiB at scale). Steward records one Event per
        // status change, which does not repeat, so there is nothing to count.
        let now = jiff::Timestamp::now();
        let namespace = reference.namespace.clone().unwrap_or_else(|| "default".into());
        let event = Event {
            metadata: ObjectMeta {
                // kube's naming: the object's name and the instant, unique
                // per object unless two Events of it share a nanosecond.
                name: Some(format!(
                    "{}.{:x}",
                    reference.name.as_deref().unwrap_or(&self.reporter.controller),
                    now.as_nanosecond()
                )),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            action: Some(notice.reason.to_string()),
            reason: Some(notice.reason.to_string()),
            note: Some(truncate(&notice.note, EVENT_NOTE_MAX).to_string()),
            event_time: Some(MicroTime(now)),
            regarding: Some(reference.clone()),
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            type_: Some(if notice.warning { "Warning" } else { "Normal" }.into()),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        // The semaphore is never closed, so acquiring cannot fail; if it
        // ever did, sending without a place is the safe side.
        let place = self.events.clone().acquire_owned().await.ok();
        let (object, reason) = (reference.name.clone().unwrap_or_default(), notice.reason);
        tokio::spawn(async move {
            if let Err(e) = api.create(&PostParams::default(), &event).await {
                tracing::warn!(error = %e, %namespace, object, reason, "could not record event");
            }
            drop(place);
        });
    }
}

/// Deletes an object if it still has `uid`; a 404 counts as done.
async fn delete<K>(api: &Api<K>, name: &str, uid: Option<String>) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let dp = DeleteParams {
        preconditions: uid.map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(name, &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        // The uid precondition failed: it was replaced by a new object,
        // which its own watch event will bring back for a fresh decision.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut cut = max.min(s.len());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{completes, never_completes};

    use http::{Request, Response};
    use kube::client::Body;
    use tower_test::mock;

    /// A writer whose requests reach the returned handle, which answers
    /// nothing unless the test does.
    fn writer(events: usize) -> (Writer, mock::Handle<Request<Body>, Response<Body>>) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let reporter = Reporter {
            controller: "steward".into(),
            instance: None,
        };
        let client = Client::new(service, "default");
        (Writer::with_events_in_flight(client, reporter, events), handle)
    }

    fn about(name: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("ControlOwnership".into()),
            name: Some(name.into()),
            namespace: Some("shop".into()),
            ..Default::default()
        }
    }

    fn drift() -> Notice {
        Notice::warning("DriftRemoved", "deleted a binding")
    }

    #[tokio::test]
    async fn an_event_does_not_hold_its_caller_until_it_is_stored() {
        let (writer, mut handle) = writer(2);
        // No answer is ever sent: a caller waiting for it would never return.
        completes(
            writer.event_on(&about("payments"), &drift()),
            "the caller going on while its Event is unanswered",
        )
        .await;
        let (request, _answer) = handle.next_request().await.expect("the Event is sent");
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(request.uri().path(), "/apis/events.k8s.io/v1/namespaces/shop/events");
    }

    #[tokio::test]
    async fn beyond_the_events_in_flight_a_caller_waits_for_one_to_be_answered() {
        let (writer, mut handle) = writer(1);
        completes(writer.event_on(&about("a"), &drift()), "the first Event").await;
        let (_first, answer) = handle.next_request().await.expect("the first Event is sent");
        let (b, notice) = (about("b"), drift());
        let second = writer.event_on(&b, &notice);
        let mut second = std::pin::pin!(second);
        // Certain, not a guess about timing: the only place is held until
        // the first is answered, which only the test does.
        never_completes(second.as_mut(), "a second Event went beyond the bound").await;
        answer.send_response(
            Response::builder()
                .status(201)
                .body(Body::from(b"{}".to_vec()))
                .expect("a response"),
        );
        completes(second, "the second Event, once the first was answered").await;
    }

    #[test]
    fn notes_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(truncate("abc", 2), "ab");
        assert_eq!(truncate("aé", 2), "a", "é is two bytes");
        assert_eq!(truncate("", 0), "");
    }
}
