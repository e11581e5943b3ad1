//! Drift: bindings not made by Steward that give a managed service account
//! anything, directly (ServiceAccount subject or its `system:serviceaccount:`
//! user name) or through the groups `system:serviceaccounts` and
//! `system:serviceaccounts:<namespace>`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use kube::ResourceExt;

use crate::api::{BindingKind, DriftBinding, Toleration};
use crate::compact::CachedRoleBinding;

/// A binding as a toleration pins it: kind, name, what it binds and the
/// set of its subjects, normalized so that two spellings of the same
/// binding compare equal (subject order, repeats, a ServiceAccount's
/// namespace left to default) and anything else does not.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pinned {
    /// RoleBinding or ClusterRoleBinding.
    pub kind: BindingKind,
    /// Its name.
    pub name: String,
    /// The roleRef's kind (`Role` or `ClusterRole`).
    pub role_kind: String,
    /// The roleRef's name.
    pub role_name: String,
    /// Its subjects.
    pub subjects: BTreeSet<PinnedSubject>,
}

/// One subject of a [`Pinned`] binding.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PinnedSubject {
    /// ServiceAccount, User or Group (any other kind never matches a
    /// toleration).
    pub kind: String,
    /// Its name.
    pub name: String,
    /// A ServiceAccount's namespace; empty for users and groups.
    pub namespace: String,
}

impl PinnedSubject {
    fn new(kind: &str, name: &str, namespace: Option<&str>, default_ns: Option<&str>) -> Self {
        let namespace = match kind {
            "ServiceAccount" => namespace.filter(|n| !n.is_empty()).or(default_ns).unwrap_or_default(),
            _ => "",
        };
        PinnedSubject {
            kind: kind.to_string(),
            name: name.to_string(),
            namespace: namespace.to_string(),
        }
    }
}

impl Pinned {
    /// A binding found in the cluster (`namespace`: a RoleBinding's own,
    /// where its ServiceAccount subjects default to).
    pub fn binding(
        kind: BindingKind,
        name: &str,
        namespace: Option<&str>,
        role_ref: &RoleRef,
        subjects: &[Subject],
    ) -> Self {
        let binding_ns = match kind {
            BindingKind::RoleBinding => namespace,
            BindingKind::ClusterRoleBinding => None,
        };
        Pinned {
            kind,
            name: name.to_string(),
            role_kind: role_ref.kind.clone(),
            role_name: role_ref.name.clone(),
            subjects: subjects
                .iter()
                .map(|s| PinnedSubject::new(&s.kind, &s.name, s.namespace.as_deref(), binding_ns))
                .collect(),
        }
    }

    /// What a toleration of an exception in `namespace` pins (its
    /// ServiceAccount subjects default to that namespace).
    pub fn toleration(t: &Toleration, namespace: &str) -> Self {
        Pinned {
            kind: t.kind,
            name: t.name.clone(),
            role_kind: t.role_ref.kind.as_str().to_string(),
            role_name: t.role_ref.name.clone(),
            subjects: t
                .subjects
                .iter()
                .map(|s| PinnedSubject::new(s.kind.as_str(), &s.name, s.namespace.as_deref(), Some(namespace)))
                .collect(),
        }
    }
}

/// A binding that names a service account.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Found {
    /// RoleBinding or ClusterRoleBinding.
    pub kind: BindingKind,
    /// Its name.
    pub name: String,
    /// What it binds, `Kind/name`.
    pub role_ref: String,
    /// The binding as a toleration must pin it to excuse it.
    pub pinned: Pinned,
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
        "Group" => {
            reaches_every_service_account(&subject.name) || subject.name == format!("system:serviceaccounts:{ns}")
        }
        _ => false,
    }
}

/// Groups every service account of every namespace belongs to: all service
/// accounts, and every authenticated identity. (`system:unauthenticated`
/// holds none, but a binding to it grants the same to anyone, managed
/// identities included.)
fn reaches_every_service_account(group: &str) -> bool {
    matches!(
        group,
        "system:serviceaccounts" | "system:authenticated" | "system:unauthenticated"
    )
}

fn only_managed(subjects: &[Subject], binding_ns: Option<&str>, ns: &str, managed: &BTreeSet<&str>) -> bool {
    !subjects.is_empty()
        && subjects.iter().all(|s| {
            s.kind == "ServiceAccount"
                && s.namespace.as_deref().filter(|n| !n.is_empty()).or(binding_ns) == Some(ns)
                && managed.contains(s.name.as_str())
        })
}

