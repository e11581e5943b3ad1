//! Admission verdicts, pure: the same validation as the controller and
//! `steward validate`, applied before an object lands. An exception is never
//! refused only for having expired (GitOps re-applies old objects; it is
//! admitted and becomes Expired).

use jiff::Timestamp;
use k8s_openapi::api::rbac::v1::{RoleRef, Subject};
use kube::ResourceExt;

use super::approval::Trust;
use super::ceiling::Ceiling;
use super::conditions::reasons;
use super::control::ControlView;
use super::drift::{Pinned, binds_only, is_bootstrap, names_service_account};
use super::exception::{Lifecycle, lifecycle};
use super::invalid_spec::Invalid;
use super::rbac;
use super::validate;
use crate::api::{BindingKind, ControlOwnership, Enforcement, PolicyException};

/// Allowed, or refused with a message for the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Admit.
    Allow,
    /// Refuse, saying why.
    Deny(String),
}

/// Most failures an admission message lists; the rest are counted. A spec
/// with thousands of failures must not make a message of megabytes.
const DENY_DETAILS: usize = 20;

fn deny(kind: &str, name: &str, errors: &[Invalid]) -> Verdict {
    let reason = errors.first().map(|e| e.reason.as_str()).unwrap_or(reasons::INVALID);
    let mut details = errors
        .iter()
        .take(DENY_DETAILS)
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ");
    if errors.len() > DENY_DETAILS {
        details.push_str(&format!("; and {} more", errors.len() - DENY_DETAILS));
    }
    Verdict::Deny(format!("{kind} {name} is invalid ({reason}): {details}"))
}

/// A ControlOwnership is admitted when it validates.
pub fn control(co: &ControlOwnership, others: &[&ControlOwnership], ceiling: &Ceiling) -> Verdict {
    let mut errors = validate::control(&co.spec, ceiling).err().unwrap_or_default();
    errors.extend(super::control::claims::claimed(co, others));
    if errors.is_empty() {
        Verdict::Allow
    } else {
        deny("ControlOwnership", &co.name_any(), &errors)
    }
}

/// A PolicyException is admitted unless it would be Rejected. An expired
/// one is admitted (it becomes Expired and grants nothing).
pub fn exception(
    pe: &PolicyException,
    control: Option<&ControlOwnership>,
    ceiling: &Ceiling,
    now: Timestamp,
) -> Verdict {
    // Admission judges the spec as submitted, never a recorded phase, and
    // not its approval, which comes after (and which the mutating webhook
    // records).
    let mut fresh = pe.clone();
    fresh.status = None;
    match lifecycle(
        &fresh,
        control,
        ceiling,
        crate::decide::approval::Trust::AssumeApproved,
        now,
    ) {
        Lifecycle::Rejected(errors) => deny("PolicyException", &pe.name_any(), &errors),
        _ => Verdict::Allow,
    }
}

/// An exception whose `expiresAt` has passed is a record: its spec (window,
/// grant, tolerations, control, approver, ticket) cannot change any more,
/// even before the controller has written `Expired` (the API server's own
/// policy covers the time after). Extending means filing a new exception.
pub fn expired_is_record(old: &PolicyException, new: &PolicyException, now: Timestamp) -> Verdict {
    let ended = super::time::parse(&old.spec.expires_at).is_ok_and(|t| t <= now);
    if ended && old.spec != new.spec {
        let message = format!(
            "PolicyException {:?}: spec: its window ended at {}; an exception whose window is over is a record: its window, grant, tolerations, approver and ticket cannot change. File a new PolicyException (new name, new approval) (ExpiredIsRecord)",
            new.name_any(),
            old.spec.expires_at
        );
        return Verdict::Deny(message);
    }
    Verdict::Allow
}

/// A binding to be admitted.
#[derive(Clone, Copy, Debug)]
pub struct Binding<'a> {
    /// RoleBinding or ClusterRoleBinding.
    pub kind: BindingKind,
    /// Its name.
    pub name: &'a str,
    /// Its namespace (RoleBindings).
    pub namespace: Option<&'a str>,
    /// Its subjects.
    pub subjects: &'a [Subject],
    /// What it binds.
    pub role_ref: &'a RoleRef,
}

