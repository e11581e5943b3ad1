//! Test fixtures: objects as users write them, with fixed timestamps.

use jiff::Timestamp;
use k8s_openapi::api::rbac::v1::{PolicyRule, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::ceiling::Ceiling;
use super::control::Observed;
use crate::api::{ControlOwnership, PolicyException};

/// Owner references, each as (apiVersion, kind, uid), all named "owner".
pub fn owner_refs(owners: &[(&str, &str, &str)]) -> Vec<OwnerReference> {
    owners
        .iter()
        .map(|(api_version, kind, uid)| OwnerReference {
            api_version: (*api_version).into(),
            kind: (*kind).into(),
            name: "owner".into(),
            uid: (*uid).into(),
            ..Default::default()
        })
        .collect()
}

/// A Group subject.
pub fn group(name: &str) -> Subject {
    Subject {
        kind: "Group".into(),
        name: name.into(),
        namespace: None,
        api_group: Some("rbac.authorization.k8s.io".into()),
    }
}

pub fn ts(s: &str) -> Timestamp {
    s.parse().expect("fixture timestamp")
}

pub fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

pub fn ceiling() -> Ceiling {
    Ceiling::new(
        "steward-grantable",
        vec![
            rule(&[""], &["configmaps", "pods", "pods/log"], &["get", "list", "watch"]),
            rule(&["batch"], &["jobs"], &["get", "create"]),
        ],
    )
}

pub fn control_yaml() -> &'static str {
    r#"
apiVersion: steward.dev/v1alpha1
kind: ControlOwnership
metadata: {name: payments, namespace: shop, uid: co-uid, generation: 3, creationTimestamp: "2026-11-01T00:00:00Z"}
spec:
  layer: Identity
  owner: {name: payments-team}
  backupOwner: {name: security-team}
  approvers: [alice@example.com]
  review: {interval: 30d, lastReviewed: "2026-11-20T00:00:00Z"}
  exceptionPolicy: {maxDuration: 2d, ticketPattern: "^SEC-[0-9]+$"}
  workloadIdentities:
    - serviceAccount: api
      task: Serves the API
      rules:
        - {apiGroups: [""], resources: [configmaps], verbs: [get]}
    - serviceAccount: worker
      task: Runs jobs
      rules:
        - {apiGroups: [batch], resources: [jobs], verbs: [create]}
"#
}

pub fn control() -> ControlOwnership {
    serde_yaml_ng::from_str(control_yaml()).expect("fixture control")
}

pub fn exception_yaml() -> &'static str {
    r#"
apiVersion: steward.dev/v1alpha1
kind: PolicyException
metadata: {name: debug, namespace: shop, uid: pe-uid, generation: 1, creationTimestamp: "2026-11-28T09:00:00Z"}
spec:
  control: payments
  ticket: SEC-1234
  approver: alice@example.com
  requester: carol@example.com
  reason: Debug a stuck payout
  startsAt: "2026-11-28T10:00:00Z"
  expiresAt: "2026-11-29T10:00:00Z"
  grant:
    serviceAccount: api
    rules:
      - {apiGroups: [""], resources: [pods/log], verbs: [get]}
  tolerate:
    - kind: ClusterRoleBinding
      name: legacy-admin
      roleRef: {kind: ClusterRole, name: cluster-admin}
      subjects: [{kind: ServiceAccount, name: api, namespace: shop}]
"#
}

pub fn exception() -> PolicyException {
    serde_yaml_ng::from_str(exception_yaml()).expect("fixture exception")
}

/// A ServiceAccount subject.
pub fn sa(name: &str, ns: &str) -> Subject {
    Subject {
        kind: "ServiceAccount".into(),
        name: name.into(),
        namespace: Some(ns.into()),
        api_group: None,
    }
}

/// What the controller observes in an empty cluster: no exceptions, no
/// bindings, no managed pairs. Tests fill in what they need.
pub fn nothing_observed<'a>() -> Observed<'a> {
    Observed {
        exceptions: &[],
        role_bindings: &[],
        cluster_role_bindings: &[],
        managed_names: &[],
        controls: &[],
    }
}
