//! Nothing outlives its record: which managed Roles and RoleBindings have
//! lost their owner. A pair Steward made names its ControlOwnership or
//! PolicyException by uid; when no object with that uid exists any more
//! (deleted with its finalizer stripped, deleted while the controller was
//! down, or replaced by a new object of the same name), the pair is an
//! orphan. So is an exception's grant once that exception's window is not
//! open (over, not started, or its expiry recorded), or under a name the
//! exception would not use (left from an earlier naming scheme). Finalizers
//! and the exception reconciler make cleanup prompt; this makes it certain.

use std::collections::BTreeMap;

use crate::api::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use crate::compact::{Meta, OwnerKind};

/// Role or RoleBinding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ManagedKind {
    /// Deleted first: removing the binding is what revokes access.
    RoleBinding,
    /// Deleted after its binding.
    Role,
}

/// A managed object to delete.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Orphan {
    /// RoleBinding or Role.
    pub kind: ManagedKind,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its uid (the delete is conditional on it).
    pub uid: String,
    /// The PolicyException whose grant this binding is, when that
    /// exception no longer exists: deleting the binding revokes a grant of
    /// a deleted record, which its Revoked Event reports. (Exceptions carry
    /// no finalizer; this is how their deletion is carried out.)
    pub deleted_exception: Option<DeletedOwner>,
}

/// A Steward owner that no longer exists, as its owner reference names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeletedOwner {
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
}

/// What a live Steward object, by uid, lets its managed objects keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Keeps {
    /// A ControlOwnership: its reconciler decides which pairs it keeps.
    Control,
    /// A PolicyException: at most its grant, under `name`, while its window
    /// is `open`.
    Exception {
        /// The name its grant pair has.
        name: String,
        /// Whether the window is open now ([`super::exception::window_open`]).
        open: bool,
    },
}

impl Keeps {
    fn keeps(&self, name: Option<&str>) -> bool {
        match self {
            Keeps::Control => true,
            Keeps::Exception { name: grant, open } => *open && name == Some(grant.as_str()),
        }
    }
}

