//! `ControlOwnership`: who owns a control, how often it is reviewed, and what
//! each workload identity of the namespace may do.

use k8s_openapi::api::rbac::v1::PolicyRule;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Who owns a security control, how often it is reviewed, who may approve
/// exceptions to it, and exactly which permissions each workload identity
/// (service account) of this namespace holds.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "steward.dev",
    version = "v1alpha1",
    kind = "ControlOwnership",
    namespaced,
    doc = "Who owns a security control, how often it is reviewed, who may approve exceptions to it, and exactly which permissions each workload identity (service account) of the namespace holds.",
    status = "ControlOwnershipStatus",
    shortname = "ctlown",
    category = "steward",
    derive = "PartialEq",
    printcolumn(
        name = "Layer",
        type_ = "string",
        json_path = ".spec.layer",
        description = "Shared-responsibility layer of the control"
    ),
    printcolumn(
        name = "Owner",
        type_ = "string",
        json_path = ".spec.owner.name",
        description = "Owning team"
    ),
    printcolumn(
        name = "Backup",
        type_ = "string",
        json_path = ".spec.backupOwner.name",
        description = "Backup owning team"
    ),
    printcolumn(
        name = "Review-Due",
        type_ = "string",
        json_path = ".status.nextReviewDue",
        description = "When the next review is due"
    ),
    printcolumn(
        name = "Drift",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Drifted\")].status",
        description = "Whether undeclared bindings grant the identities more"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether the control is reconciled"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
// Rules the API server checks on its own (CEL), so an invalid control is
// refused at `kubectl apply` even with the controller and webhook stopped.
// Each mirrors a check of `decide::validate` and names its reason.
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.owner.name.trim() == '' || self.owner.name.trim() != self.backupOwner.name.trim()",
    "fieldPath": ".backupOwner.name",
    "message": "backupOwner must name a different team than owner (OwnerIsBackupOwner)"
}]))]
pub struct ControlOwnershipSpec {
    /// Shared-responsibility layer this control belongs to.
    pub layer: Layer,
    /// What the control covers, in one sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::limits::SENTENCE))]
    pub description: Option<String>,
    /// The team accountable for the control.
    pub owner: Owner,
    /// The team that stands in for the owner; must differ from the owner.
    pub backup_owner: Owner,
    /// Users who may approve exceptions to this control, by the user name
    /// the API server authenticates them as (for example
    /// `alice@example.com`). An approval is an act of that identity
    /// (`kubectl annotate ... steward.dev/approve=<your user name>`); the
    /// owner and backup owner names are also accepted as the claimed
    /// `spec.approver` of an exception.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = super::limits::APPROVERS), inner(length(max = super::limits::NAME)))]
    pub approvers: Vec<String>,
    /// Groups whose members may approve exceptions to this control, as the
    /// API server authenticates them (the request's `userInfo.groups`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = super::limits::APPROVERS), inner(length(max = super::limits::NAME)))]
    pub approver_groups: Vec<String>,
    /// Review cadence of the control.
    pub review: Review,
    /// Limits on exceptions to this control. Defaults apply when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception_policy: Option<ExceptionPolicy>,
    /// Audit (default) reports drift; Enforce also removes drifting bindings
    /// whose subjects are all managed service accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcement: Option<Enforcement>,
    /// Service accounts of this namespace, each with one task and exactly the
    /// permissions that task needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = super::limits::IDENTITIES))]
    pub workload_identities: Vec<WorkloadIdentity>,
}

impl ControlOwnershipSpec {
    /// The service accounts of its workload identities, in spec order.
    pub fn service_accounts(&self) -> Vec<&str> {
        self.workload_identities
            .iter()
            .map(|i| i.service_account.as_str())
            .collect()
    }
}

/// Shared-responsibility layer of a control.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Layer {
    /// Workload identities and their permissions.
    Identity,
    /// Network policies.
    NetworkPolicy,
    /// Cluster-wide posture settings.
    ClusterPosture,
    /// Admission and workload policies.
    WorkloadPolicy,
    /// Secrets handling.
    Secrets,
    /// Permissions of CI/CD systems.
    #[serde(rename = "CICDPermissions")]
    CicdPermissions,
}

/// A team and how to reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.name.trim() != ''",
    "fieldPath": ".name",
    "message": "name is required and must not be empty (MissingField)"
}]))]
pub struct Owner {
    /// Team name, for example `payments-team`.
    #[schemars(length(max = super::limits::NAME))]
    pub name: String,
    /// How to reach the team: a chat channel, an e-mail address or a pager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::limits::NAME))]
    pub contact: Option<String>,
}

