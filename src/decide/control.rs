//! The ControlOwnership decision: desired Role/RoleBinding per workload
//! identity, drift, review due, active exceptions, status and next wake-up.
//! Pure: everything observed is passed in.

use std::collections::BTreeSet;

use jiff::Timestamp;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::{Resource, ResourceExt};

use super::ceiling::Ceiling;
use super::conditions::{Cond, is_true, merge};
use super::drift::{self, Found};
use super::exception::{Lifecycle, lifecycle};
use super::invalid::summary;
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

/// An Event the reconciler should record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Event reason.
    pub reason: &'static str,
    /// Whether it is a warning.
    pub warning: bool,
    /// Event note.
    pub note: String,
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
    pub notes: Vec<Note>,
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
            && !valid_identities.iter().any(|v: &&crate::api::WorkloadIdentity| v.service_account == id.service_account)
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
    for pe in observed.exceptions.iter().filter(|e| e.spec.control == name && e.namespace().as_deref() == Some(&ns)) {
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
    for pe in observed.exceptions.iter().filter(|e| e.namespace().as_deref() == Some(&ns)) {
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
            conds.push(Cond::yes("Ready", "Reconciled", "owners, identities and RBAC are in place"));
            conds.push(Cond::yes("Valid", "Valid", "the spec is valid and fits the grant ceiling"));
            conds.push(if overdue {
                Cond::yes("ReviewOverdue", "ReviewOverdue", format!("review was due at {}", time::format(due)))
            } else {
                Cond::no("ReviewOverdue", "ReviewUpToDate", format!("next review due at {}", time::format(due)))
            });
            conds.push(if drift_count > 0 {
                let list: Vec<String> = identities
                    .iter()
                    .flat_map(|i| i.drift.iter().map(move |d| format!("{} {} ({}) grants {}", d.kind, d.name, d.role_ref, i.service_account)))
                    .collect();
                Cond::yes("Drifted", "UndeclaredBindings", list.join("; "))
            } else {
                Cond::no("Drifted", "NoDrift", "no undeclared bindings grant the managed identities anything")
            });
            (pairs, delete)
        }
        Err(errors) => {
            let reason = errors.first().map(|e| e.reason.as_str()).unwrap_or("Invalid");
            let message = summary(errors);
            conds.push(Cond::no("Ready", reason, format!("invalid: {message}")));
            conds.push(Cond::yes("Stalled", reason, message.clone()));
            conds.push(Cond::no("Valid", reason, message));
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

fn notes(previous: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition], status: &ControlOwnershipStatus) -> Vec<Note> {
    let mut out = Vec::new();
    let flipped_on = |t: &str| is_true(&status.conditions, t) && !is_true(previous, t);
    let message = |t: &str| super::conditions::find(&status.conditions, t).map(|c| c.message.clone()).unwrap_or_default();
    if flipped_on("Stalled") {
        out.push(Note { reason: "Rejected", warning: true, note: message("Stalled") });
    }
    if flipped_on("ReviewOverdue") {
        out.push(Note { reason: "ReviewOverdue", warning: true, note: message("ReviewOverdue") });
    }
    if flipped_on("Drifted") {
        out.push(Note { reason: "DriftDetected", warning: true, note: message("Drifted") });
    }
    out
}
