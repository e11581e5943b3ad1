//! The reconcilers' I/O decisions against a mocked API server: which
//! requests they make (method, path, query, body, order) for a given view of
//! the caches, and above all which they do not. The e2e tests show the same
//! against a real API server; these pin down each decision on its own.

mod mock_api;

use std::sync::Arc;

use http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use serde::Serialize;
use serde_json::{Value, json};

use self::mock_api::{Expected, expect, no_requests};
use super::{Context, control, exception, managed_rbac};
use crate::api::{ControlOwnership, ControlOwnershipStatus, FINALIZER, PolicyException, PolicyExceptionStatus};
use crate::cache::{Caches, View, fingerprint};
use crate::decide::rbac::{self, ManagedFor, RbacPair};
use crate::decide::{Ceiling, time};

const NS: &str = "shop";
const RBAC: &str = "/apis/rbac.authorization.k8s.io/v1/namespaces/shop";
const STEWARD: &str = "/apis/steward.dev/v1alpha1/namespaces/shop";

// === fixtures ===

/// Now, to the second (the precision of the timestamps in specs).
fn now() -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second()).expect("now")
}

fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

fn rule(resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn ceiling_rules() -> Vec<PolicyRule> {
    vec![rule(&["configmaps", "pods", "pods/log"], &["get", "list", "watch"])]
}

fn ceiling() -> Ceiling {
    Ceiling::new("steward-grantable", ceiling_rules())
}

/// A valid control in Audit (`enforce`: Enforce) with one identity, `api`,
/// reviewed a day ago every 30 days: nothing in its decision changes for
/// weeks, so a decision computed here is the reconciler's too.
fn control_at(now: Timestamp, enforce: bool) -> ControlOwnership {
    let reviewed = now.checked_sub(days(1)).expect("a day ago");
    serde_json::from_value(json!({
        "apiVersion": "steward.dev/v1alpha1",
        "kind": "ControlOwnership",
        "metadata": {
            "name": "payments", "namespace": NS, "uid": "co-uid", "generation": 3,
            "resourceVersion": "5", "creationTimestamp": "2026-01-01T00:00:00Z",
            "finalizers": [FINALIZER],
        },
        "spec": {
            "layer": "Identity",
            "owner": {"name": "payments-team"},
            "backupOwner": {"name": "security-team"},
            "approvers": ["alice@example.com"],
            "review": {"interval": "30d", "lastReviewed": time::format(reviewed)},
            "exceptionPolicy": {"maxDuration": "60d", "ticketPattern": "^SEC-[0-9]+$"},
            "enforcement": if enforce { "Enforce" } else { "Audit" },
            "workloadIdentities": [{
                "serviceAccount": "api",
                "task": "Serves the API",
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
            }],
        },
    }))
    .expect("fixture control")
}

/// An exception to `control_at`'s control granting `api` pods/log, from
/// `starts_at` to `expires_at`.
fn exception_at(starts_at: Timestamp, expires_at: Timestamp) -> PolicyException {
    serde_json::from_value(json!({
        "apiVersion": "steward.dev/v1alpha1",
        "kind": "PolicyException",
        "metadata": {
            "name": "debug", "namespace": NS, "uid": "pe-uid", "generation": 2,
            "resourceVersion": "7", "creationTimestamp": time::format(starts_at),
            "finalizers": [FINALIZER],
        },
        "spec": {
            "control": "payments",
            "ticket": "SEC-1234",
            "approver": "alice@example.com",
            "requester": "carol@example.com",
            "reason": "Debug a stuck payout",
            "startsAt": time::format(starts_at),
            "expiresAt": time::format(expires_at),
            "grant": {
                "serviceAccount": "api",
                "rules": [{"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}],
            },
        },
    }))
    .expect("fixture exception")
}

/// An exception Active from 20 days ago for 40 days: ExpiringSoon turns on
/// in 13 days, so its decision is the same all through a test.
fn active_exception(now: Timestamp) -> PolicyException {
    exception_at(
        now.checked_sub(days(20)).expect("start"),
        now.checked_add(days(20)).expect("end"),
    )
}

/// The identity pair of `control_at`'s control, as Steward builds it.
fn identity_pair(co: &ControlOwnership) -> RbacPair {
    rbac::pair(
        &rbac::identity_name("payments", "api"),
        NS,
        "api",
        &[rule(&["configmaps"], &["get"])],
        &ManagedFor::Control("payments"),
        co.controller_owner_ref(&()),
    )
}

/// `obj` as the API server holds it: with a uid and a resourceVersion.
fn on_server<K: Resource + Clone>(obj: &K, uid: &str, rv: &str) -> K {
    let mut o = obj.clone();
    o.meta_mut().uid = Some(uid.into());
    o.meta_mut().resource_version = Some(rv.into());
    o
}

/// The pair as the server holds it after we applied it.
fn pair_on_server(pair: &RbacPair) -> (Role, RoleBinding) {
    (
        on_server(&pair.role, "role-uid", "3"),
        on_server(&pair.binding, "binding-uid", "4"),
    )
}

/// Caches listing these objects and the grant ceiling.
fn caches(
    controls: Vec<ControlOwnership>,
    exceptions: Vec<PolicyException>,
    roles: Vec<Role>,
    role_bindings: Vec<RoleBinding>,
) -> Arc<Caches> {
    let mut c = Caches::fed(controls, exceptions);
    c.roles = View::fed(roles).0;
    c.role_bindings = View::fed(role_bindings).0;
    let mut ceiling = ClusterRole {
        rules: Some(ceiling_rules()),
        ..Default::default()
    };
    ceiling.metadata.name = Some("steward-grantable".into());
    c.ceiling_role = View::fed(vec![ceiling]).0;
    Arc::new(c)
}

fn ctx(caches: Arc<Caches>, client: kube::Client) -> Arc<Context> {
    Arc::new(Context::for_test(caches, client))
}

/// The body of a server-side apply of `obj`: all of it, kind included.
fn applied<K: Resource<DynamicType = ()> + Serialize>(obj: &K) -> Value {
    let mut v = serde_json::to_value(obj).expect("object");
    v["apiVersion"] = K::api_version(&()).into();
    v["kind"] = K::kind(&()).into();
    v
}

/// The body of a status apply.
fn status_applied<K: Resource<DynamicType = ()>, S: Serialize>(status: &S) -> Value {
    json!({"apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": status})
}

/// `conditions` as recorded one generation before `generation`.
fn one_generation_behind(mut conditions: Vec<Condition>, generation: i64) -> Vec<Condition> {
    for c in &mut conditions {
        c.observed_generation = Some(generation - 1);
    }
    conditions
}

/// The status the control reconciler decides for `co` with its identity
/// pair in place and these RoleBindings in its namespace.
fn control_status(co: &ControlOwnership, role_bindings: &[RoleBinding]) -> ControlOwnershipStatus {
    let observed = crate::decide::control::Observed {
        exceptions: &[],
        role_bindings,
        cluster_role_bindings: &[],
        managed_names: &[rbac::identity_name("payments", "api")],
    };
    crate::decide::control::decide(co, &observed, &ceiling(), now()).status
}

/// A control whose status is what the reconciler decides, with its RBAC in
/// the caches: the state after a completed reconcile.
fn settled_control(now: Timestamp) -> (ControlOwnership, Role, RoleBinding) {
    let mut co = control_at(now, false);
    let (role, binding) = pair_on_server(&identity_pair(&co));
    co.status = Some(control_status(&co, std::slice::from_ref(&binding)));
    (co, role, binding)
}

/// An Active exception whose status is what the reconciler decides, with
/// its control, and its grant as the server holds it.
fn settled_exception(now: Timestamp) -> (PolicyException, ControlOwnership, RbacPair) {
    let co = control_at(now, false);
    let mut pe = active_exception(now);
    let d = crate::decide::exception::decide(&pe, Some(&co), &ceiling(), now);
    let grant = d.grant.expect("an Active exception grants");
    pe.status = Some(d.status);
    (pe, co, grant)
}

// === managed_rbac::ensure ===

#[tokio::test]
async fn ensure_writes_nothing_when_the_cache_shows_the_pair() {
    let pair = identity_pair(&control_at(now(), false));
    let (role, binding) = pair_on_server(&pair);
    let (client, server) = no_requests();
    let ctx = ctx(caches(vec![], vec![], vec![role], vec![binding]), client);
    let result = managed_rbac::ensure(&ctx, &pair).await;
    drop(ctx);
    server.verify().await;
    result.expect("ensure");
}

#[tokio::test]
async fn ensure_writes_nothing_when_our_last_write_was_exactly_the_pair() {
    let pair = identity_pair(&control_at(now(), false));
    // The cache shows an older version of each (other rules, another
    // subject), or none at all; our last writes, answered with newer
    // resourceVersions, were exactly the pair.
    let mut old = pair.clone();
    old.role.rules = Some(vec![rule(&["pods"], &["list"])]);
    old.binding.subjects.as_mut().expect("subjects")[0].name = "old".into();
    let (old_role, old_binding) = pair_on_server(&old);
    for (roles, bindings) in [(vec![old_role], vec![old_binding]), (vec![], vec![])] {
        let caches = caches(vec![], vec![], roles, bindings);
        caches
            .roles
            .record(&ObjectRef::from_obj(&pair.role), Some("8"), fingerprint(&pair.role));
        caches.role_bindings.record(
            &ObjectRef::from_obj(&pair.binding),
            Some("9"),
            fingerprint(&pair.binding),
        );
        let (client, server) = no_requests();
        let ctx = ctx(caches, client);
        let result = managed_rbac::ensure(&ctx, &pair).await;
        drop(ctx);
        server.verify().await;
        result.expect("ensure");
    }
}

#[tokio::test]
async fn ensure_applies_each_object_that_differs_role_first_then_trusts_its_writes() {
    let pair = identity_pair(&control_at(now(), false));
    let name = pair.name().to_string();
    let mut old = pair.clone();
    old.role.rules = Some(vec![rule(&["pods"], &["list"])]);
    old.binding.metadata.owner_references = None;
    let (old_role, old_binding) = pair_on_server(&old);
    let (client, server) = expect(vec![
        Expected::apply(format!("{RBAC}/roles/{name}"), applied(&pair.role)).answers(
            StatusCode::OK,
            serde_json::to_value(on_server(&pair.role, "role-uid", "10")).expect("role"),
        ),
        Expected::apply(format!("{RBAC}/rolebindings/{name}"), applied(&pair.binding)).answers(
            StatusCode::OK,
            serde_json::to_value(on_server(&pair.binding, "binding-uid", "11")).expect("binding"),
        ),
    ]);
    let ctx = ctx(caches(vec![], vec![], vec![old_role], vec![old_binding]), client);
    let first = managed_rbac::ensure(&ctx, &pair).await;
    // The watch has not delivered our writes: the views' memos know them.
    let second = managed_rbac::ensure(&ctx, &pair).await;
    drop(ctx);
    server.verify().await;
    first.expect("first ensure");
    second.expect("second ensure");
}

#[tokio::test]
async fn ensure_applies_only_the_object_that_differs() {
    let pair = identity_pair(&control_at(now(), false));
    let (role, _) = pair_on_server(&pair);
    let (client, server) = expect(vec![Expected::apply(
        format!("{RBAC}/rolebindings/{}", pair.name()),
        applied(&pair.binding),
    )]);
    let ctx = ctx(caches(vec![], vec![], vec![role], vec![]), client);
    let result = managed_rbac::ensure(&ctx, &pair).await;
    drop(ctx);
    server.verify().await;
    result.expect("ensure");
}

#[tokio::test]
async fn ensure_applies_when_our_last_write_was_something_else() {
    let pair = identity_pair(&control_at(now(), false));
    let (_, binding) = pair_on_server(&pair);
    let mut other = pair.role.clone();
    other.rules = Some(vec![rule(&["pods"], &["list"])]);
    let caches = caches(vec![], vec![], vec![], vec![binding]);
    caches
        .roles
        .record(&ObjectRef::from_obj(&pair.role), Some("8"), fingerprint(&other));
    let (client, server) = expect(vec![Expected::apply(
        format!("{RBAC}/roles/{}", pair.name()),
        applied(&pair.role),
    )]);
    let ctx = ctx(caches, client);
    let result = managed_rbac::ensure(&ctx, &pair).await;
    drop(ctx);
    server.verify().await;
    result.expect("ensure");
}

// === managed_rbac::remove ===

#[tokio::test]
async fn remove_deletes_the_binding_then_the_role_each_if_it_still_has_its_uid() {
    let pair = identity_pair(&control_at(now(), false));
    let name = pair.name().to_string();
    let (role, binding) = pair_on_server(&pair);
    let (client, server) = expect(vec![
        Expected::delete(format!("{RBAC}/rolebindings/{name}"), "binding-uid"),
        // Already gone: that is what we wanted.
        Expected::delete(format!("{RBAC}/roles/{name}"), "role-uid").answers_not_found(),
    ]);
    let ctx = ctx(caches(vec![], vec![], vec![role], vec![binding]), client);
    let result = managed_rbac::remove(&ctx, NS, &name).await;
    drop(ctx);
    server.verify().await;
    assert!(result.expect("remove"), "something existed");
}

#[tokio::test]
async fn remove_keeps_the_role_when_the_binding_could_not_be_deleted() {
    let pair = identity_pair(&control_at(now(), false));
    let name = pair.name().to_string();
    let (role, binding) = pair_on_server(&pair);
    let (client, server) = expect(vec![
        Expected::delete(format!("{RBAC}/rolebindings/{name}"), "binding-uid").answers(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": 500, "reason": "InternalError", "message": "etcd"}),
        ),
    ]);
    let ctx = ctx(caches(vec![], vec![], vec![role], vec![binding]), client);
    let result = managed_rbac::remove(&ctx, NS, &name).await;
    drop(ctx);
    server.verify().await;
    assert!(result.is_err(), "the failure is reported, to be retried");
}

#[tokio::test]
async fn remove_of_nothing_cached_makes_no_request() {
    let (client, server) = no_requests();
    let ctx = ctx(caches(vec![], vec![], vec![], vec![]), client);
    let result = managed_rbac::remove(&ctx, NS, "steward-payments-api").await;
    drop(ctx);
    server.verify().await;
    assert!(!result.expect("remove"), "nothing existed");
}

// === ControlOwnership reconciler ===

#[tokio::test]
async fn an_unchanged_control_makes_no_request() {
    let (co, role, binding) = settled_control(now());
    let (client, server) = no_requests();
    let ctx = ctx(caches(vec![co.clone()], vec![], vec![role], vec![binding]), client);
    let result = control::reconcile(Arc::new(co), ctx.clone()).await;
    drop(ctx);
    server.verify().await;
    result.expect("reconcile");
}

#[tokio::test]
async fn a_control_whose_status_differs_gets_one_status_apply() {
    let (mut co, role, binding) = settled_control(now());
    let want = co.status.clone().expect("status");
    // The status describes the previous generation.
    co.status = Some(ControlOwnershipStatus {
        observed_generation: Some(2),
        conditions: one_generation_behind(want.conditions.clone(), 3),
        ..want.clone()
    });
    let mut answered = co.clone();
    answered.status = Some(want.clone());
    answered.metadata.resource_version = Some("6".into());
    let (client, server) = expect(vec![
        Expected::apply(
            format!("{STEWARD}/controlownerships/payments/status"),
            status_applied::<ControlOwnership, _>(&want),
        )
        .answers(StatusCode::OK, serde_json::to_value(&answered).expect("control")),
    ]);
    let ctx = ctx(caches(vec![co.clone()], vec![], vec![role], vec![binding]), client);
    let result = control::reconcile(Arc::new(co), ctx.clone()).await;
    drop(ctx);
    server.verify().await;
    result.expect("reconcile");
}

#[tokio::test]
async fn a_stale_copy_of_a_control_makes_no_request() {
    // The cache holds version 5; the reconcile was handed version 4, with
    // no status and none of its RBAC cached: deciding from it would write.
    let cached = control_at(now(), false);
    let mut stale = cached.clone();
    stale.metadata.resource_version = Some("4".into());
    let (client, server) = no_requests();
    let ctx = ctx(caches(vec![cached], vec![], vec![], vec![]), client);
    let result = control::reconcile(Arc::new(stale), ctx.clone()).await;
    drop(ctx);
    server.verify().await;
    result.expect("reconcile");
}

#[tokio::test]
async fn a_control_cached_behind_our_own_status_write_makes_no_request() {
    let (mut co, role, binding) = settled_control(now());
    let want = co.status.clone().expect("status");
    co.status = None;
    let caches = caches(vec![co.clone()], vec![], vec![role], vec![binding]);
    caches
        .controls
        .record(&ObjectRef::from_obj(&co), Some("6"), fingerprint(&want));
    let (client, server) = no_requests();
    let ctx = ctx(caches, client);
    let result = control::reconcile(Arc::new(co), ctx.clone()).await;
    drop(ctx);
    server.verify().await;
    result.expect("reconcile");
}

#[tokio::test]
async fn enforce_deletes_a_drifting_binding_if_it_still_has_its_uid() {
    let now = now();
    let mut co = control_at(now, true);
    let (role, binding) = pair_on_server(&identity_pair(&co));
    let mut drifting = RoleBinding {
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: "edit".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "api".into(),
            namespace: Some(NS.into()),
            api_group: None,
        }]),
        ..Default::default()
    };
    drifting.metadata.name = Some("legacy-edit".into());
    drifting.metadata.namespace = Some(NS.into());
    let drifting = on_server(&drifting, "legacy-uid", "2");
    let bindings = vec![binding, drifting];
    co.status = Some(control_status(&co, &bindings));
    let (client, server) = expect(vec![
        Expected::delete(format!("{RBAC}/rolebindings/legacy-edit"), "legacy-uid"),
        Expected::event(NS, "DriftRemoved"),
    ]);
    let ctx = ctx(caches(vec![co.clone()], vec![], vec![role], bindings), client);
    let result = control::reconcile(Arc::new(co), ctx.clone()).await;
    drop(ctx);
    server.verify().await;
    result.expect("reconcile");
}

