//! `PolicyException`: a ticketed, approved, time-bound exception to a control.

use k8s_openapi::api::rbac::v1::PolicyRule;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A ticketed, approved, time-bound exception to a ControlOwnership: a
/// temporary grant for one service account and/or excused drift bindings,
/// enforced to the second and kept as a record after it expires.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "steward.dev",
    version = "v1alpha1",
    kind = "PolicyException",
    namespaced,
    doc = "A ticketed, approved, time-bound exception to a ControlOwnership: a temporary grant for one service account and/or excused drift bindings, enforced to the second and kept as a record after it expires.",
    status = "PolicyExceptionStatus",
    shortname = "polexc",
    category = "steward",
    derive = "PartialEq",
    printcolumn(
        name = "Control",
        type_ = "string",
        json_path = ".spec.control",
        description = "The ControlOwnership this exception is to"
    ),
    printcolumn(
        name = "Ticket",
        type_ = "string",
        json_path = ".spec.ticket",
        description = "Tracking ticket"
    ),
    printcolumn(
        name = "Approver",
        type_ = "string",
        json_path = ".spec.approver",
        description = "Who approved it, as claimed in the spec"
    ),
    printcolumn(
        name = "Approved-By",
        type_ = "string",
        json_path = ".status.approval.approvedBy",
        description = "Who approved it, as verified by admission"
    ),
    printcolumn(
        name = "Requested-By",
        type_ = "string",
        json_path = ".status.approval.requestedBy",
        description = "Who asked for it, as verified by admission"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Pending, Active, Expired or Rejected"
    ),
    printcolumn(
        name = "Expires",
        type_ = "string",
        json_path = ".spec.expiresAt",
        description = "When the exception ends"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
// Rules the API server checks on its own (CEL), so an invalid exception is
// refused at `kubectl apply` even with the controller and webhook stopped.
// Each mirrors a check of `decide::validate` and names its reason; the
// window rule compares only timestamps the controller would parse and leaves
// malformed ones to it (InvalidTimestamp).
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.control.trim() != '' && self.ticket.trim() != '' && self.approver.trim() != '' && self.reason.trim() != ''",
        "message": "control, ticket, approver and reason are required and must not be empty (MissingField)"
    },
    {
        "rule": "!has(self.startsAt) || !self.startsAt.matches('^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-5][0-9](\\\\.[0-9]+)?Z$') || !self.expiresAt.matches('^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-5][0-9](\\\\.[0-9]+)?Z$') || timestamp(self.expiresAt) > timestamp(self.startsAt)",
        "fieldPath": ".expiresAt",
        "message": "expiresAt must be after startsAt (InvalidWindow)"
    },
    {
        "rule": "!has(self.requester) || self.requester.trim() == '' || self.requester.trim().lowerAscii() != self.approver.trim().lowerAscii()",
        "fieldPath": ".approver",
        "message": "the approver must not be the requester; someone else must approve (ApproverIsRequester)"
    }
]))]
pub struct PolicyExceptionSpec {
    /// Name of the ControlOwnership, in this namespace, this is an exception to.
    #[schemars(length(max = super::limits::OBJECT_NAME))]
    pub control: String,
    /// Tracking ticket; must match the control's ticketPattern when it has one.
    #[schemars(length(max = super::limits::TICKET))]
    pub ticket: String,
    /// Who approved the exception, as claimed: one of the control's
    /// approvers, or its owner or backup owner name. The approval itself is
    /// an act of the approver's own identity, shown in `status.approval`;
    /// through a trusted GitOps applier, the reviewer Git named.
    #[schemars(length(max = super::limits::NAME))]
    pub approver: String,
    /// Who asked for the exception, as claimed; must differ from the
    /// approver. The verified requester is in `status.approval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::limits::NAME))]
    pub requester: Option<String>,
    /// Why the exception is needed.
    #[schemars(length(max = super::limits::SENTENCE))]
    pub reason: String,
    /// When the exception starts (RFC 3339, UTC `Z`). Default: creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::limits::TIMESTAMP))]
    pub starts_at: Option<String>,
    /// When the exception ends (RFC 3339, UTC `Z`): absolute, never relative.
    #[schemars(length(max = super::limits::TIMESTAMP))]
    pub expires_at: String,
    /// Temporary RBAC for one service account of this namespace, held only
    /// while the exception is Active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<Grant>,
    /// Existing bindings excused from drift while the exception is Active,
    /// each exactly as it stands: its kind, name, roleRef and subjects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = super::limits::TOLERATIONS))]
    pub tolerate: Vec<Toleration>,
    /// Admission policies this exception covers (reported, not enforced).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = super::limits::POLICIES))]
    pub policies: Vec<PolicyReference>,
}

/// Temporary permissions for one service account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    /// Name of a service account in this namespace.
    #[schemars(length(max = super::limits::OBJECT_NAME))]
    pub service_account: String,
    /// Namespace-scoped RBAC rules granted while Active; they must fit the
    /// grant ceiling.
    #[schemars(schema_with = "super::schema::rules")]
    pub rules: Vec<PolicyRule>,
}

