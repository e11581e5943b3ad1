//! The one-screen summary `steward status` prints, computed from listed
//! objects and `now` alone: controls by health, exceptions by phase, what
//! expires soon, what awaits approval, overdue reviews and drift.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;

use crate::api::{ControlOwnership, Phase, PolicyException};

/// Lines shown per section; the rest are counted, so the summary stays on
/// one screen however many objects there are.
const SECTION_LINES: usize = 10;

/// What the summary is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace.
    All,
    /// One namespace.
    Namespace(String),
}

/// The summary, before it is rendered.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// ControlOwnerships listed.
    pub controls: usize,
    /// Those `Ready=True`.
    pub controls_ready: usize,
    /// Exceptions by phase (`New` for those the controller has not seen yet).
    pub phases: BTreeMap<String, usize>,
    /// Pending or Active exceptions that end within the horizon, soonest first.
    pub expiring: Vec<Line>,
    /// Exceptions waiting for an approver.
    pub awaiting_approval: Vec<Line>,
    /// Controls whose review is overdue.
    pub overdue: Vec<Line>,
    /// Bindings reported as drift, one line each.
    pub drift: Vec<Line>,
    /// Invalid controls and Rejected exceptions, with their reason.
    pub invalid: Vec<Line>,
}

/// One object of a section: `namespace/name` and what to say about it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Line {
    /// `namespace/name`.
    pub object: String,
    /// The detail.
    pub detail: String,
}

/// Builds the summary from what was listed; `horizon` is how far ahead an
/// expiry counts as soon.
pub fn summarize(
    controls: &[ControlOwnership],
    exceptions: &[PolicyException],
    now: Timestamp,
    horizon: SignedDuration,
) -> Summary {
    let mut s = Summary {
        controls: controls.len(),
        ..Summary::default()
    };
    for c in controls {
        let key = key(c.namespace(), &c.name_any());
        let conditions = c.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
        if is(conditions, "Ready", "True") {
            s.controls_ready += 1;
        }
        if let Some(v) = find(conditions, "Valid", "False") {
            s.invalid.push(line(&key, format!("ControlOwnership {}", v.reason)));
        }
        if is(conditions, "ReviewOverdue", "True") {
            let due = c.status.as_ref().and_then(|s| s.next_review_due.clone());
            s.overdue
                .push(line(&key, format!("due {}", due.as_deref().unwrap_or("unknown"))));
        }
        for id in c.status.iter().flat_map(|s| &s.identities) {
            for d in &id.drift {
                s.drift.push(line(
                    &key,
                    format!("{}: {}/{} -> {}", id.service_account, d.kind, d.name, d.role_ref),
                ));
            }
        }
    }
    let mut expiring: Vec<(Timestamp, Line)> = Vec::new();
    for e in exceptions {
        let key = key(e.namespace(), &e.name_any());
        let status = e.status.as_ref();
        let phase = status.and_then(|s| s.phase);
        let conditions = status.map(|s| s.conditions.as_slice()).unwrap_or_default();
        let name = phase.map_or("New", phase_name);
        *s.phases.entry(name.to_string()).or_default() += 1;
        match phase {
            Some(Phase::Active | Phase::Pending) => {
                if let Ok(at) = crate::decide::time::parse(&e.spec.expires_at) {
                    let left = at.duration_since(now);
                    if left >= SignedDuration::ZERO && left <= horizon {
                        expiring.push((at, line(&key, format!("{} (in {})", e.spec.expires_at, human(left)))));
                    }
                }
                if let Some(c) = find(conditions, "Approved", "False") {
                    s.awaiting_approval
                        .push(line(&key, format!("{} (control {})", c.reason, e.spec.control)));
                }
            }
            Some(Phase::Rejected) => {
                let reason = find(conditions, "Valid", "False")
                    .or_else(|| find(conditions, "Stalled", "True"))
                    .map_or("Rejected", |c| c.reason.as_str());
                s.invalid.push(line(&key, format!("PolicyException {reason}")));
            }
            Some(Phase::Expired) | None => {}
        }
    }
    expiring.sort();
    s.expiring = expiring.into_iter().map(|(_, l)| l).collect();
    for lines in [&mut s.awaiting_approval, &mut s.overdue, &mut s.drift, &mut s.invalid] {
        lines.sort();
    }
    s
}

