//! The one validation of both kinds, shared by the controller, `steward
//! validate` and admission. Every failure names the field and the value.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::rbac::v1::PolicyRule;
use regex::Regex;

use super::ceiling::Ceiling;
use super::invalid_spec::{Invalid, Reason};
use super::{duration, time};
use crate::api::{ControlOwnershipSpec, PolicyExceptionSpec, limits};

/// Default longest exception window.
pub const DEFAULT_MAX_DURATION: SignedDuration = SignedDuration::from_hours(30 * 24);
/// No control may allow a longer exception window than this.
pub const HARD_CAP_MAX_DURATION: SignedDuration = SignedDuration::from_hours(90 * 24);
/// Longest regex source accepted for ticketPattern.
const MAX_PATTERN_LEN: usize = 1024;

/// What exceptions to a control must satisfy, parsed from its spec.
#[derive(Clone, Debug)]
pub struct ExceptionRules {
    /// Longest window.
    pub max_duration: SignedDuration,
    /// Pattern tickets must match.
    pub ticket_pattern: Option<Regex>,
    /// Who may approve: approvers plus owner and backup owner names.
    pub approvers: Vec<String>,
}

/// A ControlOwnership spec that passed validation, with parsed values.
#[derive(Clone, Debug)]
pub struct ValidControl {
    /// Time between reviews.
    pub review_interval: SignedDuration,
    /// When it was last reviewed.
    pub last_reviewed: Option<Timestamp>,
    /// Rules for exceptions to it.
    pub exceptions: ExceptionRules,
}

/// A PolicyException's window, once valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// When it starts.
    pub starts_at: Timestamp,
    /// When it ends.
    pub expires_at: Timestamp,
}

fn required(value: &str, field: &str, errors: &mut Vec<Invalid>) {
    if value.trim().is_empty() {
        errors.push(Invalid::new(
            Reason::MissingField,
            field,
            format!("{field} is required and must not be empty"),
        ));
    }
}

/// The CRDs bound these fields (`maxLength`), so the API server refuses a
/// longer value; checking here too keeps `steward validate` in step offline.
/// Counted in characters, as the API server counts them.
fn at_most(value: &str, max: usize, field: &str, errors: &mut Vec<Invalid>) {
    let n = value.chars().count();
    if n > max {
        errors.push(Invalid::new(
            Reason::TooLong,
            field,
            format!("{field} is {n} characters long; at most {max} are allowed"),
        ));
    }
}

/// A service account name must be a plain name in the object's own
/// namespace: `other:sa` or `system:serviceaccount:ns:sa` forms are refused.
pub fn check_service_account(name: &str, field: &str, errors: &mut Vec<Invalid>) {
    if name.trim().is_empty() {
        errors.push(Invalid::new(
            Reason::MissingField,
            field,
            format!("{field} is required and must not be empty"),
        ));
    } else if name.contains(':') || name.contains('/') {
        errors.push(Invalid::new(
            Reason::OutsideNamespace,
            field,
            format!(
                "service account {name:?} must be a plain name in this namespace, not a reference to another namespace"
            ),
        ));
    } else if !is_dns_subdomain(name) {
        errors.push(Invalid::new(
            Reason::InvalidName,
            field,
            format!("service account {name:?} is not a valid name (lowercase letters, digits, '-' and '.', at most 253 characters)"),
        ));
    }
}

fn is_dns_subdomain(s: &str) -> bool {
    let ok_chars = s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let ends_ok = s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
    ok_chars && ends_ok && s.len() <= 253
}

fn parse_duration(value: &str, field: &str, errors: &mut Vec<Invalid>) -> Option<SignedDuration> {
    match duration::parse(value) {
        Ok(d) => Some(d),
        Err(e) => {
            errors.push(Invalid::new(Reason::InvalidDuration, field, e.to_string()));
            None
        }
    }
}

fn parse_time(value: &str, field: &str, errors: &mut Vec<Invalid>) -> Option<Timestamp> {
    match time::parse(value) {
        Ok(t) => Some(t),
        Err(e) => {
            errors.push(Invalid::new(Reason::InvalidTimestamp, field, e.to_string()));
            None
        }
    }
}

