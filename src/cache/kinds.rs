//! The form in which each kind is cached: Steward's own kinds, the
//! ClusterRoleBindings and the ceiling ClusterRole as the API server sends
//! them (trimmed), the Roles and RoleBindings in their compact forms
//! (`crate::compact`), which are most of the cached objects.

use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::Resource;
use kube::runtime::reflector::Lookup;
use serde::de::DeserializeOwned;

use crate::api::{ControlOwnership, PolicyException};
use crate::compact::{CachedRole, CachedRoleBinding};

/// A kind as a view keeps it.
pub trait Cached: Lookup<DynamicType = ()> + Clone + Debug + Send + Sync + 'static {
    /// The kind the watch reads.
    type Api: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static;

    /// What the cache keeps of `obj`: trimmed or compacted, not yet copied.
    fn cache_form(obj: Self::Api) -> Self;
}

/// The copy of `form` the cache keeps, allocated as long-lived
/// (`crate::allocator`), apart from the decoded object it came from. A
/// copy also holds exactly what it needs: a list decoded from JSON grows
/// by doubling (one rule takes the room of four), and ten thousand cached
/// exceptions kept about 1 KB each of such spare room.
pub fn keep<C: Cached>(form: &C) -> Arc<C> {
    crate::allocator::long_lived(|| Arc::new(form.clone()))
}

macro_rules! cached_whole {
    ($($kind:ty),*) => {$(
        impl Cached for $kind {
            type Api = $kind;

            fn cache_form(mut obj: $kind) -> $kind {
                super::trim::trim(&mut obj);
                obj
            }
        }
    )*};
}

cached_whole!(PolicyException, ControlOwnership, ClusterRoleBinding, ClusterRole);

impl Cached for CachedRole {
    type Api = Role;

    fn cache_form(obj: Role) -> Self {
        obj.into()
    }
}

impl Cached for CachedRoleBinding {
    type Api = RoleBinding;

    fn cache_form(obj: RoleBinding) -> Self {
        obj.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cached_form_keeps_no_spare_room() {
        let json = r#"{
            "apiVersion": "steward.dev/v1alpha1", "kind": "PolicyException",
            "metadata": {"name": "pe", "namespace": "shop", "finalizers": ["f"]},
            "spec": {
                "control": "payments", "ticket": "SEC-1", "approver": "alice", "reason": "r",
                "expiresAt": "2026-11-29T10:00:00Z",
                "grant": {"serviceAccount": "api", "rules": [{"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}]}
            },
            "status": {"conditions": [
                {"type": "Ready", "status": "True", "reason": "Active", "message": "m", "lastTransitionTime": "2026-11-28T10:00:00Z"}
            ]}
        }"#;
        let decoded: PolicyException = serde_json::from_str(json).unwrap();
        let rules = |pe: &PolicyException| pe.spec.grant.as_ref().map(|g| (g.rules.len(), g.rules.capacity()));
        let conditions = |pe: &PolicyException| {
            pe.status
                .as_ref()
                .map(|s| (s.conditions.len(), s.conditions.capacity()))
        };
        // The premise: decoding leaves room beside one element.
        assert!(rules(&decoded).is_some_and(|(len, cap)| cap > len));
        let cached = keep(&PolicyException::cache_form(decoded));
        assert_eq!(rules(&cached), Some((1, 1)));
        assert_eq!(conditions(&cached), Some((1, 1)));
        let finalizers = cached.metadata.finalizers.as_ref().map(|f| (f.len(), f.capacity()));
        assert_eq!(finalizers, Some((1, 1)));
    }
}