/// Refuses a binding that names a service account managed by a control in
/// Enforce mode, unless it is Steward's own or tolerated, exactly as it
/// stands (kind, name, roleRef, subjects), by an Active exception to that
/// control. The message names the control, its owner and
/// how to ask for an exception.
pub fn binding(
    b: &Binding<'_>,
    controls: &[&ControlOwnership],
    exceptions: &[&PolicyException],
    ceiling: &Ceiling,
    trust: Trust<'_>,
    now: Timestamp,
) -> Verdict {
    for co in controls {
        let named = enforced_identities_named(b, co);
        if named.is_empty() {
            continue;
        }
        let view = ControlView::new(co, ceiling, trust);
        let classified = view.classify(exceptions.iter().copied(), now);
        // Steward's own names count only for what Steward writes under
        // them: a binding of the Role of the same name to exactly the one
        // service account that name is for.
        let binds = |sa: &str| binds_only(b.subjects, sa, b.namespace);
        let ours = b.kind == BindingKind::RoleBinding
            && b.role_ref.kind == "Role"
            && b.role_ref.name == b.name
            && (named
                .iter()
                .any(|sa| rbac::identity_name(&view.name, sa) == b.name && binds(sa))
                || classified
                    .grants
                    .get(b.name)
                    .is_some_and(|own| binds(&own.service_account)));
        let pinned = Pinned::binding(b.kind, b.name, b.namespace, b.role_ref, b.subjects);
        if ours || classified.tolerates(&pinned) {
            continue;
        }
        return Verdict::Deny(refusal(b, co, &view, &named));
    }
    Verdict::Allow
}

/// The service accounts of `co` that `b` names, when `co` is in Enforce
/// mode and `b` can reach its namespace; otherwise none.
fn enforced_identities_named<'a>(b: &Binding<'_>, co: &'a ControlOwnership) -> Vec<&'a str> {
    if co.spec.enforcement != Some(Enforcement::Enforce) {
        return Vec::new();
    }
    let Some(ns) = co.namespace() else {
        return Vec::new();
    };
    if b.kind == BindingKind::RoleBinding && b.namespace != Some(ns.as_str()) {
        return Vec::new();
    }
    // The API server keeps its own default bindings up to date at start.
    if b.kind == BindingKind::ClusterRoleBinding && is_bootstrap(b.name, b.role_ref) {
        return Vec::new();
    }
    co.spec
        .workload_identities
        .iter()
        .map(|i| i.service_account.as_str())
        .filter(|sa| {
            b.subjects
                .iter()
                .any(|s| names_service_account(s, b.namespace, &ns, sa))
        })
        .collect()
}

/// What a refused binding's author reads: which control, who owns it, and
/// how to file an exception.
fn refusal(b: &Binding<'_>, co: &ControlOwnership, view: &ControlView<'_>, named: &[&str]) -> String {
    let approvers = {
        let mut a = co.spec.approvers.clone();
        a.push(co.spec.owner.name.clone());
        a.push(co.spec.backup_owner.name.clone());
        a.join(", ")
    };
    let contact = co
        .spec
        .owner
        .contact
        .as_deref()
        .map(|c| format!(" ({c})"))
        .unwrap_or_default();
    let (ns, name) = (&view.namespace, &view.name);
    format!(
        "{} {} would grant service account(s) {} undeclared permissions: they are managed by ControlOwnership {ns}/{name} \
         in Enforce mode, owned by {}{contact}. Declare the permissions in the control, or file a PolicyException \
         to control {name} with tolerate: [{}], approved by one of: {approvers}",
        b.kind.as_str(),
        b.name,
        named.join(", "),
        co.spec.owner.name,
        toleration_yaml(b),
    )
}

