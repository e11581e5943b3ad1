//! Thin I/O around `decide`: observe (read the caches), decide, apply RBAC,
//! delete what is no longer desired, then write status, and requeue at the
//! next instant something changes. Also wires both controllers and their
//! watches.

mod control;
mod exception;
mod report;
mod wiring;
mod written;

pub use wiring::{Config, run};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::Client;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use thiserror::Error;

use crate::api::{ControlOwnership, PolicyException};
use crate::decide::Ceiling;

/// Errors of the I/O layer. Invalid specs are not errors: they are status.
#[derive(Debug, Error)]
pub enum Error {
    /// An API call failed; retried with backoff.
    #[error("API call failed: {0}")]
    Api(#[from] kube::Error),
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
}

impl Error {
    /// Label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Api(_) => "api",
            Error::Finalizer(_) => "finalizer",
        }
    }
}

/// Shared state of both controllers: the client, the caches, the recorder.
pub struct Context {
    /// API client (the controller's own identity).
    pub client: Client,
    /// Name of the grant-ceiling ClusterRole.
    pub ceiling_name: String,
    /// PolicyExceptions.
    pub exceptions: Store<PolicyException>,
    /// ControlOwnerships.
    pub controls: Store<ControlOwnership>,
    /// All RoleBindings in scope.
    pub role_bindings: Store<RoleBinding>,
    /// All ClusterRoleBindings.
    pub cluster_role_bindings: Store<ClusterRoleBinding>,
    /// Roles Steward manages.
    pub roles: Store<Role>,
    /// The ceiling ClusterRole.
    pub ceiling: Store<ClusterRole>,
    /// Event recorder.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// Namespaces whose PolicyReport must be rebuilt.
    pub reports: futures::channel::mpsc::UnboundedSender<String>,
    /// Our recent writes the caches may not show yet.
    pub written: Arc<written::Written>,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// The current grant ceiling.
    pub fn ceiling(&self) -> Ceiling {
        self.ceiling
            .get(&ObjectRef::new(&self.ceiling_name))
            .map(|cr| Ceiling::new(self.ceiling_name.clone(), cr.rules.clone().unwrap_or_default()))
            .unwrap_or_else(|| Ceiling::missing(self.ceiling_name.clone()))
    }

    /// Waits until every cache holds a full list.
    pub async fn caches_ready(&self) {
        let _ = futures::join!(
            self.exceptions.wait_until_ready(),
            self.controls.wait_until_ready(),
            self.role_bindings.wait_until_ready(),
            self.cluster_role_bindings.wait_until_ready(),
            self.roles.wait_until_ready(),
            self.ceiling.wait_until_ready(),
        );
    }

    /// Records an Event about `obj`; failures are logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, warning: bool, note: String) {
        let ev = Event {
            type_: if warning { EventType::Warning } else { EventType::Normal },
            reason: reason.to_string(),
            note: Some(truncate(note, 1000)),
            action: reason.to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, object = %obj.name_any(), reason, "could not record event");
        }
    }

    /// Marks a namespace's PolicyReport for a rebuild.
    pub fn report_dirty(&self, ns: &str) {
        let _ = self.reports.unbounded_send(ns.to_string());
    }

    fn succeeded(&self, key: &str) {
        if let Ok(mut f) = self.failures.lock() {
            f.remove(key);
        }
    }

    /// Exponential backoff per object: 500 ms doubling to 1 min.
    fn backoff(&self, key: &str) -> Duration {
        let n = match self.failures.lock() {
            Ok(mut f) => {
                let n = f.entry(key.to_string()).or_insert(0);
                *n = n.saturating_add(1);
                *n
            }
            Err(_) => 1,
        };
        let ms = 500u64.saturating_mul(1u64 << n.min(10).saturating_sub(1));
        Duration::from_millis(ms.min(60_000))
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Requeue at `wake_at` exactly (never a polling interval), or wait for a
/// change when nothing is scheduled.
pub fn requeue_at(wake_at: Option<Timestamp>, now: Timestamp) -> Action {
    match wake_at {
        Some(t) => {
            let d = t.duration_since(now);
            // The timer may fire a hair early; the decision is then unchanged
            // and the object requeues for the remainder.
            let d = Duration::try_from(d).unwrap_or(Duration::ZERO);
            Action::requeue(d + Duration::from_millis(1))
        }
        None => Action::await_change(),
    }
}

fn key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

/// Unwraps the finalizer helper's result. Adding or removing the finalizer
/// is a JSON patch guarded by a test of the cached finalizer list; when the
/// cache is a step behind the server the test fails (409/422). That is not a
/// failure: the watch event that brings the cache up to date triggers the
/// next reconcile, and a short requeue covers a lost event.
pub fn finalizer_outcome(result: Result<Action, kube::runtime::finalizer::Error<Error>>) -> Result<Action, Error> {
    use kube::runtime::finalizer::Error as F;
    match result {
        Ok(action) => Ok(action),
        Err(F::ApplyFailed(e) | F::CleanupFailed(e)) => Err(e),
        Err(F::AddFinalizer(kube::Error::Api(s)) | F::RemoveFinalizer(kube::Error::Api(s)))
            if s.code == 409 || s.code == 422 =>
        {
            Ok(Action::requeue(Duration::from_millis(500)))
        }
        Err(other) => Err(Error::Finalizer(other.to_string())),
    }
}

/// Error policy shared by both controllers: log, then retry with backoff.
pub fn error_policy<K: Resource<DynamicType = ()>>(obj: Arc<K>, err: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoff(&key(obj.as_ref()));
    ctx.metrics.failed(K::kind(&()).as_ref(), err.metric_label());
    tracing::warn!(error = %err, object = %obj.name_any(), retry_in_ms = delay.as_millis() as u64, "reconcile failed");
    Action::requeue(delay)
}
