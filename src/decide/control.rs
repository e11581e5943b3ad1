//! The ControlOwnership decision: desired Role/RoleBinding per workload
//! identity, drift, review due, active exceptions, status and next wake-up.
//! Pure: everything observed is passed in.

use std::collections::BTreeSet;

use jiff::Timestamp;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::{Resource, ResourceExt};

use super::ceiling::Ceiling;
use super::conditions::{Cond, find, is_true, merge, reasons, types};
use super::drift::{self, Found};
use super::exception::{Lifecycle, lifecycle};
use super::invalid_spec::summary;
use super::notice::{self, Notice};
use super::rbac::{self, ManagedFor, RbacPair};
use super::time;
use super::validate;
use crate::api::{BindingKind, ControlOwnership, ControlOwnershipStatus, Enforcement, IdentityStatus, PolicyException};

/// What the controller observed, for one control.
pub struct Observed<'a> {
    /// PolicyExceptions in the control's namespace (any control).
    pub exceptions: &'a [PolicyException],
    /// RoleBindings in the control's namespace.
    pub role_bindings: &'a [RoleBinding],
    /// All ClusterRoleBindings.
    pub cluster_role_bindings: &'a [ClusterRoleBinding],
    /// Names of existing Roles/RoleBindings labelled as this control's
    /// identity objects (not exception grants).
    pub managed_names: &'a [String],
}

