//! Who asked for an exception and who approved it: the records admission
//! writes as annotations (no user can set them, and each is signed with a
//! key only Steward holds), and the approval part of the status that the
//! controller derives from them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Set by an approver, with their own user name as the value, to approve
/// the exception as it stands. Admission turns it into a record.
pub const APPROVE_ANNOTATION: &str = "steward.dev/approve";
/// Set with [`APPROVE_ANNOTATION`] (or [`BREAK_GLASS_ANNOTATION`]) to the
/// digest the approver reviewed (`status.approval.digest`, or its first 19
/// characters): admission refuses the approval if the exception changed
/// since.
pub const APPROVE_DIGEST_ANNOTATION: &str = "steward.dev/approve-digest";
/// Set by a member of the control's break-glass groups, with their own user
/// name as the value, to approve their own short exception in an emergency.
pub const BREAK_GLASS_ANNOTATION: &str = "steward.dev/break-glass";
/// Written by admission only: who created the exception, or last changed
/// what an approval covers (a JSON [`Record`]).
pub const REQUESTED_BY_ANNOTATION: &str = "steward.dev/requested-by";
/// Written by admission only: the approvals given (a JSON list of
/// [`Record`]).
pub const APPROVALS_ANNOTATION: &str = "steward.dev/approvals";

/// How an identity took part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Via {
    /// Wrote the content that awaits approval.
    Request,
    /// An approver of the control approved it.
    Approver,
    /// A trusted GitOps applier wrote it: approved through the Git review.
    TrustedApplier,
    /// A break-glass group member approved their own emergency exception.
    BreakGlass,
}

impl Via {
    /// The name written in status.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Request => "Request",
            Via::Approver => "Approver",
            Via::TrustedApplier => "TrustedApplier",
            Via::BreakGlass => "BreakGlass",
        }
    }
}

/// One signed record of an authenticated identity acting on an exception.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The user name the API server authenticated.
    pub user: String,
    /// Those of the user's groups that the control names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// How the identity took part.
    pub via: Via,
    /// Digest of what was requested or approved.
    pub digest: String,
    /// A request record: its writer wrote all of the content (created the
    /// exception, or changed content it had written itself), so a trusted
    /// applier's request is Git's content and approved through Git.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub whole: bool,
    /// When (RFC 3339).
    pub at: String,
    /// Signature over everything above and the exception's namespace and
    /// name, by the key only Steward holds.
    pub sig: String,
}

/// The approval state of an exception, as the controller verified it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalStatus {
    /// The verified user who created the exception or last changed what an
    /// approval covers (`spec.requester` is only a claim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::limits::NAME))]
    pub requested_by: Option<String>,
    /// The verified approvers of the exception as it stands, comma
    /// separated (`spec.approver` is only a claim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::limits::DERIVED_NAME))]
    pub approved_by: Option<String>,
    /// Distinct approvers the control requires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<i32>,
    /// Digest of what an approval covers, as the exception stands: pass it
    /// as `steward.dev/approve-digest` to approve exactly this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::limits::DIGEST))]
    pub digest: Option<String>,
    /// The verified approvals of the exception as it stands.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = super::limits::APPROVAL_RECORDS))]
    pub approvals: Vec<ApprovalEntry>,
}

/// One verified approval.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalEntry {
    /// The user who approved (a trusted applier's own user name for an
    /// approval through Git).
    #[schemars(length(max = super::limits::NAME))]
    pub user: String,
    /// Approver, TrustedApplier or BreakGlass.
    #[schemars(length(max = super::limits::REASON))]
    pub via: String,
    /// When (RFC 3339).
    #[schemars(length(max = super::limits::TIMESTAMP))]
    pub time: String,
    /// For an approval via a trusted applier: the reviewer Git named in
    /// `spec.approver`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::limits::NAME))]
    pub reviewer: Option<String>,
}
