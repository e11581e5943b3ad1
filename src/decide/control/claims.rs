//! One service account, one control. When two ControlOwnerships of a
//! namespace declare the same service account, the one created first keeps
//! it; the later one is invalid (`ServiceAccountClaimed`) for that
//! identity, holds no RBAC for it, and its exceptions cannot grant to it.
//! Otherwise the two would rewrite each other's Role forever, and an
//! exception to a lax control could reach the identity of a strict one.

use std::cmp::Ordering;

use kube::ResourceExt;

use crate::api::ControlOwnership;
use crate::decide::invalid_spec::{Invalid, Reason};

/// Whether `a` came before `b`: created earlier, then by name. An object
/// not created yet (at admission) comes after every stored one.
fn earlier(a: &ControlOwnership, b: &ControlOwnership) -> bool {
    let created = |c: &ControlOwnership| c.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let by_time = match (created(a), created(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    by_time.then_with(|| a.name_any().cmp(&b.name_any())) == Ordering::Less
}

/// The identities of `co` whose service account an earlier control of its
/// namespace among `others` already declares, as validation failures.
pub fn claimed(co: &ControlOwnership, others: &[&ControlOwnership]) -> Vec<Invalid> {
    let ns = co.namespace();
    let name = co.name_any();
    let mut out = Vec::new();
    for (i, id) in co.spec.workload_identities.iter().enumerate() {
        let holder = others
            .iter()
            .filter(|o| o.namespace() == ns && o.name_any() != name && earlier(o, co))
            .find(|o| {
                o.spec
                    .workload_identities
                    .iter()
                    .any(|w| w.service_account == id.service_account)
            });
        if let Some(holder) = holder {
            out.push(Invalid::new(
                Reason::ServiceAccountClaimed,
                format!("spec.workloadIdentities[{i}].serviceAccount"),
                format!(
                    "service account {:?} is already managed by ControlOwnership {:?}, created first; one service account belongs to one control",
                    id.service_account,
                    holder.name_any()
                ),
            ));
        }
    }
    out
}

/// `co` without the identities another control claimed first: what its
/// exceptions may grant to.
pub fn without_claimed(co: &ControlOwnership, others: &[&ControlOwnership]) -> ControlOwnership {
    let taken = claimed(co, others);
    let mut out = co.clone();
    let mut i = 0;
    out.spec.workload_identities.retain(|_| {
        let field = format!("spec.workloadIdentities[{i}].serviceAccount");
        i += 1;
        !taken.iter().any(|t| t.field == field)
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::fixtures::control;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn named(name: &str, created: Option<&str>, sas: &[&str]) -> ControlOwnership {
        let mut co = control();
        co.metadata.name = Some(name.into());
        co.metadata.creation_timestamp = created.map(|t| Time(t.parse().expect("timestamp")));
        let template = co.spec.workload_identities[0].clone();
        co.spec.workload_identities = sas
            .iter()
            .map(|sa| {
                let mut id = template.clone();
                id.service_account = (*sa).into();
                id
            })
            .collect();
        co
    }

    #[test]
    fn the_first_control_keeps_a_service_account() {
        let t1 = Some("2026-11-01T00:00:00Z");
        let t2 = Some("2026-11-02T00:00:00Z");
        // (case, this control, others, claimed fields)
        let cases: Vec<(&str, ControlOwnership, Vec<ControlOwnership>, Vec<&str>)> = vec![
            ("alone", named("b", t2, &["api"]), vec![], vec![]),
            (
                "later",
                named("b", t2, &["api", "worker"]),
                vec![named("a", t1, &["api"])],
                vec!["spec.workloadIdentities[0].serviceAccount"],
            ),
            (
                "earlier",
                named("a", t1, &["api"]),
                vec![named("b", t2, &["api"])],
                vec![],
            ),
            (
                "same instant: by name",
                named("b", t1, &["api"]),
                vec![named("a", t1, &["api"])],
                vec!["spec.workloadIdentities[0].serviceAccount"],
            ),
            (
                "not created yet (admission)",
                named("b", None, &["worker", "api"]),
                vec![named("a", t2, &["api"])],
                vec!["spec.workloadIdentities[1].serviceAccount"],
            ),
            (
                "itself",
                named("a", t1, &["api"]),
                vec![named("a", t1, &["api"])],
                vec![],
            ),
            (
                "other service accounts",
                named("b", t2, &["worker"]),
                vec![named("a", t1, &["api"])],
                vec![],
            ),
        ];
        for (case, co, others, want) in cases {
            let others: Vec<&ControlOwnership> = others.iter().collect();
            let got = claimed(&co, &others);
            let fields: Vec<&str> = got.iter().map(|i| i.field.as_str()).collect();
            assert_eq!(fields, want, "{case}");
            assert!(got.iter().all(|i| i.reason == Reason::ServiceAccountClaimed), "{case}");
        }
    }

    #[test]
    fn exceptions_see_the_control_without_what_others_claimed() {
        let a = named("a", Some("2026-11-01T00:00:00Z"), &["api"]);
        let b = named("b", Some("2026-11-02T00:00:00Z"), &["api", "worker"]);
        let left = without_claimed(&b, &[&a]);
        let sas: Vec<&str> = left
            .spec
            .workload_identities
            .iter()
            .map(|i| i.service_account.as_str())
            .collect();
        assert_eq!(sas, ["worker"]);
    }
}