/// Renders the summary as text for a terminal.
pub fn render(s: &Summary, scope: &Scope, now: Timestamp, horizon: SignedDuration) -> String {
    let mut out = String::new();
    let scope = match scope {
        Scope::All => "all namespaces".to_string(),
        Scope::Namespace(ns) => format!("namespace {ns}"),
    };
    out.push_str(&format!(
        "Steward status, {scope}, at {}\n\n",
        crate::decide::time::format(now)
    ));
    out.push_str(&format!(
        "Controls:   {} ({} ready, {} invalid, {} review overdue, {} drifted)\n",
        s.controls,
        s.controls_ready,
        s.invalid
            .iter()
            .filter(|l| l.detail.starts_with("ControlOwnership "))
            .count(),
        s.overdue.len(),
        distinct(&s.drift),
    ));
    let total: usize = s.phases.values().sum();
    let phases: Vec<String> = ["Active", "Pending", "Expired", "Rejected", "New"]
        .iter()
        .filter_map(|p| s.phases.get(*p).map(|n| format!("{n} {p}")))
        .collect();
    let phases = if phases.is_empty() {
        String::new()
    } else {
        format!(" ({})", phases.join(", "))
    };
    out.push_str(&format!("Exceptions: {total}{phases}\n"));
    let sections = [
        (
            format!("Expiring within {}", crate::decide::duration::format(horizon)),
            &s.expiring,
        ),
        ("Awaiting approval".to_string(), &s.awaiting_approval),
        ("Review overdue".to_string(), &s.overdue),
        ("Drift".to_string(), &s.drift),
        ("Invalid or rejected".to_string(), &s.invalid),
    ];
    for (title, lines) in sections {
        if lines.is_empty() {
            continue;
        }
        out.push_str(&format!("\n{title}:\n"));
        let width = lines
            .iter()
            .take(SECTION_LINES)
            .map(|l| l.object.len())
            .max()
            .unwrap_or(0);
        for l in lines.iter().take(SECTION_LINES) {
            out.push_str(&format!("  {:width$}  {}\n", l.object, l.detail));
        }
        if lines.len() > SECTION_LINES {
            out.push_str(&format!("  … and {} more\n", lines.len() - SECTION_LINES));
        }
    }
    out
}

fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_unicode().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

fn key(ns: Option<String>, name: &str) -> String {
    format!("{}/{name}", ns.unwrap_or_default())
}

/// A line of the summary. Names and details come from objects tenants
/// write (a drifting binding's roleRef name may hold any character but `/`
/// and `%`): control characters are shown escaped, never sent to the
/// reader's terminal, where they could rewrite what the summary says.
fn line(object: &str, detail: String) -> Line {
    Line {
        object: printable(object),
        detail: printable(&detail),
    }
}

fn find<'a>(conditions: &'a [Condition], type_: &str, status: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_ && c.status == status)
}

fn is(conditions: &[Condition], type_: &str, status: &str) -> bool {
    find(conditions, type_, status).is_some()
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Pending => "Pending",
        Phase::Active => "Active",
        Phase::Expired => "Expired",
        Phase::Rejected => "Rejected",
    }
}

/// Objects with at least one line.
fn distinct(lines: &[Line]) -> usize {
    let mut objects: Vec<&str> = lines.iter().map(|l| l.object.as_str()).collect();
    objects.dedup();
    objects.len()
}

