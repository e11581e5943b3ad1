//! Builders for the RBAC objects Steward manages: one Role with exactly the
//! declared rules and one RoleBinding with exactly one service account, both
//! labelled and owned by the Steward object they come from.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::api::{CONTROL_LABEL, EXCEPTION_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE};

/// Longest name an RBAC object may have.
pub const MAX_NAME_LEN: usize = 253;

/// Name of the Role and RoleBinding of a workload identity.
pub fn identity_name(control: &str, service_account: &str) -> String {
    format!("steward-{control}-{service_account}")
}

/// Name of the Role and RoleBinding holding an exception's grant.
pub fn exception_name(exception: &str) -> String {
    format!("steward-x-{exception}")
}

/// A Role and its RoleBinding, always managed as a pair of the same name.
#[derive(Clone, Debug, PartialEq)]
pub struct RbacPair {
    /// The Role with exactly the declared rules.
    pub role: Role,
    /// The RoleBinding of exactly one service account to that Role.
    pub binding: RoleBinding,
}

impl RbacPair {
    /// Name of both objects.
    pub fn name(&self) -> &str {
        self.role.metadata.name.as_deref().unwrap_or_default()
    }
}

/// Who a managed pair belongs to.
#[derive(Clone, Debug, PartialEq)]
pub enum ManagedFor<'a> {
    /// A workload identity of this control.
    Control(&'a str),
    /// The grant of this exception to this control.
    Exception {
        /// The exception's name.
        exception: &'a str,
        /// The control it is an exception to.
        control: &'a str,
    },
}

/// Labels every managed object carries.
pub fn labels(owner: &ManagedFor<'_>) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert(MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string());
    match owner {
        ManagedFor::Control(control) => {
            l.insert(CONTROL_LABEL.to_string(), label_value(control));
        }
        ManagedFor::Exception { exception, control } => {
            l.insert(CONTROL_LABEL.to_string(), label_value(control));
            l.insert(EXCEPTION_LABEL.to_string(), label_value(exception));
        }
    }
    l
}

/// Label values are at most 63 characters; object names can be longer.
/// The label is for selection; ownership is decided by names, not labels.
fn label_value(s: &str) -> String {
    let mut v: String = s.chars().take(63).collect();
    while v.ends_with(['-', '.', '_']) {
        v.pop();
    }
    v
}

/// Builds the Role and RoleBinding `name` in `namespace` granting `rules`
/// to `service_account`.
pub fn pair(
    name: &str,
    namespace: &str,
    service_account: &str,
    rules: &[PolicyRule],
    owner: &ManagedFor<'_>,
    owner_ref: Option<OwnerReference>,
) -> RbacPair {
    let metadata = ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        labels: Some(labels(owner)),
        owner_references: owner_ref.map(|o| vec![o]),
        ..Default::default()
    };
    RbacPair {
        role: Role {
            metadata: metadata.clone(),
            rules: Some(rules.to_vec()),
        },
        binding: RoleBinding {
            metadata,
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".to_string(),
                kind: "Role".to_string(),
                name: name.to_string(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".to_string(),
                name: service_account.to_string(),
                namespace: Some(namespace.to_string()),
                api_group: None,
            }]),
        },
    }
}
