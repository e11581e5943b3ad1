//! What the watch caches keep of each object. `managedFields` and kubectl's
//! last-applied annotation are often larger than the rest of an object, and
//! no decision reads them; dropping them before the cache keeps the
//! controller's memory proportional to what it uses.

use kube::Resource;

/// kubectl's client-side apply annotation (a full copy of the object).
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops the bookkeeping fields no decision reads.
pub fn trim<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(LAST_APPLIED);
        if a.is_empty() {
            meta.annotations = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::Role;

    #[test]
    fn keeps_what_decisions_read() {
        let mut role: Role = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "r", "namespace": "ns", "uid": "u", "resourceVersion": "7",
                "labels": {"a": "b"},
                "annotations": {LAST_APPLIED: "{}", "keep": "me"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "x", "uid": "o"}],
                "managedFields": [{"manager": "steward", "operation": "Apply"}]
            },
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
        }))
        .unwrap();
        let before = role.clone();
        trim(&mut role);
        assert_eq!(role.metadata.managed_fields, None);
        assert_eq!(
            role.metadata.annotations,
            Some([("keep".to_string(), "me".to_string())].into())
        );
        assert_eq!(role.rules, before.rules);
        assert_eq!(role.metadata.labels, before.metadata.labels);
        assert_eq!(role.metadata.owner_references, before.metadata.owner_references);
        assert_eq!(role.metadata.resource_version, before.metadata.resource_version);
    }
}