#[tokio::test]
async fn a_deleted_control_revokes_its_pair_before_its_finalizer_goes() {
    let (mut co, role, binding) = settled_control(now());
    co.metadata.deletion_timestamp = Some(Time(now()));
    let name = rbac::identity_name("payments", "api");
    let mut released = co.clone();
    released.metadata.finalizers = None;
    let (client, server) = expect(vec![
        Expected::delete(format!("{RBAC}/rolebindings/{name}"), "binding-uid"),
        Expected::delete(format!("{RBAC}/roles/{name}"), "role-uid"),
        Expected::json_patch(
            format!("{STEWARD}/controlownerships/payments"),
            json!([
                {"op": "test", "path": "/metadata/finalizers/0", "value": FINALIZER},
                {"op": "remove", "path": "/metadata/finalizers/0"},
            ]),
        )
        .answers(StatusCode::OK, serde_json::to_value(&released).expect("control")),
    ]);
    let ctx = ctx(caches(vec![co.clone()], vec![], vec![role], vec![binding]), client);
    let result = control::reconcile(Arc::new(co), ctx.clone()).await;
    drop(ctx);
    server.verify().await;
    result.expect("reconcile");
}

// === PolicyException reconciler ===

#[tokio::test]
async fn an_unchanged_exception_makes_no_request() {
    let (pe, co, grant) = settled_exception(now());
    let (role, binding) = pair_on_server(&grant);
    let (client, server) = no_requests();
    let ctx = ctx(caches(vec![co], vec![pe.clone()], vec![role], vec![binding]), client);
    let result = exception::reconcile(Arc::new(pe), ctx.clone()).await;
    drop(ctx);
    server.verify().await;
    result.expect("reconcile");
}

