//! Classify step: what the exceptions of a control's namespace mean for it
//! at `now`. This is the one place that says which exception may hold a
//! grant and which binding an exception tolerates; the control decision and
//! admission both ask here.

use std::collections::BTreeSet;

use jiff::Timestamp;
use kube::ResourceExt;

use super::view::ControlView;
use crate::api::{BindingKind, Phase, PolicyException};
use crate::decide::exception::Lifecycle;
use crate::decide::rbac;

/// The exceptions of one control's namespace, as they stand at one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exceptions<'e> {
    /// This control's exceptions in force.
    pub active: Vec<&'e PolicyException>,
    /// Names of the grant pairs that may exist in the namespace: those of
    /// this control's Active exceptions, and of other controls' exceptions
    /// whose recorded phase is Active.
    pub grants: BTreeSet<String>,
    /// Bindings excused from drift by an Active exception to this control.
    pub tolerated: BTreeSet<(BindingKind, String)>,
    /// Next instant one of this control's exceptions starts or ends.
    pub wake_at: Option<Timestamp>,
}

impl Exceptions<'_> {
    /// Does an Active exception to this control tolerate this binding?
    pub fn tolerates(&self, kind: BindingKind, name: &str) -> bool {
        self.tolerated.contains(&(kind, name.to_string()))
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
                    out.grants.insert(rbac::exception_name(&pe.name_any()));
                }
                continue;
            }
            match self.lifecycle(pe, now) {
                Lifecycle::Pending(w) => out.wake(w.starts_at, now),
                Lifecycle::Active(w) => {
                    out.wake(w.expires_at, now);
                    out.grants.insert(rbac::exception_name(&pe.name_any()));
                    let tolerated = pe.spec.tolerate.iter().map(|t| (t.kind, t.name.clone()));
                    out.tolerated.extend(tolerated);
                    out.active.push(pe);
                }
                Lifecycle::Rejected(_) | Lifecycle::Expired(_) => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PolicyExceptionStatus;
    use crate::decide::fixtures::{ceiling, control, exception, ts};

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
        let view = ControlView::new(&co, &c);
        for (name, pe, now, counted, wake) in cases {
            let (active, grants, tolerates) = match counted {
                Counted::Nothing => (false, false, false),
                Counted::Active => (true, true, true),
                Counted::GrantOnly => (false, true, false),
            };
            let got = view.classify([&pe], ts(now));
            assert_eq!(got.active.len(), usize::from(active), "{name}");
            assert_eq!(got.grants.contains("steward-x:debug"), grants, "{name}");
            let legacy = got.tolerates(BindingKind::ClusterRoleBinding, "legacy-admin");
            assert_eq!(legacy, tolerates, "{name}");
            assert!(!got.tolerates(BindingKind::RoleBinding, "legacy-admin"), "{name}");
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

    #[test]
    fn the_earliest_instant_wakes() {
        let (co, c) = (control(), ceiling());
        let view = ControlView::new(&co, &c);
        let mut later = exception();
        later.metadata.name = Some("later".into());
        later.spec.starts_at = Some("2026-11-28T11:00:00Z".into());
        let pes = [exception(), later];
        let got = view.classify(&pes, ts("2026-11-28T10:30:00Z"));
        assert_eq!(got.active.len(), 1);
        assert_eq!(got.wake_at, Some(ts("2026-11-28T11:00:00Z")));
    }
}
