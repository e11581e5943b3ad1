//! Which events of a control can matter to its exceptions. Their decisions
//! read the control's spec and metadata, never its status; but every
//! status write of a control (its count of active exceptions changes with
//! each grant and expiry) comes back as a watch event, and a control with
//! a thousand exceptions would have all thousand decided again, for
//! nothing, at each of them.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::runtime::reflector::ObjectRef;

use crate::api::ControlOwnership;
use crate::cache::{View, fingerprint};

/// What the exceptions last saw of each control: a fingerprint of
/// everything but its status and resourceVersion, by a fingerprint of its
/// namespace and name.
#[derive(Default)]
pub struct SpecChanges {
    seen: Mutex<HashMap<u64, u64>>,
}

impl SpecChanges {
    /// Whether `co`, as a watch event brought it, may change its
    /// exceptions' decisions: the first sight of it, any change outside
    /// its status, or its deletion (gone from `controls`).
    pub fn matters(&self, controls: &View<ControlOwnership>, co: &ControlOwnership) -> bool {
        let key = fingerprint(&(&co.metadata.namespace, &co.metadata.name));
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let cached = controls
            .get(&ObjectRef::from_obj(co))
            .is_some_and(|c| c.metadata.uid == co.metadata.uid);
        if !cached {
            seen.remove(&key);
            return true;
        }
        let now = beyond_status(co);
        seen.insert(key, now) != Some(now)
    }
}

/// A fingerprint of `co` without its status and resourceVersion.
fn beyond_status(co: &ControlOwnership) -> u64 {
    let mut metadata = co.metadata.clone();
    metadata.resource_version = None;
    metadata.managed_fields = None;
    fingerprint(&(&metadata, &co.spec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ControlOwnershipStatus;
    use crate::decide::fixtures::control;

    fn with_status(mut co: ControlOwnership, rv: &str, active: i32) -> ControlOwnership {
        co.metadata.resource_version = Some(rv.into());
        co.status = Some(ControlOwnershipStatus {
            active_exceptions: Some(active),
            ..Default::default()
        });
        co
    }

    #[test]
    fn only_what_is_not_status_matters_to_the_exceptions() {
        let first = with_status(control(), "1", 0);
        let controls = View::fed(vec![first.clone()]);
        let changes = SpecChanges::default();
        // Table: each event in turn, and whether the exceptions hear of it.
        let status_only = with_status(control(), "2", 1);
        let mut spec = with_status(control(), "3", 1);
        spec.spec.approvers.push("bob@example.com".into());
        let mut labelled = with_status(spec.clone(), "4", 1);
        labelled.metadata.labels = Some([("team".to_string(), "payments".to_string())].into());
        let mut deleting = with_status(labelled.clone(), "5", 1);
        deleting.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-11-30T10:00:00Z".parse().expect("time"),
        ));
        let steps: [(&str, &ControlOwnership, bool); 7] = [
            ("first sight", &first, true),
            ("the same again", &first, false),
            ("its status alone", &status_only, false),
            ("its spec", &spec, true),
            ("its labels", &labelled, true),
            ("being deleted", &deleting, true),
            ("its status alone, again", &with_status(deleting.clone(), "6", 0), false),
        ];
        for (what, co, heard) in steps {
            assert_eq!(changes.matters(&controls, co), heard, "{what}");
        }
        // Gone from the cache: deleted, whatever it looks like.
        let empty = View::fed(vec![]);
        assert!(changes.matters(&empty, &deleting), "deleted");
        // And seen anew once back.
        assert!(changes.matters(&controls, &deleting), "created again");
    }
}