/// The toleration that would excuse `b` exactly as it stands, in YAML flow
/// style (subjects listed up to a point: a user can copy the rest).
fn toleration_yaml(b: &Binding<'_>) -> String {
    const SHOWN: usize = 5;
    let mut subjects: Vec<String> = b
        .subjects
        .iter()
        .take(SHOWN)
        .map(|s| match s.namespace.as_deref().filter(|n| !n.is_empty()) {
            Some(ns) => format!("{{kind: {}, name: {}, namespace: {ns}}}", s.kind, s.name),
            None => format!("{{kind: {}, name: {}}}", s.kind, s.name),
        })
        .collect();
    if b.subjects.len() > SHOWN {
        subjects.push("…".into());
    }
    format!(
        "{{kind: {}, name: {}, roleRef: {{kind: {}, name: {}}}, subjects: [{}]}}",
        b.kind.as_str(),
        b.name,
        b.role_ref.kind,
        b.role_ref.name,
        subjects.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::fixtures::{ceiling, control as co_fixture, exception as pe_fixture, ts};

    use crate::decide::fixtures::sa;

    fn role_ref(kind: &str, name: &str) -> RoleRef {
        RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: kind.into(),
            name: name.into(),
        }
    }

    /// A RoleBinding in the fixture namespace, binding `role_ref`.
    fn role_binding<'a>(name: &'a str, subjects: &'a [Subject], role_ref: &'a RoleRef) -> Binding<'a> {
        Binding {
            kind: BindingKind::RoleBinding,
            name,
            namespace: Some("shop"),
            subjects,
            role_ref,
        }
    }

    #[test]
    fn exceptions_are_refused_only_when_they_would_be_rejected() {
        let (co, c) = (co_fixture(), ceiling());
        let now = ts("2026-11-28T12:00:00Z");
        assert_eq!(exception(&pe_fixture(), Some(&co), &c, now), Verdict::Allow);
        let mut bad = pe_fixture();
        bad.spec.approver = "mallory@example.com".into();
        let Verdict::Deny(msg) = exception(&bad, Some(&co), &c, now) else {
            panic!("admitted")
        };
        assert!(
            msg.contains("ApproverNotAllowed") && msg.contains("spec.approver"),
            "{msg}"
        );
        // Long expired: admitted all the same.
        assert_eq!(
            exception(&pe_fixture(), Some(&co), &c, ts("2027-06-01T00:00:00Z")),
            Verdict::Allow
        );
    }

    #[test]
    fn bindings_to_enforced_identities_need_a_toleration() {
        let mut co = co_fixture();
        co.spec.enforcement = Some(Enforcement::Enforce);
        co.spec.owner.contact = Some("#payments".into());
        let subjects = [sa("api", "shop")];
        let admin = role_ref("ClusterRole", "cluster-admin");
        let b = Binding {
            kind: BindingKind::ClusterRoleBinding,
            name: "legacy-admin",
            namespace: None,
            subjects: &subjects,
            role_ref: &admin,
        };
        let now = ts("2026-11-28T12:00:00Z");
        let Verdict::Deny(msg) = binding(
            &b,
            &[&co],
            &[],
            &ceiling(),
            crate::decide::approval::Trust::AssumeApproved,
            now,
        ) else {
            panic!("admitted")
        };
        assert!(
            msg.contains("shop/payments") && msg.contains("payments-team") && msg.contains("#payments"),
            "{msg}"
        );
        assert!(msg.contains("PolicyException"), "{msg}");
        assert!(
            msg.contains("roleRef: {kind: ClusterRole, name: cluster-admin}")
                && msg.contains("subjects: [{kind: ServiceAccount, name: api, namespace: shop}]"),
            "{msg}"
        );
        // Tolerated by the Active fixture exception.
        let pe = pe_fixture();
        assert_eq!(
            binding(
                &b,
                &[&co],
                &[&pe],
                &ceiling(),
                crate::decide::approval::Trust::AssumeApproved,
                now
            ),
            Verdict::Allow
        );
        // Not under the same name with another role, nor with one more
        // subject: the toleration pins both.
        let other_role = role_ref("ClusterRole", "system:aggregate-to-admin");
        let swapped = Binding {
            role_ref: &other_role,
            ..b
        };
        assert!(matches!(
            binding(
                &swapped,
                &[&co],
                &[&pe],
                &ceiling(),
                crate::decide::approval::Trust::AssumeApproved,
                now
            ),
            Verdict::Deny(_)
        ));
        let wider = [sa("api", "shop"), sa("default", "shop")];
        let widened = Binding { subjects: &wider, ..b };
        assert!(matches!(
            binding(
                &widened,
                &[&co],
                &[&pe],
                &ceiling(),
                crate::decide::approval::Trust::AssumeApproved,
                now
            ),
            Verdict::Deny(_)
        ));
        // Not once it expired.
        assert!(matches!(
            binding(
                &b,
                &[&co],
                &[&pe],
                &ceiling(),
                crate::decide::approval::Trust::AssumeApproved,
                ts("2026-11-29T10:00:00Z")
            ),
            Verdict::Deny(_)
        ));
        // Audit mode never refuses.
        co.spec.enforcement = Some(Enforcement::Audit);
        assert_eq!(
            binding(
                &b,
                &[&co],
                &[],
                &ceiling(),
                crate::decide::approval::Trust::AssumeApproved,
                now
            ),
            Verdict::Allow
        );
    }

    #[test]
    fn steward_own_bindings_and_unrelated_ones_pass() {
        let mut co = co_fixture();
        co.spec.enforcement = Some(Enforcement::Enforce);
        let subjects = [sa("api", "shop")];
        let own_role = role_ref("Role", "steward:payments:api");
        let ours = role_binding("steward:payments:api", &subjects, &own_role);
        let now = ts("2026-11-28T12:00:00Z");
        assert_eq!(
            binding(
                &ours,
                &[&co],
                &[],
                &ceiling(),
                crate::decide::approval::Trust::AssumeApproved,
                now
            ),
            Verdict::Allow
        );
        // Steward's name with another roleRef is not Steward's binding.
        let admin = role_ref("ClusterRole", "cluster-admin");
        let squatter = Binding {
            role_ref: &admin,
            ..ours
        };
        assert!(matches!(
            binding(
                &squatter,
                &[&co],
                &[],
                &ceiling(),
                crate::decide::approval::Trust::AssumeApproved,
                now
            ),
            Verdict::Deny(_)
        ));
        let other_subjects = [sa("frontend", "shop")];
        let other = role_binding("x", &other_subjects, &admin);
        assert_eq!(
            binding(
                &other,
                &[&co],
                &[],
                &ceiling(),
                crate::decide::approval::Trust::AssumeApproved,
                now
            ),
            Verdict::Allow
        );
        let group = [Subject {
            kind: "Group".into(),
            name: "system:serviceaccounts:shop".into(),
            namespace: None,
            api_group: Some("rbac.authorization.k8s.io".into()),
        }];
        let via_group = role_binding("all", &group, &admin);
        assert!(matches!(
            binding(
                &via_group,
                &[&co],
                &[],
                &ceiling(),
                crate::decide::approval::Trust::AssumeApproved,
                now
            ),
            Verdict::Deny(_)
        ));
    }

    #[test]
    fn a_spec_whose_window_ended_cannot_change() {
        let old = pe_fixture(); // expires 2026-11-29T10:00:00Z
        let mut extended = old.clone();
        extended.spec.expires_at = "2026-12-29T10:00:00Z".into();
        let mut relabelled = old.clone();
        relabelled.metadata.labels = Some([("team".to_string(), "x".to_string())].into());
        // (case, new object, now, refused?)
        let cases = [
            ("extended before the end", &extended, "2026-11-29T09:59:59Z", false),
            ("extended at the end", &extended, "2026-11-29T10:00:00Z", true),
            ("extended after the end", &extended, "2026-11-30T00:00:00Z", true),
            ("labels after the end", &relabelled, "2026-11-30T00:00:00Z", false),
            ("re-applied unchanged", &old, "2026-11-30T00:00:00Z", false),
        ];
        for (case, new, now, refused) in cases {
            let got = expired_is_record(&old, new, ts(now));
            assert_eq!(matches!(got, Verdict::Deny(_)), refused, "{case}: {got:?}");
        }
    }
}
