//! The per-namespace report (PolicyReport in `wgpolicyk8s.io/v1alpha2`,
//! Report in `openreports.io/v1alpha1`, read by Policy Reporter and
//! friends), built purely from the recorded status of
//! the namespace's Steward objects. No timestamps inside the results, so an
//! unchanged namespace yields an identical report (and no write).

use std::collections::BTreeMap;

use kube::{Resource, ResourceExt};
use serde::{Deserialize, Serialize};

use super::approval::reasons as approval;
use super::conditions::{FALSE, TRUE, find, is_true, types};
use crate::api::approval::APPROVE_ANNOTATION;
use crate::api::{ControlOwnership, Phase, PolicyException, PolicyExceptionStatus};

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
    /// A grant or binding beyond what was declared, a spec that enforces
    /// nothing, or an exception in force that no approver has approved
    /// (break glass not yet reviewed).
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

/// Rule of an exception in force on a break-glass approval no approver has
/// reviewed yet.
pub const EXCEPTION_BREAK_GLASS: &str = "exception-break-glass";
/// Rule of an exception that waits for approval (nothing applies).
pub const EXCEPTION_AWAITING_APPROVAL: &str = "exception-awaiting-approval";

/// Whether `status` says the exception awaits approval: Pending, with
/// `Active=False` for AwaitingApproval or RequesterUnverified. (An exception
/// that expired unapproved awaits nothing: it can no longer be approved.)
pub fn awaits_approval(status: &PolicyExceptionStatus) -> bool {
    status.phase == Some(Phase::Pending)
        && find(&status.conditions, types::ACTIVE).is_some_and(|c| {
            c.status == FALSE
                && [approval::AWAITING_APPROVAL, approval::REQUESTER_UNVERIFIED].contains(&c.reason.as_str())
        })
}

/// Whether `status` says the exception stands on a break-glass approval no
/// approver has reviewed: `BreakGlass=True` while Pending or Active. Once
/// Expired it can no longer be reviewed (admission refuses approvals of an
/// expired exception), so it is no longer reported as awaiting review.
pub fn break_glass_unreviewed(status: &PolicyExceptionStatus) -> bool {
    matches!(status.phase, Some(Phase::Pending | Phase::Active)) && is_true(&status.conditions, types::BREAK_GLASS)
}

