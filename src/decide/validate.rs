//! The one validation of both kinds, shared by the controller, `steward
//! validate` and admission. Every failure names the field and the value.

use std::collections::{BTreeSet, HashMap};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::rbac::v1::PolicyRule;
use regex::Regex;

use super::ceiling::Ceiling;
use super::invalid_spec::{Invalid, Reason, summary};
use super::{duration, time};
use crate::api::{ControlOwnershipSpec, PolicyExceptionSpec, Toleration, limits};

/// Default longest exception window.
pub const DEFAULT_MAX_DURATION: SignedDuration = SignedDuration::from_hours(30 * 24);
/// No control may allow a longer exception window than this.
pub const HARD_CAP_MAX_DURATION: SignedDuration = SignedDuration::from_hours(90 * 24);
/// Longest regex source accepted for ticketPattern (bytes: never more
/// than the CRD's limit in characters).
const MAX_PATTERN_LEN: usize = limits::PATTERN;

/// What exceptions to a control must satisfy, parsed from its spec once
/// (the ticket pattern is compiled here, not per exception).
#[derive(Clone, Debug)]
pub struct ExceptionRules {
    /// Longest window.
    pub max_duration: SignedDuration,
    /// Pattern tickets must match.
    pub ticket_pattern: Option<Regex>,
    /// Who may be named as `spec.approver`: approvers plus owner and
    /// backup owner names.
    pub approvers: Vec<String>,
    /// Who may really approve, and how many.
    pub approval: super::approval::Policy,
    /// Service accounts a grant may go to: the control's declared workload
    /// identities.
    pub grantees: BTreeSet<String>,
}

/// How long before its due date a review is due soon, unless the control
/// says otherwise (the two weeks Teleport gives owners before an access
/// review).
pub const DEFAULT_REVIEW_WARNING: SignedDuration = SignedDuration::from_hours(14 * 24);

/// A ControlOwnership spec that passed validation, with parsed values.
#[derive(Clone, Debug)]
pub struct ValidControl {
    /// Time between reviews.
    pub review_interval: SignedDuration,
    /// When it was last reviewed.
    pub last_reviewed: Option<Timestamp>,
    /// How long before the due date the review is due soon.
    pub review_warning: SignedDuration,
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
    // No more bytes than the limit: no more characters either.
    if value.len() <= max {
        return;
    }
    let n = value.chars().count();
    if n > max {
        errors.push(Invalid::new(
            Reason::TooLong,
            field,
            format!("{field} is {n} characters long; at most {max} are allowed"),
        ));
    }
}

/// The CRDs bound these lists (`maxItems`). Returns whether `len` is
/// within `max`; the entries of a longer list are not looked at, so the
/// work and the report stay bounded whatever the input.
fn at_most_items(len: usize, max: usize, field: &str, errors: &mut Vec<Invalid>) -> bool {
    if len > max {
        errors.push(Invalid::new(
            Reason::TooLong,
            field,
            format!("{field} has {len} entries; at most {max} are allowed"),
        ));
        return false;
    }
    true
}

/// Every string of `list` (at `field`) within `max` characters, the list
/// within `max_items` entries. Returns whether both hold.
fn strings_at_most(list: &[String], max_items: usize, max: usize, field: &str, errors: &mut Vec<Invalid>) -> bool {
    if !at_most_items(list.len(), max_items, field, errors) {
        return false;
    }
    let before = errors.len();
    for (i, value) in list.iter().enumerate() {
        if value.len() > max {
            at_most(value, max, &format!("{field}[{i}]"), errors);
        }
    }
    errors.len() == before
}

