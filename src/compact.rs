//! The Roles and RoleBindings Steward reads, in the form its caches keep
//! them: only the fields a decision reads. At ten thousand exceptions these
//! are most of the cached objects (a Role and a RoleBinding per grant and
//! per workload identity, and every other RoleBinding in scope), and as
//! k8s-openapi objects they took about 1.5 KB each: a 360-byte `ObjectMeta`
//! whose every field is inline, and a labels `BTreeMap` whose first node
//! alone is 640 bytes. Here a binding keeps its name, uid, version, the
//! owner references naming Steward's kinds, Steward's three labels, its
//! roleRef and subjects; a Role keeps a digest of its rules instead of the
//! rules (a decision only asks whether they are exactly the desired ones).
//! Namespaces are shared between objects.
//!
//! What is dropped is never read: other labels and annotations, owner
//! references to other kinds (a uid is unique, so a Steward owner's uid is
//! never a foreign owner's), timestamps, finalizers.

use std::borrow::Cow;
use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, LazyLock, Mutex};

use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use kube::runtime::reflector::Lookup;

use crate::api::{CONTROL_LABEL, EXCEPTION_LABEL, GROUP, MANAGED_BY_LABEL};

/// Which of Steward's kinds an owner reference names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerKind {
    /// A ControlOwnership.
    Control,
    /// A PolicyException.
    Exception,
}

impl OwnerKind {
    /// The kind's name.
    pub fn kind(self) -> &'static str {
        match self {
            OwnerKind::Control => "ControlOwnership",
            OwnerKind::Exception => "PolicyException",
        }
    }
}

/// An owner reference to one of Steward's kinds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Its apiVersion (a version of Steward's group).
    pub api_version: Box<str>,
    /// Its kind.
    pub kind: OwnerKind,
    /// The owner's name.
    pub name: Box<str>,
    /// The owner's uid.
    pub uid: Box<str>,
}

impl Owner {
    fn from_reference(o: OwnerReference) -> Option<Self> {
        let kind = match o.kind.as_str() {
            "ControlOwnership" => OwnerKind::Control,
            "PolicyException" => OwnerKind::Exception,
            _ => return None,
        };
        (o.api_version.split('/').next() == Some(GROUP)).then(|| Owner {
            api_version: o.api_version.into(),
            kind,
            name: o.name.into(),
            uid: o.uid.into(),
        })
    }
}

/// Steward's own labels, the only ones a decision reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Labels {
    managed_by: Option<Box<str>>,
    control: Option<Box<str>>,
    exception: Option<Box<str>>,
}

impl Labels {
    fn slot(&mut self, key: &str) -> Option<&mut Option<Box<str>>> {
        match key {
            MANAGED_BY_LABEL => Some(&mut self.managed_by),
            CONTROL_LABEL => Some(&mut self.control),
            EXCEPTION_LABEL => Some(&mut self.exception),
            _ => None,
        }
    }

    /// The value of label `key`, if it is one of Steward's and is set.
    /// (Any other key reads as unset: those are not kept.)
    pub fn get(&self, key: &str) -> Option<&str> {
        match key {
            MANAGED_BY_LABEL => self.managed_by.as_deref(),
            CONTROL_LABEL => self.control.as_deref(),
            EXCEPTION_LABEL => self.exception.as_deref(),
            _ => None,
        }
    }

    /// Whether every one of `want` is set to its value here. A key that is
    /// not one of Steward's is never satisfied, so asking for one shows.
    pub fn include<'a>(&self, want: impl IntoIterator<Item = (&'a String, &'a String)>) -> bool {
        want.into_iter().all(|(k, v)| self.get(k) == Some(v.as_str()))
    }
}

/// The metadata a decision reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Its name.
    pub name: Box<str>,
    /// Its namespace, shared with every other object of that namespace.
    pub namespace: Arc<str>,
    /// Its uid ("" if the server sent none).
    pub uid: Box<str>,
    /// Its resourceVersion ("" if the server sent none).
    pub resource_version: Box<str>,
    /// The owner references naming Steward's kinds.
    pub owners: Box<[Owner]>,
    /// Steward's labels.
    pub labels: Labels,
}

impl Meta {
    /// The parts of `meta` a decision reads.
    pub fn from_object_meta(meta: ObjectMeta) -> Self {
        let mut labels = Labels::default();
        for (k, v) in meta.labels.into_iter().flatten() {
            if let Some(slot) = labels.slot(&k) {
                *slot = Some(v.into());
            }
        }
        Self {
            name: meta.name.unwrap_or_default().into(),
            namespace: shared_namespace(meta.namespace.as_deref().unwrap_or_default()),
            uid: meta.uid.unwrap_or_default().into(),
            resource_version: meta.resource_version.unwrap_or_default().into(),
            owners: meta
                .owner_references
                .into_iter()
                .flatten()
                .filter_map(Owner::from_reference)
                .collect(),
            labels,
        }
    }

