//! What an invalid spec looks like: a CamelCase reason (the condition
//! reason other tools match on), the exact field path, and a message.

use std::fmt;

use thiserror::Error;

/// Why a spec is invalid. The names are the condition reasons users see.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// A required field is empty.
    MissingField,
    /// owner and backupOwner name the same team.
    OwnerIsBackupOwner,
    /// A duration does not parse or is out of range.
    InvalidDuration,
    /// A timestamp is not RFC 3339 in UTC.
    InvalidTimestamp,
    /// `ticketPattern` is not a valid regular expression.
    InvalidTicketPattern,
    /// The referenced ControlOwnership does not exist.
    ControlNotFound,
    /// The referenced ControlOwnership is itself invalid.
    ControlInvalid,
    /// The approver is not allowed by the control.
    ApproverNotAllowed,
    /// The approver approved their own request.
    ApproverIsRequester,
    /// The ticket does not match the control's ticketPattern.
    TicketPatternMismatch,
    /// The window is longer than the control allows.
    WindowTooLong,
    /// expiresAt is not after startsAt.
    InvalidWindow,
    /// A rule asks for more than the grant ceiling holds.
    RuleOutsideCeiling,
    /// A rule is always refused (wildcards, escalate/bind/impersonate, RBAC writes, tokens).
    RuleRefused,
    /// A service account or subject outside the object's own namespace.
    OutsideNamespace,
    /// Two workload identities name the same service account.
    DuplicateIdentity,
    /// A generated object name is too long or collides with another.
    InvalidName,
    /// A field is longer, or a list has more entries, than the CRD allows.
    TooLong,
    /// An exception grants to a service account its control does not declare.
    GrantOutsideControl,
    /// Another control of the namespace, created first, already manages
    /// this service account.
    ServiceAccountClaimed,
    /// `minApprovals` is out of range, or more than the control's approvers
    /// could ever give.
    MinApprovalsUnreachable,
    /// An approver, approver group or break-glass group anyone (or any
    /// workload) is in.
    UnsafeApprover,
}

impl Reason {
    /// The CamelCase reason string.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MissingField => "MissingField",
            Reason::OwnerIsBackupOwner => "OwnerIsBackupOwner",
            Reason::InvalidDuration => "InvalidDuration",
            Reason::InvalidTimestamp => "InvalidTimestamp",
            Reason::InvalidTicketPattern => "InvalidTicketPattern",
            Reason::ControlNotFound => "ControlNotFound",
            Reason::ControlInvalid => "ControlInvalid",
            Reason::ApproverNotAllowed => "ApproverNotAllowed",
            Reason::ApproverIsRequester => "ApproverIsRequester",
            Reason::TicketPatternMismatch => "TicketPatternMismatch",
            Reason::WindowTooLong => "WindowTooLong",
            Reason::InvalidWindow => "InvalidWindow",
            Reason::RuleOutsideCeiling => "RuleOutsideCeiling",
            Reason::RuleRefused => "RuleRefused",
            Reason::OutsideNamespace => "OutsideNamespace",
            Reason::DuplicateIdentity => "DuplicateIdentity",
            Reason::InvalidName => "InvalidName",
            Reason::TooLong => "TooLong",
            Reason::GrantOutsideControl => "GrantOutsideControl",
            Reason::ServiceAccountClaimed => "ServiceAccountClaimed",
            Reason::MinApprovalsUnreachable => "MinApprovalsUnreachable",
            Reason::UnsafeApprover => "UnsafeApprover",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One validation failure. Shown as `field: message`.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    /// The condition reason.
    pub reason: Reason,
    /// JSON-path-like field, for example `spec.workloadIdentities[1].rules[0].verbs`.
    pub field: String,
    /// What is wrong, naming the value.
    pub message: String,
}

impl Invalid {
    /// A failure of `field` for `reason`.
    pub fn new(reason: Reason, field: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            reason,
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The condition message for a list of failures: every failure, in order,
/// so one status write tells the user everything to fix.
pub fn summary(errors: &[Invalid]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_reads_field_then_message_and_a_list_reads_them_all() {
        let errors = [
            Invalid::new(Reason::MissingField, "spec.ticket", "spec.ticket is required"),
            Invalid::new(Reason::WindowTooLong, "spec.expiresAt", "too long"),
        ];
        assert_eq!(errors[0].to_string(), "spec.ticket: spec.ticket is required");
        assert_eq!(
            summary(&errors),
            "spec.ticket: spec.ticket is required; spec.expiresAt: too long"
        );
        assert_eq!(Reason::GrantOutsideControl.to_string(), "GrantOutsideControl");
    }
}