/// Category and severity of each rule's outcome.
fn rated(rule: &str, outcome: Outcome) -> (&'static str, Severity) {
    let category = match rule {
        "owner-and-backup-owner" => "Ownership",
        "review-up-to-date" => "Review",
        "no-undeclared-bindings" => "Drift",
        "valid-spec" => "Validity",
        EXCEPTION_BREAK_GLASS => "Break Glass",
        EXCEPTION_AWAITING_APPROVAL => "Approval",
        _ => "Exceptions",
    };
    let severity = match (rule, outcome) {
        (_, Outcome::Pass | Outcome::Skip) => Severity::Info,
        ("no-undeclared-bindings" | "valid-spec" | EXCEPTION_BREAK_GLASS, _) => Severity::High,
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

/// An exception's result: one in force (or about to be) on a break-glass
/// approval no approver has reviewed fails, whatever its phase; one awaiting
/// approval warns; Active ones are skipped checks, or warn in their last
/// stretch (ExpiringSoon); Expired ones still present warn; other Pending
/// ones and Rejected ones are not reported.
fn exception_result(pe: &PolicyException) -> Option<ReportResult> {
    let status = pe.status.as_ref()?;
    let until = status.expires_at.clone().unwrap_or_default();
    let control = &pe.spec.control;
    let approved_by = status
        .approval
        .as_ref()
        .and_then(|a| a.approved_by.clone())
        .filter(|by| !by.is_empty());
    let by = approved_by.as_deref().unwrap_or("an unknown user");
    let mut r = match status.phase? {
        _ if break_glass_unreviewed(status) => result(
            pe,
            EXCEPTION_BREAK_GLASS,
            Outcome::Fail,
            format!(
                "exception to {control} was approved by break glass ({by}), not by an approver, and no approver \
                 has reviewed it yet; an approver of {control} must review it: kubectl annotate policyexception {} \
                 -n {} {APPROVE_ANNOTATION}=<their user name>",
                pe.name_any(),
                pe.namespace().unwrap_or_default(),
            ),
        ),
        Phase::Pending if awaits_approval(status) => {
            let why = find(&status.conditions, types::APPROVED)
                .or_else(|| find(&status.conditions, types::ACTIVE))
                .map(|c| c.message.as_str())
                .unwrap_or_default();
            result(
                pe,
                EXCEPTION_AWAITING_APPROVAL,
                Outcome::Warn,
                format!("exception to {control} awaits approval; nothing applies until then: {why}"),
            )
        }
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
        Phase::Expired => {
            let mut message =
                format!("exception to {control} expired at {until} and is still present; remove it from Git");
            if is_true(&status.conditions, types::BREAK_GLASS) {
                message.push_str(&format!(
                    "; it was approved by break glass ({by}) and no approver reviewed it before it expired"
                ));
            }
            result(pe, "exception-expired", Outcome::Warn, message)
        }
        Phase::Rejected | Phase::Pending => return None,
    };
    r.properties.insert("exception".into(), pe.name_any());
    r.properties.insert("control".into(), control.clone());
    r.properties.insert("ticket".into(), pe.spec.ticket.clone());
    if let Some(by) = approved_by {
        r.properties.insert("approvedBy".into(), by);
    }
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
    fn an_unreviewed_break_glass_fails_loudly_until_an_approver_reviews_it() {
        use super::approval_fixtures::{break_glass, reviewed};
        let now = ts("2026-11-28T12:00:00Z");
        let co = decided_control(now);
        let glass = break_glass("shop", "glass", now);
        assert!(break_glass_unreviewed(glass.status.as_ref().expect("decided")));
        let report = build(&[&co], &[&glass]).unwrap();
        let r = &report.results[2];
        assert_eq!(
            (r.rule.as_str(), r.result, r.severity, r.category.as_str()),
            (EXCEPTION_BREAK_GLASS, Outcome::Fail, Severity::High, "Break Glass")
        );
        // Who approved it, and that an approver must review it (and how).
        assert!(r.message.contains("carol@example.com (break glass)"), "{}", r.message);
        assert!(
            r.message.contains("an approver of payments must review it"),
            "{}",
            r.message
        );
        assert!(
            r.message
                .contains("kubectl annotate policyexception glass -n shop steward.dev/approve="),
            "{}",
            r.message
        );
        assert_eq!(r.properties["approvedBy"], "carol@example.com (break glass)");
        assert_eq!(report.summary.fail, 1);
        // Even in its last stretch it fails rather than warns.
        let late = break_glass("shop", "glass", ts("2026-11-29T06:00:00Z"));
        let r = &build(&[], &[&late]).unwrap().results[0];
        assert_eq!((r.rule.as_str(), r.result), (EXCEPTION_BREAK_GLASS, Outcome::Fail));

        // Reviewed: back to the result of any Active exception.
        let done = reviewed("shop", "glass", now);
        let report = build(&[], &[&done]).unwrap();
        let r = &report.results[0];
        assert_eq!(
            (r.rule.as_str(), r.result, r.severity, r.category.as_str()),
            ("exception-active", Outcome::Skip, Severity::Info, "Exceptions")
        );
        assert_eq!(
            r.properties["approvedBy"],
            "carol@example.com (break glass), alice@example.com"
        );
        assert_eq!(report.summary.fail, 0);

        // Expired unreviewed: no longer reviewable, so the expired warning,
        // which says it was never reviewed.
        let over = break_glass("shop", "glass", ts("2026-12-01T00:00:00Z"));
        assert!(!break_glass_unreviewed(over.status.as_ref().expect("decided")));
        let r = &build(&[], &[&over]).unwrap().results[0];
        assert_eq!((r.rule.as_str(), r.result), ("exception-expired", Outcome::Warn));
        assert!(
            r.message
                .contains("approved by break glass (carol@example.com (break glass)) and no approver reviewed it"),
            "{}",
            r.message
        );
    }

    #[test]
    fn an_exception_awaiting_approval_warns_with_what_is_missing() {
        use super::approval_fixtures::{awaiting, unverified};
        let now = ts("2026-11-28T12:00:00Z");
        let waiting = awaiting("shop", "waiting", now);
        let nobody = unverified("shop", "nobody", now);
        for pe in [&waiting, &nobody] {
            let status = pe.status.as_ref().expect("decided");
            assert_eq!(status.phase, Some(Phase::Pending));
            assert!(awaits_approval(status));
            assert!(!break_glass_unreviewed(status));
        }
        let report = build(&[], &[&nobody, &waiting]).unwrap();
        let got: Vec<_> = report
            .results
            .iter()
            .map(|r| {
                (
                    r.properties["exception"].as_str(),
                    r.rule.as_str(),
                    r.result,
                    r.severity,
                    r.category.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "nobody",
                    EXCEPTION_AWAITING_APPROVAL,
                    Outcome::Warn,
                    Severity::Low,
                    "Approval"
                ),
                (
                    "waiting",
                    EXCEPTION_AWAITING_APPROVAL,
                    Outcome::Warn,
                    Severity::Low,
                    "Approval"
                ),
            ]
        );
        // The message is the Approved condition's: what is missing, how to give it.
        let approved = find(&waiting.status.as_ref().expect("decided").conditions, types::APPROVED).expect("Approved");
        assert_eq!(approved.status, FALSE);
        let r = &report.results[1];
        assert!(
            r.message.starts_with("exception to payments awaits approval"),
            "{}",
            r.message
        );
        assert!(r.message.ends_with(&approved.message), "{}", r.message);
        assert!(r.message.contains("approved by 0 of the 1"), "{}", r.message);
        assert!(
            report.results[0]
                .message
                .contains("no verified record of who wrote this exception"),
            "{}",
            report.results[0].message
        );
        assert_eq!(report.summary.warn, 2);

        // Once it expires unapproved it awaits nothing: the expired warning.
        let over = awaiting("shop", "waiting", ts("2026-12-01T00:00:00Z"));
        assert!(!awaits_approval(over.status.as_ref().expect("decided")));
        let r = &build(&[], &[&over]).unwrap().results[0];
        assert_eq!((r.rule.as_str(), r.result), ("exception-expired", Outcome::Warn));
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

/// Exceptions whose status the controller decided from signed approval
/// records (awaiting approval, break glass, reviewed), for the tests of
/// everything that reads that status.
#[cfg(test)]
pub(crate) mod approval_fixtures {
    use jiff::Timestamp;

    use crate::api::approval::{APPROVALS_ANNOTATION, REQUESTED_BY_ANNOTATION, Via};
    use crate::api::{BreakGlass, ControlOwnership, PolicyException};
    use crate::decide::approval::{Key, Trust, digest, record};
    use crate::decide::exception;
    use crate::decide::fixtures::{ceiling, control, exception as pe_fixture};

    /// The requester of every fixture exception.
    pub const REQUESTER: &str = "carol@example.com";
    /// An approver of the fixture control.
    pub const APPROVER: &str = "alice@example.com";
    /// The group that may break glass.
    pub const ON_CALL: &str = "oncall";

    fn key() -> Key {
        Key::new(&[7; 32]).expect("a long enough key")
    }

    /// The fixture control, whose `oncall` members may break glass for a
    /// day (the fixture exception's whole window).
    pub fn control_with_break_glass() -> ControlOwnership {
        let mut co = control();
        co.spec
            .exception_policy
            .get_or_insert_with(Default::default)
            .break_glass = Some(BreakGlass {
            groups: vec![ON_CALL.into()],
            max_duration: "1d".into(),
        });
        co
    }

    /// The fixture exception named `name` in `namespace`, with the records
    /// admission would write: requested by [`REQUESTER`] (unless
    /// `requested` is false), then each of `approvals` (user, how).
    pub fn signed(namespace: &str, name: &str, requested: bool, approvals: &[(&str, Via)]) -> PolicyException {
        let mut pe = pe_fixture();
        pe.metadata.name = Some(name.into());
        pe.metadata.namespace = Some(namespace.into());
        let key = key();
        let d = digest(&pe);
        let at = "2026-11-28T09:30:00Z";
        let sign = |user: &str, via: Via| {
            let groups = if via == Via::BreakGlass {
                vec![ON_CALL.to_string()]
            } else {
                vec![]
            };
            record(&key, (namespace, name), user, groups, via, &d, at)
        };
        let annotations = pe.metadata.annotations.get_or_insert_with(Default::default);
        if requested {
            let r = sign(REQUESTER, Via::Request);
            annotations.insert(REQUESTED_BY_ANNOTATION.into(), serde_json::to_string(&r).expect("json"));
        }
        let a: Vec<_> = approvals.iter().map(|(user, via)| sign(user, *via)).collect();
        annotations.insert(APPROVALS_ANNOTATION.into(), serde_json::to_string(&a).expect("json"));
        pe
    }

    /// `pe` with the status the controller decides for it at `now`,
    /// verifying its records, against [`control_with_break_glass`].
    pub fn decided(mut pe: PolicyException, now: Timestamp) -> PolicyException {
        let co = control_with_break_glass();
        let key = key();
        pe.status = Some(exception::decide(&pe, Some(&co), &ceiling(), Trust::Verify(&key), now).status);
        pe
    }

    /// Approved by its own requester in an emergency, not reviewed.
    pub fn break_glass(namespace: &str, name: &str, now: Timestamp) -> PolicyException {
        decided(signed(namespace, name, true, &[(REQUESTER, Via::BreakGlass)]), now)
    }

    /// Approved by break glass, then reviewed by an approver.
    pub fn reviewed(namespace: &str, name: &str, now: Timestamp) -> PolicyException {
        let approvals = [(REQUESTER, Via::BreakGlass), (APPROVER, Via::Approver)];
        decided(signed(namespace, name, true, &approvals), now)
    }

    /// Requested, not approved.
    pub fn awaiting(namespace: &str, name: &str, now: Timestamp) -> PolicyException {
        decided(signed(namespace, name, true, &[]), now)
    }

    /// Without a verified requester.
    pub fn unverified(namespace: &str, name: &str, now: Timestamp) -> PolicyException {
        decided(signed(namespace, name, false, &[]), now)
    }
}