    /// Whether one of its owners has `uid`.
    pub fn owned_by(&self, uid: &str) -> bool {
        self.owners.iter().any(|o| &*o.uid == uid)
    }

    fn non_empty(s: &str) -> Option<Cow<'_, str>> {
        (!s.is_empty()).then_some(Cow::Borrowed(s))
    }
}

/// The namespaces' names, one copy each. Namespaces are created by the
/// platform, not by tenants, so the set stays as small as the cluster's
/// list of namespaces (a deleted namespace's name stays: a few bytes).
static NAMESPACES: LazyLock<Mutex<HashSet<Arc<str>>>> = LazyLock::new(Mutex::default);

fn shared_namespace(ns: &str) -> Arc<str> {
    let Ok(mut set) = NAMESPACES.lock() else {
        return ns.into();
    };
    if let Some(shared) = set.get(ns) {
        return shared.clone();
    }
    let shared: Arc<str> = ns.into();
    set.insert(shared.clone());
    shared
}

/// A keyed digest of a Role's rules: equal digests mean equal rules. The
/// key is drawn once per process, so no one can craft rules whose digest
/// matches the desired ones without being them.
pub fn rules_digest(rules: Option<&[PolicyRule]>) -> u64 {
    static KEY: LazyLock<RandomState> = LazyLock::new(RandomState::new);
    KEY.hash_one(serde_json::to_string(&rules).unwrap_or_default())
}

/// A Role as the cache keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedRole {
    /// Its metadata.
    pub metadata: Meta,
    /// `rules_digest` of its rules.
    pub rules: u64,
}

impl From<Role> for CachedRole {
    fn from(role: Role) -> Self {
        Self {
            rules: rules_digest(role.rules.as_deref()),
            metadata: Meta::from_object_meta(role.metadata),
        }
    }
}

/// A RoleBinding as the cache keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedRoleBinding {
    /// Its metadata.
    pub metadata: Meta,
    /// The role it binds.
    pub role_ref: RoleRef,
    /// Who it binds.
    pub subjects: Box<[Subject]>,
}

impl From<RoleBinding> for CachedRoleBinding {
    fn from(rb: RoleBinding) -> Self {
        Self {
            metadata: Meta::from_object_meta(rb.metadata),
            role_ref: rb.role_ref,
            subjects: rb.subjects.unwrap_or_default().into(),
        }
    }
}

/// What the caches and the writers need of a compact form.
pub trait Compact {
    /// Its metadata.
    fn meta(&self) -> &Meta;
}

impl Compact for CachedRole {
    fn meta(&self) -> &Meta {
        &self.metadata
    }
}

impl Compact for CachedRoleBinding {
    fn meta(&self) -> &Meta {
        &self.metadata
    }
}

/// Object references key objects through `Lookup`; the compact forms
/// answer it for the kind they stand for.
macro_rules! lookup_as {
    ($compact:ty, $kind:ty) => {
        impl Lookup for $compact {
            type DynamicType = ();

            fn kind(_: &()) -> Cow<'_, str> {
                <$kind as Resource>::kind(&())
            }

            fn group(_: &()) -> Cow<'_, str> {
                <$kind as Resource>::group(&())
            }

            fn version(_: &()) -> Cow<'_, str> {
                <$kind as Resource>::version(&())
            }

            fn plural(_: &()) -> Cow<'_, str> {
                <$kind as Resource>::plural(&())
            }

            fn name(&self) -> Option<Cow<'_, str>> {
                Meta::non_empty(&self.metadata.name)
            }

            fn namespace(&self) -> Option<Cow<'_, str>> {
                Meta::non_empty(&self.metadata.namespace)
            }

            fn resource_version(&self) -> Option<Cow<'_, str>> {
                Meta::non_empty(&self.metadata.resource_version)
            }

            fn uid(&self) -> Option<Cow<'_, str>> {
                Meta::non_empty(&self.metadata.uid)
            }
        }
    };
}

