//! Validate step: one control as every decision about it sees it, computed
//! once per control: the validation verdict, the identities that may hold
//! RBAC, and the rules its exceptions are judged by (the ticket pattern is
//! compiled here, not per exception). The control decision and admission
//! both start from it.

use std::collections::BTreeSet;

use jiff::Timestamp;
use kube::ResourceExt;

use crate::api::{ControlOwnership, PolicyException, WorkloadIdentity};
use crate::decide::approval::Trust;
use crate::decide::ceiling::Ceiling;
use crate::decide::exception::{Lifecycle, lifecycle_against};
use crate::decide::invalid_spec::Invalid;
use crate::decide::validate::{self, Against, CheckedControl, ExceptionRules, ValidControl};

/// A control, validated once.
#[derive(Debug)]
pub struct ControlView<'a> {
    /// The control.
    pub control: &'a ControlOwnership,
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// The ceiling it was validated against.
    pub ceiling: &'a Ceiling,
    /// How its exceptions' approvals are judged.
    pub trust: Trust<'a>,
    /// The whole spec: valid, or every failure in order.
    pub checked: Result<ValidControl, Vec<Invalid>>,
    /// The rules its exceptions are judged by (valid even when another part
    /// of the control is not).
    pub exception_rules: Result<ExceptionRules, Vec<Invalid>>,
    /// Identities whose own declaration is valid, the first of each service
    /// account, in spec order. With an invalid spec their existing objects
    /// are kept as they are, but nothing new is applied.
    pub valid_identities: Vec<&'a WorkloadIdentity>,
}

impl<'a> ControlView<'a> {
    /// Validates `control` against `ceiling`, once.
    pub fn new(control: &'a ControlOwnership, ceiling: &'a Ceiling, trust: Trust<'a>) -> Self {
        let CheckedControl {
            result,
            exception_rules,
            identity_ok,
        } = validate::check_control(&control.spec, ceiling);
        ControlView {
            control,
            name: control.name_any(),
            namespace: control.namespace().unwrap_or_default(),
            ceiling,
            trust,
            checked: result,
            exception_rules,
            valid_identities: valid_identities(&control.spec.workload_identities, &identity_ok),
        }
    }

    /// The view once `others` (controls of any namespace) are known: an
    /// identity whose service account an earlier control declares makes the
    /// spec invalid and holds nothing.
    pub fn with_claims(mut self, others: &[&ControlOwnership]) -> Self {
        let taken = super::claims::claimed(self.control, others);
        if taken.is_empty() {
            return self;
        }
        let sas: BTreeSet<&str> = self
            .control
            .spec
            .workload_identities
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                let field = format!("spec.workloadIdentities[{i}].serviceAccount");
                taken.iter().any(|t| t.field == field)
            })
            .map(|(_, id)| id.service_account.as_str())
            .collect();
        self.valid_identities
            .retain(|id| !sas.contains(id.service_account.as_str()));
        let mut errors = match self.checked {
            Ok(_) => Vec::new(),
            Err(errors) => errors,
        };
        errors.extend(taken);
        self.checked = Err(errors);
        self
    }

    /// Whether the whole spec is valid.
    pub fn is_valid(&self) -> bool {
        self.checked.is_ok()
    }

    /// Is `pe` an exception to this control (same name, same namespace)?
    pub fn owns(&self, pe: &PolicyException) -> bool {
        pe.spec.control == self.name && pe.namespace().as_deref() == Some(self.namespace.as_str())
    }

    /// Where one of this control's exceptions is at `now`, judged by the
    /// rules parsed once for the control.
    pub fn lifecycle(&self, pe: &PolicyException, now: Timestamp) -> Lifecycle {
        lifecycle_against(
            pe,
            Against::of(Some(&self.exception_rules)),
            self.ceiling,
            self.trust,
            now,
        )
    }
}