/// A binding excused from drift while the exception is Active, pinned to
/// what it binds and to whom: a binding of that kind and name tolerates
/// only while its roleRef and its set of subjects are exactly these (a
/// binding swapped for a wider role, or given one more subject, is drift).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
// `roleRef` and `subjects` are required of every new object (the schema
// says so, with no default); objects stored before they existed still read
// (empty, so the watches do not fail on them), and are Rejected
// (MissingField), tolerating nothing.
#[schemars(extend("required" = ["kind", "name", "roleRef", "subjects"]))]
pub struct Toleration {
    /// RoleBinding (in this namespace) or ClusterRoleBinding.
    pub kind: BindingKind,
    /// Name of the binding.
    #[schemars(length(max = super::limits::OBJECT_NAME))]
    pub name: String,
    /// The role the binding binds, for example `{kind: ClusterRole, name:
    /// view}`.
    #[serde(default, skip_serializing_if = "TolerationRoleRef::is_unset")]
    pub role_ref: TolerationRoleRef,
    /// Every subject of the binding, in any order, for example
    /// `[{kind: ServiceAccount, name: api}]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1, max = super::limits::SUBJECTS))]
    pub subjects: Vec<TolerationSubject>,
}

/// The role a tolerated binding binds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TolerationRoleRef {
    /// Role (in the binding's namespace) or ClusterRole.
    pub kind: RoleKind,
    /// Name of the role.
    #[schemars(length(max = super::limits::OBJECT_NAME))]
    pub name: String,
}

impl TolerationRoleRef {
    /// Whether it is missing (an object stored before roleRef existed).
    pub fn is_unset(&self) -> bool {
        self.name.is_empty()
    }
}

/// Kind of the role a binding binds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum RoleKind {
    /// A namespaced Role.
    Role,
    /// A ClusterRole.
    #[default]
    ClusterRole,
}

impl RoleKind {
    /// The Kubernetes kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            RoleKind::Role => "Role",
            RoleKind::ClusterRole => "ClusterRole",
        }
    }
}

/// One subject of a tolerated binding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TolerationSubject {
    /// ServiceAccount, User or Group.
    pub kind: SubjectKind,
    /// Name of the service account, user or group.
    #[schemars(length(max = super::limits::SUBJECT_NAME))]
    pub name: String,
    /// Namespace of a ServiceAccount; default: this exception's namespace.
    /// Not used for users and groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::limits::NAMESPACE))]
    pub namespace: Option<String>,
}

/// Kind of an RBAC subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum SubjectKind {
    /// A service account.
    ServiceAccount,
    /// A user.
    User,
    /// A group.
    Group,
}

impl SubjectKind {
    /// The Kubernetes kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::ServiceAccount => "ServiceAccount",
            SubjectKind::User => "User",
            SubjectKind::Group => "Group",
        }
    }
}

/// Kind of an RBAC binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum BindingKind {
    /// A namespaced RoleBinding.
    RoleBinding,
    /// A cluster-wide ClusterRoleBinding.
    ClusterRoleBinding,
}

impl BindingKind {
    /// The Kubernetes kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            BindingKind::RoleBinding => "RoleBinding",
            BindingKind::ClusterRoleBinding => "ClusterRoleBinding",
        }
    }
}

/// An admission policy (rule) that this exception covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyReference {
    /// Policy engine, for example `kyverno` or `gatekeeper`.
    #[schemars(length(max = super::limits::NAME))]
    pub engine: String,
    /// Policy name.
    #[schemars(length(max = super::limits::OBJECT_NAME))]
    pub name: String,
    /// Rules of the policy covered; all when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = super::limits::POLICY_RULES),
        inner(length(max = super::limits::OBJECT_NAME))
    )]
    pub rules: Vec<String>,
}

/// Lifecycle phase of a PolicyException.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    /// Valid, before startsAt.
    Pending,
    /// Valid, between startsAt and expiresAt: the grant and tolerations apply.
    Active,
    /// From expiresAt on. Sticky: an expired exception never applies again.
    Expired,
    /// The spec is invalid; nothing is granted or tolerated.
    Rejected,
}

impl Phase {
    /// The phase name as written in status.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Active => "Active",
            Phase::Expired => "Expired",
            Phase::Rejected => "Rejected",
        }
    }
}

/// Observed state of a PolicyException, written only when it changes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyExceptionStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pending, Active, Expired or Rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// When the exception ends (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::limits::TIMESTAMP))]
    pub expires_at: Option<String>,
    /// Name of the Role and RoleBinding holding the grant, while Active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::limits::DERIVED_NAME))]
    pub granted_role: Option<String>,
    /// Ready, Stalled, Reconciling, Valid, Active, Expired and ExpiringSoon.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::schema::conditions")]
    pub conditions: Vec<Condition>,
    /// Who asked for it and who approved it, as verified by admission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<super::ApprovalStatus>,
    /// What happened to the exception, newest last, for auditors after the
    /// Events are gone: each transition (pending, granted, activated,
    /// expiring soon, expired, rejected) with its time and reason; the
    /// oldest drop off beyond 20.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = super::limits::HISTORY))]
    pub history: Vec<HistoryEntry>,
}

/// One transition of an exception.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HistoryEntry {
    /// When (RFC 3339).
    #[schemars(length(max = super::limits::TIMESTAMP))]
    pub time: String,
    /// What, as the Event's reason.
    #[schemars(length(max = super::limits::REASON))]
    pub reason: String,
    /// The Event's note.
    #[schemars(length(max = super::limits::SENTENCE))]
    pub message: String,
}
