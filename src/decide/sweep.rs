//! Nothing outlives its record: which managed Roles and RoleBindings have
//! lost their owner. A pair Steward made names its ControlOwnership or
//! PolicyException by uid; when no object with that uid exists any more
//! (deleted with its finalizer stripped, deleted while the controller was
//! down, or replaced by a new object of the same name), the pair is an
//! orphan. Finalizers make cleanup prompt; this makes it certain.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::api::{GROUP, MANAGED_BY_LABEL, MANAGED_BY_VALUE};

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
}

/// The objects among `managed` that Steward made (its label and an owner
/// reference to one of its kinds) and whose every Steward owner is gone:
/// no uid in `live_owners`. RoleBindings come first.
pub fn orphans<'a>(
    managed: impl IntoIterator<Item = (ManagedKind, &'a ObjectMeta)>,
    live_owners: &BTreeSet<&str>,
) -> Vec<Orphan> {
    let mut out: Vec<Orphan> = managed
        .into_iter()
        .filter(|(_, meta)| is_labelled(meta))
        .filter_map(|(kind, meta)| {
            let owners: Vec<&str> = meta
                .owner_references
                .iter()
                .flatten()
                .filter(|o| o.api_version.split('/').next() == Some(GROUP))
                .filter(|o| matches!(o.kind.as_str(), "ControlOwnership" | "PolicyException"))
                .map(|o| o.uid.as_str())
                .collect();
            let orphaned = !owners.is_empty() && owners.iter().all(|uid| !live_owners.contains(uid));
            orphaned.then(|| Orphan {
                kind,
                namespace: meta.namespace.clone().unwrap_or_default(),
                name: meta.name.clone().unwrap_or_default(),
                uid: meta.uid.clone().unwrap_or_default(),
            })
        })
        .filter(|o| !o.uid.is_empty())
        .collect();
    out.sort();
    out
}

fn is_labelled(meta: &ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .is_some_and(|v| v == MANAGED_BY_VALUE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn meta(name: &str, labelled: bool, owners: &[(&str, &str, &str)]) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("shop".into()),
            uid: Some(format!("{name}-uid")),
            labels: labelled.then(|| [(MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string())].into()),
            owner_references: Some(
                owners
                    .iter()
                    .map(|(api_version, kind, uid)| OwnerReference {
                        api_version: (*api_version).into(),
                        kind: (*kind).into(),
                        name: "owner".into(),
                        uid: (*uid).into(),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }
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
        let live: BTreeSet<&str> = ["live"].into();
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
            &BTreeSet::new(),
        );
        let kinds: Vec<ManagedKind> = got.iter().map(|o| o.kind).collect();
        assert_eq!(kinds, [ManagedKind::RoleBinding, ManagedKind::Role]);
        assert_eq!(got[0].uid, "b-uid");
    }
}
