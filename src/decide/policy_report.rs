//! The per-namespace report (PolicyReport in `wgpolicyk8s.io/v1alpha2`,
//! Report in `openreports.io/v1alpha1`, read by Policy Reporter and
//! friends), built purely from the recorded status of
//! the namespace's Steward objects. No timestamps inside the results, so an
//! unchanged namespace yields an identical report (and no write).

use std::collections::BTreeMap;

use kube::{Resource, ResourceExt};
use serde::{Deserialize, Serialize};

use super::conditions::{TRUE, find, is_true, types};
use crate::api::{ControlOwnership, Phase, PolicyException};

/// Name of the report in every namespace.
pub const REPORT_NAME: &str = "steward";
/// `source` of every result.
pub const SOURCE: &str = "steward";
/// Most results one report lists. A namespace with thousands of objects
/// would otherwise exceed the API server's request size limit; the summary
/// still counts every result, and failures are listed first.
pub const MAX_RESULTS: usize = 500;

/// One result, in the upstream field names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportResult {
    /// The Steward object kind the check belongs to.
    pub policy: String,
    /// The check.
    pub rule: String,
    /// The outcome.
    pub result: Outcome,
    /// What was found.
    pub message: String,
    /// Always `steward`.
    pub source: String,
    /// Whether the result counts towards a score.
    pub scored: bool,
    /// How much it matters, for Policy Reporter's targets and filters.
    pub severity: Severity,
    /// The area of the check.
    pub category: String,
    /// The object checked.
    pub resources: Vec<ResourceRef>,
    /// Extra facts (binding names, exception names).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

/// A reference to the object a result is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRef {
    /// apiVersion.
    pub api_version: String,
    /// kind.
    pub kind: String,
    /// name.
    pub name: String,
    /// namespace.
    pub namespace: String,
    /// uid.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

/// The outcome of one check, in the upstream spelling. Declared from the
/// most to the least severe: a report cut short keeps failures first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The check failed.
    Fail,
    /// The check could not be evaluated.
    Error,
    /// Needs attention, not a failure.
    Warn,
    /// The check passed.
    Pass,
    /// Not evaluated on purpose (an Active exception).
    Skip,
}

/// The upstream severities (`critical` is not used: Steward's findings
/// are a team's to act on, not an incident).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A grant or binding beyond what was declared, or a spec that
    /// enforces nothing.
    High,
    /// An ownership or review obligation missed.
    Medium,
    /// A deadline coming.
    Low,
    /// For the record.
    Info,
}

/// Counts per result.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Passed checks.
    pub pass: i64,
    /// Failed checks.
    pub fail: i64,
    /// Warnings.
    pub warn: i64,
    /// Checks that could not be evaluated.
    pub error: i64,
    /// Skipped checks.
    pub skip: i64,
}

/// The content Steward owns in a report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Results, in a stable order.
    pub results: Vec<ReportResult>,
    /// Their counts.
    pub summary: Summary,
}

fn reference<K: Resource<DynamicType = ()>>(obj: &K) -> ResourceRef {
    ResourceRef {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: obj.name_any(),
        namespace: obj.namespace().unwrap_or_default(),
        uid: obj.uid().unwrap_or_default(),
    }
}

/// Category and severity of each rule's outcome.
fn rated(rule: &str, outcome: Outcome) -> (&'static str, Severity) {
    let category = match rule {
        "owner-and-backup-owner" => "Ownership",
        "review-up-to-date" => "Review",
        "no-undeclared-bindings" => "Drift",
        "valid-spec" => "Validity",
        _ => "Exceptions",
    };
    let severity = match (rule, outcome) {
        (_, Outcome::Pass | Outcome::Skip) => Severity::Info,
        ("no-undeclared-bindings" | "valid-spec", _) => Severity::High,
        ("owner-and-backup-owner" | "review-up-to-date", Outcome::Fail | Outcome::Error) => Severity::Medium,
        ("exception-expired", _) => Severity::Info,
        _ => Severity::Low,
    };
    (category, severity)
}

fn result<K: Resource<DynamicType = ()>>(obj: &K, rule: &str, outcome: Outcome, message: String) -> ReportResult {
    let (category, severity) = rated(rule, outcome);
    ReportResult {
        policy: K::kind(&()).into_owned(),
        rule: rule.into(),
        result: outcome,
        message,
        source: SOURCE.into(),
        scored: true,
        severity,
        category: category.into(),
        resources: vec![reference(obj)],
        properties: BTreeMap::new(),
    }
}

