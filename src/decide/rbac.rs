//! Builders for the RBAC objects Steward manages: one Role with exactly the
//! declared rules and one RoleBinding with exactly one service account, both
//! labelled and owned by the Steward object they come from.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::api::{CONTROL_LABEL, EXCEPTION_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE};

/// Name of the Role and RoleBinding of a workload identity:
/// `steward:<control>:<service account>`.
///
/// Kubernetes object names (controls, exceptions, service accounts) never
/// contain `:`, while RBAC names may (like the API server's own
/// `system:controller:*` roles). So the two kinds of pair cannot take each
/// other's name (`steward:` has two separators after it, `steward-x:` one),
/// and two identities cannot either: `a-b`/`c` and `a`/`b-c` stay apart.
/// RBAC names have no length limit, so two names of 253 characters fit.
pub fn identity_name(control: &str, service_account: &str) -> String {
    format!("steward:{control}:{service_account}")
}

/// Name of the Role and RoleBinding holding an exception's grant:
/// `steward-x:<exception>`.
pub fn exception_name(exception: &str) -> String {
    format!("steward-x:{exception}")
}

/// The exception whose grant would have `name`, if it is such a name.
pub fn exception_of(name: &str) -> Option<&str> {
    name.strip_prefix("steward-x:")
        .filter(|e| !e.is_empty() && !e.contains(':'))
}

/// The control whose identity pair would have `name`, if it is such a name.
pub fn control_of(name: &str) -> Option<&str> {
    let (control, service_account) = name.strip_prefix("steward:")?.split_once(':')?;
    let plain = |s: &str| !s.is_empty() && !s.contains(':');
    (plain(control) && plain(service_account)).then_some(control)
}

/// A Role and its RoleBinding, always managed as a pair of the same name.
#[derive(Clone, Debug, PartialEq)]
pub struct RbacPair {
    /// The Role with exactly the declared rules.
    pub role: Role,
    /// The RoleBinding of exactly one service account to that Role.
    pub binding: RoleBinding,
}

impl RbacPair {
    /// Name of both objects.
    pub fn name(&self) -> &str {
        self.role.metadata.name.as_deref().unwrap_or_default()
    }
}

/// Who a managed pair belongs to.
#[derive(Clone, Debug, PartialEq)]
pub enum ManagedFor<'a> {
    /// A workload identity of this control.
    Control(&'a str),
    /// The grant of this exception to this control.
    Exception {
        /// The exception's name.
        exception: &'a str,
        /// The control it is an exception to.
        control: &'a str,
    },
}

/// Labels every managed object carries.
pub fn labels(owner: &ManagedFor<'_>) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert(MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string());
    match owner {
        ManagedFor::Control(control) => {
            l.insert(CONTROL_LABEL.to_string(), label_value(control));
        }
        ManagedFor::Exception { exception, control } => {
            l.insert(CONTROL_LABEL.to_string(), label_value(control));
            l.insert(EXCEPTION_LABEL.to_string(), label_value(exception));
        }
    }
    l
}

/// Label values are at most 63 characters; object names can be longer.
/// The label is for selection; ownership is decided by names, not labels.
fn label_value(s: &str) -> String {
    let mut v: String = s.chars().take(63).collect();
    while v.ends_with(['-', '.', '_']) {
        v.pop();
    }
    v
}

/// Builds the Role and RoleBinding `name` in `namespace` granting `rules`
/// to `service_account`.
pub fn pair(
    name: &str,
    namespace: &str,
    service_account: &str,
    rules: &[PolicyRule],
    owner: &ManagedFor<'_>,
    owner_ref: Option<OwnerReference>,
) -> RbacPair {
    let metadata = ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        labels: Some(labels(owner)),
        owner_references: owner_ref.map(|o| vec![o]),
        ..Default::default()
    };
    RbacPair {
        role: Role {
            metadata: metadata.clone(),
            rules: Some(rules.to_vec()),
        },
        binding: RoleBinding {
            metadata,
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".to_string(),
                kind: "Role".to_string(),
                name: name.to_string(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".to_string(),
                name: service_account.to_string(),
                namespace: Some(namespace.to_string()),
                api_group: None,
            }]),
        },
    }
}

#[cfg(test)]
mod name_tests {
    use super::*;

    #[test]
    fn names_are_unambiguous_and_read_back() {
        let cases = [
            ("a-b", "c", "a", "b-c"),
            ("x", "debug", "x-debug", "y"),
            ("a.b", "c", "a", "b.c"),
        ];
        for (c1, s1, c2, s2) in cases {
            assert_ne!(identity_name(c1, s1), identity_name(c2, s2));
            assert_eq!(control_of(&identity_name(c1, s1)), Some(c1));
            assert_eq!(exception_of(&identity_name(c1, s1)), None);
        }
        assert_ne!(identity_name("x", "debug"), exception_name("debug"));
        assert_eq!(exception_of(&exception_name("debug")), Some("debug"));
        assert_eq!(control_of(&exception_name("debug")), None);
        for other in [
            "steward-x-debug",
            "steward:a",
            "steward:a:b:c",
            "steward-x:",
            "system:x:y",
        ] {
            assert_eq!((control_of(other), exception_of(other)), (None, None), "{other}");
        }
    }
}
