//! What a change of the grant ceiling takes away, said before it happens.
//! A control whose rules no longer fit becomes Invalid, and every one of its
//! identity Roles goes with it; an Active exception whose grant no longer
//! fits is Rejected. The webhook returns these as admission warnings on the
//! ceiling's UPDATE and DELETE, and always admits: the ceiling is the
//! platform's to change. Judged with the controller's own validation, under
//! the old ceiling and the new one: only what fits now and would not fit
//! then is a loss.

use jiff::Timestamp;
use kube::ResourceExt;

use super::approval::Trust;
use super::ceiling::Ceiling;
use super::exception::{Lifecycle, lifecycle};
use super::invalid_spec::Invalid;
use super::validate;
use crate::api::{ControlOwnership, PolicyException};

/// How many controls and exceptions the warnings name one by one; the API
/// server truncates long warning lists, and the summary line (first) says
/// how many there are in all.
pub const NAMED: usize = 10;

/// A control or exception that would lose its grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loss {
    /// `ControlOwnership ns/name` or `PolicyException ns/name`.
    pub what: String,
    /// What goes: the identities, or the exception's grant.
    pub loses: String,
    /// The first rule that no longer fits.
    pub why: Invalid,
}

impl Loss {
    fn warning(&self) -> String {
        format!("{} {}: {}", self.what, self.loses, self.why)
    }
}

fn qualified<K: ResourceExt>(kind: &str, obj: &K) -> String {
    match obj.namespace() {
        Some(ns) => format!("{kind} {ns}/{}", obj.name_any()),
        None => format!("{kind} {}", obj.name_any()),
    }
}

/// The controls that fit under `old` and would be Invalid under `new`.
pub fn controls(controls: &[&ControlOwnership], old: &Ceiling, new: &Ceiling) -> Vec<Loss> {
    controls
        .iter()
        .filter(|co| validate::control(&co.spec, old).is_ok())
        .filter_map(|co| {
            let errors = validate::control(&co.spec, new).err()?;
            let why = errors.into_iter().next()?;
            let identities: Vec<&str> = co.spec.service_accounts();
            Some(Loss {
                what: qualified("ControlOwnership", *co),
                loses: format!(
                    "would become Invalid ({}) and its identities [{}] lose their Roles",
                    why.reason,
                    identities.join(", ")
                ),
                why,
            })
        })
        .collect()
}

/// The exceptions (each with its control as exceptions see it) Active
/// under `old` that would be Rejected under `new`.
pub fn exceptions(
    exceptions: &[(&PolicyException, Option<&ControlOwnership>)],
    old: &Ceiling,
    new: &Ceiling,
    trust: Trust<'_>,
    now: Timestamp,
) -> Vec<Loss> {
    exceptions
        .iter()
        .filter(|(pe, control)| matches!(lifecycle(pe, *control, old, trust, now), Lifecycle::Active(_)))
        .filter_map(|(pe, control)| {
            let Lifecycle::Rejected(errors) = lifecycle(pe, *control, new, trust, now) else {
                return None;
            };
            let why = errors.into_iter().next()?;
            Some(Loss {
                what: qualified("PolicyException", *pe),
                loses: format!(
                    "(control {}) would be Rejected ({}) and lose its grant and tolerations",
                    pe.spec.control, why.reason
                ),
                why,
            })
        })
        .collect()
}