/// Review cadence of a control.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    /// Time between reviews: units d, h, m, s combined, for example `30d`,
    /// `12h`, `1h30m` or `45s`.
    #[schemars(length(max = super::limits::DURATION))]
    pub interval: String,
    /// When the owner last reviewed the control (RFC 3339, UTC `Z`). Set in
    /// Git when the review is done. Until it is set the review is due now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::limits::TIMESTAMP))]
    pub last_reviewed: Option<String>,
    /// How long before the due date `ReviewDueSoon` turns on, with a
    /// warning Event and a `warn` report result (default `14d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::limits::DURATION))]
    pub warn_before: Option<String>,
}

/// Limits on exceptions to a control.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExceptionPolicy {
    /// Longest window any exception to this control may have (default `30d`,
    /// never more than `90d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::limits::DURATION))]
    pub max_duration: Option<String>,
    /// Regular expression every exception ticket must match, for example
    /// `^SEC-[0-9]+$`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::limits::PATTERN))]
    pub ticket_pattern: Option<String>,
    /// How many distinct approvers, none of them the requester, must
    /// approve an exception before it applies (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = super::limits::MIN_APPROVALS))]
    pub min_approvals: Option<i32>,
    /// User names of GitOps controllers (for example
    /// `system:serviceaccount:argocd:argocd-application-controller`): an
    /// exception they create, or change when they also wrote its previous
    /// content, counts as approved through the Git review that merged it.
    /// Whoever can merge to that repository can then approve: protect the
    /// branch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = super::limits::APPROVERS), inner(length(max = super::limits::NAME)))]
    pub trusted_appliers: Vec<String>,
    /// Emergency self-approval: members of these groups may approve an
    /// exception themselves (`steward.dev/break-glass=<your user name>`)
    /// when its window is at most `maxDuration`. Such an exception is
    /// reported loudly (condition BreakGlass, a Warning Event, a `fail`
    /// report result, a metric) until an approver reviews it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<BreakGlass>,
}

/// Who may approve their own exception in an emergency, and for how long.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BreakGlass {
    /// Groups whose members may break glass.
    #[schemars(length(min = 1, max = super::limits::APPROVERS), inner(length(max = super::limits::NAME)))]
    pub groups: Vec<String>,
    /// Longest window a break-glass exception may have, for example `4h`
    /// (at most the control's `maxDuration`).
    #[schemars(length(max = super::limits::DURATION))]
    pub max_duration: String,
}

/// What the controller does about drift.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Enforcement {
    /// Report drift in status, Events and reports.
    #[default]
    Audit,
    /// Also delete drifting bindings whose subjects are all managed service
    /// accounts.
    Enforce,
}

/// One service account, one task, exactly the permissions the task needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.task.trim() != ''",
    "fieldPath": ".task",
    "message": "task is required: one identity, one task (MissingField)"
}]))]
pub struct WorkloadIdentity {
    /// Name of a service account in this namespace.
    #[schemars(length(max = super::limits::OBJECT_NAME))]
    pub service_account: String,
    /// The one task this identity performs, in a sentence.
    #[schemars(length(max = super::limits::SENTENCE))]
    pub task: String,
    /// Namespace-scoped RBAC rules the identity holds; they must fit the
    /// grant ceiling.
    #[serde(default)]
    #[schemars(schema_with = "super::schema::rules")]
    pub rules: Vec<PolicyRule>,
}

/// Observed state of a ControlOwnership, written only when it changes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControlOwnershipStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the next review is due (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::limits::TIMESTAMP))]
    pub next_review_due: Option<String>,
    /// Number of Active PolicyExceptions to this control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_exceptions: Option<i32>,
    /// Per workload identity: its managed Role and any drift.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = super::limits::IDENTITIES))]
    pub identities: Vec<IdentityStatus>,
    /// Ready, Stalled, Reconciling, Valid, ReviewOverdue and Drifted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::schema::conditions")]
    pub conditions: Vec<Condition>,
}

/// State of one workload identity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityStatus {
    /// The service account.
    #[schemars(length(max = super::limits::OBJECT_NAME))]
    pub service_account: String,
    /// Name of the managed Role and RoleBinding.
    #[schemars(length(max = super::limits::DERIVED_NAME))]
    pub role: String,
    /// Bindings not managed by Steward that grant this service account
    /// anything (drift): the first ones in kind and name order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = super::limits::DRIFT_LISTED))]
    pub drift: Vec<DriftBinding>,
    /// Why this identity's Role or RoleBinding could not be put in place,
    /// while that lasts (the other identities are unaffected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::limits::PROBLEM))]
    pub problem: Option<String>,
}

/// A binding that grants a managed service account undeclared permissions.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftBinding {
    /// RoleBinding or ClusterRoleBinding.
    #[schemars(length(max = super::limits::DERIVED_NAME))]
    pub kind: String,
    /// Name of the binding.
    #[schemars(length(max = super::limits::OBJECT_NAME))]
    pub name: String,
    /// What it binds, as `Kind/name`.
    #[schemars(length(max = super::limits::DERIVED_NAME))]
    pub role_ref: String,
}
