//! The published kstatus rules (sigs.k8s.io/cli-utils, `kstatus/status`)
//! for a custom resource, as Flux, kpt and `kubectl wait` apply them:
//! deletion → InProgress; observedGeneration behind generation →
//! InProgress; Reconciling=True → InProgress; Stalled=True → Failed; then
//! the Ready fallback: Ready=False → InProgress, otherwise Current.

use serde_json::Value;

/// kstatus result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Reconciled and healthy.
    Current,
    /// Still being worked on.
    InProgress,
    /// Will not get better by itself.
    Failed,
}

fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn is(obj: &Value, type_: &str, status: &str) -> bool {
    condition(obj, type_).is_some_and(|c| c["status"] == status)
}

/// Computes the kstatus of an object as JSON.
pub fn compute(obj: &Value) -> Status {
    if !obj["metadata"]["deletionTimestamp"].is_null() {
        return Status::InProgress;
    }
    if let (Some(generation), Some(observed)) = (
        obj["metadata"]["generation"].as_i64(),
        obj["status"]["observedGeneration"].as_i64(),
    ) && observed != generation
    {
        return Status::InProgress;
    }
    if is(obj, "Reconciling", "True") {
        return Status::InProgress;
    }
    if is(obj, "Stalled", "True") {
        return Status::Failed;
    }
    if is(obj, "Ready", "False") {
        return Status::InProgress;
    }
    Status::Current
}