/// The objects among `managed` that Steward made (its label and an owner
/// reference to one of its kinds) that no Steward owner keeps: every owner's
/// uid is gone from `live_owners`, or the live one does not keep the object
/// ([`Keeps`]). RoleBindings come first.
pub fn orphans<'a>(
    managed: impl IntoIterator<Item = (ManagedKind, &'a Meta)>,
    live_owners: &BTreeMap<&str, Keeps>,
) -> Vec<Orphan> {
    let mut out: Vec<Orphan> = managed
        .into_iter()
        .filter(|(_, meta)| meta.labels.get(MANAGED_BY_LABEL) == Some(MANAGED_BY_VALUE))
        .filter_map(|(kind, meta)| {
            // The cached form keeps only owner references to Steward's kinds.
            let owners: Vec<&str> = meta.owners.iter().map(|o| &*o.uid).collect();
            let name = Some(&*meta.name);
            let orphaned = !owners.is_empty()
                && owners
                    .iter()
                    .all(|uid| !live_owners.get(uid).is_some_and(|k| k.keeps(name)));
            let deleted_exception = (kind == ManagedKind::RoleBinding)
                .then(|| {
                    meta.owners
                        .iter()
                        .find(|o| o.kind == OwnerKind::Exception && !live_owners.contains_key(&*o.uid))
                })
                .flatten()
                .map(|o| DeletedOwner {
                    name: o.name.to_string(),
                    uid: o.uid.to_string(),
                });
            orphaned.then(|| Orphan {
                kind,
                namespace: meta.namespace.to_string(),
                name: meta.name.to_string(),
                uid: meta.uid.to_string(),
                deleted_exception,
            })
        })
        .filter(|o| !o.uid.is_empty())
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::decide::fixtures::owner_refs;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn meta(name: &str, labelled: bool, owners: &[(&str, &str, &str)]) -> Meta {
        Meta::from_object_meta(ObjectMeta {
            name: Some(name.into()),
            namespace: Some("shop".into()),
            uid: Some(format!("{name}-uid")),
            labels: labelled.then(|| [(MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string())].into()),
            owner_references: Some(owner_refs(owners)),
            ..Default::default()
        })
    }

    #[test]
    fn only_labelled_objects_whose_steward_owners_are_all_gone() {
        const PE: (&str, &str) = ("steward.dev/v1alpha1", "PolicyException");
        const CO: (&str, &str) = ("steward.dev/v1alpha1", "ControlOwnership");
        // (case, labelled, owners as (apiVersion, kind, uid), orphan?)
        type Owner = (&'static str, &'static str, &'static str);
        let cases: Vec<(&str, bool, Vec<Owner>, bool)> = vec![
            ("owner live", true, vec![(PE.0, PE.1, "live")], false),
            ("owner gone", true, vec![(PE.0, PE.1, "gone")], true),
            ("control gone", true, vec![(CO.0, CO.1, "gone")], true),
            (
                "replaced owner (same name, new uid)",
                true,
                vec![(CO.0, CO.1, "old")],
                true,
            ),
            ("not labelled: not ours", false, vec![(PE.0, PE.1, "gone")], false),
            (
                "no Steward owner: cannot tell",
                true,
                vec![("apps/v1", "Deployment", "gone")],
                false,
            ),
            ("no owner at all", true, vec![], false),
            (
                "another group's kind",
                true,
                vec![("evil.dev/v1", "PolicyException", "gone")],
                false,
            ),
            (
                "one Steward owner still live",
                true,
                vec![(CO.0, CO.1, "gone"), (CO.0, CO.1, "live")],
                false,
            ),
        ];
        let live: BTreeMap<&str, Keeps> = [("live", Keeps::Control)].into();
        for (case, labelled, owners, orphan) in cases {
            let m = meta("x", labelled, &owners);
            let got = orphans([(ManagedKind::Role, &m)], &live);
            assert_eq!(!got.is_empty(), orphan, "{case}");
        }
    }

    #[test]
    fn bindings_go_first() {
        let gone = [("steward.dev/v1alpha1", "PolicyException", "gone")];
        let (role, binding) = (meta("a", true, &gone), meta("b", true, &gone));
        let got = orphans(
            [(ManagedKind::Role, &role), (ManagedKind::RoleBinding, &binding)],
            &BTreeMap::new(),
        );
        let kinds: Vec<ManagedKind> = got.iter().map(|o| o.kind).collect();
        assert_eq!(kinds, [ManagedKind::RoleBinding, ManagedKind::Role]);
        assert_eq!(got[0].uid, "b-uid");
    }

    #[test]
    fn an_exception_keeps_only_its_own_grant_while_its_window_is_open() {
        let owner = [("steward.dev/v1alpha1", "PolicyException", "pe")];
        let grant = |open| {
            BTreeMap::from([(
                "pe",
                Keeps::Exception {
                    name: "steward-x:debug".into(),
                    open,
                },
            )])
        };
        // (case, object name, window open, orphan?)
        let cases = [
            ("its grant, open", "steward-x:debug", true, false),
            ("its grant, window over", "steward-x:debug", false, true),
            ("an earlier name, open", "steward-x-debug", true, true),
            ("another name, open", "steward:payments:api", true, true),
        ];
        for (case, name, open, orphan) in cases {
            let m = meta(name, true, &owner);
            let got = orphans([(ManagedKind::RoleBinding, &m)], &grant(open));
            assert_eq!(!got.is_empty(), orphan, "{case}");
            // Its exception lives: nothing to report as a deleted record.
            assert!(got.iter().all(|o| o.deleted_exception.is_none()), "{case}");
        }
    }

    #[test]
    fn the_grant_of_a_deleted_exception_names_it() {
        let owner = [("steward.dev/v1alpha1", "PolicyException", "gone")];
        let (binding, role) = (
            meta("steward-x:debug", true, &owner),
            meta("steward-x:debug", true, &owner),
        );
        let got = orphans(
            [(ManagedKind::RoleBinding, &binding), (ManagedKind::Role, &role)],
            &BTreeMap::new(),
        );
        let deleted = DeletedOwner {
            name: "owner".into(),
            uid: "gone".into(),
        };
        assert_eq!(got[0].deleted_exception, Some(deleted));
        // The binding is what revokes: the Role reports nothing more.
        assert_eq!(got[1].deleted_exception, None);
        let control = [("steward.dev/v1alpha1", "ControlOwnership", "gone")];
        let m = meta("steward:payments:api", true, &control);
        let got = orphans([(ManagedKind::RoleBinding, &m)], &BTreeMap::new());
        assert_eq!(got[0].deleted_exception, None);
    }
}
