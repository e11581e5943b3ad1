//! A control's rules for approving its exceptions, parsed and checked once
//! per control: who approves (users, groups), how many, which GitOps
//! appliers approve through Git, and who may break glass for how long.

use jiff::SignedDuration;

use crate::api::ControlOwnershipSpec;
use crate::api::limits;
use crate::decide::duration;
use crate::decide::invalid_spec::{Invalid, Reason};

/// The parsed approval rules of a control.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Users who may approve.
    pub users: Vec<String>,
    /// Groups whose members may approve.
    pub groups: Vec<String>,
    /// Distinct approvers required.
    pub min_approvals: u32,
    /// GitOps appliers whose writes are approved through Git.
    pub trusted_appliers: Vec<String>,
    /// Who may break glass, for how long.
    pub break_glass: Option<BreakGlass>,
}

/// Emergency self-approval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakGlass {
    /// Groups that may.
    pub groups: Vec<String>,
    /// Longest window.
    pub max_duration: SignedDuration,
}

impl Policy {
    /// Whether `user` (with `groups`) may approve.
    pub fn is_approver(&self, user: &str, groups: &[String]) -> bool {
        self.users.iter().any(|u| u == user) || groups.iter().any(|g| self.groups.contains(g))
    }

    /// Whether `user` is a trusted applier.
    pub fn is_trusted_applier(&self, user: &str) -> bool {
        self.trusted_appliers.iter().any(|u| u == user)
    }

    /// The break-glass rules, when `groups` includes one of its groups.
    pub fn break_glass_for(&self, groups: &[String]) -> Option<&BreakGlass> {
        self.break_glass
            .as_ref()
            .filter(|b| groups.iter().any(|g| b.groups.contains(g)))
    }

    /// Those of `groups` this policy names, to record with an identity.
    pub fn relevant_groups(&self, groups: &[String]) -> Vec<String> {
        let named =
            |g: &String| self.groups.contains(g) || self.break_glass.as_ref().is_some_and(|b| b.groups.contains(g));
        let mut out: Vec<String> = groups.iter().filter(|g| named(g)).cloned().collect();
        out.sort();
        out.dedup();
        out.truncate(limits::RECORDED_GROUPS);
        out
    }

    /// Who may approve, for messages.
    pub fn describe_approvers(&self) -> String {
        let list = |v: &[String]| {
            if v.is_empty() { "none".to_string() } else { v.join(", ") }
        };
        format!("users: {}; groups: {}", list(&self.users), list(&self.groups))
    }
}

/// Parses the approval rules of `spec`; `max_duration` is the control's
/// longest exception window. Problems go to `errors`.
pub fn parse(spec: &ControlOwnershipSpec, max_duration: SignedDuration, errors: &mut Vec<Invalid>) -> Policy {
    let policy = spec.exception_policy.clone().unwrap_or_default();
    let users: Vec<String> = clean(&spec.approvers);
    let groups: Vec<String> = clean(&spec.approver_groups);
    unsafe_names(&spec.approvers, "spec.approvers", false, errors);
    unsafe_names(&spec.approver_groups, "spec.approverGroups", true, errors);
    let asked = policy.min_approvals.unwrap_or(1);
    // In range (checked below) it is positive; out of range it is refused.
    let min_approvals = u32::try_from(asked).unwrap_or(1);
    const MIN: &str = "spec.exceptionPolicy.minApprovals";
    if !(1..=limits::MIN_APPROVALS).contains(&asked) {
        errors.push(Invalid::new(
            Reason::MinApprovalsUnreachable,
            MIN,
            format!("must be between 1 and {}, not {asked}", limits::MIN_APPROVALS),
        ));
    } else if policy.min_approvals.is_some() && groups.is_empty() && users.len() < min_approvals as usize {
        errors.push(Invalid::new(
            Reason::MinApprovalsUnreachable,
            MIN,
            format!(
                "{min_approvals} distinct approvers are required but spec.approvers lists {} and spec.approverGroups none",
                users.len()
            ),
        ));
    }
    let break_glass = policy.break_glass.as_ref().and_then(|b| {
        const FIELD: &str = "spec.exceptionPolicy.breakGlass";
        let groups = clean(&b.groups);
        unsafe_names(&b.groups, &format!("{FIELD}.groups"), true, errors);
        if groups.is_empty() {
            errors.push(Invalid::new(
                Reason::MissingField,
                format!("{FIELD}.groups"),
                "name at least one group whose members may break glass",
            ));
        }
        let field = format!("{FIELD}.maxDuration");
        let d = match duration::parse(&b.max_duration) {
            Ok(d) => d,
            Err(e) => {
                errors.push(Invalid::new(Reason::InvalidDuration, field, e.to_string()));
                return None;
            }
        };
        if d > max_duration {
            errors.push(Invalid::new(
                Reason::InvalidDuration,
                field,
                format!(
                    "{:?} is longer than the control's maxDuration; break glass is for short emergencies",
                    b.max_duration
                ),
            ));
            return None;
        }
        Some(BreakGlass {
            groups,
            max_duration: d,
        })
    });
    Policy {
        users,
        groups,
        min_approvals,
        trusted_appliers: clean(&policy.trusted_appliers),
        break_glass,
    }
}