/// A binding Enforce must delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removal {
    /// Kind of binding.
    pub kind: BindingKind,
    /// Its name (namespace: the control's, for RoleBindings).
    pub name: String,
    /// What it bound, for the Event.
    pub role_ref: String,
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
pub fn decide(co: &ControlOwnership, observed: &Observed<'_>, ceiling: &Ceiling, now: Timestamp) -> Decision {
    let name = co.name_any();
    let ns = co.namespace().unwrap_or_default();
    let generation = co.metadata.generation;
    let previous = co.status.clone().unwrap_or_default();
    let checked = validate::control(&co.spec, ceiling);

    // Identities whose own declaration is valid; with an invalid spec their
    // existing objects are kept as they are but nothing new is applied.
    let mut valid_identities = Vec::new();
    for (i, id) in co.spec.workload_identities.iter().enumerate() {
        if validate::identity_errors(&id.service_account, &id.task, &id.rules, i, ceiling).is_empty()
            && !valid_identities
                .iter()
                .any(|v: &&crate::api::WorkloadIdentity| v.service_account == id.service_account)
        {
            valid_identities.push(id);
        }
    }
    let owner_ref = co.controller_owner_ref(&());
    let pairs: Vec<RbacPair> = valid_identities
        .iter()
        .map(|id| {
            rbac::pair(
                &rbac::identity_name(&name, &id.service_account),
                &ns,
                &id.service_account,
                &id.rules,
                &ManagedFor::Control(&name),
                owner_ref.clone(),
            )
        })
        .collect();
    let wanted: BTreeSet<String> = pairs.iter().map(|p| p.name().to_string()).collect();
    let delete: Vec<String> = observed
        .managed_names
        .iter()
        .filter(|n| !wanted.contains(*n))
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();

    // This control's exceptions, classified at `now`.
    let mut wake_at: Option<Timestamp> = None;
    let mut wake = |t: Timestamp| {
        if t > now {
            wake_at = Some(wake_at.map_or(t, |w: Timestamp| w.min(t)));
        }
    };
    let mut active = Vec::new();
    for pe in observed
        .exceptions
        .iter()
        .filter(|e| e.spec.control == name && e.namespace().as_deref() == Some(&ns))
    {
        match lifecycle(pe, Some(co), ceiling, now) {
            Lifecycle::Pending(w) => wake(w.starts_at),
            Lifecycle::Active(w) => {
                wake(w.expires_at);
                active.push(pe);
            }
            _ => {}
        }
    }

    // Steward's own RoleBindings: identity pairs and Active grants.
    let mut ours: BTreeSet<String> = wanted.clone();
    // Exceptions to other controls are judged by their own reconciler; their
    // recorded phase says whether their grant may exist.
    for pe in observed
        .exceptions
        .iter()
        .filter(|e| e.namespace().as_deref() == Some(&ns))
    {
        let granting = if pe.spec.control == name {
            active.iter().any(|a| a.name_any() == pe.name_any())
        } else {
            pe.status.as_ref().and_then(|s| s.phase) == Some(crate::api::Phase::Active)
        };
        if granting {
            ours.insert(rbac::exception_name(&pe.name_any()));
        }
    }
    let tolerated: BTreeSet<(BindingKind, String)> = active
        .iter()
        .flat_map(|pe| pe.spec.tolerate.iter().map(|t| (t.kind, t.name.clone())))
        .collect();
    let managed_sas: BTreeSet<&str> = valid_identities.iter().map(|i| i.service_account.as_str()).collect();
    let enforce = co.spec.enforcement == Some(Enforcement::Enforce);

    let mut identities = Vec::new();
    let mut remove_drift: Vec<Removal> = Vec::new();
    let mut drift_count = 0;
    for id in &valid_identities {
        let found: Vec<Found> = drift::bindings_for(
            &id.service_account,
            &ns,
            observed.role_bindings,
            observed.cluster_role_bindings,
            &ours,
            &managed_sas,
        )
        .into_iter()
        .filter(|f| !tolerated.contains(&(f.kind, f.name.clone())))
        .collect();
        let mut drift = Vec::new();
        for f in found {
            if enforce && f.only_managed_subjects {
                if !remove_drift.iter().any(|r| r.kind == f.kind && r.name == f.name) {
                    remove_drift.push(Removal {
                        kind: f.kind,
                        name: f.name.clone(),
                        role_ref: f.role_ref.clone(),
                    });
                }
            } else {
                drift.push(f.to_status());
            }
        }
        drift_count += drift.len();
        identities.push(IdentityStatus {
            service_account: id.service_account.clone(),
            role: rbac::identity_name(&name, &id.service_account),
            drift,
        });
    }

    let mut conds = Vec::new();
    let mut next_review_due = None;
    let (apply, delete) = match &checked {
        Ok(valid) => {
            let due = valid
                .last_reviewed
                .and_then(|t| t.checked_add(valid.review_interval).ok())
                .or_else(|| co.metadata.creation_timestamp.as_ref().map(|t| t.0))
                .unwrap_or(now);
            next_review_due = Some(time::format(due));
            let overdue = now >= due;
            if !overdue {
                wake(due);
            }
            conds.push(Cond::yes(
                types::READY,
                reasons::RECONCILED,
                "owners, identities and RBAC are in place",
            ));
            conds.push(Cond::yes(
                types::VALID,
                reasons::VALID,
                "the spec is valid and fits the grant ceiling",
            ));
            conds.push(if overdue {
                Cond::yes(
                    types::REVIEW_OVERDUE,
                    reasons::REVIEW_OVERDUE,
                    format!("review was due at {}", time::format(due)),
                )
            } else {
                Cond::no(
                    types::REVIEW_OVERDUE,
                    reasons::REVIEW_UP_TO_DATE,
                    format!("next review due at {}", time::format(due)),
                )
            });
            conds.push(if drift_count > 0 {
                let list: Vec<String> = identities
                    .iter()
                    .flat_map(|i| {
                        i.drift.iter().map(move |d| {
                            format!("{} {} ({}) grants {}", d.kind, d.name, d.role_ref, i.service_account)
                        })
                    })
                    .collect();
                Cond::yes(types::DRIFTED, reasons::UNDECLARED_BINDINGS, list.join("; "))
            } else {
                Cond::no(
                    types::DRIFTED,
                    reasons::NO_DRIFT,
                    "no undeclared bindings grant the managed identities anything",
                )
            });
            (pairs, delete)
        }
        Err(errors) => {
            let reason = errors.first().map(|e| e.reason.as_str()).unwrap_or(reasons::INVALID);
            let message = summary(errors);
            conds.push(Cond::no(types::READY, reason, format!("invalid: {message}")));
            conds.push(Cond::yes(types::STALLED, reason, message.clone()));
            conds.push(Cond::no(types::VALID, reason, message));
            // Grant nothing new; keep what is still validly declared.
            let keep: BTreeSet<&str> = pairs.iter().map(|p| p.name()).collect();
            let delete = delete.into_iter().filter(|d| !keep.contains(d.as_str())).collect();
            remove_drift.clear();
            (Vec::new(), delete)
        }
    };

    let status = ControlOwnershipStatus {
        observed_generation: generation,
        next_review_due,
        active_exceptions: Some(i32::try_from(active.len()).unwrap_or(i32::MAX)),
        identities,
        conditions: merge(&previous.conditions, conds, generation, now),
    };
    let notes = notes(&previous.conditions, &status);
    Decision {
        apply,
        delete,
        remove_drift,
        status,
        wake_at,
        notes,
    }
}