/// The sizes of RBAC rules at `field` against the CRD's limits (the
/// schema of `api::schema::rules`). Returns whether they all fit: only
/// then are the rules checked further, so a hostile list costs no more
/// than its size.
pub fn check_rule_sizes(rules: &[PolicyRule], field: &str, errors: &mut Vec<Invalid>) -> bool {
    if !at_most_items(rules.len(), limits::RULES, field, errors) {
        return false;
    }
    let mut ok = true;
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let lists: [(&str, Option<&[String]>, usize, usize); 5] = [
            (
                "apiGroups",
                rule.api_groups.as_deref(),
                limits::RULE_API_GROUPS,
                limits::API_GROUP,
            ),
            (
                "resources",
                rule.resources.as_deref(),
                limits::RULE_RESOURCES,
                limits::RESOURCE,
            ),
            ("verbs", Some(&rule.verbs), limits::RULE_VERBS, limits::VERB),
            (
                "resourceNames",
                rule.resource_names.as_deref(),
                limits::RULE_RESOURCE_NAMES,
                limits::OBJECT_NAME,
            ),
            (
                "nonResourceURLs",
                rule.non_resource_urls.as_deref(),
                limits::RULE_NON_RESOURCE_URLS,
                limits::URL,
            ),
        ];
        for (name, list, max_items, max) in lists {
            let list = list.unwrap_or_default();
            ok &= strings_at_most(list, max_items, max, &format!("{at}.{name}"), errors);
        }
    }
    ok
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
    } else if name.chars().count() > limits::OBJECT_NAME {
        at_most(name, limits::OBJECT_NAME, field, errors);
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
    let approval = super::approval::parse(spec, max_duration.unwrap_or(DEFAULT_MAX_DURATION), &mut errors);
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
            approval,
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
    if s.chars().count() > limits::DURATION {
        at_most(s, limits::DURATION, FIELD, errors);
        return None;
    }
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
    let field = format!("{at}.rules");
    if check_rule_sizes(rules, &field, &mut errors) {
        errors.extend(ceiling.check(rules, &field));
    }
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
    check_control_sizes(spec, &mut errors);
    let review_interval = if spec.review.interval.chars().count() > limits::DURATION {
        None
    } else {
        parse_duration(&spec.review.interval, "spec.review.interval", &mut errors)
    };
    let last_reviewed = spec
        .review
        .last_reviewed
        .as_deref()
        .filter(|s| s.chars().count() <= limits::TIMESTAMP)
        .and_then(|s| parse_time(s, "spec.review.lastReviewed", &mut errors));
    let review_warning = match spec.review.warn_before.as_deref() {
        None => Some(DEFAULT_REVIEW_WARNING),
        Some(s) if s.chars().count() > limits::DURATION => None,
        Some(s) => parse_duration(s, "spec.review.warnBefore", &mut errors),
    };
    let exception_rules = exception_rules(spec);
    if let Err(e) = &exception_rules {
        errors.extend(e.iter().cloned());
    }
    let identity_ok = check_identities(spec, ceiling, &mut errors);
    let result = match (errors.is_empty(), review_interval, review_warning, &exception_rules) {
        (true, Some(review_interval), Some(review_warning), Ok(rules)) => Ok(ValidControl {
            review_interval,
            last_reviewed,
            review_warning,
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

/// The CRD's limits on the control's other strings and lists (the
/// identities' own are checked with each identity, maxDuration and
/// ticketPattern with the exception rules).
fn check_control_sizes(spec: &ControlOwnershipSpec, errors: &mut Vec<Invalid>) {
    let owner_contact = spec.owner.contact.as_deref().unwrap_or_default();
    let backup_contact = spec.backup_owner.contact.as_deref().unwrap_or_default();
    for (value, max, field) in [
        (
            spec.description.as_deref().unwrap_or_default(),
            limits::SENTENCE,
            "spec.description",
        ),
        (owner_contact, limits::NAME, "spec.owner.contact"),
        (backup_contact, limits::NAME, "spec.backupOwner.contact"),
        (&spec.review.interval, limits::DURATION, "spec.review.interval"),
        (
            spec.review.warn_before.as_deref().unwrap_or_default(),
            limits::DURATION,
            "spec.review.warnBefore",
        ),
        (
            spec.review.last_reviewed.as_deref().unwrap_or_default(),
            limits::TIMESTAMP,
            "spec.review.lastReviewed",
        ),
    ] {
        at_most(value, max, field, errors);
    }
    strings_at_most(
        &spec.approvers,
        limits::APPROVERS,
        limits::NAME,
        "spec.approvers",
        errors,
    );
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
        if check_rule_sizes(&grant.rules, "spec.grant.rules", &mut errors) {
            for (i, rule) in grant.rules.iter().enumerate() {
                errors.extend(super::ceiling::refused(rule, &format!("spec.grant.rules[{i}]")));
            }
        }
    }
    if at_most_items(spec.tolerate.len(), limits::TOLERATIONS, "spec.tolerate", &mut errors) {
        for (i, t) in spec.tolerate.iter().enumerate() {
            check_toleration(t, &format!("spec.tolerate[{i}]"), &mut errors);
        }
    }
    check_policies(spec, &mut errors);
    match (errors.is_empty(), window) {
        (true, Some(window)) => Ok(window),
        _ => Err(errors),
    }
}

/// A toleration names its binding, the role it binds and every subject.
fn check_toleration(t: &Toleration, at: &str, errors: &mut Vec<Invalid>) {
    for (value, field) in [
        (&t.name, format!("{at}.name")),
        (&t.role_ref.name, format!("{at}.roleRef.name")),
    ] {
        required(value, &field, errors);
        at_most(value, limits::OBJECT_NAME, &field, errors);
    }
    let field = format!("{at}.subjects");
    if t.subjects.is_empty() {
        errors.push(Invalid::new(
            Reason::MissingField,
            &field,
            format!("{field} is required: list every subject of the binding tolerated"),
        ));
    }
    if !at_most_items(t.subjects.len(), limits::SUBJECTS, &field, errors) {
        return;
    }
    for (j, s) in t.subjects.iter().enumerate() {
        let at = format!("{field}[{j}]");
        required(&s.name, &format!("{at}.name"), errors);
        at_most(&s.name, limits::SUBJECT_NAME, &format!("{at}.name"), errors);
        at_most(
            s.namespace.as_deref().unwrap_or_default(),
            limits::NAMESPACE,
            &format!("{at}.namespace"),
            errors,
        );
    }
}

/// The admission policies an exception covers, within the CRD's limits.
fn check_policies(spec: &PolicyExceptionSpec, errors: &mut Vec<Invalid>) {
    if !at_most_items(spec.policies.len(), limits::POLICIES, "spec.policies", errors) {
        return;
    }
    for (i, p) in spec.policies.iter().enumerate() {
        let at = format!("spec.policies[{i}]");
        at_most(&p.engine, limits::NAME, &format!("{at}.engine"), errors);
        at_most(&p.name, limits::OBJECT_NAME, &format!("{at}.name"), errors);
        strings_at_most(
            &p.rules,
            limits::POLICY_RULES,
            limits::OBJECT_NAME,
            &format!("{at}.rules"),
            errors,
        );
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
    use crate::decide::fixtures::{ceiling, control, exception, rule, ts};

    type RuleEdit = fn(&mut PolicyRule, usize, String);

    /// Every list and string of an RBAC rule: (field, most entries, most
    /// characters, set `n` entries of this value).
    fn rule_fields() -> [(&'static str, usize, usize, RuleEdit); 5] {
        [
            ("apiGroups", limits::RULE_API_GROUPS, limits::API_GROUP, |r, n, v| {
                r.api_groups = Some(vec![v; n])
            }),
            ("resources", limits::RULE_RESOURCES, limits::RESOURCE, |r, n, v| {
                r.resources = Some(vec![v; n])
            }),
            ("verbs", limits::RULE_VERBS, limits::VERB, |r, n, v| {
                r.verbs = vec![v; n]
            }),
            (
                "resourceNames",
                limits::RULE_RESOURCE_NAMES,
                limits::OBJECT_NAME,
                |r, n, v| r.resource_names = Some(vec![v; n]),
            ),
            (
                "nonResourceURLs",
                limits::RULE_NON_RESOURCE_URLS,
                limits::URL,
                |r, n, v| r.non_resource_urls = Some(vec![v; n]),
            ),
        ]
    }

    /// The errors of a control whose first identity holds `rules`, and of
    /// an exception granting them.
    fn rule_errors(rules: Vec<PolicyRule>) -> [(&'static str, Vec<Invalid>); 2] {
        let mut co = control().spec;
        co.workload_identities[0].rules = rules.clone();
        let mut pe = exception().spec;
        pe.grant.as_mut().expect("fixture grant").rules = rules;
        let created = ts("2026-11-28T00:00:00Z");
        [
            (
                "spec.workloadIdentities[0].rules",
                super::control(&co, &ceiling()).err().unwrap_or_default(),
            ),
            (
                "spec.grant.rules",
                exception_alone(&pe, created).err().unwrap_or_default(),
            ),
        ]
    }

    /// Each list of a rule at its limit passes the size check, one entry
    /// more is TooLong at that list; each string at its limit passes, one
    /// character more is TooLong at that entry: where the API server stops.
    #[test]
    fn rule_sizes_stop_where_the_crd_stops() {
        for (name, max_items, max_len, edit) in rule_fields() {
            for (items, len, too_long) in [
                (max_items, 1, false),
                (max_items + 1, 1, true),
                (1, max_len, false),
                (1, max_len + 1, true),
            ] {
                let mut r = rule(&[""], &["configmaps"], &["get"]);
                edit(&mut r, items, "é".repeat(len));
                for (base, errors) in rule_errors(vec![r]) {
                    let field = if items > max_items || len <= max_len {
                        format!("{base}[0].{name}")
                    } else {
                        format!("{base}[0].{name}[0]")
                    };
                    assert_eq!(
                        reasons_at(&errors, &field).contains(&Reason::TooLong),
                        too_long,
                        "{field} with {items} × {len}: {errors:?}"
                    );
                    // Too large: nothing else is looked at.
                    if too_long {
                        assert!(
                            errors.iter().all(|e| e.reason == Reason::TooLong),
                            "{field}: {errors:?}"
                        );
                    }
                }
            }
        }
        for (n, too_long) in [(limits::RULES, false), (limits::RULES + 1, true)] {
            let rules = vec![rule(&[""], &["configmaps"], &["get"]); n];
            for (base, errors) in rule_errors(rules) {
                assert_eq!(
                    reasons_at(&errors, base).contains(&Reason::TooLong),
                    too_long,
                    "{base} with {n} rules: {errors:?}"
                );
            }
        }
    }

    /// The control's other strings and lists: too long is TooLong alone
    /// (a duration too long to store is not also reported as unparsable).
    #[test]
    fn control_sizes_stop_where_the_crd_stops() {
        let mut co = control().spec;
        co.description = Some("x".repeat(limits::SENTENCE + 1));
        co.owner.contact = Some("x".repeat(limits::NAME + 1));
        co.review.interval = "1d".repeat(limits::DURATION);
        co.review.last_reviewed = Some("x".repeat(limits::TIMESTAMP + 1));
        co.approvers = vec!["a@example.com".into(); limits::APPROVERS + 1];
        co.exception_policy.as_mut().expect("fixture policy").max_duration = Some("1d".repeat(limits::DURATION));
        co.workload_identities[0].service_account = "a".repeat(limits::OBJECT_NAME + 1);
        let errors = super::control(&co, &ceiling()).err().unwrap_or_default();
        for field in [
            "spec.description",
            "spec.owner.contact",
            "spec.review.interval",
            "spec.review.lastReviewed",
            "spec.approvers",
            "spec.exceptionPolicy.maxDuration",
            "spec.workloadIdentities[0].serviceAccount",
        ] {
            assert_eq!(reasons_at(&errors, field), [Reason::TooLong], "{field}: {errors:?}");
        }
        let mut co = control().spec;
        co.approvers = vec!["x".repeat(limits::NAME + 1)];
        let errors = super::control(&co, &ceiling()).err().unwrap_or_default();
        assert_eq!(reasons_at(&errors, "spec.approvers[0]"), [Reason::TooLong]);
    }

    /// A toleration names the role and every subject; one stored before
    /// those fields existed reads, and is refused for lacking them.
    #[test]
    fn a_toleration_must_pin_its_role_and_subjects() {
        let created = ts("2026-11-28T00:00:00Z");
        let legacy: PolicyExceptionSpec = serde_yaml_ng::from_str(
            r#"
control: payments
ticket: SEC-1
approver: alice@example.com
reason: r
expiresAt: "2026-11-29T10:00:00Z"
tolerate: [{kind: ClusterRoleBinding, name: legacy-admin}]
"#,
        )
        .expect("a legacy toleration still reads");
        let errors = exception_alone(&legacy, created).err().unwrap_or_default();
        for field in ["spec.tolerate[0].roleRef.name", "spec.tolerate[0].subjects"] {
            assert_eq!(
                reasons_at(&errors, field),
                [Reason::MissingField],
                "{field}: {errors:?}"
            );
        }
        assert!(exception_alone(&exception().spec, created).is_ok());
        let mut spec = exception().spec;
        let t = spec.tolerate[0].clone();
        spec.tolerate = vec![t.clone(); limits::TOLERATIONS + 1];
        let errors = exception_alone(&spec, created).err().unwrap_or_default();
        assert_eq!(reasons_at(&errors, "spec.tolerate"), [Reason::TooLong]);
        let mut spec = exception().spec;
        let mut t = t;
        t.subjects = vec![t.subjects[0].clone(); limits::SUBJECTS + 1];
        spec.tolerate = vec![t.clone()];
        let errors = exception_alone(&spec, created).err().unwrap_or_default();
        assert_eq!(reasons_at(&errors, "spec.tolerate[0].subjects"), [Reason::TooLong]);
        t.subjects.truncate(1);
        t.subjects[0].name = "x".repeat(limits::SUBJECT_NAME + 1);
        t.subjects[0].namespace = Some("x".repeat(limits::NAMESPACE + 1));
        t.role_ref.name = "x".repeat(limits::OBJECT_NAME + 1);
        spec.tolerate = vec![t];
        let errors = exception_alone(&spec, created).err().unwrap_or_default();
        for field in [
            "spec.tolerate[0].subjects[0].name",
            "spec.tolerate[0].subjects[0].namespace",
            "spec.tolerate[0].roleRef.name",
        ] {
            assert_eq!(reasons_at(&errors, field), [Reason::TooLong], "{field}: {errors:?}");
        }
    }

    #[test]
    fn policies_stop_where_the_crd_stops() {
        let created = ts("2026-11-28T00:00:00Z");
        let policy = crate::api::PolicyReference {
            engine: "kyverno".into(),
            name: "disallow-privileged".into(),
            rules: vec!["r".into(); limits::POLICY_RULES],
        };
        let mut spec = exception().spec;
        spec.policies = vec![policy.clone(); limits::POLICIES];
        assert!(exception_alone(&spec, created).is_ok());
        spec.policies.push(policy.clone());
        let errors = exception_alone(&spec, created).err().unwrap_or_default();
        assert_eq!(reasons_at(&errors, "spec.policies"), [Reason::TooLong]);
        let mut long = policy;
        long.rules.push("r".into());
        long.engine = "x".repeat(limits::NAME + 1);
        spec.policies = vec![long];
        let errors = exception_alone(&spec, created).err().unwrap_or_default();
        for field in ["spec.policies[0].rules", "spec.policies[0].engine"] {
            assert_eq!(reasons_at(&errors, field), [Reason::TooLong], "{field}: {errors:?}");
        }
    }

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
