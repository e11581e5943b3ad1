//! Drift step: for each valid identity, the bindings not made by Steward
//! that grant it anything and that no Active exception tolerates; Enforce
//! deletes the RoleBindings whose subjects are all managed service accounts,
//! and status reports the rest (ClusterRoleBindings included).

use std::collections::BTreeSet;

use super::Observed;
use super::classify::Exceptions;
use super::view::ControlView;
use crate::api::{BindingKind, Enforcement, IdentityStatus, limits};
use crate::decide::drift::{Found, Ours, bindings_for};
use crate::decide::rbac;

/// A binding Enforce must delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removal {
    /// Kind of binding.
    pub kind: BindingKind,
    /// Its name (namespace: the control's, for RoleBindings).
    pub name: String,
    /// What it bound, for the Event.
    pub role_ref: String,
    /// The uid of the binding found; the delete is conditional on it.
    pub uid: Option<String>,
}

/// The drift of one control.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Drift {
    /// Status per valid identity, with the drift it reports.
    pub identities: Vec<IdentityStatus>,
    /// Bindings to delete (Enforce only), each once.
    pub remove: Vec<Removal>,
}

/// Finds the drift of `view`'s valid identities. `ours` names Steward's own
/// RoleBindings in the namespace (identity pairs and grants that may exist).
pub fn drift(view: &ControlView<'_>, observed: &Observed<'_>, ours: &Ours, exceptions: &Exceptions<'_>) -> Drift {
    let enforce = view.control.spec.enforcement == Some(Enforcement::Enforce);
    let managed: BTreeSet<&str> = view
        .valid_identities
        .iter()
        .map(|i| i.service_account.as_str())
        .collect();
    let mut out = Drift::default();
    for id in &view.valid_identities {
        let found = bindings_for(
            &id.service_account,
            &view.namespace,
            observed.role_bindings,
            observed.cluster_role_bindings,
            ours,
            &managed,
        );
        let mut reported = Vec::new();
        for f in found.into_iter().filter(|f| !exceptions.tolerates(&f.pinned)) {
            // A control is namespaced: Enforce deletes only bindings of its
            // own namespace. ClusterRoleBindings are the platform's; they
            // are reported (and refused at admission), never deleted.
            if enforce && f.only_managed_subjects && f.kind == BindingKind::RoleBinding {
                out.remove_once(f);
            } else {
                reported.push(f);
            }
        }
        // Status lists at most DRIFT_LISTED (kind, then name): thousands of
        // bindings must not make it too large to write. When that bites,
        // ClusterRoleBindings go first: a tenant's pile of RoleBindings must
        // not push a cluster-wide grant out of sight.
        if reported.len() > limits::DRIFT_LISTED {
            reported.sort_by_key(|f| f.kind != BindingKind::ClusterRoleBinding);
            reported.truncate(limits::DRIFT_LISTED);
            reported.sort();
        }
        let reported: Vec<_> = reported.into_iter().map(|f| f.to_status()).collect();
        out.identities.push(IdentityStatus {
            service_account: id.service_account.clone(),
            role: rbac::identity_name(&view.name, &id.service_account),
            drift: reported,
            problem: None,
        });
    }
    out
}

impl Drift {
    /// How many drifting bindings status reports, over all identities.
    pub fn reported(&self) -> usize {
        self.identities.iter().map(|i| i.drift.len()).sum()
    }