/// A warning for each condition that turned True since `previous`.
fn notes(
    previous: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    status: &ControlOwnershipStatus,
) -> Vec<Notice> {
    let warned = [
        (types::STALLED, notice::reasons::REJECTED),
        (types::REVIEW_OVERDUE, notice::reasons::REVIEW_OVERDUE),
        (types::DRIFTED, notice::reasons::DRIFT_DETECTED),
    ];
    warned
        .into_iter()
        .filter(|(t, _)| is_true(&status.conditions, t) && !is_true(previous, t))
        .map(|(t, reason)| {
            let message = find(&status.conditions, t).map(|c| c.message.clone());
            Notice::warning(reason, message.unwrap_or_default())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Phase;
    use crate::decide::fixtures::{ceiling, control, exception, rule, ts};
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

    fn sa(name: &str, ns: &str) -> Subject {
        Subject {
            kind: "ServiceAccount".into(),
            name: name.into(),
            namespace: Some(ns.into()),
            api_group: None,
        }
    }

    fn subject(kind: &str, name: &str) -> Subject {
        Subject {
            kind: kind.into(),
            name: name.into(),
            namespace: None,
            api_group: Some("rbac.authorization.k8s.io".into()),
        }
    }

    fn run(co: &ControlOwnership, pes: &[PolicyException], crbs: &[ClusterRoleBinding], now: &str) -> Decision {
        let observed = Observed {
            exceptions: pes,
            role_bindings: &[],
            cluster_role_bindings: crbs,
            managed_names: &[],
        };
        decide(co, &observed, &ceiling(), ts(now))
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
        assert_eq!(names, ["steward-payments-api", "steward-payments-worker"]);
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
        let api: Vec<_> = audit.status.identities[0]
            .drift
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        assert_eq!(api, ["all-sas", "direct", "ns-sas", "shared"]);
        let worker: Vec<_> = audit.status.identities[1]
            .drift
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        assert_eq!(worker, ["all-sas", "as-user", "ns-sas"]);
        assert!(audit.remove_drift.is_empty(), "Audit deleted something");
        assert_eq!(cond(&audit, "Drifted").unwrap().0, "True");

        let mut co = control();
        co.spec.enforcement = Some(Enforcement::Enforce);
        let enforce = run(&co, &[], &crbs, "2026-11-28T12:00:00Z");
        let removed: Vec<_> = enforce.remove_drift.iter().map(|r| r.name.as_str()).collect();
        // A User-form subject is not a ServiceAccount subject: reported, not deleted.
        assert_eq!(removed, ["direct"]);
        let api: Vec<_> = enforce.status.identities[0]
            .drift
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        assert_eq!(api, ["all-sas", "ns-sas", "shared"]);
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
        let grant = crate::decide::exception::decide(&pe, Some(&control()), &ceiling(), ts("2026-11-28T12:00:00Z"))
            .grant
            .unwrap();
        let rbs = vec![grant.binding];
        let observed = Observed {
            exceptions: std::slice::from_ref(&pe),
            role_bindings: &rbs,
            cluster_role_bindings: &[],
            managed_names: &[],
        };
        let d = decide(&control(), &observed, &ceiling(), ts("2026-11-28T12:00:00Z"));
        assert_eq!(cond(&d, "Drifted").unwrap().0, "False");
        // The same binding after expiry is drift until it is removed.
        let d = decide(&control(), &observed, &ceiling(), ts("2026-11-29T10:00:00Z"));
        assert_eq!(cond(&d, "Drifted").unwrap().0, "True");
    }

    #[test]
    fn invalid_spec_grants_nothing_new_and_keeps_only_valid_identities() {
        let mut co = control();
        co.spec.backup_owner.name = "payments-team".into();
        co.spec.workload_identities[1].rules = vec![rule(&["*"], &["*"], &["*"])];
        let managed = vec![
            "steward-payments-api".to_string(),
            "steward-payments-worker".to_string(),
        ];
        let observed = Observed {
            exceptions: &[],
            role_bindings: &[],
            cluster_role_bindings: &[],
            managed_names: &managed,
        };
        let d = decide(&co, &observed, &ceiling(), ts("2026-11-28T12:00:00Z"));
        assert!(d.apply.is_empty(), "an invalid spec applied RBAC");
        assert_eq!(d.delete, ["steward-payments-worker"]);
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
        let managed = vec![
            "steward-payments-api".to_string(),
            "steward-payments-worker".to_string(),
        ];
        let observed = Observed {
            exceptions: &[],
            role_bindings: &[],
            cluster_role_bindings: &[],
            managed_names: &managed,
        };
        let d = decide(&co, &observed, &ceiling(), ts("2026-11-28T12:00:00Z"));
        assert_eq!(d.delete, ["steward-payments-worker"]);
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