#[tokio::test]
async fn an_exception_whose_status_differs_gets_one_status_apply() {
    let (mut pe, co, grant) = settled_exception(now());
    let (role, binding) = pair_on_server(&grant);
    let want = pe.status.clone().expect("status");
    pe.status = Some(PolicyExceptionStatus {
        observed_generation: Some(1),
        conditions: one_generation_behind(want.conditions.clone(), 2),
        ..want.clone()
    });
    let mut answered = pe.clone();
    answered.status = Some(want.clone());
    answered.metadata.resource_version = Some("8".into());
    let (client, server) = expect(vec![
        Expected::apply(
            format!("{STEWARD}/policyexceptions/debug/status"),
            status_applied::<PolicyException, _>(&want),
        )
        .answers(StatusCode::OK, serde_json::to_value(&answered).expect("exception")),
    ]);
    let ctx = ctx(caches(vec![co], vec![pe.clone()], vec![role], vec![binding]), client);
    let result = exception::reconcile(Arc::new(pe), ctx.clone()).await;
    drop(ctx);
    server.verify().await;
    result.expect("reconcile");
}

#[tokio::test]
async fn an_exception_cached_behind_our_status_write_gets_its_grant_but_no_status_write() {
    let (mut pe, co, grant) = settled_exception(now());
    let want = pe.status.clone().expect("status");
    pe.status = None;
    let caches = caches(vec![co], vec![pe.clone()], vec![], vec![]);
    caches
        .exceptions
        .record(&ObjectRef::from_obj(&pe), Some("8"), fingerprint(&want));
    let name = grant.name().to_string();
    // Grants never wait for the cache to catch up; the status does.
    let (client, server) = expect(vec![
        Expected::apply(format!("{RBAC}/roles/{name}"), applied(&grant.role)),
        Expected::apply(format!("{RBAC}/rolebindings/{name}"), applied(&grant.binding)),
    ]);
    let ctx = ctx(caches, client);
    let result = exception::reconcile(Arc::new(pe), ctx.clone()).await;
    drop(ctx);
    server.verify().await;
    result.expect("reconcile");
}

