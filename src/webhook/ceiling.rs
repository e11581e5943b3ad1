//! Changes to the grant ceiling ClusterRole: always admitted, with
//! warnings naming the controls and exceptions that would lose their grants
//! (`decide::ceiling_change`), judged over the process's caches against the
//! request's old and new rules.

use std::sync::Arc;

use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::core::admission::{AdmissionRequest, Operation};

use super::{Judge, typed};
use crate::api::{ControlOwnership, PolicyException};
use crate::cache::Caches;
use crate::decide::Ceiling;
use crate::decide::approval::{Key, Trust};
use crate::decide::ceiling_change;

/// Whether the request changes or deletes the grant ceiling ClusterRole.
pub(super) fn is_ceiling(request: &AdmissionRequest<DynamicObject>, judge: &Judge) -> bool {
    request.kind.group == "rbac.authorization.k8s.io"
        && request.kind.kind == "ClusterRole"
        && matches!(request.operation, Operation::Update | Operation::Delete)
        && *request.name == *judge.caches.ceiling().name
}

/// The warnings for a change of the grant ceiling: which controls and
/// exceptions would lose their grants. Never a refusal.
pub(super) async fn warnings(request: AdmissionRequest<DynamicObject>, judge: Arc<Judge>) -> Vec<String> {
    if !judge.wait_synced().await {
        return vec!["Steward's caches have not listed yet: it cannot tell which grants this change removes".into()];
    }
    let now = jiff::Timestamp::now();
    tokio::task::spawn_blocking(move || removed(&request, &judge.caches, &judge.key, now))
        .await
        .unwrap_or_else(|_| vec!["Steward could not tell which grants this change removes".into()])
}

fn removed(request: &AdmissionRequest<DynamicObject>, caches: &Caches, key: &Key, now: jiff::Timestamp) -> Vec<String> {
    let current = caches.ceiling();
    let name = current.name.clone();
    let rules_of = |obj: &Option<DynamicObject>| {
        obj.as_ref()
            .and_then(|o| typed::<ClusterRole>(o).ok())
            .map(|cr| Ceiling::new(name.clone(), cr.rules.unwrap_or_default()))
    };
    let old = rules_of(&request.old_object).unwrap_or(current);
    let deleted = request.operation == Operation::Delete;
    let new = if deleted {
        Ceiling::missing(name.clone())
    } else {
        match rules_of(&request.object) {
            Some(new) => new,
            None => return vec![format!("Steward cannot read the new ClusterRole {name:?}")],
        }
    };
    let controls = caches.controls.state();
    let controls: Vec<&ControlOwnership> = controls.iter().map(|c| c.as_ref()).collect();
    let exceptions = caches.exceptions.state();
    let theirs: Vec<Option<Arc<ControlOwnership>>> = exceptions
        .iter()
        .map(|pe| caches.control_for_exceptions(&pe.namespace().unwrap_or_default(), &pe.spec.control))
        .collect();
    let exceptions: Vec<(&PolicyException, Option<&ControlOwnership>)> = exceptions
        .iter()
        .zip(&theirs)
        .map(|(pe, co)| (pe.as_ref(), co.as_deref()))
        .collect();
    let lost_controls = ceiling_change::controls(&controls, &old, &new);
    let lost_exceptions = ceiling_change::exceptions(&exceptions, &old, &new, Trust::Verify(key), now);
    let warnings = ceiling_change::warnings(&name, deleted, &lost_controls, &lost_exceptions);
    if !warnings.is_empty() {
        tracing::warn!(
            ceiling = %name,
            user = ?request.user_info.username,
            controls = lost_controls.len(),
            exceptions = lost_exceptions.len(),
            dry_run = request.dry_run,
            "a change to the grant ceiling removes grants"
        );
    }
    warnings
}
