//! Size limits of every list and string of both CRDs (`maxItems` and
//! `maxLength` in the schema). The schema (and so the API server) and
//! `decide::validate` (and so `steward validate`, offline) read the same
//! numbers, so neither admits what the other refuses.
//!
//! They are generous for real use (the built-in `admin` ClusterRole has 20
//! rules, none with more than 15 resources or 8 verbs) and small enough
//! that the CEL rules' estimated cost stays far inside the API server's
//! budget and one object of the largest size validates in milliseconds.
//! Strings count characters, as the API server does.

/// A team name (owner, backup owner), a person (approver, requester) or a
/// contact.
pub const NAME: usize = 256;
/// The name of a Kubernetes object: a control, a service account, a
/// binding, a role, a resource name (a DNS subdomain at most).
pub const OBJECT_NAME: usize = 253;
/// A namespace (a DNS label).
pub const NAMESPACE: usize = 63;
/// A ticket reference.
pub const TICKET: usize = 128;
/// One sentence of prose: a task, a reason or a description.
pub const SENTENCE: usize = 1024;
/// An RFC 3339 timestamp.
pub const TIMESTAMP: usize = 64;
/// A duration such as `30d` or `1h30m`.
pub const DURATION: usize = 32;
/// A regular expression (`ticketPattern`).
pub const PATTERN: usize = 1024;

/// Workload identities of one control.
pub const IDENTITIES: usize = 100;
/// Approvers of one control (and approver groups, trusted appliers,
/// break-glass groups).
pub const APPROVERS: usize = 64;
/// A digest (`sha256:` and 64 hex digits).
pub const DIGEST: usize = 80;
/// The most approvals a control may require.
pub const MIN_APPROVALS: i32 = 10;
/// Approval records kept on one exception.
pub const APPROVAL_RECORDS: usize = 16;
/// Groups recorded for one identity (only those the control names).
pub const RECORDED_GROUPS: usize = 16;

/// RBAC rules of one workload identity or of one grant.
pub const RULES: usize = 64;
/// API groups of one rule.
pub const RULE_API_GROUPS: usize = 32;
/// Resources of one rule.
pub const RULE_RESOURCES: usize = 64;
/// Verbs of one rule.
pub const RULE_VERBS: usize = 32;
/// Resource names of one rule.
pub const RULE_RESOURCE_NAMES: usize = 64;
/// Non-resource URLs of one rule (always refused in a namespace, bounded
/// all the same).
pub const RULE_NON_RESOURCE_URLS: usize = 16;
/// An API group (a DNS subdomain).
pub const API_GROUP: usize = 253;
/// A resource, with its subresource when it has one (`deployments/scale`).
pub const RESOURCE: usize = 253;
/// A verb.
pub const VERB: usize = 63;
/// A non-resource URL.
pub const URL: usize = 512;

/// Tolerations of one exception.
pub const TOLERATIONS: usize = 32;
/// Subjects of one tolerated binding.
pub const SUBJECTS: usize = 32;
/// A subject's name: a user, a group or a service account.
pub const SUBJECT_NAME: usize = 512;
/// Admission policies one exception covers.
pub const POLICIES: usize = 32;
/// Rules of one admission policy an exception covers.
pub const POLICY_RULES: usize = 64;

/// Status, which only the controller writes: conditions per object.
pub const CONDITIONS: usize = 16;
/// Status: a condition's type, reason and message (metav1.Condition's own
/// limits).
pub const CONDITION_TYPE: usize = 316;
/// Status: a condition's reason.
pub const CONDITION_REASON: usize = 1024;
/// Status: a condition's message (Steward writes at most 2,048 bytes).
pub const CONDITION_MESSAGE: usize = 32768;
/// Status: a name Steward derives from others (`steward-<control>-<sa>`,
/// `ClusterRole/<name>`), or a short enumerated word.
pub const DERIVED_NAME: usize = 1024;
/// Status: drifting bindings listed per identity, the first in kind and
/// name order (Enforce still removes every one it may): a tenant who makes
/// thousands of bindings must not make the status too large to write.
pub const DRIFT_LISTED: usize = 50;
/// Status: an identity's problem (Steward writes at most 300 characters).
pub const PROBLEM: usize = 1024;

/// Entries of an exception's `status.history`: its transitions, newest
/// last; older ones drop off.
pub const HISTORY: usize = 20;
/// A CamelCase reason.
pub const REASON: usize = 128;