/// Refuses identities anyone can hold: the groups every user or every
/// workload is in, the anonymous user, and service accounts as approvers
/// (a person approves; whoever can run a pod in its namespace can act as a
/// service account). Trusted appliers are service accounts by design and
/// are not checked here.
fn unsafe_names(names: &[String], field: &str, groups: bool, errors: &mut Vec<Invalid>) {
    for (i, n) in names.iter().enumerate() {
        let n = n.trim();
        let everyone = if groups {
            [
                "system:authenticated",
                "system:unauthenticated",
                "system:serviceaccounts",
            ]
            .contains(&n)
                || n.starts_with("system:serviceaccounts:")
        } else {
            n == "system:anonymous" || n.starts_with("system:serviceaccount:")
        };
        if everyone {
            errors.push(Invalid::new(
                Reason::UnsafeApprover,
                format!("{field}[{i}]"),
                format!("{n:?} is held by every user or workload it names, not by people chosen to approve"),
            ));
        }
    }
}

/// Trimmed, without empties, each once (so a name listed twice does not
/// count twice towards minApprovals).
fn clean(v: &[String]) -> Vec<String> {
    let mut out: Vec<String> = v
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BreakGlass as BreakGlassSpec, ExceptionPolicy};
    use crate::decide::fixtures::control;

    fn parsed(edit: impl Fn(&mut ControlOwnershipSpec)) -> (Policy, Vec<Invalid>) {
        let mut spec = control().spec;
        edit(&mut spec);
        let mut errors = Vec::new();
        let p = parse(&spec, SignedDuration::from_hours(48), &mut errors);
        (p, errors)
    }

    fn policy(min: Option<i32>, bg: Option<(&[&str], &str)>) -> impl Fn(&mut ControlOwnershipSpec) {
        move |s| {
            s.exception_policy = Some(ExceptionPolicy {
                min_approvals: min,
                break_glass: bg.map(|(g, d)| BreakGlassSpec {
                    groups: g.iter().map(|s| s.to_string()).collect(),
                    max_duration: d.into(),
                }),
                ..Default::default()
            });
        }
    }

    #[test]
    fn checks_of_the_approval_rules() {
        // (case, minApprovals, approver groups, break glass, first error)
        type Case = (
            &'static str,
            Option<i32>,
            &'static [&'static str],
            Option<(&'static [&'static str], &'static str)>,
            Option<(Reason, &'static str)>,
        );
        let cases: Vec<Case> = vec![
            ("defaults", None, &[], None, None),
            ("one approver, one needed", Some(1), &[], None, None),
            (
                "two needed, one user listed",
                Some(2),
                &[],
                None,
                Some((Reason::MinApprovalsUnreachable, "spec.exceptionPolicy.minApprovals")),
            ),
            ("two needed, a group may supply them", Some(2), &["leads"], None, None),
            (
                "zero",
                Some(0),
                &["leads"],
                None,
                Some((Reason::MinApprovalsUnreachable, "spec.exceptionPolicy.minApprovals")),
            ),
            (
                "too many",
                Some(11),
                &["leads"],
                None,
                Some((Reason::MinApprovalsUnreachable, "spec.exceptionPolicy.minApprovals")),
            ),
            ("break glass", None, &[], Some((&["oncall"], "4h")), None),
            (
                "break glass without groups",
                None,
                &[],
                Some((&[" "], "4h")),
                Some((Reason::MissingField, "spec.exceptionPolicy.breakGlass.groups")),
            ),
            (
                "break glass, bad duration",
                None,
                &[],
                Some((&["oncall"], "4 hours")),
                Some((Reason::InvalidDuration, "spec.exceptionPolicy.breakGlass.maxDuration")),
            ),
            (
                "break glass longer than maxDuration",
                None,
                &[],
                Some((&["oncall"], "3d")),
                Some((Reason::InvalidDuration, "spec.exceptionPolicy.breakGlass.maxDuration")),
            ),
        ];
        for (case, min, groups, bg, want) in cases {
            let (_, errors) = parsed(|s| {
                policy(min, bg)(s);
                s.approver_groups = groups.iter().map(|g| g.to_string()).collect();
            });
            let got = errors.first().map(|e| (e.reason, e.field.as_str()));
            assert_eq!(got, want, "{case}: {errors:?}");
        }
    }

    #[test]
    fn identities_anyone_holds_cannot_approve() {
        type Case = (&'static str, fn(&mut ControlOwnershipSpec), &'static str);
        let cases: Vec<Case> = vec![
            (
                "all users",
                |s| s.approver_groups = vec!["system:authenticated".into()],
                "spec.approverGroups[0]",
            ),
            (
                "every workload",
                |s| s.approver_groups = vec!["x".into(), "system:serviceaccounts".into()],
                "spec.approverGroups[1]",
            ),
            (
                "a namespace's workloads",
                |s| s.approver_groups = vec!["system:serviceaccounts:shop".into()],
                "spec.approverGroups[0]",
            ),
            (
                "a workload",
                |s| s.approvers = vec!["system:serviceaccount:shop:api".into()],
                "spec.approvers[0]",
            ),
            (
                "anonymous",
                |s| s.approvers = vec!["system:anonymous".into()],
                "spec.approvers[0]",
            ),
            (
                "break glass for all",
                |s| {
                    s.exception_policy = Some(ExceptionPolicy {
                        break_glass: Some(BreakGlassSpec {
                            groups: vec!["system:authenticated".into()],
                            max_duration: "1h".into(),
                        }),
                        ..Default::default()
                    })
                },
                "spec.exceptionPolicy.breakGlass.groups[0]",
            ),
        ];
        for (case, edit, field) in cases {
            let (_, errors) = parsed(edit);
            let got: Vec<(Reason, &str)> = errors.iter().map(|e| (e.reason, e.field.as_str())).collect();
            assert_eq!(got, vec![(Reason::UnsafeApprover, field)], "{case}");
        }
        let (_, errors) = parsed(|s| {
            s.exception_policy = Some(ExceptionPolicy {
                trusted_appliers: vec!["system:serviceaccount:argocd:argocd-application-controller".into()],
                ..Default::default()
            })
        });
        assert!(
            errors.is_empty(),
            "a GitOps controller's service account is what trustedAppliers lists"
        );
    }

    #[test]
    fn who_is_who() {
        let (p, _) = parsed(|s| {
            policy(None, Some((&["oncall"], "4h")))(s);
            s.approver_groups = vec!["leads".into()];
            if let Some(e) = s.exception_policy.as_mut() {
                e.trusted_appliers = vec!["system:serviceaccount:argocd:app".into()];
            }
        });
        let g = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(p.is_approver("alice@example.com", &[]));
        assert!(p.is_approver("zed", &g(&["x", "leads"])));
        assert!(
            !p.is_approver("zed", &g(&["oncall"])),
            "break glass is not approval of others"
        );
        assert!(p.is_trusted_applier("system:serviceaccount:argocd:app"));
        assert!(!p.is_trusted_applier("alice@example.com"));
        assert!(p.break_glass_for(&g(&["oncall"])).is_some());
        assert!(p.break_glass_for(&g(&["leads"])).is_none());
        assert_eq!(
            p.relevant_groups(&g(&["system:authenticated", "oncall", "leads"])),
            g(&["leads", "oncall"])
        );
    }
}