lookup_as!(CachedRole, Role);
lookup_as!(CachedRoleBinding, RoleBinding);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::MANAGED_BY_VALUE;
    use crate::decide::fixtures::owner_refs;

    fn meta(labels: &[(&str, &str)], owners: &[(&str, &str, &str)]) -> ObjectMeta {
        ObjectMeta {
            name: Some("steward-x:late".into()),
            namespace: Some("shop".into()),
            uid: Some("u-1".into()),
            resource_version: Some("42".into()),
            labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            annotations: Some([("a".to_string(), "b".to_string())].into()),
            owner_references: Some(owner_refs(owners)),
            ..Default::default()
        }
    }

    #[test]
    fn keeps_steward_labels_and_owners_only() {
        let m = Meta::from_object_meta(meta(
            &[
                (MANAGED_BY_LABEL, MANAGED_BY_VALUE),
                (EXCEPTION_LABEL, "late"),
                ("team", "pay"),
            ],
            &[
                ("steward.dev/v1", "PolicyException", "e-1"),
                ("steward.dev/v2", "ControlOwnership", "c-1"),
                ("apps/v1", "Deployment", "d-1"),
                ("evil.dev/v1", "PolicyException", "x-1"),
                ("steward.dev/v1", "Other", "o-1"),
            ],
        ));
        assert_eq!(
            (&*m.name, &*m.namespace, &*m.uid, &*m.resource_version),
            ("steward-x:late", "shop", "u-1", "42")
        );
        assert_eq!(m.labels.get(MANAGED_BY_LABEL), Some(MANAGED_BY_VALUE));
        assert_eq!(m.labels.get(EXCEPTION_LABEL), Some("late"));
        assert_eq!(m.labels.get(CONTROL_LABEL), None);
        assert_eq!(m.labels.get("team"), None, "not kept");
        let uids: Vec<&str> = m.owners.iter().map(|o| &*o.uid).collect();
        assert_eq!(uids, ["e-1", "c-1"]);
        assert_eq!(m.owners[0].kind, OwnerKind::Exception);
        assert!(m.owned_by("c-1") && !m.owned_by("d-1") && !m.owned_by("x-1"));
    }

    #[test]
    fn label_inclusion_fails_on_keys_not_kept() {
        let m = Meta::from_object_meta(meta(&[(MANAGED_BY_LABEL, MANAGED_BY_VALUE), ("team", "pay")], &[]));
        let want = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let table: &[(&[(&str, &str)], bool)] = &[
            (&[], true),
            (&[(MANAGED_BY_LABEL, MANAGED_BY_VALUE)], true),
            (&[(MANAGED_BY_LABEL, "other")], false),
            (&[(CONTROL_LABEL, "pay")], false),
            (&[("team", "pay")], false),
        ];
        for (pairs, expected) in table {
            let w = want(pairs);
            assert_eq!(m.labels.include(w.iter().map(|(k, v)| (k, v))), *expected, "{pairs:?}");
        }
    }

    #[test]
    fn namespaces_are_shared() {
        let a = Meta::from_object_meta(meta(&[], &[]));
        let b = Meta::from_object_meta(meta(&[], &[]));
        assert!(Arc::ptr_eq(&a.namespace, &b.namespace));
    }

    #[test]
    fn the_rules_digest_tells_rules_apart() {
        let rule = |verb: &str| PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["pods".into()]),
            verbs: vec![verb.into()],
            ..Default::default()
        };
        let get = vec![rule("get")];
        assert_eq!(rules_digest(Some(&get)), rules_digest(Some(&[rule("get")])));
        assert_ne!(rules_digest(Some(&get)), rules_digest(Some(&[rule("list")])));
        assert_ne!(
            rules_digest(Some(&get)),
            rules_digest(Some(&[rule("get"), rule("get")]))
        );
        assert_ne!(rules_digest(Some(&[])), rules_digest(None));
        let role: CachedRole = Role {
            metadata: meta(&[], &[]),
            rules: Some(get.clone()),
        }
        .into();
        assert_eq!(role.rules, rules_digest(Some(&get)));
    }

    #[test]
    fn a_binding_keeps_what_drift_reads() {
        let subject = Subject {
            kind: "ServiceAccount".into(),
            name: "app".into(),
            namespace: Some("shop".into()),
            ..Default::default()
        };
        let role_ref = RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: "edit".into(),
        };
        let rb: CachedRoleBinding = RoleBinding {
            metadata: meta(&[], &[]),
            role_ref: role_ref.clone(),
            subjects: Some(vec![subject.clone()]),
        }
        .into();
        assert_eq!(rb.role_ref, role_ref);
        assert_eq!(&*rb.subjects, [subject]);
        assert_eq!(Lookup::name(&rb).as_deref(), Some("steward-x:late"));
        assert_eq!(Lookup::namespace(&rb).as_deref(), Some("shop"));
        assert_eq!(<CachedRoleBinding as Lookup>::kind(&()), "RoleBinding");
    }

    /// Every label Steward writes on a managed pair is one the compact form
    /// keeps: otherwise the cached pair would never look as desired, and
    /// every reconcile would apply it again.
    #[test]
    fn every_label_steward_writes_is_kept() {
        use crate::decide::rbac::{ManagedFor, labels};
        let owners = [
            ManagedFor::Control("payments"),
            ManagedFor::Exception {
                exception: "late",
                control: "payments",
            },
        ];
        for owner in owners {
            let written = labels(&owner);
            let kept = Meta::from_object_meta(ObjectMeta {
                labels: Some(written.clone()),
                ..Default::default()
            });
            assert!(kept.labels.include(&written), "{owner:?}: {written:?}");
        }
    }
}
