//! The ControlOwnership decision: desired Role/RoleBinding per workload
//! identity, drift, review due, active exceptions, status and next wake-up.
//! Pure: everything observed is passed in.
//!
//! One decision is a pipeline of named steps, each in its own module with
//! its own table test:
//!
//! ```text
//!   Observed (the reconciler's caches)
//!   → view::ControlView::new   validate the spec once; valid identities; exception rules
//!   → desired::desired         one Role/RoleBinding per valid identity; pairs to delete
//!   → ControlView::classify    exceptions at `now`: active, grants, tolerations, wake-up
//!   → drift::drift             undeclared bindings per identity; what Enforce removes
//!   → conditions::conditions   Ready/Valid/Stalled/ReviewOverdue/Drifted; review wake-up
//!   → Decision                 what to apply, delete and write, and when to wake
//! ```

use jiff::Timestamp;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;

use super::approval::Trust;
use super::ceiling::Ceiling;
use super::conditions::merge;
use super::drift::{Ours, OwnBinding};
use super::notice::Notice;
use super::rbac::{self, RbacPair};
use crate::api::{ControlOwnership, ControlOwnershipStatus, PolicyException};
use kube::ResourceExt;

pub mod claims;
pub mod classify;
pub mod conditions;
pub mod count;
pub mod desired;
pub mod drift;
pub mod failures;
pub mod view;

pub use classify::Exceptions;
pub use drift::Removal;
pub use view::ControlView;

/// What the controller observed, for one control.
pub struct Observed<'a> {
    /// PolicyExceptions in the control's namespace (any control).
    pub exceptions: &'a [&'a PolicyException],
    /// RoleBindings in the control's namespace.
    pub role_bindings: &'a [crate::compact::CachedRoleBinding],
    /// All ClusterRoleBindings.
    pub cluster_role_bindings: &'a [ClusterRoleBinding],
    /// Names of existing Roles/RoleBindings labelled as this control's
    /// identity objects (not exception grants).
    pub managed_names: &'a [String],
    /// Other controls (those of the namespace that declare one of its
    /// service accounts are enough).
    pub controls: &'a [&'a ControlOwnership],
}

/// Everything the reconciler must do for one control.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Pairs to server-side apply.
    pub apply: Vec<RbacPair>,
    /// Existing managed pairs to delete (by name).
    pub delete: Vec<String>,
    /// Drifting bindings to delete (Enforce only).
    pub remove_drift: Vec<Removal>,
    /// The status to hold.
    pub status: ControlOwnershipStatus,
    /// Next instant the decision changes by itself.
    pub wake_at: Option<Timestamp>,
    /// Events for condition changes.
    pub notes: Vec<Notice>,
}

/// Decides the desired state of `co` at `now`.
pub fn decide(
    co: &ControlOwnership,
    observed: &Observed<'_>,
    ceiling: &Ceiling,
    trust: Trust<'_>,
    now: Timestamp,
) -> Decision {
    let view = ControlView::new(co, ceiling, trust).with_claims(observed.controls);
    let desired = desired::desired(&view, observed.managed_names);
    let exceptions = view.classify(observed.exceptions.iter().copied(), now);
    // Steward's own RoleBindings: identity pairs and grants that may exist,
    // each with its owner and its one service account.
    let control_uid = co.uid().unwrap_or_default();
    let mut ours: Ours = view
        .valid_identities
        .iter()
        .map(|id| {
            let own = OwnBinding {
                owner_uid: control_uid.clone(),
                service_account: id.service_account.clone(),
            };
            (rbac::identity_name(&view.name, &id.service_account), own)
        })
        .collect();
    ours.extend(exceptions.grants.clone());
    let drift = drift::drift(&view, observed, &ours, &exceptions);
    let conds = conditions::conditions(&view, &drift.identities, now);

    let previous = co.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    let generation = co.metadata.generation;
    let status = ControlOwnershipStatus {
        observed_generation: generation,
        next_review_due: conds.next_review_due,
        active_exceptions: Some(i32::try_from(exceptions.active.len()).unwrap_or(i32::MAX)),
        identities: drift.identities,
        conditions: merge(previous, conds.conditions, generation, now),
    };
    let notes = conditions::notices(previous, &status);
    // An invalid spec grants nothing new and removes no one's bindings;
    // pairs no valid identity declares still go.
    let valid = view.is_valid();
    Decision {
        apply: if valid { desired.pairs } else { Vec::new() },
        delete: desired.delete,
        remove_drift: if valid { drift.remove } else { Vec::new() },
        status,
        wake_at: earliest(exceptions.wake_at, conds.wake_at),
        notes,
    }
}

fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Enforcement, Phase};
    use crate::decide::fixtures::{ceiling, control, exception, nothing_observed, rule, ts};
    use k8s_openapi::api::rbac::v1::{RoleRef, Subject};

    fn crb(name: &str, subjects: Vec<Subject>) -> ClusterRoleBinding {
        ClusterRoleBinding {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: "cluster-admin".into(),
            },
            subjects: Some(subjects),
        }
    }

    use crate::decide::fixtures::sa;

    fn subject(kind: &str, name: &str) -> Subject {
        Subject {
            kind: kind.into(),
            name: name.into(),
            namespace: None,
            api_group: Some("rbac.authorization.k8s.io".into()),
        }
    }

    fn run(co: &ControlOwnership, pes: &[PolicyException], crbs: &[ClusterRoleBinding], now: &str) -> Decision {
        let pes: Vec<&PolicyException> = pes.iter().collect();
        let observed = Observed {
            exceptions: &pes,
            cluster_role_bindings: crbs,
            ..nothing_observed()
        };
        decide(
            co,
            &observed,
            &ceiling(),
            crate::decide::approval::Trust::AssumeApproved,
            ts(now),
        )
    }

    /// Decides `co` at noon on 2026-11-28 with the pairs of both fixture
    /// identities, api and worker, in place.
    fn run_with_both_pairs(co: &ControlOwnership) -> Decision {
        let managed = ["steward:payments:api", "steward:payments:worker"].map(String::from);
        let observed = Observed {
            managed_names: &managed,
            ..nothing_observed()
        };
        decide(
            co,
            &observed,
            &ceiling(),
            crate::decide::approval::Trust::AssumeApproved,
            ts("2026-11-28T12:00:00Z"),
        )
    }

    /// Names of the bindings reported drifting for the identity at `index`
    /// (in the fixture control, 0 is api and 1 is worker).
    fn drifting(d: &Decision, index: usize) -> Vec<&str> {
        d.status.identities[index]
            .drift
            .iter()
            .map(|b| b.name.as_str())
            .collect()
    }

    fn cond(d: &Decision, t: &str) -> Option<(String, String)> {
        d.status
            .conditions
            .iter()
            .find(|c| c.type_ == t)
            .map(|c| (c.status.clone(), c.reason.clone()))
    }

    #[test]
    fn one_pair_per_identity_with_exactly_the_declared_rules() {
        let d = run(&control(), &[], &[], "2026-11-28T12:00:00Z");
        let names: Vec<_> = d.apply.iter().map(|p| p.name().to_string()).collect();
        assert_eq!(names, ["steward:payments:api", "steward:payments:worker"]);
        assert_eq!(
            d.apply[0].role.rules.as_ref().unwrap(),
            &vec![rule(&[""], &["configmaps"], &["get"])]
        );
        assert_eq!(d.apply[1].binding.subjects.as_ref().unwrap()[0].name, "worker");
        assert_eq!(cond(&d, "Ready"), Some(("True".into(), "Reconciled".into())));
        assert_eq!(cond(&d, "Drifted").unwrap().0, "False");
    }

    #[test]
    fn review_overdue_edges_and_wake_up() {
        // lastReviewed 2026-11-20 + 30d = 2026-12-20T00:00:00Z.
        let due = "2026-12-20T00:00:00Z";
        let before = run(&control(), &[], &[], "2026-12-19T23:59:59Z");
        assert_eq!(cond(&before, "ReviewOverdue").unwrap().0, "False");
        assert_eq!(before.wake_at, Some(ts(due)));
        assert_eq!(before.status.next_review_due.as_deref(), Some(due));
        let at = run(&control(), &[], &[], due);
        assert_eq!(cond(&at, "ReviewOverdue").unwrap().0, "True");
        assert_eq!(at.wake_at, None);
        assert_eq!(cond(&at, "Ready").unwrap().0, "True");
        assert!(at.notes.iter().any(|n| n.reason == "ReviewOverdue"));
    }

    #[test]
    fn drift_paths_and_what_enforce_may_delete() {
        let crbs = vec![
            crb("direct", vec![sa("api", "shop")]),
            crb("as-user", vec![subject("User", "system:serviceaccount:shop:worker")]),
            crb("all-sas", vec![subject("Group", "system:serviceaccounts")]),
            crb("ns-sas", vec![subject("Group", "system:serviceaccounts:shop")]),
            crb("shared", vec![sa("api", "shop"), subject("User", "jane")]),
            crb("other-ns", vec![sa("api", "elsewhere")]),
            crb("other-sa", vec![sa("frontend", "shop")]),
        ];
        let audit = run(&control(), &[], &crbs, "2026-11-28T12:00:00Z");
        assert_eq!(drifting(&audit, 0), ["all-sas", "direct", "ns-sas", "shared"]);
        assert_eq!(drifting(&audit, 1), ["all-sas", "as-user", "ns-sas"]);
        assert!(audit.remove_drift.is_empty(), "Audit deleted something");
        assert_eq!(cond(&audit, "Drifted").unwrap().0, "True");

        let mut co = control();
        co.spec.enforcement = Some(Enforcement::Enforce);
        let enforce = run(&co, &[], &crbs, "2026-11-28T12:00:00Z");
        // ClusterRoleBindings are the platform's: a namespaced control
        // reports them, even in Enforce, and deletes none.
        assert!(enforce.remove_drift.is_empty(), "Enforce deleted a ClusterRoleBinding");
        assert_eq!(drifting(&enforce, 0), ["all-sas", "direct", "ns-sas", "shared"]);
    }

    #[test]
    fn toleration_holds_only_while_the_exception_is_active() {
        let crbs = vec![crb("legacy-admin", vec![sa("api", "shop")])];
        let pes = vec![exception()];
        let active = run(&control(), &pes, &crbs, "2026-11-28T12:00:00Z");
        assert_eq!(cond(&active, "Drifted").unwrap().0, "False");
        assert_eq!(active.status.active_exceptions, Some(1));
        assert_eq!(active.wake_at, Some(ts("2026-11-29T10:00:00Z")));
        let pending = run(&control(), &pes, &crbs, "2026-11-28T09:30:00Z");
        assert_eq!(cond(&pending, "Drifted").unwrap().0, "True");
        assert_eq!(pending.wake_at, Some(ts("2026-11-28T10:00:00Z")));
        let expired = run(&control(), &pes, &crbs, "2026-11-29T10:00:00Z");
        assert_eq!(cond(&expired, "Drifted").unwrap().0, "True");
        assert_eq!(expired.status.active_exceptions, Some(0));
        // An exception to another control tolerates nothing here.
        let mut other = exception();
        other.spec.control = "other".into();
        let d = run(&control(), &[other], &crbs, "2026-11-28T12:00:00Z");
        assert_eq!(cond(&d, "Drifted").unwrap().0, "True");
    }

    #[test]
    fn an_active_grant_binding_is_not_drift() {
        let mut pe = exception();
        pe.status = Some(crate::api::PolicyExceptionStatus {
            phase: Some(Phase::Active),
            ..Default::default()
        });
        let grant = crate::decide::exception::decide(
            &pe,
            Some(&control()),
            &ceiling(),
            crate::decide::approval::Trust::AssumeApproved,
            ts("2026-11-28T12:00:00Z"),
        )
        .grant
        .unwrap();
        let rbs = vec![grant.binding.into()];
        let observed = Observed {
            exceptions: &[&pe],
            role_bindings: &rbs,
            ..nothing_observed()
        };
        let d = decide(
            &control(),
            &observed,
            &ceiling(),
            crate::decide::approval::Trust::AssumeApproved,
            ts("2026-11-28T12:00:00Z"),
        );
        assert_eq!(cond(&d, "Drifted").unwrap().0, "False");
        // The same binding after expiry is drift until it is removed.
        let d = decide(
            &control(),
            &observed,
            &ceiling(),
            crate::decide::approval::Trust::AssumeApproved,
            ts("2026-11-29T10:00:00Z"),
        );
        assert_eq!(cond(&d, "Drifted").unwrap().0, "True");
    }

    #[test]
    fn invalid_spec_grants_nothing_new_and_keeps_only_valid_identities() {
        let mut co = control();
        co.spec.backup_owner.name = "payments-team".into();
        co.spec.workload_identities[1].rules = vec![rule(&["*"], &["*"], &["*"])];
        let d = run_with_both_pairs(&co);
        assert!(d.apply.is_empty(), "an invalid spec applied RBAC");
        assert_eq!(d.delete, ["steward:payments:worker"]);
        assert_eq!(cond(&d, "Ready"), Some(("False".into(), "OwnerIsBackupOwner".into())));
        assert_eq!(cond(&d, "Stalled").unwrap().0, "True");
        let msg = &d.status.conditions[0].message;
        assert!(msg.contains("spec.backupOwner.name"), "{msg}");
        assert!(msg.contains("spec.workloadIdentities[1].rules[0]"), "{msg}");
    }

    #[test]
    fn removed_identities_are_deleted() {
        let mut co = control();
        co.spec.workload_identities.truncate(1);
        let d = run_with_both_pairs(&co);
        assert_eq!(d.delete, ["steward:payments:worker"]);
    }

    #[test]
    fn idle_control_gives_identical_status() {
        let mut co = control();
        let first = run(&co, &[], &[], "2026-11-28T12:00:00Z");
        co.status = Some(first.status.clone());
        let second = run(&co, &[], &[], "2026-11-28T13:00:00Z");
        assert_eq!(first.status, second.status);
        assert!(second.notes.is_empty());
    }
}
