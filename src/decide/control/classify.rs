//! Classify step: what the exceptions of a control's namespace mean for it
//! at `now`. This is the one place that says which exception may hold a
//! grant and which binding an exception tolerates; the control decision and
//! admission both ask here.

use std::collections::BTreeSet;

use jiff::Timestamp;
use kube::ResourceExt;

use super::view::ControlView;
use crate::api::{Phase, PolicyException};
use crate::decide::drift::{Ours, OwnBinding, Pinned};
use crate::decide::exception::Lifecycle;
use crate::decide::rbac;

/// The exceptions of one control's namespace, as they stand at one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exceptions<'e> {
    /// This control's exceptions in force.
    pub active: Vec<&'e PolicyException>,
    /// The grant pairs that may exist in the namespace, by name, with the
    /// exception that owns each and the one service account it binds: those
    /// of this control's Active exceptions with a grant, and of other
    /// controls' exceptions with a grant whose recorded phase is Active.
    pub grants: Ours,
    /// Bindings excused from drift by an Active exception to this control,
    /// each exactly as tolerated: kind, name, roleRef and subjects.
    pub tolerated: BTreeSet<Pinned>,
    /// Next instant one of this control's exceptions starts or ends.
    pub wake_at: Option<Timestamp>,
}

impl Exceptions<'_> {
    /// Records `pe`'s grant pair, if it has a grant.
    fn grant(&mut self, pe: &PolicyException) {
        if let Some(g) = &pe.spec.grant {
            let own = OwnBinding {
                owner_uid: pe.uid().unwrap_or_default(),
                service_account: g.service_account.clone(),
            };
            self.grants.insert(rbac::exception_name(&pe.name_any()), own);
        }
    }

    /// Does an Active exception to this control tolerate this binding, as
    /// it stands? Only a toleration naming its kind and name, its roleRef
    /// and exactly its set of subjects does: the same name bound to a
    /// wider role, or to one more subject, is not tolerated.
    pub fn tolerates(&self, binding: &Pinned) -> bool {
        self.tolerated.contains(binding)
    }

    fn wake(&mut self, t: Timestamp, now: Timestamp) {
        if t > now {
            self.wake_at = Some(self.wake_at.map_or(t, |w| w.min(t)));
        }
    }
}