#[tokio::test]
async fn an_expired_exception_is_revoked_before_its_status_is_written() {
    let co = control_at(now(), false);
    let starts = time::parse("2020-01-01T00:00:00Z").expect("start");
    let expires = time::parse("2020-01-02T00:00:00Z").expect("end");
    let mut pe = exception_at(starts, expires);
    // Last written while Active; the grant is still there.
    pe.status = Some(PolicyExceptionStatus {
        observed_generation: Some(2),
        phase: Some(crate::api::Phase::Active),
        expires_at: Some(time::format(expires)),
        granted_role: Some(rbac::exception_name("debug")),
        conditions: vec![],
    });
    let grant = rbac::pair(
        &rbac::exception_name("debug"),
        NS,
        "api",
        &[rule(&["pods/log"], &["get"])],
        &ManagedFor::Exception {
            exception: "debug",
            control: "payments",
        },
        pe.controller_owner_ref(&()),
    );
    let name = grant.name().to_string();
    let (role, binding) = pair_on_server(&grant);
    let mut answered = pe.clone();
    answered.metadata.resource_version = Some("8".into());
    let (client, server) = expect(vec![
        Expected::delete(format!("{RBAC}/rolebindings/{name}"), "binding-uid"),
        Expected::delete(format!("{RBAC}/roles/{name}"), "role-uid"),
        Expected::apply_checked(format!("{STEWARD}/policyexceptions/debug/status"), |body| {
            assert_eq!(body["kind"], "PolicyException");
            assert_eq!(body["status"]["phase"], "Expired");
            assert_eq!(body["status"]["grantedRole"], Value::Null, "nothing is granted");
        })
        .answers(StatusCode::OK, serde_json::to_value(&answered).expect("exception")),
        Expected::event(NS, "Expired"),
    ]);
    let ctx = ctx(caches(vec![co], vec![pe.clone()], vec![role], vec![binding]), client);
    let result = exception::reconcile(Arc::new(pe), ctx.clone()).await;
    drop(ctx);
    server.verify().await;
    result.expect("reconcile");
}
