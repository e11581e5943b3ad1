//! The one validation of both kinds, shared by the controller, `steward
//! validate` and admission. Every failure names the field and the value.

use std::collections::{BTreeSet, HashMap};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::rbac::v1::PolicyRule;
use regex::Regex;

use super::ceiling::Ceiling;
use super::invalid_spec::{Invalid, Reason, summary};
use super::{duration, time};
use crate::api::{ControlOwnershipSpec, PolicyExceptionSpec, limits};

/// Default longest exception window.
pub const DEFAULT_MAX_DURATION: SignedDuration = SignedDuration::from_hours(30 * 24);
/// No control may allow a longer exception window than this.
pub const HARD_CAP_MAX_DURATION: SignedDuration = SignedDuration::from_hours(90 * 24);
/// Longest regex source accepted for ticketPattern.
const MAX_PATTERN_LEN: usize = 1024;

/// What exceptions to a control must satisfy, parsed from its spec once
/// (the ticket pattern is compiled here, not per exception).
#[derive(Clone, Debug)]
pub struct ExceptionRules {
    /// Longest window.
    pub max_duration: SignedDuration,
    /// Pattern tickets must match.
    pub ticket_pattern: Option<Regex>,
    /// Who may approve: approvers plus owner and backup owner names.
    pub approvers: Vec<String>,
    /// Service accounts a grant may go to: the control's declared workload
    /// identities.
    pub grantees: BTreeSet<String>,
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
    let max_duration = max_duration(policy.max_duration.as_deref(), &mut errors);
    let ticket_pattern = policy
        .ticket_pattern
        .as_deref()
        .and_then(|p| ticket_pattern(p, &mut errors));
    let mut approvers: Vec<String> = spec.approvers.clone();
    approvers.push(spec.owner.name.clone());
    approvers.push(spec.backup_owner.name.clone());
    approvers.retain(|a| !a.trim().is_empty());
    let grantees = spec
        .workload_identities
        .iter()
        .map(|id| id.service_account.clone())
        .collect();
    match (errors.is_empty(), max_duration) {
        (true, Some(max_duration)) => Ok(ExceptionRules {
            max_duration,
            ticket_pattern,
            approvers,
            grantees,
        }),
        _ => Err(errors),
    }
}

/// `maxDuration`: the default when unset, never beyond the hard cap.
fn max_duration(value: Option<&str>, errors: &mut Vec<Invalid>) -> Option<SignedDuration> {
    const FIELD: &str = "spec.exceptionPolicy.maxDuration";
    let Some(s) = value else {
        return Some(DEFAULT_MAX_DURATION);
    };
    let d = parse_duration(s, FIELD, errors)?;
    if d > HARD_CAP_MAX_DURATION {
        errors.push(Invalid::new(
            Reason::InvalidDuration,
            FIELD,
            format!("{s:?} exceeds the hard cap of 90d"),
        ));
        return None;
    }
    Some(d)
}