impl ControlView<'_> {
    /// Classifies `exceptions` (any namespace, any control) for this
    /// control at `now`.
    pub fn classify<'e>(
        &self,
        exceptions: impl IntoIterator<Item = &'e PolicyException>,
        now: Timestamp,
    ) -> Exceptions<'e> {
        let mut out = Exceptions::default();
        let here = exceptions
            .into_iter()
            .filter(|e| e.namespace().as_deref() == Some(self.namespace.as_str()));
        for pe in here {
            if !self.owns(pe) {
                // Exceptions to other controls are judged by their own
                // reconciler; their recorded phase says whether their grant
                // may exist.
                if pe.status.as_ref().and_then(|s| s.phase) == Some(Phase::Active) {
                    out.grant(pe);
                }
                continue;
            }
            match self.lifecycle(pe, now) {
                Lifecycle::Pending(w) => out.wake(w.starts_at, now),
                Lifecycle::Active(w) => {
                    out.wake(w.expires_at, now);
                    out.grant(pe);
                    let tolerated = pe.spec.tolerate.iter().map(|t| Pinned::toleration(t, &self.namespace));
                    out.tolerated.extend(tolerated);
                    out.active.push(pe);
                }
                // Nothing applies until approved; approval is not a
                // matter of time, so there is nothing to wake for.
                Lifecycle::Awaiting(..) | Lifecycle::Rejected(_) | Lifecycle::Expired(_) => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BindingKind, PolicyExceptionStatus};
    use crate::decide::fixtures::{ceiling, control, exception, sa, ts};
    use k8s_openapi::api::rbac::v1::{RoleRef, Subject};

    fn role_ref(kind: &str, name: &str) -> RoleRef {
        RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: kind.into(),
            name: name.into(),
        }
    }

    /// The ClusterRoleBinding the fixture exception tolerates, as it
    /// stands in the cluster.
    fn legacy_admin(kind: BindingKind) -> Pinned {
        let subjects = [sa("api", "shop")];
        Pinned::binding(
            kind,
            "legacy-admin",
            Some("shop"),
            &role_ref("ClusterRole", "cluster-admin"),
            &subjects,
        )
    }

    fn recorded(mut pe: PolicyException, phase: Phase) -> PolicyException {
        pe.status = Some(PolicyExceptionStatus {
            phase: Some(phase),
            ..Default::default()
        });
        pe
    }

    fn other_control(pe: PolicyException) -> PolicyException {
        let mut pe = pe;
        pe.spec.control = "other".into();
        pe
    }

    fn other_namespace(pe: PolicyException) -> PolicyException {
        let mut pe = pe;
        pe.metadata.namespace = Some("elsewhere".into());
        pe
    }

    /// What classifying one exception makes of it.
    #[derive(Clone, Copy)]
    enum Counted {
        /// Nothing: not active, no grant, tolerates nothing.
        Nothing,
        /// An active exception to this control: its grant may exist and it
        /// tolerates ClusterRoleBinding legacy-admin.
        Active,
        /// Only its grant may exist (another control's, recorded Active).
        GrantOnly,
    }

    /// (case, exception, now, what it counts as, wake)
    type Case = (
        &'static str,
        PolicyException,
        &'static str,
        Counted,
        Option<&'static str>,
    );

    fn check(cases: Vec<Case>) {
        let (co, c) = (control(), ceiling());
        let view = ControlView::new(&co, &c, crate::decide::approval::Trust::AssumeApproved);
        for (name, pe, now, counted, wake) in cases {
            let (active, grants, tolerates) = match counted {
                Counted::Nothing => (false, false, false),
                Counted::Active => (true, true, true),
                Counted::GrantOnly => (false, true, false),
            };
            let got = view.classify([&pe], ts(now));
            assert_eq!(got.active.len(), usize::from(active), "{name}");
            assert_eq!(got.grants.contains_key("steward-x:debug"), grants, "{name}");
            let legacy = got.tolerates(&legacy_admin(BindingKind::ClusterRoleBinding));
            assert_eq!(legacy, tolerates, "{name}");
            assert!(!got.tolerates(&legacy_admin(BindingKind::RoleBinding)), "{name}");
            assert_eq!(got.wake_at, wake.map(ts), "{name}");
        }
    }

    /// The fixture exception runs 2026-11-28T10:00Z to 2026-11-29T10:00Z
    /// and tolerates ClusterRoleBinding legacy-admin.
    #[test]
    fn an_exception_to_this_control_counts_only_while_active() {
        const AT: &str = "2026-11-28T12:00:00Z";
        const END: &str = "2026-11-29T10:00:00Z";
        let mut rejected = exception();
        rejected.spec.ticket = "JIRA-1".into();
        check(vec![
            (
                "pending",
                exception(),
                "2026-11-28T09:00:00Z",
                Counted::Nothing,
                Some("2026-11-28T10:00:00Z"),
            ),
            ("active", exception(), AT, Counted::Active, Some(END)),
            ("expired", exception(), END, Counted::Nothing, None),
            ("rejected", rejected, AT, Counted::Nothing, None),
            (
                "recorded Active, Expired now: judged, not read",
                recorded(exception(), Phase::Active),
                END,
                Counted::Nothing,
                None,
            ),
        ]);
    }

    #[test]
    fn other_exceptions_grant_by_their_recorded_phase_and_tolerate_nothing() {
        const AT: &str = "2026-11-28T12:00:00Z";
        check(vec![
            (
                "another control's, recorded Active",
                recorded(other_control(exception()), Phase::Active),
                AT,
                Counted::GrantOnly,
                None,
            ),
            (
                "another control's, recorded Expired",
                recorded(other_control(exception()), Phase::Expired),
                AT,
                Counted::Nothing,
                None,
            ),
            (
                "another namespace",
                recorded(other_namespace(exception()), Phase::Active),
                AT,
                Counted::Nothing,
                None,
            ),
        ]);
    }

    /// A toleration excuses the binding only as it stands: the same kind
    /// and name bound to another role, to another set of subjects, or to
    /// one more subject, is not tolerated. Subject order, repeats and a
    /// ServiceAccount's defaulted namespace do not matter.
    #[test]
    fn a_toleration_pins_the_role_and_the_subjects() {
        let (co, c) = (control(), ceiling());
        let view = ControlView::new(&co, &c, crate::decide::approval::Trust::AssumeApproved);
        let pe = exception();
        let got = view.classify([&pe], ts("2026-11-28T12:00:00Z"));
        let user = Subject {
            kind: "User".into(),
            name: "mallory".into(),
            namespace: None,
            api_group: Some("rbac.authorization.k8s.io".into()),
        };
        let crb = BindingKind::ClusterRoleBinding;
        let admin = role_ref("ClusterRole", "cluster-admin");
        let pin = |role: &RoleRef, subjects: &[Subject]| Pinned::binding(crb, "legacy-admin", None, role, subjects);
        // (case, roleRef, subjects, tolerated?)
        let cases: [(&str, RoleRef, Vec<Subject>, bool); 7] = [
            ("as tolerated", admin.clone(), vec![sa("api", "shop")], true),
            (
                "a subject repeated",
                admin.clone(),
                vec![sa("api", "shop"), sa("api", "shop")],
                true,
            ),
            (
                "another role of the same name",
                role_ref("Role", "cluster-admin"),
                vec![sa("api", "shop")],
                false,
            ),
            (
                "a wider role",
                role_ref("ClusterRole", "system:masters"),
                vec![sa("api", "shop")],
                false,
            ),
            (
                "one more subject",
                admin.clone(),
                vec![sa("api", "shop"), user.clone()],
                false,
            ),
            (
                "the service account of another namespace",
                admin.clone(),
                vec![sa("api", "other")],
                false,
            ),
            ("no subject", admin.clone(), vec![], false),
        ];
        for (case, role, subjects, tolerated) in cases {
            assert_eq!(got.tolerates(&pin(&role, &subjects)), tolerated, "{case}");
        }
        // A RoleBinding's ServiceAccount subject without a namespace is in
        // the binding's; so is a toleration's without one.
        let mut rb_pe = exception();
        rb_pe.spec.tolerate[0].kind = BindingKind::RoleBinding;
        rb_pe.spec.tolerate[0].subjects[0].namespace = None;
        let got = view.classify([&rb_pe], ts("2026-11-28T12:00:00Z"));
        let mut bare = sa("api", "shop");
        bare.namespace = None;
        for subject in [bare, sa("api", "shop")] {
            let found = Pinned::binding(
                BindingKind::RoleBinding,
                "legacy-admin",
                Some("shop"),
                &admin,
                &[subject],
            );
            assert!(got.tolerates(&found), "{found:?}");
        }
    }

    #[test]
    fn the_earliest_instant_wakes() {
        let (co, c) = (control(), ceiling());
        let view = ControlView::new(&co, &c, crate::decide::approval::Trust::AssumeApproved);
        let mut later = exception();
        later.metadata.name = Some("later".into());
        later.spec.starts_at = Some("2026-11-28T11:00:00Z".into());
        let pes = [exception(), later];
        let got = view.classify(&pes, ts("2026-11-28T10:30:00Z"));
        assert_eq!(got.active.len(), 1);
        assert_eq!(got.wake_at, Some(ts("2026-11-28T11:00:00Z")));
    }
}
