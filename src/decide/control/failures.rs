//! Failures step, after the writes: an identity whose Role or RoleBinding
//! could not be put in place shows it on its own status entry and turns the
//! control not Ready, while every other identity, the drift report and the
//! rest of the status stand as decided. A name Steward cannot use (another
//! object holds it) needs a person and also makes the control Stalled.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::api::ControlOwnershipStatus;
use crate::decide::conditions::{Cond, amend, reasons, types};

/// Most characters of one identity's problem kept in status.
const PROBLEM_MAX: usize = 300;

/// One identity the writes could not serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityFailure {
    /// Its service account.
    pub service_account: String,
    /// What went wrong.
    pub message: String,
    /// Whether only a person can fix it (retrying cannot).
    pub needs_person: bool,
}

/// `status` as decided, amended with `failures`. `previous` conditions keep
/// their transition times where the status did not flip.
pub fn with_failures(
    status: &ControlOwnershipStatus,
    previous: &[Condition],
    failures: &[IdentityFailure],
    now: Timestamp,
) -> ControlOwnershipStatus {
    let mut out = status.clone();
    if failures.is_empty() {
        return out;
    }
    for id in &mut out.identities {
        id.problem = failures
            .iter()
            .find(|f| f.service_account == id.service_account)
            .map(|f| cut(&f.message));
    }
    let summary = failures
        .iter()
        .map(|f| format!("{}: {}", f.service_account, cut(&f.message)))
        .collect::<Vec<_>>()
        .join("; ");
    let message = format!("not every identity's RBAC is in place ({summary})");
    let mut wanted = vec![Cond::no(types::READY, reasons::IDENTITY_NOT_APPLIED, message.clone())];
    if failures.iter().any(|f| f.needs_person) {
        wanted.push(Cond::yes(types::STALLED, reasons::IDENTITY_NOT_APPLIED, message));
    }
    amend(&mut out.conditions, previous, wanted, status.observed_generation, now);
    out
}

fn cut(s: &str) -> String {
    match s.char_indices().nth(PROBLEM_MAX) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::IdentityStatus;
    use crate::decide::conditions::{find, is_true, merge};
    use crate::decide::fixtures::ts;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ready_status() -> ControlOwnershipStatus {
        let id = |sa: &str| IdentityStatus {
            service_account: sa.into(),
            role: format!("steward:c:{sa}"),
            ..Default::default()
        };
        ControlOwnershipStatus {
            observed_generation: Some(3),
            identities: vec![id("api"), id("worker")],
            conditions: merge(
                &[],
                vec![
                    Cond::yes(types::READY, reasons::RECONCILED, "ok"),
                    Cond::yes(types::VALID, reasons::VALID, "ok"),
                ],
                Some(3),
                ts("2026-11-01T00:00:00Z"),
            ),
            ..Default::default()
        }
    }

    fn failure(sa: &str, needs_person: bool) -> IdentityFailure {
        IdentityFailure {
            service_account: sa.into(),
            message: format!("{sa} broke"),
            needs_person,
        }
    }

    #[test]
    fn failures_show_on_their_identity_and_in_the_conditions() {
        let now = ts("2026-11-29T12:00:00Z");
        let before = ready_status();
        // (case, failures, Ready, Stalled, api's problem, worker's problem)
        type Case = (
            &'static str,
            Vec<IdentityFailure>,
            bool,
            bool,
            Option<&'static str>,
            Option<&'static str>,
        );
        let cases: Vec<Case> = vec![
            ("none", vec![], true, false, None, None),
            (
                "transient",
                vec![failure("api", false)],
                false,
                false,
                Some("api broke"),
                None,
            ),
            (
                "needs a person",
                vec![failure("worker", true)],
                false,
                true,
                None,
                Some("worker broke"),
            ),
            (
                "both",
                vec![failure("api", false), failure("worker", true)],
                false,
                true,
                Some("api broke"),
                Some("worker broke"),
            ),
        ];
        for (case, failures, ready, stalled, api, worker) in cases {
            let got = with_failures(&before, &before.conditions, &failures, now);
            assert_eq!(is_true(&got.conditions, types::READY), ready, "{case}");
            assert_eq!(is_true(&got.conditions, types::STALLED), stalled, "{case}");
            assert_eq!(got.identities[0].problem.as_deref(), api, "{case}");
            assert_eq!(got.identities[1].problem.as_deref(), worker, "{case}");
            assert!(
                find(&got.conditions, types::VALID).is_some(),
                "{case}: other conditions stay"
            );
            if !ready {
                let r = find(&got.conditions, types::READY).expect("Ready");
                assert_eq!(r.reason, reasons::IDENTITY_NOT_APPLIED, "{case}");
                assert_eq!(r.last_transition_time, Time(now), "{case}: Ready flipped now");
            }
        }
    }

    #[test]
    fn an_unchanged_failure_keeps_its_transition_time() {
        let first = ts("2026-11-29T12:00:00Z");
        let failed = with_failures(
            &ready_status(),
            &ready_status().conditions,
            &[failure("api", true)],
            first,
        );
        let again = with_failures(
            &ready_status(),
            &failed.conditions,
            &[failure("api", true)],
            ts("2026-11-29T12:05:00Z"),
        );
        assert_eq!(failed, again, "a retry that fails the same way writes nothing new");
    }

    #[test]
    fn long_messages_are_cut() {
        let mut f = failure("api", false);
        f.message = "x".repeat(10_000);
        let got = with_failures(&ready_status(), &[], &[f], ts("2026-11-29T12:00:00Z"));
        assert!(
            got.identities[0]
                .problem
                .as_deref()
                .is_some_and(|p| p.chars().count() <= PROBLEM_MAX + 1)
        );
    }
}
