//! The form in which each kind is cached: Steward's own kinds, the
//! ClusterRoleBindings and the ceiling ClusterRole as the API server sends
//! them (trimmed), the Roles and RoleBindings in their compact forms
//! (`crate::compact`), which are most of the cached objects.

use std::fmt::Debug;

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

    /// What the cache keeps of `obj`.
    fn cache_form(obj: Self::Api) -> Self;
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