/// The ClusterRoleBindings the API server itself creates (its bootstrap
/// RBAC policy, `plugin/pkg/auth/authorizer/rbac/bootstrappolicy`, 1.33 to
/// 1.37) that reach every service account, each binding the ClusterRole of
/// its own name. They are part of the platform, not drift.
const BOOTSTRAP_CLUSTER_ROLE_BINDINGS: [&str; 5] = [
    "system:basic-user",
    "system:cluster-trust-bundle-discovery",
    "system:discovery",
    "system:public-info-viewer",
    "system:service-account-issuer-discovery",
];

/// Whether the ClusterRoleBinding `name` binding `role_ref` is one of
/// Kubernetes' own default bindings: matched by its exact name and roleRef,
/// never by a label anyone can copy.
pub fn is_bootstrap(name: &str, role_ref: &RoleRef) -> bool {
    BOOTSTRAP_CLUSTER_ROLE_BINDINGS.contains(&name) && role_ref.kind == "ClusterRole" && role_ref.name == name
}

/// Whether `rb` is one of Steward's own RoleBindings: named in `ours`,
/// binding the Role of its own name to exactly the one service account
/// Steward binds under that name, and owned by the object that name belongs
/// to. A binding that only borrows a Steward name (another roleRef, another
/// subject, another owner) is not, and is judged as drift like any other.
pub fn is_steward_binding(rb: &CachedRoleBinding, ours: &Ours) -> bool {
    let name = &*rb.metadata.name;
    let Some(own) = ours.get(name) else {
        return false;
    };
    rb.role_ref.kind == "Role"
        && rb.role_ref.name == name
        && binds_only(&rb.subjects, &own.service_account, Some(&rb.metadata.namespace))
        && rb.metadata.owned_by(&own.owner_uid)
}

/// What Steward writes under one of its names: a RoleBinding of the Role
/// of that name to exactly one service account, owned by one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnBinding {
    /// The uid of the control or exception it belongs to.
    pub owner_uid: String,
    /// The one service account it binds.
    pub service_account: String,
}

/// Steward's own binding names in a namespace, with what each must be.
pub type Ours = BTreeMap<String, OwnBinding>;

/// Whether `subjects` are exactly the service account `sa` of `ns`.
pub fn binds_only(subjects: &[Subject], sa: &str, ns: Option<&str>) -> bool {
    matches!(subjects, [s] if s.kind == "ServiceAccount"
        && s.name == sa
        && s.namespace.as_deref().is_none_or(|n| Some(n) == ns))
}