/// The report for one namespace's objects; `None` when it has none.
pub fn build(controls: &[&ControlOwnership], exceptions: &[&PolicyException]) -> Option<Report> {
    if controls.is_empty() && exceptions.is_empty() {
        return None;
    }
    let mut controls: Vec<_> = controls.to_vec();
    controls.sort_by_key(|c| c.name_any());
    let mut exceptions: Vec<_> = exceptions.to_vec();
    exceptions.sort_by_key(|e| e.name_any());
    let mut results: Vec<ReportResult> = controls.into_iter().flat_map(control_results).collect();
    results.extend(exceptions.into_iter().filter_map(exception_result));
    let summary = summarize(&results);
    if results.len() > MAX_RESULTS {
        // Stable: keeps the name order within each outcome.
        results.sort_by_key(|r| r.result);
        results.truncate(MAX_RESULTS);
    }
    Some(Report { results, summary })
}

/// A control's results, from its recorded status (none before it has one).
fn control_results(co: &ControlOwnership) -> Vec<ReportResult> {
    let Some(status) = &co.status else {
        return Vec::new();
    };
    let mut results = Vec::new();
    let owners_ok = !co.spec.owner.name.trim().is_empty()
        && !co.spec.backup_owner.name.trim().is_empty()
        && co.spec.owner.name.trim() != co.spec.backup_owner.name.trim();
    results.push(if owners_ok {
        let message = format!(
            "owned by {}, backed up by {}",
            co.spec.owner.name, co.spec.backup_owner.name
        );
        result(co, "owner-and-backup-owner", Outcome::Pass, message)
    } else {
        let message = "the control needs an owner and a different backup owner".into();
        result(co, "owner-and-backup-owner", Outcome::Fail, message)
    });
    if let Some(review) = find(&status.conditions, types::REVIEW_OVERDUE) {
        // Due soon warns (Policy Reporter delivers warnings to its targets)
        // before overdue fails.
        let soon = find(&status.conditions, types::REVIEW_DUE_SOON).filter(|c| c.status == TRUE);
        let (outcome, message) = match (review.status == TRUE, soon) {
            (true, _) => (Outcome::Fail, review.message.clone()),
            (false, Some(soon)) => (Outcome::Warn, soon.message.clone()),
            (false, None) => (Outcome::Pass, review.message.clone()),
        };
        results.push(result(co, "review-up-to-date", outcome, message));
    }
    for id in &status.identities {
        for d in &id.drift {
            let message = format!(
                "{} {} ({}) grants {} undeclared permissions",
                d.kind, d.name, d.role_ref, id.service_account
            );
            let mut r = result(co, "no-undeclared-bindings", Outcome::Fail, message);
            r.properties.insert("serviceAccount".into(), id.service_account.clone());
            r.properties.insert("binding".into(), format!("{}/{}", d.kind, d.name));
            results.push(r);
        }
    }
    if is_true(&status.conditions, types::STALLED) && owners_ok {
        let message = find(&status.conditions, types::STALLED)
            .map(|c| c.message.clone())
            .unwrap_or_default();
        results.push(result(co, "valid-spec", Outcome::Fail, message));
    }
    results
}

/// An exception's result: Active ones are skipped checks, or warn in their
/// last stretch (ExpiringSoon); Expired ones still present warn; Pending and
/// Rejected ones are not reported.
fn exception_result(pe: &PolicyException) -> Option<ReportResult> {
    let status = pe.status.as_ref()?;
    let until = status.expires_at.clone().unwrap_or_default();
    let control = &pe.spec.control;
    let mut r = match status.phase? {
        Phase::Active if is_true(&status.conditions, types::EXPIRING_SOON) => result(
            pe,
            "exception-expiring-soon",
            Outcome::Warn,
            format!("exception to {control} expires at {until}; its grant and tolerations end then"),
        ),
        Phase::Active => result(
            pe,
            "exception-active",
            Outcome::Skip,
            format!("exception to {control} active until {until}"),
        ),
        Phase::Expired => result(
            pe,
            "exception-expired",
            Outcome::Warn,
            format!("exception to {control} expired at {until} and is still present; remove it from Git"),
        ),
        Phase::Rejected | Phase::Pending => return None,
    };
    r.properties.insert("exception".into(), pe.name_any());
    r.properties.insert("control".into(), control.clone());
    r.properties.insert("ticket".into(), pe.spec.ticket.clone());
    Some(r)
}

