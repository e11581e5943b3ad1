//! The reconcilers' I/O decisions against a mocked API server: which
//! requests they make (method, path, query, body, order) for a given view of
//! the caches, and above all which they do not. The e2e tests show the same
//! against a real API server; these pin down each decision on its own.

mod mock_api;

use crate::decide::approval::Trust;
use std::sync::Arc;

use http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use self::mock_api::{Expected, Mock, expect, no_requests};
use super::{Context, Error, control, exception, guarded_delete, managed_rbac, sweep};
use crate::api::{ControlOwnership, ControlOwnershipStatus, FINALIZER, PolicyException, PolicyExceptionStatus};
use crate::cache::{Cached, Caches, View, fingerprint};
use crate::compact::CachedRoleBinding;
use crate::decide::rbac::{self, ManagedFor, RbacPair};
use crate::decide::{Ceiling, time};
use crate::test_support::never_completes;

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
/// `starts_at` to `expires_at`, requested by carol and approved by alice.
fn exception_at(starts_at: Timestamp, expires_at: Timestamp) -> PolicyException {
    let pe = serde_json::from_value(json!({
        "apiVersion": "steward.dev/v1alpha1",
        "kind": "PolicyException",
        "metadata": {
            "name": "debug", "namespace": NS, "uid": "pe-uid", "generation": 2,
            "resourceVersion": "7", "creationTimestamp": time::format(starts_at),
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
    .expect("fixture exception");
    crate::decide::approval::approved_for_tests(pe, &super::test_key(), "carol@example.com", "alice@example.com")
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
    c.roles = View::fed(roles);
    c.role_bindings = View::fed(role_bindings);
    let mut ceiling = ClusterRole {
        rules: Some(ceiling_rules()),
        ..Default::default()
    };
    ceiling.metadata.name = Some("steward-grantable".into());
    c.ceiling_role = View::fed(vec![ceiling]);
    Arc::new(c)
}

/// Caches listing only these Roles and RoleBindings, and the ceiling.
fn rbac_caches(roles: Vec<Role>, role_bindings: Vec<RoleBinding>) -> Arc<Caches> {
    caches(vec![], vec![], roles, role_bindings)
}

/// Records in `view` our write of `written` to `obj`'s key, answered with
/// resourceVersion `rv`, as the writer records each of its writes.
fn remember_write<C, W>(view: &View<C>, obj: &C::Api, rv: &str, written: &W)
where
    C: Cached,
    W: Serialize,
{
    let key = ObjectRef::new(&obj.name_any());
    let key = match obj.namespace() {
        Some(ns) => key.within(&ns),
        None => key,
    };
    view.record(&key, Some(rv), fingerprint(written));
}

/// Path of the Role `name` in the test namespace.
fn role_at(name: &str) -> String {
    format!("{RBAC}/roles/{name}")
}

/// Path of the Roles of the test namespace.
fn roles() -> String {
    format!("{RBAC}/roles")
}

/// Path of the RoleBindings of the test namespace.
fn bindings() -> String {
    format!("{RBAC}/rolebindings")
}

/// Path of the RoleBinding `name` in the test namespace.
fn binding_at(name: &str) -> String {
    format!("{RBAC}/rolebindings/{name}")
}

/// The body of a server-side apply of `obj`: all of it, kind included.
fn applied<K: Resource<DynamicType = ()> + Serialize>(obj: &K) -> Value {
    let mut v = serde_json::to_value(obj).expect("object");
    v["apiVersion"] = K::api_version(&()).into();
    v["kind"] = K::kind(&()).into();
    v
}

/// `settled` with its status as recorded one generation before its own,
/// and the one request that brings it up to date: a status apply to `path`
/// of exactly the settled status, answered with `settled` at resourceVersion
/// `rv`.
fn a_generation_behind<K>(settled: &K, path: String, rv: &str) -> (K, Expected)
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
{
    let mut answered = serde_json::to_value(settled).expect("object");
    let want = answered["status"].clone();
    let mut behind = answered.clone();
    let generation = behind["metadata"]["generation"].as_i64().expect("generation");
    behind["status"]["observedGeneration"] = (generation - 1).into();
    for c in behind["status"]["conditions"].as_array_mut().expect("conditions") {
        c["observedGeneration"] = (generation - 1).into();
    }
    answered["metadata"]["resourceVersion"] = rv.into();
    let body = json!({"apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": want});
    let apply = Expected::apply(path, body).answers_with(&answered);
    (serde_json::from_value(behind).expect("object"), apply)
}

/// The status the control reconciler decides for `co` with its identity
/// pair in place and these RoleBindings in its namespace.
fn control_status(co: &ControlOwnership, role_bindings: &[RoleBinding]) -> ControlOwnershipStatus {
    let role_bindings: Vec<CachedRoleBinding> = role_bindings.iter().cloned().map(Into::into).collect();
    let observed = crate::decide::control::Observed {
        exceptions: &[],
        role_bindings: &role_bindings,
        cluster_role_bindings: &[],
        managed_names: &[rbac::identity_name("payments", "api")],
        controls: &[],
    };
    crate::decide::control::decide(co, &observed, &ceiling(), Trust::Verify(&super::test_key()), now()).status
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
    let d = crate::decide::exception::decide(&pe, Some(&co), &ceiling(), Trust::Verify(&super::test_key()), now);
    let grant = d.grant.expect("an Active exception grants");
    pe.status = Some(d.status);
    (pe, co, grant)
}

// === running the code under test against the mock ===

/// Runs `call` with a context over `caches` whose client is `mock`'s, and
/// returns its result once the mock has checked the requests. `call` owns
/// the only context: when it ends, so does the scenario.
async fn run<T, F>(mock: Mock, caches: Arc<Caches>, call: impl FnOnce(Arc<Context>) -> F) -> T
where
    F: Future<Output = T>,
{
    let (client, server) = mock;
    let result = call(Arc::new(Context::for_test(caches, client))).await;
    server.verify().await;
    result
}

/// `managed_rbac::ensure` of `pair` (Audit), which must succeed.
async fn ensure(mock: Mock, caches: Arc<Caches>, pair: &RbacPair) {
    ensure_as(mock, caches, pair, false).await.expect("ensure");
}

/// `managed_rbac::ensure` of `pair`, replacing foreign objects or not.
async fn ensure_as(mock: Mock, caches: Arc<Caches>, pair: &RbacPair, replace_foreign: bool) -> Result<(), Error> {
    run(mock, caches, |ctx| async move {
        Ok(managed_rbac::ensure(&ctx, pair, replace_foreign).await?)
    })
    .await
}

/// `managed_rbac::remove` of the pair `name` in the test namespace, owned
/// by the fixture control.
async fn remove(mock: Mock, caches: Arc<Caches>, name: &str) -> Result<bool, Error> {
    run(mock, caches, |ctx| async move {
        managed_rbac::remove(&ctx, NS, name, "co-uid").await
    })
    .await
}

/// A reconcile of `co`, which must succeed.
async fn reconcile_control(mock: Mock, caches: Arc<Caches>, co: ControlOwnership) {
    run(mock, caches, |ctx| control::reconcile(Arc::new(co), ctx))
        .await
        .expect("reconcile");
}

/// A reconcile of `pe`, which must succeed.
async fn reconcile_exception(mock: Mock, caches: Arc<Caches>, pe: PolicyException) {
    run(mock, caches, |ctx| exception::reconcile(Arc::new(pe), ctx))
        .await
        .expect("reconcile");
}

// === managed_rbac::ensure ===

#[tokio::test]
async fn ensure_writes_nothing_when_the_cache_shows_the_pair() {
    let pair = identity_pair(&control_at(now(), false));
    let (role, binding) = pair_on_server(&pair);
    ensure(no_requests(), rbac_caches(vec![role], vec![binding]), &pair).await;
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
        let caches = rbac_caches(roles, bindings);
        remember_write(&caches.roles, &pair.role, "8", &pair.role);
        remember_write(&caches.role_bindings, &pair.binding, "9", &pair.binding);
        ensure(no_requests(), caches, &pair).await;
    }
}

#[tokio::test]
async fn ensure_applies_each_object_that_differs_role_first_then_trusts_its_writes() {
    let pair = &identity_pair(&control_at(now(), false));
    let name = pair.name();
    let mut old = pair.clone();
    old.role.rules = Some(vec![rule(&["pods"], &["list"])]);
    old.binding.metadata.labels = None;
    let (old_role, old_binding) = pair_on_server(&old);
    let mock = expect(vec![
        Expected::apply(role_at(name), applied(&pair.role)).answers_with(&on_server(&pair.role, "role-uid", "10")),
        Expected::apply(binding_at(name), applied(&pair.binding)).answers_with(&on_server(
            &pair.binding,
            "binding-uid",
            "11",
        )),
    ]);
    let (first, second) = run(mock, rbac_caches(vec![old_role], vec![old_binding]), |ctx| async move {
        let first = managed_rbac::ensure(&ctx, pair, false).await;
        // The watch has not delivered our writes: the views' memos know them.
        let second = managed_rbac::ensure(&ctx, pair, false).await;
        (first, second)
    })
    .await;
    first.expect("first ensure");
    second.expect("second ensure");
}

#[tokio::test]
async fn ensure_applies_only_the_object_that_differs() {
    let pair = identity_pair(&control_at(now(), false));
    let (role, _) = pair_on_server(&pair);
    let mock = expect(vec![Expected::create(bindings(), applied(&pair.binding))]);
    ensure(mock, rbac_caches(vec![role], vec![]), &pair).await;
}

#[tokio::test]
async fn a_pair_the_cache_shows_absent_is_created_and_applied_if_it_exists_after_all() {
    let pair = identity_pair(&control_at(now(), false));
    let name = pair.name();
    let exists = json!({
        "apiVersion": "v1", "kind": "Status", "status": "Failure", "code": 409, "reason": "AlreadyExists",
        "message": format!("roles.rbac.authorization.k8s.io \"{name}\" already exists"),
    });
    let mock = expect(vec![
        // The cache was a step behind: the Role exists.
        Expected::create(roles(), applied(&pair.role)).answers(StatusCode::CONFLICT, exists),
        Expected::apply(role_at(name), applied(&pair.role)).answers_with(&on_server(&pair.role, "role-uid", "10")),
        Expected::create(bindings(), applied(&pair.binding)).answers_with(&on_server(
            &pair.binding,
            "binding-uid",
            "11",
        )),
    ]);
    let (first, second) = run(mock, rbac_caches(vec![], vec![]), |ctx| async move {
        let first = managed_rbac::ensure(&ctx, &pair, false).await;
        // The watch has not delivered our writes: the views' memos know them.
        let second = managed_rbac::ensure(&ctx, &pair, false).await;
        (first, second)
    })
    .await;
    first.expect("first ensure");
    second.expect("second ensure");
}

#[tokio::test]
async fn ensure_applies_when_our_last_write_was_something_else() {
    let pair = identity_pair(&control_at(now(), false));
    let (_, binding) = pair_on_server(&pair);
    let mut other = pair.role.clone();
    other.rules = Some(vec![rule(&["pods"], &["list"])]);
    let caches = rbac_caches(vec![], vec![binding]);
    remember_write(&caches.roles, &pair.role, "8", &other);
    let mock = expect(vec![Expected::apply(role_at(pair.name()), applied(&pair.role))]);
    ensure(mock, caches, &pair).await;
}

// === managed_rbac::remove ===

#[tokio::test]
async fn remove_deletes_the_binding_then_the_role_each_if_it_still_has_its_uid() {
    let pair = identity_pair(&control_at(now(), false));
    let name = pair.name();
    let (role, binding) = pair_on_server(&pair);
    let mock = expect(vec![
        Expected::delete(binding_at(name), "binding-uid"),
        // Already gone: that is what we wanted.
        Expected::delete(role_at(name), "role-uid").answers_not_found(),
    ]);
    let result = remove(mock, rbac_caches(vec![role], vec![binding]), name).await;
    assert!(result.expect("remove"), "something existed");
}

#[tokio::test]
async fn remove_keeps_the_role_when_the_binding_could_not_be_deleted() {
    let pair = identity_pair(&control_at(now(), false));
    let name = pair.name();
    let (role, binding) = pair_on_server(&pair);
    let mock = expect(vec![Expected::delete(binding_at(name), "binding-uid").answers(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": 500, "reason": "InternalError", "message": "etcd"}),
    )]);
    let result = remove(mock, rbac_caches(vec![role], vec![binding]), name).await;
    assert!(result.is_err(), "the failure is reported, to be retried");
}

/// The pair's objects as someone else created them: same names, no owner
/// reference of ours, the binding to another role.
fn foreign(pair: &RbacPair) -> (Role, RoleBinding) {
    let (mut role, mut binding) = pair_on_server(pair);
    role.metadata.owner_references = None;
    binding.metadata.owner_references = None;
    binding.role_ref.name = "tenant-admin".into();
    (role, binding)
}

#[tokio::test]
async fn remove_never_deletes_what_the_owner_did_not_create() {
    let pair = identity_pair(&control_at(now(), false));
    let (role, binding) = foreign(&pair);
    let result = remove(no_requests(), rbac_caches(vec![role], vec![binding]), pair.name()).await;
    assert!(!result.expect("remove"), "nothing of ours existed");
}

#[tokio::test]
async fn a_foreign_object_at_the_name_is_left_alone_outside_enforce() {
    let pair = identity_pair(&control_at(now(), false));
    let (role, binding) = foreign(&pair);
    let result = ensure_as(no_requests(), rbac_caches(vec![role], vec![binding]), &pair, false).await;
    let Err(Error::Pair(e)) = result else {
        panic!("a foreign Role was taken over: {result:?}")
    };
    assert!(e.needs_person(), "{e}");
    assert!(e.to_string().contains(pair.name()), "{e}");
}

#[tokio::test]
async fn a_role_the_escalation_check_refuses_says_the_namespace_is_not_opted_in() {
    let pair = identity_pair(&control_at(now(), false));
    let name = pair.name();
    let refused = json!({
        "apiVersion": "v1", "kind": "Status", "status": "Failure", "code": 403, "reason": "Forbidden",
        "message": format!("roles.rbac.authorization.k8s.io \"{name}\" is forbidden: user \"system:serviceaccount:steward-system:steward\" (groups=[...]) is attempting to grant RBAC permissions not currently held:\n{{APIGroups:[\"\"], Resources:[\"configmaps\"], Verbs:[\"get\"]}}"),
    });
    let mock = expect(vec![
        Expected::create(roles(), applied(&pair.role)).answers(StatusCode::FORBIDDEN, refused),
    ]);
    let result = ensure_as(mock, rbac_caches(vec![], vec![]), &pair, false).await;
    let Err(Error::Pair(e)) = result else {
        panic!("the refusal was not reported: {result:?}")
    };
    // A person (the platform team) must act: retrying cannot help.
    assert!(e.needs_person(), "{e}");
    let msg = e.to_string();
    for part in [
        NS,
        "does not hold the grant ceiling",
        "steward-grant-ceiling",
        "steward-grantable",
    ] {
        assert!(msg.contains(part), "{part} missing: {msg}");
    }
}

#[tokio::test]
async fn enforce_replaces_a_foreign_object_at_the_name() {
    let pair = identity_pair(&control_at(now(), false));
    let name = pair.name();
    let (role, binding) = foreign(&pair);
    let mock = expect(vec![
        Expected::delete(role_at(name), "role-uid"),
        Expected::apply(role_at(name), applied(&pair.role)).answers_with(&on_server(&pair.role, "role-uid-2", "10")),
        Expected::delete(binding_at(name), "binding-uid"),
        Expected::apply(binding_at(name), applied(&pair.binding)).answers_with(&on_server(
            &pair.binding,
            "binding-uid-2",
            "11",
        )),
    ]);
    ensure_as(mock, rbac_caches(vec![role], vec![binding]), &pair, true)
        .await
        .expect("ensure");
}

#[tokio::test]
async fn remove_of_nothing_cached_makes_no_request() {
    let result = remove(no_requests(), rbac_caches(vec![], vec![]), "steward:payments:api").await;
    assert!(!result.expect("remove"), "nothing existed");
}

// === ControlOwnership reconciler ===

#[tokio::test]
async fn an_unchanged_control_makes_no_request() {
    let (co, role, binding) = settled_control(now());
    let caches = caches(vec![co.clone()], vec![], vec![role], vec![binding]);
    reconcile_control(no_requests(), caches, co).await;
}

#[tokio::test]
async fn a_control_whose_status_differs_gets_one_status_apply() {
    let (settled, role, binding) = settled_control(now());
    // The status describes the previous generation.
    let path = format!("{STEWARD}/controlownerships/payments/status");
    let (co, apply) = a_generation_behind(&settled, path, "6");
    let caches = caches(vec![co.clone()], vec![], vec![role], vec![binding]);
    reconcile_control(expect(vec![apply]), caches, co).await;
}

#[tokio::test]
async fn a_new_control_gets_its_finalizer_then_its_pair_in_the_same_reconcile() {
    let (settled, role, binding) = settled_control(now());
    let mut co = settled.clone();
    co.metadata.finalizers = None;
    let pair = identity_pair(&co);
    let mut finalized = co.clone();
    finalized.metadata.finalizers = Some(vec![FINALIZER.into()]);
    let mock = expect(vec![
        Expected::json_patch(
            format!("{STEWARD}/controlownerships/payments"),
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
            ]),
        )
        .answers_with(&finalized),
        // Without waiting for the watch event of that patch.
        Expected::create(roles(), applied(&pair.role)).answers_with(&role),
        Expected::create(bindings(), applied(&pair.binding)).answers_with(&binding),
    ]);
    // Its status is already what the reconciler decides: no status write.
    let caches = caches(vec![co.clone()], vec![], vec![], vec![]);
    reconcile_control(mock, caches, co).await;
}

#[tokio::test]
async fn a_count_alone_waits_for_a_burst_of_new_work_and_is_written_after_it() {
    let (co, role, binding) = settled_control(now());
    // An exception of the control became Active: its count alone changes.
    let (pe, _, grant) = settled_exception(now());
    let (grant_role, grant_binding) = pair_on_server(&grant);
    let caches = caches(
        vec![co.clone()],
        vec![pe],
        vec![role, grant_role],
        vec![binding, grant_binding],
    );
    let status = format!("{STEWARD}/controlownerships/payments/status");
    // While new work is under way: nothing is written.
    let (client, server) = no_requests();
    let ctx = Arc::new(Context::for_test(caches.clone(), client));
    let burst = ctx.burst.started();
    control::reconcile(Arc::new(co.clone()), ctx.clone())
        .await
        .expect("reconcile");
    assert_eq!(ctx.burst.waiting(), 1);
    drop(burst);
    assert_eq!(ctx.burst.waiting(), 0, "released when the burst ended");
    drop(ctx);
    server.verify().await;
    // Without a burst, the same decision writes the count.
    let mut answered = co.clone();
    answered.metadata.resource_version = Some("6".into());
    let mock = expect(vec![
        Expected::apply_checked(status, |body| {
            assert_eq!(body["status"]["activeExceptions"], 1);
        })
        .answers_with(&answered),
    ]);
    reconcile_control(mock, caches, co).await;
}

#[tokio::test]
async fn a_stale_copy_of_a_control_makes_no_request() {
    // The cache holds version 5; the reconcile was handed version 4, with
    // no status and none of its RBAC cached: deciding from it would write.
    let cached = control_at(now(), false);
    let mut stale = cached.clone();
    stale.metadata.resource_version = Some("4".into());
    reconcile_control(no_requests(), caches(vec![cached], vec![], vec![], vec![]), stale).await;
}

#[tokio::test]
async fn a_control_cached_behind_our_own_status_write_makes_no_request() {
    let (mut co, role, binding) = settled_control(now());
    let want = co.status.take().expect("status");
    let caches = caches(vec![co.clone()], vec![], vec![role], vec![binding]);
    remember_write(&caches.controls, &co, "6", &want);
    reconcile_control(no_requests(), caches, co).await;
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
    let mock = expect(vec![
        Expected::delete(binding_at("legacy-edit"), "legacy-uid"),
        Expected::event(NS, "DriftRemoved"),
    ]);
    let caches = caches(vec![co.clone()], vec![], vec![role], bindings);
    reconcile_control(mock, caches, co).await;
}

#[tokio::test]
async fn a_deleted_control_revokes_its_pair_before_its_finalizer_goes() {
    let (mut co, role, binding) = settled_control(now());
    co.metadata.deletion_timestamp = Some(Time(now()));
    let name = rbac::identity_name("payments", "api");
    let mut released = co.clone();
    released.metadata.finalizers = None;
    let mock = expect(vec![
        Expected::delete(binding_at(&name), "binding-uid"),
        Expected::delete(role_at(&name), "role-uid"),
        Expected::json_patch(
            format!("{STEWARD}/controlownerships/payments"),
            json!([
                {"op": "test", "path": "/metadata/finalizers/0", "value": FINALIZER},
                {"op": "remove", "path": "/metadata/finalizers/0"},
            ]),
        )
        .answers_with(&released),
    ]);
    let caches = caches(vec![co.clone()], vec![], vec![role], vec![binding]);
    reconcile_control(mock, caches, co).await;
}

// === PolicyException reconciler ===

#[tokio::test]
async fn an_unchanged_exception_makes_no_request() {
    let (pe, co, grant) = settled_exception(now());
    let (role, binding) = pair_on_server(&grant);
    let caches = caches(vec![co], vec![pe.clone()], vec![role], vec![binding]);
    reconcile_exception(no_requests(), caches, pe).await;
}

#[tokio::test]
async fn a_deleted_exception_of_an_earlier_version_is_revoked_then_released() {
    // Exceptions created before finalizers were dropped still carry one.
    let (mut pe, co, grant) = settled_exception(now());
    pe.metadata.finalizers = Some(vec![FINALIZER.into()]);
    pe.metadata.deletion_timestamp = Some(Time(now()));
    let (role, binding) = pair_on_server(&grant);
    let name = rbac::exception_name("debug");
    let mut released = pe.clone();
    released.metadata.finalizers = None;
    let mock = expect(vec![
        Expected::delete(binding_at(&name), "binding-uid"),
        Expected::delete(role_at(&name), "role-uid"),
        Expected::event(NS, "Revoked"),
        Expected::json_patch(
            format!("{STEWARD}/policyexceptions/debug"),
            json!([
                {"op": "test", "path": "/metadata/finalizers/0", "value": FINALIZER},
                {"op": "remove", "path": "/metadata/finalizers/0"},
            ]),
        )
        .answers_with(&released),
    ]);
    let caches = caches(vec![co], vec![pe.clone()], vec![role], vec![binding]);
    reconcile_exception(mock, caches, pe).await;
}

#[tokio::test]
async fn an_exception_held_by_another_finalizer_is_revoked_and_left_to_it() {
    let (mut pe, co, grant) = settled_exception(now());
    pe.metadata.finalizers = Some(vec!["example.com/keep".into()]);
    pe.metadata.deletion_timestamp = Some(Time(now()));
    let (role, binding) = pair_on_server(&grant);
    let name = rbac::exception_name("debug");
    let mock = expect(vec![
        Expected::delete(binding_at(&name), "binding-uid"),
        Expected::delete(role_at(&name), "role-uid"),
        Expected::event(NS, "Revoked"),
    ]);
    let caches = caches(vec![co], vec![pe.clone()], vec![role], vec![binding]);
    reconcile_exception(mock, caches, pe).await;
}

#[tokio::test]
async fn an_exception_whose_status_differs_gets_one_status_apply() {
    let (settled, co, grant) = settled_exception(now());
    let (role, binding) = pair_on_server(&grant);
    let path = format!("{STEWARD}/policyexceptions/debug/status");
    let (pe, apply) = a_generation_behind(&settled, path, "8");
    let caches = caches(vec![co], vec![pe.clone()], vec![role], vec![binding]);
    reconcile_exception(expect(vec![apply]), caches, pe).await;
}

#[tokio::test]
async fn an_exception_cached_behind_our_status_write_gets_its_grant_but_no_status_write() {
    let (mut pe, co, grant) = settled_exception(now());
    let want = pe.status.take().expect("status");
    let caches = caches(vec![co], vec![pe.clone()], vec![], vec![]);
    remember_write(&caches.exceptions, &pe, "8", &want);
    // Grants never wait for the cache to catch up; the status does.
    let mock = expect(vec![
        Expected::create(roles(), applied(&grant.role)),
        Expected::create(bindings(), applied(&grant.binding)),
    ]);
    reconcile_exception(mock, caches, pe).await;
}

/// An exception that expired long ago, last written while Active, whose
/// grant is still on the server: its pair's name and the caches showing it.
fn expired_holding_its_grant() -> (PolicyException, String, Arc<Caches>) {
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
        approval: None,
        history: vec![],
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
    let (role, binding) = pair_on_server(&grant);
    let caches = caches(vec![co], vec![pe.clone()], vec![role], vec![binding]);
    (pe, grant.name().to_string(), caches)
}

#[tokio::test]
async fn an_expired_exception_is_revoked_then_reported_then_its_role_deleted() {
    let (pe, name, caches) = expired_holding_its_grant();
    let name = name.as_str();
    let mut answered = pe.clone();
    answered.metadata.resource_version = Some("8".into());
    let mock = expect(vec![
        // The binding is what grants: it goes first. The Role alone grants
        // nothing, so it goes after the status and Event that say so.
        Expected::delete(binding_at(name), "binding-uid"),
        Expected::apply_checked(format!("{STEWARD}/policyexceptions/debug/status"), |body| {
            assert_eq!(body["kind"], "PolicyException");
            assert_eq!(body["status"]["phase"], "Expired");
            assert_eq!(body["status"]["grantedRole"], Value::Null, "nothing is granted");
        })
        .answers_with(&answered),
        Expected::event(NS, "Expired"),
        Expected::delete(role_at(name), "role-uid"),
    ]);
    reconcile_exception(mock, caches, pe).await;
}

/// A decision waits for a slot (one per core), so a restart's thousands
/// of reconciles do not all hold their inputs and results at once. Here
/// every slot is taken and turns are free: the reconcile of a new exception
/// makes no request and cannot complete, so the timeout is certain, not a
/// guess about timing.
#[tokio::test]
async fn a_decision_waits_for_a_slot() {
    let fresh = || {
        exception_at(
            now().checked_sub(days(1)).expect("start"),
            now().checked_add(days(1)).expect("end"),
        )
    };
    let caches = caches(vec![control_at(now(), false)], vec![fresh()], vec![], vec![]);
    run(no_requests(), caches, |ctx| async move {
        let n = ctx.deciding.available_permits();
        let _slots = ctx.deciding.try_acquire_many(n as u32).expect("every slot");
        never_completes(
            exception::reconcile(Arc::new(fresh()), ctx.clone()),
            "decided without a slot",
        )
        .await;
    })
    .await;
}

/// A control released at the end of a burst waits for a turn of its own
/// kind: thousands are released at once, and each holds its decision and
/// request body until its write is answered. Every such turn taken here,
/// the turns for new work free: its reconcile cannot complete, so the
/// timeout is certain, not a guess about timing.
#[tokio::test]
async fn a_released_control_waits_for_a_released_turn() {
    let mut co = control_at(now(), false);
    co.status = Some(ControlOwnershipStatus {
        active_exceptions: Some(1),
        ..Default::default()
    });
    let caches = caches(vec![co.clone()], vec![], vec![], vec![]);
    run(no_requests(), caches, |ctx| async move {
        let key = ObjectRef::from_obj(&co);
        let one = ctx.burst.started();
        let counted = |n| ControlOwnershipStatus {
            active_exceptions: Some(n),
            ..Default::default()
        };
        assert!(
            ctx.burst
                .count_waits(&key, Some(&counted(1)), &counted(2), now())
                .is_some()
        );
        drop(one);
        let n = ctx.released.available_permits();
        let _turns = ctx.released.try_acquire_many(n as u32).expect("every released turn");
        assert!(ctx.new_work.available_permits() > 0, "new work's turns are free");
        never_completes(
            control::reconcile(Arc::new(co), ctx.clone()),
            "reconciled without a released turn",
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn new_work_waits_for_a_turn_and_a_revocation_never_does() {
    // Every turn for new work taken, as in a burst of new exceptions.
    fn busy(ctx: &Context) -> tokio::sync::SemaphorePermit<'_> {
        let n = ctx.new_work.available_permits();
        assert_eq!(n, super::NEW_WORK_IN_TESTS);
        ctx.new_work.try_acquire_many(n as u32).expect("every turn")
    }
    // Waits for a turn: its reconcile makes no request, and cannot complete
    // while the turns are held, so the timeout is certain, not a guess
    // about timing.
    async fn waits_for_a_turn(caches: Arc<Caches>, pe: PolicyException, why: &str) {
        run(no_requests(), caches, |ctx| async move {
            let _turns = busy(&ctx);
            never_completes(exception::reconcile(Arc::new(pe), ctx.clone()), why).await;
        })
        .await;
    }
    let fresh = || {
        exception_at(
            now().checked_sub(days(1)).expect("start"),
            now().checked_add(days(1)).expect("end"),
        )
    };
    // A new exception (nothing granted yet) waits.
    let caches = caches(vec![control_at(now(), false)], vec![fresh()], vec![], vec![]);
    waits_for_a_turn(caches, fresh(), "a new exception was reconciled without a turn").await;
    // A binding someone else put at the grant's name is not a grant of
    // this exception's: it waits its turn like any new work.
    let (_, mut squatter) = grant_of("debug", "someone-else");
    squatter.metadata.owner_references = None;
    let caches = self::caches(vec![control_at(now(), false)], vec![fresh()], vec![], vec![squatter]);
    waits_for_a_turn(caches, fresh(), "a squatted name bought a way past the turns").await;
    // An expiry holding its grant goes at once: binding, status, Event, Role.
    let (pe, name, caches) = expired_holding_its_grant();
    let mut answered = pe.clone();
    answered.metadata.resource_version = Some("8".into());
    let mock = expect(vec![
        Expected::delete(binding_at(&name), "binding-uid"),
        Expected::apply_checked(format!("{STEWARD}/policyexceptions/debug/status"), |body| {
            assert_eq!(body["status"]["phase"], "Expired");
        })
        .answers_with(&answered),
        Expected::event(NS, "Expired"),
        Expected::delete(role_at(&name), "role-uid"),
    ]);
    run(mock, caches, |ctx| async move {
        let _turns = busy(&ctx);
        // Were it to wait for a turn, it would wait forever: a deadline
        // turns that into a failure.
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            exception::reconcile(Arc::new(pe), ctx.clone()),
        )
        .await
        .expect("revoked without a turn")
        .expect("revoked");
    })
    .await;
}

// === the sweep ===

/// The grant of exception `name` (owner uid `uid`) as the server holds it.
fn grant_of(name: &str, uid: &str) -> (Role, RoleBinding) {
    let mut pe = exception_at(now(), now().checked_add(days(1)).expect("end"));
    pe.metadata.name = Some(name.into());
    pe.metadata.uid = Some(uid.into());
    let grant = rbac::pair(
        &rbac::exception_name(name),
        NS,
        "api",
        &[rule(&["pods/log"], &["get"])],
        &ManagedFor::Exception {
            exception: name,
            control: "payments",
        },
        pe.controller_owner_ref(&()),
    );
    pair_on_server(&grant)
}

#[tokio::test]
async fn the_sweep_revokes_a_deleted_exceptions_grant_binding_first_then_says_so() {
    // The exception is gone; its pair is not.
    let (role, binding) = grant_of("debug", "pe-uid");
    let name = rbac::exception_name("debug");
    let caches = caches(vec![control_at(now(), false)], vec![], vec![role], vec![binding]);
    let mock = expect(vec![
        Expected::delete(binding_at(&name), "binding-uid"),
        Expected::event(NS, "Revoked"),
        Expected::delete(role_at(&name), "role-uid"),
    ]);
    let failed = run(mock, caches, |ctx| async move {
        sweep::sweep(&ctx, &[NS.to_string()].into()).await
    })
    .await;
    assert!(failed.is_empty());
}

#[tokio::test]
async fn the_sweep_sends_no_delete_already_under_way() {
    // A reconcile has just deleted the binding; the watch has not shown it
    // yet. Only the Role is the sweep's to delete, and without the Revoked
    // Event, which is the reconcile's.
    let (role, binding) = grant_of("debug", "pe-uid");
    let name = rbac::exception_name("debug");
    let caches = caches(
        vec![control_at(now(), false)],
        vec![],
        vec![role],
        vec![binding.clone()],
    );
    caches.role_bindings.record_deleted(&binding.clone().into());
    let mock = expect(vec![Expected::delete(role_at(&name), "role-uid")]);
    run(mock, caches, |ctx| async move {
        sweep::sweep(&ctx, &[NS.to_string()].into()).await
    })
    .await;
}

#[tokio::test]
async fn a_delete_the_cache_no_longer_shows_is_not_sent() {
    // The sweep judged a snapshot; by the time of its delete the watch has
    // shown the object gone (or replaced under another uid).
    let (role, _) = grant_of("debug", "pe-uid");
    let caches = rbac_caches(vec![role], vec![]);
    let name = rbac::exception_name("debug");
    let sent = run(no_requests(), caches, |ctx| async move {
        let gone = guarded_delete::delete_once::<RoleBinding>(
            &ctx,
            &ctx.caches.role_bindings,
            NS,
            &name,
            guarded_delete::Target::Uid("binding-uid"),
        )
        .await;
        let replaced = guarded_delete::delete_once::<Role>(
            &ctx,
            &ctx.caches.roles,
            NS,
            &name,
            guarded_delete::Target::Uid("an-earlier-uid"),
        )
        .await;
        gone.is_some() || replaced.is_some()
    })
    .await;
    assert!(!sent);
}

// === retries ===

#[test]
fn a_failed_revocation_is_retried_fast_for_a_while_then_backs_off() {
    let revocation = || super::Error::Revocation(Box::new(super::Error::Identities(1)));
    let other = super::Error::Identities(1);
    let ms = |d: std::time::Duration| d.as_millis();
    // Other failures: 500 ms doubling to a minute.
    assert_eq!(ms(super::retry_after(&other, 1)), 500);
    assert_eq!(ms(super::retry_after(&other, 4)), 4_000);
    assert_eq!(ms(super::retry_after(&other, 30)), 60_000);
    // A revocation: every 500 ms through an API server restart ...
    for n in 1..=super::FAST_REVOCATION_TRIES {
        assert_eq!(ms(super::retry_after(&revocation(), n)), 500, "try {n}");
    }
    // ... then a backoff, not two requests a second forever, but never
    // more than 5 s: a grant must go soon after a long outage too.
    let n = super::FAST_REVOCATION_TRIES;
    assert_eq!(ms(super::retry_after(&revocation(), n + 2)), 1_000);
    assert_eq!(ms(super::retry_after(&revocation(), n + 4)), 4_000);
    assert_eq!(ms(super::retry_after(&revocation(), n + 5)), 5_000);
    assert_eq!(ms(super::retry_after(&revocation(), n + 20)), 5_000);
}

/// A failed reconcile of an exception retries no later than the instant its
/// grant ends, and backs off as usual once it has ended or when it never does.
#[test]
fn a_failure_before_an_expiry_retries_at_the_expiry_at_the_latest() {
    let now = crate::decide::fixtures::ts("2026-11-29T10:00:00Z");
    let ms = |d: std::time::Duration| d.as_millis();
    let s = std::time::Duration::from_secs;
    // (backoff, grant ends, retry in ms)
    let table = [
        (s(8), Some("2026-11-29T10:00:02Z"), 2_001),
        (s(8), Some("2026-11-29T10:00:00Z"), 1),
        (s(1), Some("2026-11-29T10:00:02Z"), 1_000),
        (s(8), Some("2026-11-29T09:59:00Z"), 8_000),
        (s(8), None, 8_000),
    ];
    for (delay, ends, want) in table {
        assert_eq!(
            ms(super::no_later_than(delay, ends.map(crate::decide::fixtures::ts), now)),
            want,
            "{delay:?} {ends:?}"
        );
    }
}

// === memory ===

/// Thousands of reconciles wait for their decision at once after a restart
/// or in a burst, each future holding room for the largest state it can
/// reach: the requests after the decision, and kube's finalizer helper, are
/// boxed, so a waiting reconcile stays small (they were 7.1 and 4.7 KB).
#[tokio::test]
async fn a_reconcile_waiting_for_its_decision_is_small() {
    let (client, _server) = expect(vec![]);
    let ctx = Arc::new(Context::for_test(Arc::new(Caches::fed(vec![], vec![])), client));
    let exception = exception::reconcile(Arc::new(exception_at(now(), now())), ctx.clone());
    let control = control::reconcile(Arc::new(control_at(now(), false)), ctx.clone());
    let sizes = [
        ("exception", std::mem::size_of_val(&exception)),
        ("control", std::mem::size_of_val(&control)),
    ];
    for (kind, size) in sizes {
        assert!(size <= 2048, "the {kind} reconcile takes {size} bytes before it starts");
    }
}

// === a grant decided before its end ===

/// A decision made before the grant's end and carried out after it (it
/// waited for the blocking pool) writes no grant: the expiry clock may have
/// revoked it meanwhile, and the cache no longer shows it. It decides
/// again at once instead.
#[tokio::test]
async fn a_grant_decided_before_its_end_is_not_written_after_it() {
    let now = now();
    let end = now.checked_sub(SignedDuration::from_secs(1)).expect("end");
    let pe = exception_at(end.checked_sub(days(1)).expect("start"), end);
    let co = control_at(now, false);
    let decided_at = end.checked_sub(SignedDuration::from_secs(1)).expect("decided");
    let key = super::test_key();
    let d = crate::decide::exception::decide(&pe, Some(&co), &ceiling(), Trust::Verify(&key), decided_at);
    assert!(d.grant.is_some(), "before its end the decision grants");
    let caches = caches(vec![co.clone()], vec![pe.clone()], vec![], vec![]);
    let action = run(no_requests(), caches, |ctx| async move {
        exception::carry_out(&pe, d, Some(&co), false, &ctx, decided_at).await
    })
    .await
    .expect("carried out");
    assert_eq!(action, super::Action::requeue(std::time::Duration::ZERO));
}

/// The expiry clock tries a failed revocation again until it is answered,
/// and only while the cached exception is the one that ended: replaced by
/// another of the same name, it stops.
#[tokio::test(start_paused = true)]
async fn the_clocks_revocation_is_retried_until_answered_while_still_due() {
    use tower_test::mock;
    let answer = mock_api::status_response;
    let grant = format!("{RBAC}/rolebindings/{}", rbac::exception_name("debug"));
    for replaced in [false, true] {
        let (service, mut server) =
            mock::pair::<http::Request<kube::client::Body>, http::Response<kube::client::Body>>();
        let ended = now().checked_sub(SignedDuration::from_secs(1)).expect("a second ago");
        let pe = exception_at(ended.checked_sub(days(1)).expect("a day before"), ended);
        let (_, binding) = grant_of("debug", "pe-uid");
        let ctx = Arc::new(Context::for_test(
            caches(vec![control_at(now(), false)], vec![pe.clone()], vec![], vec![binding]),
            kube::Client::new(service, "default"),
        ));
        let clock = tokio::spawn(super::expiry_clock::revoke(ctx.clone(), Arc::new(pe.clone()), ended));
        let tries = if replaced { 1 } else { 4 };
        for n in 1..=tries {
            let (request, respond) = tokio::time::timeout(std::time::Duration::from_secs(60), server.next_request())
                .await
                .unwrap_or_else(|_| panic!("try {n} never came (replaced: {replaced})"))
                .expect("a delete");
            assert_eq!(request.method(), http::Method::DELETE, "try {n}");
            assert_eq!(request.uri().path(), grant, "try {n}");
            if n < tries || replaced {
                if replaced {
                    let mut other = pe.clone();
                    other.metadata.uid = Some("another-uid".into());
                    ctx.caches.exceptions.feed(kube::runtime::watcher::Event::Apply(other));
                }
                respond.send_response(answer(StatusCode::SERVICE_UNAVAILABLE));
            } else {
                respond.send_response(answer(StatusCode::OK));
            }
        }
        // Time is paused: a further try would come within a minute.
        tokio::time::timeout(std::time::Duration::from_secs(60), clock)
            .await
            .unwrap_or_else(|_| panic!("the clock still tries (replaced: {replaced})"))
            .expect("the clock's task");
        assert!(
            futures::FutureExt::now_or_never(server.next_request()).is_none(),
            "a request after the clock stopped (replaced: {replaced})"
        );
    }
}

/// The objects whose last reconcile failed, by kind, for the triggers that
/// run them again after a relist.
#[tokio::test]
async fn failing_lists_the_objects_of_one_kind_whose_last_reconcile_failed() {
    let (service, _server) =
        tower_test::mock::pair::<http::Request<kube::client::Body>, http::Response<kube::client::Body>>();
    let ctx = Context::for_test(rbac_caches(vec![], vec![]), kube::Client::new(service, "default"));
    for key in [
        "PolicyException/shop/a",
        "PolicyException/shop/a",
        "PolicyException/web/b",
        "ControlOwnership/shop/c",
        "PolicyException/shop/done",
    ] {
        ctx.failed(key);
    }
    ctx.succeeded("PolicyException/shop/done");
    let mut got: Vec<String> = ctx
        .failing::<PolicyException>()
        .into_iter()
        .map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name))
        .collect();
    got.sort();
    assert_eq!(got, ["shop/a", "web/b"]);
    let controls: Vec<String> = ctx.failing::<ControlOwnership>().into_iter().map(|r| r.name).collect();
    assert_eq!(controls, ["c"]);
}

/// Whoever comes second to a delete under way (the exception's reconcile
/// after the expiry clock) returns only once it is answered, so Expired is
/// never written while the binding may still exist; and if it failed, sends
/// its own.
#[tokio::test]
async fn a_second_delete_waits_for_the_answer_to_the_first() {
    use tower_test::mock;
    for first_fails in [false, true] {
        let (service, mut server) =
            mock::pair::<http::Request<kube::client::Body>, http::Response<kube::client::Body>>();
        let (_, binding) = grant_of("debug", "pe-uid");
        let ctx = Arc::new(Context::for_test(
            rbac_caches(vec![], vec![binding]),
            kube::Client::new(service, "default"),
        ));
        let delete = |ctx: Arc<Context>| async move {
            let name = rbac::exception_name("debug");
            guarded_delete::delete_once::<RoleBinding>(
                &ctx,
                &ctx.caches.role_bindings,
                NS,
                &name,
                guarded_delete::Target::OwnedBy("pe-uid"),
            )
            .await
            .map(|r| r.is_ok())
        };
        let answer = mock_api::status_response;
        let first = tokio::spawn(delete(ctx.clone()));
        let (request, first_answer) = server.next_request().await.expect("the first delete");
        assert_eq!(request.method(), http::Method::DELETE);
        let second = tokio::spawn(delete(ctx.clone()));
        // (The test runtime has one thread: each yield lets the second run
        // as far as it can.)
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(
            !second.is_finished(),
            "the second returned before the first was answered"
        );
        if first_fails {
            first_answer.send_response(answer(StatusCode::INTERNAL_SERVER_ERROR));
            assert_eq!(first.await.expect("first"), Some(false));
            let (request, second_answer) = server.next_request().await.expect("the second's own delete");
            assert_eq!(request.method(), http::Method::DELETE);
            second_answer.send_response(answer(StatusCode::OK));
            assert_eq!(second.await.expect("second"), Some(true), "after a failure");
        } else {
            first_answer.send_response(answer(StatusCode::OK));
            assert_eq!(first.await.expect("first"), Some(true));
            assert_eq!(second.await.expect("second"), None, "sent nothing after a success");
        }
    }
}