/// The rules exceptions to this control must satisfy.
pub fn exception_rules(spec: &ControlOwnershipSpec) -> Result<ExceptionRules, Vec<Invalid>> {
    let mut errors = Vec::new();
    let policy = spec.exception_policy.clone().unwrap_or_default();
    let max_duration = match &policy.max_duration {
        None => Some(DEFAULT_MAX_DURATION),
        Some(s) => parse_duration(s, "spec.exceptionPolicy.maxDuration", &mut errors).and_then(|d| {
            if d > HARD_CAP_MAX_DURATION {
                errors.push(Invalid::new(
                    Reason::InvalidDuration,
                    "spec.exceptionPolicy.maxDuration",
                    format!("{s:?} exceeds the hard cap of 90d"),
                ));
                None
            } else {
                Some(d)
            }
        }),
    };
    let ticket_pattern = match &policy.ticket_pattern {
        None => None,
        Some(p) if p.len() > MAX_PATTERN_LEN => {
            errors.push(Invalid::new(
                Reason::InvalidTicketPattern,
                "spec.exceptionPolicy.ticketPattern",
                format!(
                    "pattern is {} characters long; at most {MAX_PATTERN_LEN} are accepted",
                    p.len()
                ),
            ));
            None
        }
        Some(p) => match regex::RegexBuilder::new(p).size_limit(1 << 20).build() {
            Ok(r) => Some(r),
            Err(e) => {
                errors.push(Invalid::new(
                    Reason::InvalidTicketPattern,
                    "spec.exceptionPolicy.ticketPattern",
                    format!(
                        "{p:?} is not a valid regular expression: {}",
                        first_line(&e.to_string())
                    ),
                ));
                None
            }
        },
    };
    let mut approvers: Vec<String> = spec.approvers.clone();
    approvers.push(spec.owner.name.clone());
    approvers.push(spec.backup_owner.name.clone());
    approvers.retain(|a| !a.trim().is_empty());
    match (errors.is_empty(), max_duration) {
        (true, Some(max_duration)) => Ok(ExceptionRules {
            max_duration,
            ticket_pattern,
            approvers,
        }),
        _ => Err(errors),
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}

/// Errors in one workload identity's declaration (index `i`).
pub fn identity_errors(
    service_account: &str,
    task: &str,
    rules: &[PolicyRule],
    i: usize,
    ceiling: &Ceiling,
) -> Vec<Invalid> {
    let at = format!("spec.workloadIdentities[{i}]");
    let mut errors = Vec::new();
    check_service_account(service_account, &format!("{at}.serviceAccount"), &mut errors);
    required(task, &format!("{at}.task"), &mut errors);
    at_most(task, limits::SENTENCE, &format!("{at}.task"), &mut errors);
    errors.extend(ceiling.check(rules, &format!("{at}.rules")));
    errors
}

/// Validates a ControlOwnership spec on its own and against the ceiling.
pub fn control(spec: &ControlOwnershipSpec, ceiling: &Ceiling) -> Result<ValidControl, Vec<Invalid>> {
    let mut errors = Vec::new();
    required(&spec.owner.name, "spec.owner.name", &mut errors);
    required(&spec.backup_owner.name, "spec.backupOwner.name", &mut errors);
    at_most(&spec.owner.name, limits::NAME, "spec.owner.name", &mut errors);
    at_most(
        &spec.backup_owner.name,
        limits::NAME,
        "spec.backupOwner.name",
        &mut errors,
    );
    if spec.workload_identities.len() > limits::IDENTITIES {
        errors.push(Invalid::new(
            Reason::TooLong,
            "spec.workloadIdentities",
            format!(
                "spec.workloadIdentities has {} entries; at most {} are allowed",
                spec.workload_identities.len(),
                limits::IDENTITIES
            ),
        ));
    }
    if !spec.owner.name.trim().is_empty() && spec.owner.name.trim() == spec.backup_owner.name.trim() {
        errors.push(Invalid::new(
            Reason::OwnerIsBackupOwner,
            "spec.backupOwner.name",
            format!(
                "backupOwner {:?} is the same team as owner; name a different team",
                spec.backup_owner.name
            ),
        ));
    }
    let review_interval = parse_duration(&spec.review.interval, "spec.review.interval", &mut errors);
    let last_reviewed = spec
        .review
        .last_reviewed
        .as_deref()
        .and_then(|s| parse_time(s, "spec.review.lastReviewed", &mut errors));
    let exceptions = exception_rules(spec).map_err(|e| errors.extend(e)).ok();
    let mut seen = std::collections::HashMap::new();
    for (i, id) in spec.workload_identities.iter().enumerate() {
        errors.extend(identity_errors(&id.service_account, &id.task, &id.rules, i, ceiling));
        if let Some(first) = seen.insert(id.service_account.as_str(), i) {
            errors.push(Invalid::new(
                Reason::DuplicateIdentity,
                format!("spec.workloadIdentities[{i}].serviceAccount"),
                format!(
                    "service account {:?} is already declared at spec.workloadIdentities[{first}]; one identity, one task",
                    id.service_account
                ),
            ));
        }
    }
    match (errors.is_empty(), review_interval, exceptions) {
        (true, Some(review_interval), Some(exceptions)) => Ok(ValidControl {
            review_interval,
            last_reviewed,
            exceptions,
        }),
        _ => Err(errors),
    }
}

/// Checks of a PolicyException that need no other object. `created` is the
/// default start (the object's creation time, or now offline).
pub fn exception_alone(spec: &PolicyExceptionSpec, created: Timestamp) -> Result<Window, Vec<Invalid>> {
    let mut errors = Vec::new();
    required(&spec.control, "spec.control", &mut errors);
    required(&spec.ticket, "spec.ticket", &mut errors);
    required(&spec.approver, "spec.approver", &mut errors);
    required(&spec.reason, "spec.reason", &mut errors);
    for (value, max, field) in [
        (spec.control.as_str(), limits::OBJECT_NAME, "spec.control"),
        (&spec.ticket, limits::TICKET, "spec.ticket"),
        (&spec.approver, limits::NAME, "spec.approver"),
        (
            spec.requester.as_deref().unwrap_or_default(),
            limits::NAME,
            "spec.requester",
        ),
        (&spec.reason, limits::SENTENCE, "spec.reason"),
        (
            spec.starts_at.as_deref().unwrap_or_default(),
            limits::TIMESTAMP,
            "spec.startsAt",
        ),
        (&spec.expires_at, limits::TIMESTAMP, "spec.expiresAt"),
    ] {
        at_most(value, max, field, &mut errors);
    }
    if let Some(requester) = &spec.requester
        && !requester.trim().is_empty()
        && requester.trim().eq_ignore_ascii_case(spec.approver.trim())
    {
        errors.push(Invalid::new(
            Reason::ApproverIsRequester,
            "spec.approver",
            format!(
                "approver {:?} is also the requester; someone else must approve",
                spec.approver
            ),
        ));
    }
    let starts_at = match &spec.starts_at {
        Some(s) => parse_time(s, "spec.startsAt", &mut errors),
        None => Some(created),
    };
    let expires_at = parse_time(&spec.expires_at, "spec.expiresAt", &mut errors);
    if let (Some(s), Some(e)) = (starts_at, expires_at)
        && e <= s
    {
        errors.push(Invalid::new(
            Reason::InvalidWindow,
            "spec.expiresAt",
            format!(
                "expiresAt {} is not after startsAt {}",
                spec.expires_at,
                time::format(s)
            ),
        ));
    }
    if let Some(grant) = &spec.grant {
        check_service_account(&grant.service_account, "spec.grant.serviceAccount", &mut errors);
        if grant.rules.is_empty() {
            errors.push(Invalid::new(
                Reason::MissingField,
                "spec.grant.rules",
                "a grant must list at least one rule",
            ));
        }
        for (i, rule) in grant.rules.iter().enumerate() {
            errors.extend(super::ceiling::refused(rule, &format!("spec.grant.rules[{i}]")));
        }
    }
    for (i, t) in spec.tolerate.iter().enumerate() {
        required(&t.name, &format!("spec.tolerate[{i}].name"), &mut errors);
    }
    match (errors.is_empty(), starts_at, expires_at) {
        (true, Some(starts_at), Some(expires_at)) => Ok(Window { starts_at, expires_at }),
        _ => Err(errors),
    }
}

/// Full validation of a PolicyException: on its own, against its control
/// (`None`: not found) and against the ceiling.
pub fn exception(
    spec: &PolicyExceptionSpec,
    created: Timestamp,
    control: Option<&ControlOwnershipSpec>,
    ceiling: &Ceiling,
) -> Result<Window, Vec<Invalid>> {
    let window = exception_alone(spec, created)?;
    let Some(control) = control else {
        return Err(vec![Invalid::new(
            Reason::ControlNotFound,
            "spec.control",
            format!("ControlOwnership {:?} does not exist in this namespace", spec.control),
        )]);
    };
    let rules = exception_rules(control).map_err(|errors| {
        vec![Invalid::new(
            Reason::ControlInvalid,
            "spec.control",
            format!(
                "ControlOwnership {:?} is invalid ({}), so no exception to it can be approved",
                spec.control,
                super::invalid_spec::summary(&errors)
            ),
        )]
    })?;
    let mut errors = Vec::new();
    if !rules.approvers.iter().any(|a| a.trim() == spec.approver.trim()) {
        errors.push(Invalid::new(
            Reason::ApproverNotAllowed,
            "spec.approver",
            format!(
                "approver {:?} is not among the approvers, owner or backup owner of ControlOwnership {:?}",
                spec.approver, spec.control
            ),
        ));
    }
    // A grant serves an identity this control declares: an exception to a
    // lax control must not reach the identity of a stricter one, nor a
    // service account no control governs. (A name outside the namespace is
    // already refused as OutsideNamespace.)
    if let Some(grant) = &spec.grant
        && !grant.service_account.contains(':')
        && !control
            .workload_identities
            .iter()
            .any(|id| id.service_account == grant.service_account)
    {
        errors.push(Invalid::new(
            Reason::GrantOutsideControl,
            "spec.grant.serviceAccount",
            format!(
                "service account {:?} is not a workload identity of ControlOwnership {:?}; an exception grants only to its own control's identities",
                grant.service_account, spec.control
            ),
        ));
    }
    if let Some(pattern) = &rules.ticket_pattern
        && !pattern.is_match(&spec.ticket)
    {
        errors.push(Invalid::new(
            Reason::TicketPatternMismatch,
            "spec.ticket",
            format!(
                "ticket {:?} does not match the control's ticketPattern {:?}",
                spec.ticket,
                pattern.as_str()
            ),
        ));
    }
    let length = window.expires_at.duration_since(window.starts_at);
    if length > rules.max_duration {
        errors.push(Invalid::new(
            Reason::WindowTooLong,
            "spec.expiresAt",
            format!(
                "window {} to {} is {}, longer than the control's maxDuration {}",
                time::format(window.starts_at),
                time::format(window.expires_at),
                duration::format(length),
                duration::format(rules.max_duration)
            ),
        ));
    }
    if let Some(grant) = &spec.grant {
        errors.extend(ceiling.check(&grant.rules, "spec.grant.rules"));
    }
    if errors.is_empty() { Ok(window) } else { Err(errors) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::WorkloadIdentity;
    use crate::decide::fixtures::{ceiling, control, exception, ts};

    fn reasons_at(errors: &[Invalid], field: &str) -> Vec<Reason> {
        errors.iter().filter(|e| e.field == field).map(|e| e.reason).collect()
    }

    /// Each bounded field at its limit passes, one character more fails
    /// with TooLong at that field, as the API server would refuse it.
    #[test]
    fn lengths_stop_where_the_crd_stops() {
        type Edit = fn(&mut PolicyExceptionSpec, String);
        let cases: [(&str, usize, Edit); 7] = [
            ("spec.ticket", limits::TICKET, |s, v| s.ticket = v),
            ("spec.approver", limits::NAME, |s, v| s.approver = v),
            ("spec.requester", limits::NAME, |s, v| s.requester = Some(v)),
            ("spec.reason", limits::SENTENCE, |s, v| s.reason = v),
            ("spec.control", limits::OBJECT_NAME, |s, v| s.control = v),
            ("spec.expiresAt", limits::TIMESTAMP, |s, v| s.expires_at = v),
            ("spec.startsAt", limits::TIMESTAMP, |s, v| s.starts_at = Some(v)),
        ];
        let created = ts("2026-11-28T00:00:00Z");
        for (field, max, edit) in cases {
            for (len, too_long) in [(max, false), (max + 1, true)] {
                let mut spec = exception().spec;
                // Multi-byte characters: the limit counts characters.
                edit(&mut spec, "é".repeat(len));
                let errors = exception_alone(&spec, created).err().unwrap_or_default();
                assert_eq!(
                    reasons_at(&errors, field).contains(&Reason::TooLong),
                    too_long,
                    "{field} at {len}: {errors:?}"
                );
            }
        }
        let mut co = control().spec;
        co.owner.name = "x".repeat(limits::NAME + 1);
        co.backup_owner.name = "y".repeat(limits::NAME + 1);
        co.workload_identities[0].task = "x".repeat(limits::SENTENCE + 1);
        let first = co.workload_identities[0].clone();
        co.workload_identities = (0..=limits::IDENTITIES)
            .map(|i| WorkloadIdentity {
                service_account: format!("sa-{i}"),
                ..first.clone()
            })
            .collect();
        let errors = super::control(&co, &ceiling()).err().unwrap_or_default();
        for field in [
            "spec.owner.name",
            "spec.backupOwner.name",
            "spec.workloadIdentities",
            "spec.workloadIdentities[0].task",
        ] {
            assert_eq!(reasons_at(&errors, field), [Reason::TooLong], "{field}: {errors:?}");
        }
    }
}