    fn remove_once(&mut self, f: Found) {
        if !self.remove.iter().any(|r| r.kind == f.kind && r.name == f.name) {
            self.remove.push(Removal {
                kind: f.kind,
                name: f.name,
                role_ref: f.role_ref,
                uid: f.uid,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ControlOwnership;
    use crate::compact::CachedRoleBinding;
    use crate::decide::drift::Pinned;
    use crate::decide::fixtures::{ceiling, control, nothing_observed};
    use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, RoleRef, Subject};

    fn sa(name: &str) -> Subject {
        Subject {
            kind: "ServiceAccount".into(),
            name: name.into(),
            namespace: Some("shop".into()),
            api_group: None,
        }
    }

    fn user(name: &str) -> Subject {
        Subject {
            kind: "User".into(),
            name: name.into(),
            namespace: None,
            api_group: Some("rbac.authorization.k8s.io".into()),
        }
    }

    fn role_ref() -> RoleRef {
        RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: "admin".into(),
        }
    }

    fn rb(name: &str, subjects: Vec<Subject>) -> RoleBinding {
        RoleBinding {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                namespace: Some("shop".into()),
                ..Default::default()
            },
            role_ref: role_ref(),
            subjects: Some(subjects),
        }
    }

    fn crb(name: &str, subjects: Vec<Subject>) -> ClusterRoleBinding {
        ClusterRoleBinding {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            role_ref: role_ref(),
            subjects: Some(subjects),
        }
    }

    /// A tenant who makes a thousand bindings gets the first ones listed
    /// (status stays writable); Enforce still removes every one.
    #[test]
    fn status_lists_a_bounded_number_of_bindings() {
        let rbs: Vec<CachedRoleBinding> = (0..limits::DRIFT_LISTED + 10)
            .map(|i| rb(&format!("b{i:04}"), vec![sa("api")]).into())
            .collect();
        let crbs = [crb("cluster-wide", vec![sa("api")])];
        let observed = Observed {
            role_bindings: &rbs,
            cluster_role_bindings: &crbs,
            ..nothing_observed()
        };
        let c = ceiling();
        for (enforcement, listed, removed) in [
            (Enforcement::Audit, limits::DRIFT_LISTED, 0),
            (Enforcement::Enforce, 1, rbs.len()),
        ] {
            let mut co: ControlOwnership = control();
            co.spec.enforcement = Some(enforcement);
            let view = ControlView::new(&co, &c, crate::decide::approval::Trust::AssumeApproved);
            let d = drift(&view, &observed, &Ours::new(), &Exceptions::default());
            let api = &d.identities[0].drift;
            assert_eq!(api.len(), listed, "{enforcement:?}");
            // The ClusterRoleBinding is never pushed out by RoleBindings.
            assert!(api.iter().any(|b| b.name == "cluster-wide"), "{enforcement:?}");
            assert_eq!(d.remove.len(), removed, "{enforcement:?}");
        }
    }

    /// Bindings: RoleBinding `solo` (api only), RoleBinding `shared` (api
    /// and a user), RoleBinding `steward-x:debug` (api, a grant that may
    /// exist, as Steward writes it), RoleBinding `steward:payments:api`
    /// (Steward's name, another role: a squat), ClusterRoleBinding
    /// `cluster` (api only), tolerated in some cases.
    #[test]
    fn reported_or_removed() {
        // (case, enforcement, tolerate `cluster`?, reported for api, removed)
        type Case = (
            &'static str,
            Enforcement,
            bool,
            &'static [&'static str],
            &'static [&'static str],
        );
        let cases: [Case; 4] = [
            (
                "audit reports all",
                Enforcement::Audit,
                false,
                &["shared", "solo", "steward:payments:api", "cluster"],
                &[],
            ),
            (
                "audit, tolerated",
                Enforcement::Audit,
                true,
                &["shared", "solo", "steward:payments:api"],
                &[],
            ),
            (
                "enforce removes the namespace's bindings only managed identities hold",
                Enforcement::Enforce,
                false,
                &["shared", "cluster"],
                &["solo", "steward:payments:api"],
            ),
            (
                "enforce, tolerated",
                Enforcement::Enforce,
                true,
                &["shared"],
                &["solo", "steward:payments:api"],
            ),
        ];
        let mut grant = rb("steward-x:debug", vec![sa("api")]);
        grant.role_ref.kind = "Role".into();
        grant.role_ref.name = "steward-x:debug".into();
        grant.metadata.owner_references = Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "steward.dev/v1alpha1".into(),
            kind: "PolicyException".into(),
            uid: "pe-uid".into(),
            ..Default::default()
        }]);
        let rbs: [CachedRoleBinding; 4] = [
            rb("solo", vec![sa("api")]).into(),
            rb("shared", vec![sa("api"), user("jane")]).into(),
            grant.into(),
            rb("steward:payments:api", vec![sa("api")]).into(),
        ];
        let crbs = [crb("cluster", vec![sa("api"), sa("worker")])];
        let observed = Observed {
            role_bindings: &rbs,
            cluster_role_bindings: &crbs,
            ..nothing_observed()
        };
        let c = ceiling();
        let own = |uid: &str| crate::decide::drift::OwnBinding {
            owner_uid: uid.into(),
            service_account: "api".into(),
        };
        let ours: Ours = [
            ("steward:payments:api".to_string(), own("co-uid")),
            ("steward-x:debug".to_string(), own("pe-uid")),
        ]
        .into();
        for (name, enforcement, tolerate, reported, removed) in cases {
            let mut co: ControlOwnership = control();
            co.spec.enforcement = Some(enforcement);
            let view = ControlView::new(&co, &c, crate::decide::approval::Trust::AssumeApproved);
            let mut exceptions = Exceptions::default();
            if tolerate {
                let found = &crbs[0];
                let subjects = found.subjects.as_deref().unwrap_or_default();
                let pinned = Pinned::binding(
                    BindingKind::ClusterRoleBinding,
                    "cluster",
                    None,
                    &found.role_ref,
                    subjects,
                );
                exceptions.tolerated.insert(pinned);
            }
            let d = drift(&view, &observed, &ours, &exceptions);
            let api: Vec<&str> = d.identities[0].drift.iter().map(|b| b.name.as_str()).collect();
            assert_eq!(api, reported, "{name}");
            let gone: Vec<&str> = d.remove.iter().map(|r| r.name.as_str()).collect();
            assert_eq!(gone, removed, "{name}: removed once though it names two identities");
            assert_eq!(d.identities[1].service_account, "worker", "{name}");
            assert_eq!(d.identities[1].role, "steward:payments:worker", "{name}");
        }
    }
}