/// The identities that passed their own checks, each service account once
/// (the first valid declaration wins).
fn valid_identities<'a>(identities: &'a [WorkloadIdentity], ok: &[bool]) -> Vec<&'a WorkloadIdentity> {
    let mut seen = BTreeSet::new();
    identities
        .iter()
        .zip(ok)
        .filter(|(id, ok)| **ok && seen.insert(id.service_account.as_str()))
        .map(|(id, _)| id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::Reason;
    use crate::decide::fixtures::{ceiling, control, exception, rule, ts};

    fn identity(sa: &str, task: &str, verbs: &[&str]) -> WorkloadIdentity {
        WorkloadIdentity {
            service_account: sa.into(),
            task: task.into(),
            rules: vec![rule(&[""], &["configmaps"], verbs)],
        }
    }

    /// Which identities may hold RBAC, and whether the spec as a whole is
    /// valid.
    #[test]
    fn valid_identities_table() {
        let cases: Vec<(&str, Vec<WorkloadIdentity>, &[&str], bool)> = vec![
            (
                "all valid",
                vec![identity("a", "t", &["get"]), identity("b", "t", &["list"])],
                &["a", "b"],
                true,
            ),
            (
                "outside the ceiling",
                vec![identity("a", "t", &["delete"]), identity("b", "t", &["get"])],
                &["b"],
                false,
            ),
            ("no task", vec![identity("a", " ", &["get"])], &[], false),
            (
                "other namespace",
                vec![identity("x:a", "t", &["get"]), identity("b", "t", &["get"])],
                &["b"],
                false,
            ),
            (
                "duplicate: the first wins",
                vec![identity("a", "first", &["get"]), identity("a", "second", &["list"])],
                &["a"],
                false,
            ),
            (
                "duplicate of an invalid one: the valid one stays",
                vec![identity("a", "t", &["*"]), identity("a", "t", &["get"])],
                &["a"],
                false,
            ),
            ("none", vec![], &[], true),
        ];
        let c = ceiling();
        for (name, identities, want, valid) in cases {
            let mut co = control();
            co.spec.workload_identities = identities;
            let view = ControlView::new(&co, &c, crate::decide::approval::Trust::AssumeApproved);
            let got: Vec<&str> = view
                .valid_identities
                .iter()
                .map(|i| i.service_account.as_str())
                .collect();
            assert_eq!(got, want, "{name}");
            assert_eq!(view.is_valid(), valid, "{name}: {:?}", view.checked);
        }
        // The first valid of a duplicate keeps its own task.
        let mut co = control();
        co.spec.workload_identities = vec![identity("a", "first", &["get"]), identity("a", "second", &["get"])];
        assert_eq!(
            ControlView::new(&co, &c, crate::decide::approval::Trust::AssumeApproved).valid_identities[0].task,
            "first"
        );
    }

    #[test]
    fn exceptions_are_judged_by_the_rules_parsed_for_the_view() {
        let (co, c) = (control(), ceiling());
        let view = ControlView::new(&co, &c, crate::decide::approval::Trust::AssumeApproved);
        let now = ts("2026-11-28T12:00:00Z");
        type Case = (&'static str, fn(&mut PolicyException), Option<Reason>);
        let cases: Vec<Case> = vec![
            ("as filed", |_| {}, None),
            (
                "ticket pattern",
                |e| e.spec.ticket = "JIRA-1".into(),
                Some(Reason::TicketPatternMismatch),
            ),
            (
                "approver",
                |e| e.spec.approver = "mallory@example.com".into(),
                Some(Reason::ApproverNotAllowed),
            ),
            (
                "grantee",
                |e| e.spec.grant.as_mut().unwrap().service_account = "frontend".into(),
                Some(Reason::GrantOutsideControl),
            ),
        ];
        for (name, edit, want) in cases {
            let mut pe = exception();
            edit(&mut pe);
            let got = match view.lifecycle(&pe, now) {
                Lifecycle::Rejected(errors) => Some(errors[0].reason),
                _ => None,
            };
            assert_eq!(got, want, "{name}");
            // The same answer as judging it alone.
            let alone = crate::decide::exception::lifecycle(
                &pe,
                Some(&co),
                &c,
                crate::decide::approval::Trust::AssumeApproved,
                now,
            );
            assert_eq!(view.lifecycle(&pe, now), alone, "{name}");
        }
    }

    #[test]
    fn owns_only_its_own_exceptions_in_its_own_namespace() {
        let (co, c) = (control(), ceiling());
        let view = ControlView::new(&co, &c, crate::decide::approval::Trust::AssumeApproved);
        let mut other_control = exception();
        other_control.spec.control = "other".into();
        let mut other_ns = exception();
        other_ns.metadata.namespace = Some("elsewhere".into());
        assert!(view.owns(&exception()));
        assert!(!view.owns(&other_control));
        assert!(!view.owns(&other_ns));
    }
}