/// The admission warnings for these losses: a summary first, then at most
/// [`NAMED`] of them by name. Empty when nothing is lost.
pub fn warnings(ceiling: &str, deleted: bool, controls: &[Loss], exceptions: &[Loss]) -> Vec<String> {
    if controls.is_empty() && exceptions.is_empty() {
        return Vec::new();
    }
    let change = if deleted { "Deleting" } else { "This change to" };
    let mut out = vec![format!(
        "{change} the grant ceiling ClusterRole {ceiling:?} removes grants: {} ControlOwnership(s) become Invalid and {} Active PolicyException(s) are Rejected",
        controls.len(),
        exceptions.len()
    )];
    let all = controls.iter().chain(exceptions);
    out.extend(all.clone().take(NAMED).map(Loss::warning));
    let rest = all.count().saturating_sub(NAMED);
    if rest > 0 {
        out.push(format!(
            "… and {rest} more (their status and Rejected Events will say so)"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{ceiling, control, exception, rule, ts};
    use super::*;

    fn narrowed() -> Ceiling {
        // The fixture ceiling without batch jobs: `worker` no longer fits.
        Ceiling::new(
            "steward-grantable",
            vec![rule(
                &[""],
                &["configmaps", "pods", "pods/log"],
                &["get", "list", "watch"],
            )],
        )
    }

    #[test]
    fn a_control_that_no_longer_fits_is_named_with_all_its_identities() {
        let co = control();
        let lost = controls(&[&co], &ceiling(), &narrowed());
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].what, "ControlOwnership shop/payments");
        assert!(lost[0].loses.contains("[api, worker]"), "{}", lost[0].loses);
        assert!(lost[0].loses.contains("RuleOutsideCeiling"), "{}", lost[0].loses);
        assert!(lost[0].why.message.contains("jobs.batch"), "{}", lost[0].why);
    }

    #[test]
    fn widening_or_an_unrelated_change_loses_nothing() {
        let co = control();
        assert!(controls(&[&co], &narrowed(), &ceiling()).is_empty());
        assert!(controls(&[&co], &ceiling(), &ceiling()).is_empty());
    }

    #[test]
    fn a_control_already_invalid_loses_nothing_more() {
        let co = control();
        let tiny = Ceiling::new("steward-grantable", vec![]);
        assert!(controls(&[&co], &narrowed(), &tiny).is_empty());
    }

    #[test]
    fn deleting_the_ceiling_takes_everything() {
        let co = control();
        let lost = controls(&[&co], &ceiling(), &Ceiling::missing("steward-grantable"));
        assert_eq!(lost.len(), 1);
    }

    #[test]
    fn an_active_exception_whose_grant_no_longer_fits_is_named() {
        let co = control();
        let pe = exception();
        let during = ts("2026-11-28T12:00:00Z");
        // Without pods/log, the exception's grant is outside.
        let no_logs = Ceiling::new(
            "steward-grantable",
            vec![
                rule(&[""], &["configmaps", "pods"], &["get", "list", "watch"]),
                rule(&["batch"], &["jobs"], &["get", "create"]),
            ],
        );
        let lost = exceptions(
            &[(&pe, Some(&co))],
            &ceiling(),
            &no_logs,
            crate::decide::approval::Trust::AssumeApproved,
            during,
        );
        assert_eq!(lost.len(), 1, "{lost:?}");
        assert_eq!(lost[0].what, "PolicyException shop/debug");
        assert!(lost[0].loses.contains("control payments"));
        // The control itself still fits.
        assert!(controls(&[&co], &ceiling(), &no_logs).is_empty());
        // Not yet started: nothing is lost now (it will be Rejected, and say so).
        let before = ts("2026-11-28T09:30:00Z");
        assert!(
            exceptions(
                &[(&pe, Some(&co))],
                &ceiling(),
                &no_logs,
                crate::decide::approval::Trust::AssumeApproved,
                before
            )
            .is_empty()
        );
    }

    #[test]
    fn warnings_summarise_first_and_name_at_most_ten() {
        let co = control();
        let lost = controls(&[&co], &ceiling(), &narrowed());
        let many: Vec<Loss> = std::iter::repeat_n(lost[0].clone(), NAMED + 3).collect();
        let w = warnings("steward-grantable", false, &many, &[]);
        assert_eq!(w.len(), 1 + NAMED + 1);
        assert!(w[0].contains("13 ControlOwnership(s)"), "{}", w[0]);
        assert!(
            w[1].starts_with("ControlOwnership shop/payments would become Invalid"),
            "{}",
            w[1]
        );
        assert!(w[NAMED + 1].contains("3 more"), "{}", w[NAMED + 1]);
        assert!(warnings("steward-grantable", false, &[], &[]).is_empty());
        assert!(warnings("steward-grantable", true, &lost, &[])[0].starts_with("Deleting"));
    }
}
