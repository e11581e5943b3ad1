//! Drift: bindings not made by Steward that give a managed service account
//! anything, directly (ServiceAccount subject or its `system:serviceaccount:`
//! user name) or through the groups `system:serviceaccounts` and
//! `system:serviceaccounts:<namespace>`.

use std::collections::BTreeSet;

use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, RoleRef, Subject};
use kube::ResourceExt;

use crate::api::{BindingKind, DriftBinding};

/// A binding that names a service account.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Found {
    /// RoleBinding or ClusterRoleBinding.
    pub kind: BindingKind,
    /// Its name.
    pub name: String,
    /// What it binds, `Kind/name`.
    pub role_ref: String,
    /// Whether every subject is one of the given managed service accounts,
    /// so Enforce may delete it without touching anyone else.
    pub only_managed_subjects: bool,
    /// The uid of the very object found: a delete names it, so a newer
    /// object under the same name (Steward's own, say) is never removed.
    pub uid: Option<String>,
}

impl Found {
    /// As reported in status.
    pub fn to_status(&self) -> DriftBinding {
        DriftBinding {
            kind: self.kind.as_str().to_string(),
            name: self.name.clone(),
            role_ref: self.role_ref.clone(),
        }
    }
}

fn role_ref(r: &RoleRef) -> String {
    format!("{}/{}", r.kind, r.name)
}

/// Does `subject`, in a binding whose own namespace is `binding_ns` (None
/// for a ClusterRoleBinding), name service account `sa` of `ns`?
pub fn names_service_account(subject: &Subject, binding_ns: Option<&str>, ns: &str, sa: &str) -> bool {
    match subject.kind.as_str() {
        "ServiceAccount" => {
            let subject_ns = subject.namespace.as_deref().filter(|s| !s.is_empty()).or(binding_ns);
            subject.name == sa && subject_ns == Some(ns)
        }
        "User" => subject.name == format!("system:serviceaccount:{ns}:{sa}"),
        "Group" => subject.name == "system:serviceaccounts" || subject.name == format!("system:serviceaccounts:{ns}"),
        _ => false,
    }
}

fn only_managed(subjects: &[Subject], binding_ns: Option<&str>, ns: &str, managed: &BTreeSet<&str>) -> bool {
    !subjects.is_empty()
        && subjects.iter().all(|s| {
            s.kind == "ServiceAccount"
                && s.namespace.as_deref().filter(|n| !n.is_empty()).or(binding_ns) == Some(ns)
                && managed.contains(s.name.as_str())
        })
}

/// Kubernetes' own default bindings (for example
/// `system:service-account-issuer-discovery`, which binds every service
/// account) are part of the platform, not drift.
fn is_bootstrap(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> bool {
    meta.name.as_deref().is_some_and(|n| n.starts_with("system:"))
        && meta
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/bootstrapping"))
            .is_some_and(|v| v == "rbac-defaults")
}

/// Whether `rb` is one of Steward's own RoleBindings: named in `ours`, and
/// binding the Role of its own name, as every binding Steward writes does.
/// A binding that only borrows a Steward name (another roleRef) is not.
pub fn is_steward_binding(rb: &RoleBinding, ours: &BTreeSet<String>) -> bool {
    let name = rb.name_any();
    ours.contains(&name) && rb.role_ref.kind == "Role" && rb.role_ref.name == name
}

/// Every binding that names `sa` of `ns`, except Steward's own RoleBindings
/// (see `is_steward_binding`). `managed` is the set of service accounts the
/// control manages, for the Enforce safety check.
pub fn bindings_for(
    sa: &str,
    ns: &str,
    role_bindings: &[RoleBinding],
    cluster_role_bindings: &[ClusterRoleBinding],
    ours: &BTreeSet<String>,
    managed: &BTreeSet<&str>,
) -> Vec<Found> {
    let mut found = Vec::new();
    for rb in role_bindings {
        if rb.namespace().as_deref() != Some(ns) || is_steward_binding(rb, ours) || is_bootstrap(&rb.metadata) {
            continue;
        }
        let subjects = rb.subjects.as_deref().unwrap_or_default();
        if subjects.iter().any(|s| names_service_account(s, Some(ns), ns, sa)) {
            found.push(Found {
                kind: BindingKind::RoleBinding,
                name: rb.name_any(),
                role_ref: role_ref(&rb.role_ref),
                only_managed_subjects: only_managed(subjects, Some(ns), ns, managed),
                uid: rb.metadata.uid.clone(),
            });
        }
    }
    for crb in cluster_role_bindings {
        if is_bootstrap(&crb.metadata) {
            continue;
        }
        let subjects = crb.subjects.as_deref().unwrap_or_default();
        if subjects.iter().any(|s| names_service_account(s, None, ns, sa)) {
            found.push(Found {
                kind: BindingKind::ClusterRoleBinding,
                name: crb.name_any(),
                role_ref: role_ref(&crb.role_ref),
                only_managed_subjects: only_managed(subjects, None, ns, managed),
                uid: crb.metadata.uid.clone(),
            });
        }
    }
    found.sort();
    found
}

/// Namespaces whose service accounts a binding's subjects may name: `None`
/// means every namespace (the `system:serviceaccounts` group). Used to map
/// a changed binding to the controls that must re-check drift.
pub fn affected_namespaces(subjects: &[Subject], binding_ns: Option<&str>) -> Option<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for s in subjects {
        match s.kind.as_str() {
            "ServiceAccount" => {
                if let Some(ns) = s.namespace.as_deref().filter(|n| !n.is_empty()).or(binding_ns) {
                    out.insert(ns.to_string());
                }
            }
            "User" => {
                if let Some(rest) = s.name.strip_prefix("system:serviceaccount:")
                    && let Some((ns, _)) = rest.split_once(':')
                {
                    out.insert(ns.to_string());
                }
            }
            "Group" if s.name == "system:serviceaccounts" => return None,
            "Group" => {
                if let Some(ns) = s.name.strip_prefix("system:serviceaccounts:") {
                    out.insert(ns.to_string());
                }
            }
            _ => {}
        }
    }
    Some(out)
}
