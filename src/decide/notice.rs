//! The one shape of a Kubernetes Event that a decision asks for: a reason,
//! whether it is a warning, and a note. Both the control and the exception
//! decisions return it; the reconcilers record it.

/// An Event the reconciler should record. (Named to stay clear of kube's
/// own `Event`.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Event reason, one of [`reasons`].
    pub reason: &'static str,
    /// Whether it is a warning.
    pub warning: bool,
    /// Event note.
    pub note: String,
}

impl Notice {
    /// A normal event.
    pub fn normal(reason: &'static str, note: impl Into<String>) -> Self {
        Notice {
            reason,
            warning: false,
            note: note.into(),
        }
    }

    /// A warning event.
    pub fn warning(reason: &'static str, note: impl Into<String>) -> Self {
        Notice {
            reason,
            warning: true,
            note: note.into(),
        }
    }
}

/// Event reasons (API: alerts and `kubectl get events` filters match them).
pub mod reasons {
    /// A spec was found invalid.
    pub const REJECTED: &str = "Rejected";
    /// A control's review date has passed.
    pub const REVIEW_OVERDUE: &str = "ReviewOverdue";
    /// A control's review falls due within its warning window.
    pub const REVIEW_DUE_SOON: &str = "ReviewDueSoon";
    /// Undeclared bindings grant a managed identity something.
    pub const DRIFT_DETECTED: &str = "DriftDetected";
    /// Enforce deleted a drifting binding.
    pub const DRIFT_REMOVED: &str = "DriftRemoved";
    /// An exception is valid and waits for its start.
    pub const PENDING: &str = "Pending";
    /// An exception became Active and its grant was made.
    pub const GRANTED: &str = "Granted";
    /// An exception without a grant became Active.
    pub const ACTIVATED: &str = "Activated";
    /// An exception's window ended.
    pub const EXPIRED: &str = "Expired";
    /// A grant was removed before its expiry.
    pub const REVOKED: &str = "Revoked";
    /// An identity's Role or RoleBinding could not be put in place.
    pub const IDENTITY_NOT_APPLIED: &str = "IdentityNotApplied";
    /// An exception's grant could not be put in place.
    pub const GRANT_NOT_APPLIED: &str = "GrantNotApplied";
    /// PolicyException: valid, waiting for approval; nothing applies.
    pub const AWAITING_APPROVAL: &str = "AwaitingApproval";
    /// PolicyException: approved by its own requester in an emergency.
    pub const BREAK_GLASS: &str = "BreakGlass";
    /// PolicyException: a break-glass exception reviewed by an approver.
    pub const BREAK_GLASS_REVIEWED: &str = "BreakGlassReviewed";
}