/// `ticketPattern`, compiled with a bounded size.
fn ticket_pattern(p: &str, errors: &mut Vec<Invalid>) -> Option<Regex> {
    const FIELD: &str = "spec.exceptionPolicy.ticketPattern";
    if p.len() > MAX_PATTERN_LEN {
        errors.push(Invalid::new(
            Reason::InvalidTicketPattern,
            FIELD,
            format!(
                "pattern is {} characters long; at most {MAX_PATTERN_LEN} are accepted",
                p.len()
            ),
        ));
        return None;
    }
    match regex::RegexBuilder::new(p).size_limit(1 << 20).build() {
        Ok(r) => Some(r),
        Err(e) => {
            errors.push(Invalid::new(
                Reason::InvalidTicketPattern,
                FIELD,
                format!(
                    "{p:?} is not a valid regular expression: {}",
                    first_line(&e.to_string())
                ),
            ));
            None
        }
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

/// Everything one validation pass learns about a ControlOwnership.
#[derive(Clone, Debug)]
pub struct CheckedControl {
    /// The valid control, or every failure in spec order.
    pub result: Result<ValidControl, Vec<Invalid>>,
    /// Its exception rules on their own: exceptions are judged by these
    /// even while another part of the control is invalid.
    pub exception_rules: Result<ExceptionRules, Vec<Invalid>>,
    /// Per workload identity, in spec order: is its own declaration valid?
    pub identity_ok: Vec<bool>,
}

/// Validates a ControlOwnership spec on its own and against the ceiling,
/// once, keeping what the decisions need besides the verdict.
pub fn check_control(spec: &ControlOwnershipSpec, ceiling: &Ceiling) -> CheckedControl {
    let mut errors = Vec::new();
    check_owners(spec, &mut errors);
    let review_interval = parse_duration(&spec.review.interval, "spec.review.interval", &mut errors);
    let last_reviewed = spec
        .review
        .last_reviewed
        .as_deref()
        .and_then(|s| parse_time(s, "spec.review.lastReviewed", &mut errors));
    let exception_rules = exception_rules(spec);
    if let Err(e) = &exception_rules {
        errors.extend(e.iter().cloned());
    }
    let identity_ok = check_identities(spec, ceiling, &mut errors);
    let result = match (errors.is_empty(), review_interval, &exception_rules) {
        (true, Some(review_interval), Ok(rules)) => Ok(ValidControl {
            review_interval,
            last_reviewed,
            exceptions: rules.clone(),
        }),
        _ => Err(errors),
    };
    CheckedControl {
        result,
        exception_rules,
        identity_ok,
    }
}

/// Validates a ControlOwnership spec on its own and against the ceiling.
pub fn control(spec: &ControlOwnershipSpec, ceiling: &Ceiling) -> Result<ValidControl, Vec<Invalid>> {
    check_control(spec, ceiling).result
}

/// Owner and backup owner, and the number of identities.
fn check_owners(spec: &ControlOwnershipSpec, errors: &mut Vec<Invalid>) {
    required(&spec.owner.name, "spec.owner.name", errors);
    required(&spec.backup_owner.name, "spec.backupOwner.name", errors);
    at_most(&spec.owner.name, limits::NAME, "spec.owner.name", errors);
    at_most(&spec.backup_owner.name, limits::NAME, "spec.backupOwner.name", errors);
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
}

/// Each identity once: its own errors, then a repeated service account.
/// Returns, per identity, whether its own declaration is valid.
fn check_identities(spec: &ControlOwnershipSpec, ceiling: &Ceiling, errors: &mut Vec<Invalid>) -> Vec<bool> {
    let mut seen = HashMap::new();
    let mut ok = Vec::with_capacity(spec.workload_identities.len());
    for (i, id) in spec.workload_identities.iter().enumerate() {
        let own = identity_errors(&id.service_account, &id.task, &id.rules, i, ceiling);
        ok.push(own.is_empty());
        errors.extend(own);
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
    ok
}

/// Checks of a PolicyException that need no other object. `created` is the
/// default start (the object's creation time, or now offline).
pub fn exception_alone(spec: &PolicyExceptionSpec, created: Timestamp) -> Result<Window, Vec<Invalid>> {
    let mut errors = Vec::new();
    check_exception_fields(spec, &mut errors);
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
    let window = parse_window(spec, created, &mut errors);
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
    match (errors.is_empty(), window) {
        (true, Some(window)) => Ok(window),
        _ => Err(errors),
    }
}

/// Required fields and the CRD's length limits.
fn check_exception_fields(spec: &PolicyExceptionSpec, errors: &mut Vec<Invalid>) {
    required(&spec.control, "spec.control", errors);
    required(&spec.ticket, "spec.ticket", errors);
    required(&spec.approver, "spec.approver", errors);
    required(&spec.reason, "spec.reason", errors);
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
        at_most(value, max, field, errors);
    }
}

/// startsAt (default `created`) and expiresAt, the end after the start.
/// `None` when either does not parse; a backwards window is an error but
/// still returned, so the caller reports every failure at once.
fn parse_window(spec: &PolicyExceptionSpec, created: Timestamp, errors: &mut Vec<Invalid>) -> Option<Window> {
    let starts_at = match &spec.starts_at {
        Some(s) => parse_time(s, "spec.startsAt", errors),
        None => Some(created),
    };
    let expires_at = parse_time(&spec.expires_at, "spec.expiresAt", errors);
    let (starts_at, expires_at) = (starts_at?, expires_at?);
    if expires_at <= starts_at {
        errors.push(Invalid::new(
            Reason::InvalidWindow,
            "spec.expiresAt",
            format!(
                "expiresAt {} is not after startsAt {}",
                spec.expires_at,
                time::format(starts_at)
            ),
        ));
    }
    Some(Window { starts_at, expires_at })
}

/// What an exception is judged against: its control, as parsed once per
/// control.
#[derive(Clone, Copy, Debug)]
pub enum Against<'a> {
    /// No ControlOwnership of that name in the namespace.
    NoControl,
    /// The control's exception policy is itself invalid, for these reasons.
    InvalidControl(&'a [Invalid]),
    /// The control's rules for exceptions.
    Rules(&'a ExceptionRules),
}

impl<'a> Against<'a> {
    /// From a control's exception rules; `None` when it does not exist.
    pub fn of(rules: Option<&'a Result<ExceptionRules, Vec<Invalid>>>) -> Self {
        match rules {
            None => Against::NoControl,
            Some(Err(errors)) => Against::InvalidControl(errors),
            Some(Ok(rules)) => Against::Rules(rules),
        }
    }
}

/// Full validation of a PolicyException: on its own, against its control
/// and against the ceiling.
pub fn exception(
    spec: &PolicyExceptionSpec,
    created: Timestamp,
    control: Against<'_>,
    ceiling: &Ceiling,
) -> Result<Window, Vec<Invalid>> {
    let window = exception_alone(spec, created)?;
    exception_against(spec, window, control, ceiling)
}

/// Checks of a PolicyException whose own `window` is valid against its
/// control and the ceiling.
pub fn exception_against(
    spec: &PolicyExceptionSpec,
    window: Window,
    control: Against<'_>,
    ceiling: &Ceiling,
) -> Result<Window, Vec<Invalid>> {
    let rules = match control {
        Against::Rules(rules) => rules,
        Against::NoControl => {
            return Err(vec![Invalid::new(
                Reason::ControlNotFound,
                "spec.control",
                format!("ControlOwnership {:?} does not exist in this namespace", spec.control),
            )]);
        }
        Against::InvalidControl(errors) => {
            return Err(vec![Invalid::new(
                Reason::ControlInvalid,
                "spec.control",
                format!(
                    "ControlOwnership {:?} is invalid ({}), so no exception to it can be approved",
                    spec.control,
                    summary(errors)
                ),
            )]);
        }
    };
    let mut errors = Vec::new();
    check_approver(spec, rules, &mut errors);
    check_grantee(spec, rules, &mut errors);
    check_ticket(spec, rules, &mut errors);
    check_length(window, rules, &mut errors);
    if let Some(grant) = &spec.grant {
        errors.extend(ceiling.check(&grant.rules, "spec.grant.rules"));
    }
    if errors.is_empty() { Ok(window) } else { Err(errors) }
}

fn check_approver(spec: &PolicyExceptionSpec, rules: &ExceptionRules, errors: &mut Vec<Invalid>) {
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
}

/// A grant serves an identity this control declares: an exception to a
/// lax control must not reach the identity of a stricter one, nor a
/// service account no control governs. (A name outside the namespace is
/// already refused as OutsideNamespace.)
fn check_grantee(spec: &PolicyExceptionSpec, rules: &ExceptionRules, errors: &mut Vec<Invalid>) {
    if let Some(grant) = &spec.grant
        && !grant.service_account.contains(':')
        && !rules.grantees.contains(&grant.service_account)
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
}

fn check_ticket(spec: &PolicyExceptionSpec, rules: &ExceptionRules, errors: &mut Vec<Invalid>) {
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
}

fn check_length(window: Window, rules: &ExceptionRules, errors: &mut Vec<Invalid>) {
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