/// Every binding that names `sa` of `ns`, except Steward's own RoleBindings
/// (see `is_steward_binding`). `managed` is the set of service accounts the
/// control manages, for the Enforce safety check.
pub fn bindings_for(
    sa: &str,
    ns: &str,
    role_bindings: &[CachedRoleBinding],
    cluster_role_bindings: &[ClusterRoleBinding],
    ours: &Ours,
    managed: &BTreeSet<&str>,
) -> Vec<Found> {
    let mut found = Vec::new();
    for rb in role_bindings {
        if *rb.metadata.namespace != *ns || is_steward_binding(rb, ours) {
            continue;
        }
        let subjects = &rb.subjects;
        if subjects.iter().any(|s| names_service_account(s, Some(ns), ns, sa)) {
            let name = &rb.metadata.name;
            found.push(Found {
                kind: BindingKind::RoleBinding,
                name: name.to_string(),
                role_ref: role_ref(&rb.role_ref),
                pinned: Pinned::binding(BindingKind::RoleBinding, name, Some(ns), &rb.role_ref, subjects),
                only_managed_subjects: only_managed(subjects, Some(ns), ns, managed),
                uid: Some(rb.metadata.uid.to_string()).filter(|u| !u.is_empty()),
            });
        }
    }
    for crb in cluster_role_bindings {
        if is_bootstrap(crb.metadata.name.as_deref().unwrap_or_default(), &crb.role_ref) {
            continue;
        }
        let subjects = crb.subjects.as_deref().unwrap_or_default();
        if subjects.iter().any(|s| names_service_account(s, None, ns, sa)) {
            found.push(Found {
                kind: BindingKind::ClusterRoleBinding,
                name: crb.name_any(),
                role_ref: role_ref(&crb.role_ref),
                pinned: Pinned::binding(
                    BindingKind::ClusterRoleBinding,
                    &crb.name_any(),
                    None,
                    &crb.role_ref,
                    subjects,
                ),
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
            "Group" if reaches_every_service_account(&s.name) => return None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::fixtures::{group, sa};
    use k8s_openapi::api::rbac::v1::RoleBinding;
    use kube::api::ObjectMeta;

    fn role_ref(kind: &str, name: &str) -> RoleRef {
        RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: kind.into(),
            name: name.into(),
        }
    }

    fn crb(name: &str, role: RoleRef, subjects: Vec<Subject>) -> ClusterRoleBinding {
        ClusterRoleBinding {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            role_ref: role,
            subjects: Some(subjects),
        }
    }

    fn rb(name: &str, role: RoleRef, subjects: Vec<Subject>, labels: &[(&str, &str)]) -> RoleBinding {
        RoleBinding {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("shop".into()),
                labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                ..Default::default()
            },
            role_ref: role,
            subjects: Some(subjects),
        }
    }

    fn owned(mut rb: RoleBinding) -> RoleBinding {
        rb.metadata.owner_references = Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "steward.dev/v1alpha1".into(),
            kind: "ControlOwnership".into(),
            uid: "co-uid".into(),
            ..Default::default()
        }]);
        rb
    }

    fn drifting(rbs: &[RoleBinding], crbs: &[ClusterRoleBinding]) -> Vec<String> {
        let rbs: Vec<CachedRoleBinding> = rbs.iter().cloned().map(Into::into).collect();
        let own = OwnBinding {
            owner_uid: "co-uid".into(),
            service_account: "api".into(),
        };
        let ours: Ours = [("steward:payments:api".to_string(), own)].into();
        bindings_for("api", "shop", &rbs, crbs, &ours, &["api"].into())
            .into_iter()
            .map(|f| f.name)
            .collect()
    }

    #[test]
    fn groups_that_reach_every_service_account_are_drift() {
        // (group, reaches api of shop?)
        let cases = [
            ("system:serviceaccounts", true),
            ("system:serviceaccounts:shop", true),
            ("system:serviceaccounts:other", false),
            ("system:authenticated", true),
            ("system:unauthenticated", true),
            ("payments-admins", false),
        ];
        for (g, reaches) in cases {
            let b = crb("wide", role_ref("ClusterRole", "edit"), vec![group(g)]);
            assert_eq!(drifting(&[], &[b]) == ["wide"], reaches, "{g}");
            assert_eq!(
                affected_namespaces(&[group(g)], None).is_none(),
                reaches && !g.ends_with(":shop"),
                "{g}"
            );
        }
    }

    #[test]
    fn bootstrap_bindings_are_known_by_name_and_role_not_by_label() {
        let everyone = vec![group("system:authenticated")];
        let bootstrap_label = [("kubernetes.io/bootstrapping", "rbac-defaults")];
        // (case, binding, drift?)
        let cases: Vec<(&str, Result<RoleBinding, ClusterRoleBinding>, bool)> = vec![
            (
                "the API server's own",
                Err(crb(
                    "system:discovery",
                    role_ref("ClusterRole", "system:discovery"),
                    everyone.clone(),
                )),
                false,
            ),
            (
                "a known name with another role",
                Err(crb(
                    "system:discovery",
                    role_ref("ClusterRole", "cluster-admin"),
                    everyone.clone(),
                )),
                true,
            ),
            (
                "an unknown system: name",
                Err(crb(
                    "system:mine",
                    role_ref("ClusterRole", "system:mine"),
                    everyone.clone(),
                )),
                true,
            ),
            (
                "a tenant's RoleBinding dressed as bootstrap",
                Ok(rb(
                    "system:discovery",
                    role_ref("ClusterRole", "admin"),
                    vec![sa("api", "shop")],
                    &bootstrap_label,
                )),
                true,
            ),
            (
                "Steward's name binding another role",
                Ok(rb(
                    "steward:payments:api",
                    role_ref("ClusterRole", "admin"),
                    vec![sa("api", "shop")],
                    &[],
                )),
                true,
            ),
            (
                "Steward's own",
                Ok(owned(rb(
                    "steward:payments:api",
                    role_ref("Role", "steward:payments:api"),
                    vec![sa("api", "shop")],
                    &[],
                ))),
                false,
            ),
            (
                "Steward's name and Role, not owned by the control",
                Ok(rb(
                    "steward:payments:api",
                    role_ref("Role", "steward:payments:api"),
                    vec![sa("api", "shop")],
                    &[],
                )),
                true,
            ),
            (
                "Steward's name, Role and owner, one subject more",
                Ok(owned(rb(
                    "steward:payments:api",
                    role_ref("Role", "steward:payments:api"),
                    vec![sa("api", "shop"), sa("other", "shop")],
                    &[],
                ))),
                true,
            ),
        ];
        for (case, binding, drift) in cases {
            let found = match binding {
                Ok(rb) => drifting(&[rb], &[]),
                Err(crb) => drifting(&[], &[crb]),
            };
            assert_eq!(!found.is_empty(), drift, "{case}");
        }
    }
}
