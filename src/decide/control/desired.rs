//! Desired RBAC step: one Role and RoleBinding per valid identity, with
//! exactly the declared rules, and the managed pairs no longer wanted.

use std::collections::BTreeSet;

use kube::Resource;

use super::view::ControlView;
use crate::decide::rbac::{self, ManagedFor, RbacPair};

/// The RBAC a control wants.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    /// One pair per valid identity, in spec order.
    pub pairs: Vec<RbacPair>,
    /// Existing managed pairs no valid identity wants, sorted, each once.
    pub delete: Vec<String>,
}

impl Desired {
    /// Names of the wanted pairs.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(RbacPair::name)
    }
}

/// The pairs `view`'s valid identities want; `managed_names` are the
/// control's existing identity pairs.
pub fn desired(view: &ControlView<'_>, managed_names: &[String]) -> Desired {
    let owner_ref = view.control.controller_owner_ref(&());
    let pairs: Vec<RbacPair> = view
        .valid_identities
        .iter()
        .map(|id| {
            rbac::pair(
                &rbac::identity_name(&view.name, &id.service_account),
                &view.namespace,
                &id.service_account,
                &id.rules,
                &ManagedFor::Control(&view.name),
                owner_ref.clone(),
            )
        })
        .collect();
    let wanted: BTreeSet<&str> = pairs.iter().map(RbacPair::name).collect();
    let delete: BTreeSet<String> = managed_names
        .iter()
        .filter(|n| !wanted.contains(n.as_str()))
        .cloned()
        .collect();
    Desired {
        pairs,
        delete: delete.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ControlOwnership;
    use crate::decide::fixtures::{ceiling, control, rule};

    /// (case, edit of the fixture, existing pairs, wanted pairs, deleted pairs)
    type Case = (
        &'static str,
        fn(&mut ControlOwnership),
        &'static [&'static str],
        &'static [&'static str],
        &'static [&'static str],
    );

    #[test]
    fn pairs_and_deletions() {
        const API: &str = "steward:payments:api";
        const WORKER: &str = "steward:payments:worker";
        let cases: [Case; 6] = [
            ("fresh", |_| {}, &[], &[API, WORKER], &[]),
            ("in place", |_| {}, &[WORKER, API], &[API, WORKER], &[]),
            (
                "identity removed",
                |c| c.spec.workload_identities.truncate(1),
                &[API, WORKER],
                &[API],
                &[WORKER],
            ),
            (
                "identity now invalid",
                |c| c.spec.workload_identities[1].rules = vec![rule(&["*"], &["*"], &["*"])],
                &[API, WORKER],
                &[API],
                &[WORKER],
            ),
            (
                "renamed service account",
                |c| c.spec.workload_identities[0].service_account = "api2".into(),
                &[API, WORKER],
                &["steward:payments:api2", WORKER],
                &[API],
            ),
            (
                "listed twice",
                |c| c.spec.workload_identities.clear(),
                &[API, API],
                &[],
                &[API],
            ),
        ];
        let c = ceiling();
        for (name, edit, existing, want, deleted) in cases {
            let mut co = control();
            edit(&mut co);
            let existing: Vec<String> = existing.iter().map(|s| s.to_string()).collect();
            let d = desired(
                &ControlView::new(&co, &c, crate::decide::approval::Trust::AssumeApproved),
                &existing,
            );
            assert_eq!(d.names().collect::<Vec<_>>(), want, "{name}");
            assert_eq!(d.delete, deleted, "{name}");
        }
    }

    #[test]
    fn each_pair_is_owned_labelled_and_binds_its_one_service_account() {
        let (co, c) = (control(), ceiling());
        let d = desired(
            &ControlView::new(&co, &c, crate::decide::approval::Trust::AssumeApproved),
            &[],
        );
        let worker = &d.pairs[1];
        assert_eq!(
            worker.role.rules.as_deref(),
            Some(&[rule(&["batch"], &["jobs"], &["create"])][..])
        );
        let subjects = worker.binding.subjects.as_deref().unwrap();
        assert_eq!((subjects.len(), subjects[0].name.as_str()), (1, "worker"));
        assert_eq!(worker.role.metadata.namespace.as_deref(), Some("shop"));
        let owner = &worker.role.metadata.owner_references.as_deref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("ControlOwnership", "co-uid")
        );
        let labels = worker.role.metadata.labels.as_ref().unwrap();
        assert_eq!(labels.get("steward.dev/control").map(String::as_str), Some("payments"));
    }
}