fn summarize(results: &[ReportResult]) -> Summary {
    let mut summary = Summary::default();
    for r in results {
        let count = match r.result {
            Outcome::Pass => &mut summary.pass,
            Outcome::Fail => &mut summary.fail,
            Outcome::Warn => &mut summary.warn,
            Outcome::Skip => &mut summary.skip,
            Outcome::Error => &mut summary.error,
        };
        *count += 1;
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::control;
    use crate::decide::exception;
    use crate::decide::fixtures::{ceiling, control as co_fixture, exception as pe_fixture, nothing_observed, ts};
    use jiff::Timestamp;

    /// The fixture control with the status decided for it at `now`, with
    /// nothing else observed.
    fn decided_control(now: Timestamp) -> ControlOwnership {
        let mut co = co_fixture();
        co.status = Some(
            control::decide(
                &co,
                &nothing_observed(),
                &ceiling(),
                crate::decide::approval::Trust::AssumeApproved,
                now,
            )
            .status,
        );
        co
    }

    /// The fixture exception to `co`, named `name`, with the status decided
    /// for it at `now`.
    fn decided_exception(name: &str, co: &ControlOwnership, now: Timestamp) -> PolicyException {
        let mut pe = pe_fixture();
        pe.metadata.name = Some(name.into());
        pe.status = Some(
            exception::decide(
                &pe,
                Some(co),
                &ceiling(),
                crate::decide::approval::Trust::AssumeApproved,
                now,
            )
            .status,
        );
        pe
    }

    #[test]
    fn one_object_in_each_state() {
        let now = ts("2026-11-28T12:00:00Z");
        let co = decided_control(now);
        let active = decided_exception("debug", &co, now);
        // The fixture's window ends 2026-11-29T10:00Z; its last fifth starts
        // 2026-11-29T05:12Z.
        let soon = decided_exception("ending", &co, ts("2026-11-29T06:00:00Z"));
        let expired = decided_exception("old", &co, ts("2026-12-01T00:00:00Z"));
        // Due 2026-12-20: due soon from 2026-12-06.
        let due_soon = decided_control(ts("2026-12-10T00:00:00Z"));
        let report = build(&[&co], &[&active, &soon, &expired]).unwrap();
        let got: Vec<_> = report
            .results
            .iter()
            .map(|r| (r.rule.as_str(), r.result, r.severity, r.category.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("owner-and-backup-owner", Outcome::Pass, Severity::Info, "Ownership"),
                ("review-up-to-date", Outcome::Pass, Severity::Info, "Review"),
                ("exception-active", Outcome::Skip, Severity::Info, "Exceptions"),
                ("exception-expiring-soon", Outcome::Warn, Severity::Low, "Exceptions"),
                ("exception-expired", Outcome::Warn, Severity::Info, "Exceptions"),
            ]
        );
        assert_eq!(
            report.summary,
            Summary {
                pass: 2,
                fail: 0,
                warn: 2,
                error: 0,
                skip: 1
            }
        );
        let review = build(&[&due_soon], &[]).unwrap();
        let r = &review.results[1];
        assert_eq!(
            (r.rule.as_str(), r.result, r.severity),
            ("review-up-to-date", Outcome::Warn, Severity::Low)
        );
        assert!(
            r.message.contains("review due at 2026-12-20T00:00:00Z"),
            "{}",
            r.message
        );
        assert_eq!(report.results[2].properties["exception"], "debug");
        assert!(build(&[], &[]).is_none());
    }

    #[test]
    fn large_namespaces_list_failures_first_and_count_everything() {
        let now = ts("2026-12-01T00:00:00Z");
        let co = co_fixture();
        let many: Vec<PolicyException> = (0..1200)
            .map(|i| decided_exception(&format!("pe-{i:04}"), &co, now))
            .collect();
        let mut drifted = decided_control(now);
        let status = drifted.status.as_mut().expect("decided");
        status.identities[0].drift.push(crate::api::DriftBinding {
            kind: "ClusterRoleBinding".into(),
            name: "x".into(),
            role_ref: "ClusterRole/admin".into(),
        });
        let refs: Vec<&PolicyException> = many.iter().collect();
        let report = build(&[&drifted], &refs).unwrap();
        assert_eq!(report.results.len(), MAX_RESULTS);
        assert_eq!(report.results[0].result, Outcome::Fail);
        assert_eq!(report.summary.warn, 1200);
        assert_eq!(report.summary.fail, 1);
    }
}