/// A duration to the minute: `3d 4h`, `2h 5m`, `40s`.
fn human(d: SignedDuration) -> String {
    let secs = d.as_secs();
    let (days, hours, minutes) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ControlOwnershipStatus, DriftBinding, IdentityStatus, PolicyExceptionStatus};
    use crate::decide::fixtures::{control, exception, ts};

    fn condition(type_: &str, status: &str, reason: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts("2026-11-01T00:00:00Z")),
            observed_generation: None,
        }
    }

    fn named_control(name: &str, conditions: Vec<Condition>, drift: Vec<DriftBinding>) -> ControlOwnership {
        let mut c = control();
        c.metadata.name = Some(name.into());
        c.metadata.namespace = Some("payments".into());
        c.status = Some(ControlOwnershipStatus {
            next_review_due: Some("2026-11-20T00:00:00Z".into()),
            identities: vec![IdentityStatus {
                service_account: "api".into(),
                drift,
                ..Default::default()
            }],
            conditions,
            ..Default::default()
        });
        c
    }

    fn named_exception(name: &str, phase: Option<Phase>, expires: &str, conditions: Vec<Condition>) -> PolicyException {
        let mut e = exception();
        e.metadata.name = Some(name.into());
        e.metadata.namespace = Some("payments".into());
        e.spec.expires_at = expires.into();
        e.status = phase.map(|p| PolicyExceptionStatus {
            phase: Some(p),
            conditions,
            ..Default::default()
        });
        e
    }

    const NOW: &str = "2026-11-29T12:00:00Z";

    fn week() -> SignedDuration {
        SignedDuration::from_hours(24 * 7)
    }

    #[test]
    fn a_tenants_escape_sequences_never_reach_the_terminal() {
        // A tenant's drifting binding names a roleRef with ANSI escapes
        // that would clear the screen and print a fake all-clear.
        let drift = DriftBinding {
            kind: "RoleBinding".into(),
            name: "x\u{1b}[2J".into(),
            role_ref: "Role/r\u{1b}[2J\rAll clear\u{7}".into(),
        };
        let controls = [named_control("c", vec![], vec![drift])];
        let s = summarize(&controls, &[], ts(NOW), week());
        let text = render(&s, &Scope::All, ts(NOW), week());
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");
        assert!(text.contains("x\\u{1b}[2J"), "{text}");
        assert!(text.contains("\\u{d}All clear\\u{7}"), "{text}");
    }

    #[test]
    fn counts_controls_and_exceptions_by_phase() {
        let controls = [
            named_control("ok", vec![condition("Ready", "True", "Reconciled")], vec![]),
            named_control(
                "bad",
                vec![
                    condition("Ready", "False", "Invalid"),
                    condition("Valid", "False", "SameOwner"),
                ],
                vec![],
            ),
        ];
        let exceptions = [
            named_exception("a", Some(Phase::Active), "2026-12-30T00:00:00Z", vec![]),
            named_exception("b", Some(Phase::Active), "2026-12-30T00:00:00Z", vec![]),
            named_exception("c", Some(Phase::Expired), "2026-11-01T00:00:00Z", vec![]),
            named_exception(
                "d",
                Some(Phase::Rejected),
                "2026-12-01T00:00:00Z",
                vec![condition("Valid", "False", "ApproverNotAllowed")],
            ),
            named_exception("e", None, "2026-12-01T00:00:00Z", vec![]),
        ];
        let s = summarize(&controls, &exceptions, ts(NOW), week());
        assert_eq!((s.controls, s.controls_ready), (2, 1));
        let phases: Vec<(&str, usize)> = s.phases.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(phases, [("Active", 2), ("Expired", 1), ("New", 1), ("Rejected", 1)]);
        assert_eq!(
            s.invalid,
            [
                line("payments/bad", "ControlOwnership SameOwner".into()),
                line("payments/d", "PolicyException ApproverNotAllowed".into()),
            ]
        );
        let text = render(&s, &Scope::Namespace("payments".into()), ts(NOW), week());
        assert!(
            text.contains("Controls:   2 (1 ready, 1 invalid, 0 review overdue, 0 drifted)"),
            "{text}"
        );
        assert!(
            text.contains("Exceptions: 5 (2 Active, 1 Expired, 1 Rejected, 1 New)"),
            "{text}"
        );
        assert!(
            text.starts_with("Steward status, namespace payments, at 2026-11-29T12:00:00Z"),
            "{text}"
        );
    }

    #[test]
    fn lists_what_expires_within_the_horizon_soonest_first() {
        let exceptions = [
            named_exception("later", Some(Phase::Active), "2026-12-02T12:00:00Z", vec![]),
            named_exception("soon", Some(Phase::Pending), "2026-11-29T14:30:00Z", vec![]),
            named_exception("beyond", Some(Phase::Active), "2026-12-29T12:00:00Z", vec![]),
            named_exception("gone", Some(Phase::Expired), "2026-11-29T12:30:00Z", vec![]),
        ];
        let s = summarize(&[], &exceptions, ts(NOW), week());
        assert_eq!(
            s.expiring,
            [
                line("payments/soon", "2026-11-29T14:30:00Z (in 2h 30m)".into()),
                line("payments/later", "2026-12-02T12:00:00Z (in 3d 0h)".into()),
            ]
        );
        let text = render(&s, &Scope::All, ts(NOW), week());
        assert!(
            text.contains("Expiring within 7d:\n  payments/soon   2026-11-29T14:30:00Z"),
            "{text}"
        );
    }

    #[test]
    fn reports_overdue_reviews_drift_and_awaited_approvals() {
        let drift = DriftBinding {
            kind: "ClusterRoleBinding".into(),
            name: "legacy-admin".into(),
            role_ref: "ClusterRole/cluster-admin".into(),
        };
        let controls = [named_control(
            "c",
            vec![
                condition("Ready", "True", "Reconciled"),
                condition("ReviewOverdue", "True", "ReviewOverdue"),
                condition("Drifted", "True", "DriftDetected"),
            ],
            vec![drift],
        )];
        let exceptions = [named_exception(
            "wait",
            Some(Phase::Pending),
            "2027-01-29T12:00:00Z",
            vec![condition("Approved", "False", "AwaitingApproval")],
        )];
        let s = summarize(&controls, &exceptions, ts(NOW), week());
        assert_eq!(s.overdue, [line("payments/c", "due 2026-11-20T00:00:00Z".into())]);
        assert_eq!(
            s.drift,
            [line(
                "payments/c",
                "api: ClusterRoleBinding/legacy-admin -> ClusterRole/cluster-admin".into()
            )]
        );
        assert_eq!(
            s.awaiting_approval,
            [line("payments/wait", "AwaitingApproval (control payments)".into())]
        );
        let text = render(&s, &Scope::All, ts(NOW), week());
        assert!(text.contains("1 review overdue, 1 drifted"), "{text}");
        assert!(text.contains("\nDrift:\n"), "{text}");
    }

    #[test]
    fn long_sections_stay_on_one_screen() {
        let exceptions: Vec<PolicyException> = (0..25)
            .map(|i| named_exception(&format!("e{i:02}"), Some(Phase::Active), "2026-11-30T00:00:00Z", vec![]))
            .collect();
        let s = summarize(&[], &exceptions, ts(NOW), week());
        let text = render(&s, &Scope::All, ts(NOW), week());
        assert!(text.contains("… and 15 more"), "{text}");
        assert!(text.lines().count() < 24, "{text}");
    }

    #[test]
    fn nothing_listed_is_a_short_summary() {
        let s = summarize(&[], &[], ts(NOW), week());
        let text = render(&s, &Scope::All, ts(NOW), week());
        assert!(
            text.contains("Controls:   0 (") && text.contains("Exceptions: 0\n"),
            "{text}"
        );
    }
}
