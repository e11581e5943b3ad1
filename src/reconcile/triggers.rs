//! Triggers: which changes wake which reconcile. Each controller
//! subscribes to the shared caches (one watch per kind per process, see
//! `cache`) and maps a change of another kind to the objects it can affect.

use std::sync::Arc;

use std::time::Duration;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt, stream};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};

use super::spec_changes::SpecChanges;
use super::{Context, control, error_policy, exception, exception_error_policy, runner};
use crate::api::{ControlOwnership, PolicyException};
use crate::apply::Writer;
use crate::cache::{Caches, View};
use crate::compact::{CachedRole, CachedRoleBinding, Meta};
use crate::decide::drift::affected_namespaces;
use crate::decide::rbac;
use crate::metrics::Metrics;

/// How the controllers run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Reporting instance for Events (pod name).
    pub instance: Option<String>,
    /// Verifies approval records.
    pub key: crate::decide::approval::Key,
    /// The shards this process writes for (everything when unsharded).
    pub shards: Arc<crate::shard::Held>,
    /// Most reconciles that can only add (grant) running at once; those that
    /// may revoke are not counted and never wait.
    pub new_work: usize,
    /// Most controls released at the end of a burst (`burst`) reconciling
    /// at once.
    pub released: usize,
}

/// COs that manage a service account these subjects name (in a binding of
/// namespace `binding_ns`, None for a ClusterRoleBinding): only they can see
/// drift change. Group subjects reach every control of their namespaces.
fn controls_naming(
    controls: &View<ControlOwnership>,
    subjects: &[k8s_openapi::api::rbac::v1::Subject],
    binding_ns: Option<&str>,
) -> Vec<ObjectRef<ControlOwnership>> {
    let Some(namespaces) = affected_namespaces(subjects, binding_ns) else {
        return controls
            .state()
            .iter()
            .map(|c| ObjectRef::from_obj(c.as_ref()))
            .collect();
    };
    // Only those namespaces' controls: this runs for every RoleBinding
    // change, and for every RoleBinding cached when a controller starts.
    namespaces
        .iter()
        .flat_map(|ns| {
            controls.in_namespace(ns).into_iter().filter(move |c| {
                c.spec.workload_identities.iter().any(|id| {
                    subjects
                        .iter()
                        .any(|s| crate::decide::drift::names_service_account(s, binding_ns, ns, &id.service_account))
                })
            })
        })
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

/// The owners of the Role or RoleBinding `meta` of kind `O`, and the `O`
/// whose managed name it has (`named`: [`rbac::control_of`] or
/// [`rbac::exception_of`]): an object squatting that name, or its
/// deletion, concerns it although it has no owner reference.
fn owners_or_named<O: Resource<DynamicType = ()>>(meta: &Meta, named: fn(&str) -> Option<&str>) -> Vec<ObjectRef<O>> {
    let mut refs: Vec<ObjectRef<O>> = meta
        .owners
        .iter()
        .filter(|o| o.kind.kind() == O::kind(&()) && *o.api_version == *O::api_version(&()))
        .map(|o| ObjectRef::new(&o.name).within(&meta.namespace))
        .collect();
    if let Some(owner) = named(&meta.name) {
        let r = ObjectRef::new(owner).within(&meta.namespace);
        if !refs.contains(&r) {
            refs.push(r);
        }
    }
    refs
}

/// References to the objects `view` holds in namespace `ns`.
fn in_namespace<O: Resource<DynamicType = ()> + crate::cache::Cached>(view: &View<O>, ns: &str) -> Vec<ObjectRef<O>> {
    view.in_namespace(ns)
        .iter()
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

/// Each change of `view` mapped to the objects it concerns.
fn mapped<C, K, I>(
    view: &View<C>,
    map: impl Fn(Arc<C>) -> I + Send + 'static,
) -> impl Stream<Item = ObjectRef<K>> + Send + 'static
where
    C: crate::cache::Cached,
    K: Resource<DynamicType = ()> + 'static,
    I: IntoIterator<Item = ObjectRef<K>>,
    I::IntoIter: Send + 'static,
{
    view.subscribe().flat_map(move |obj| stream::iter(map(obj)))
}

/// Runs both controllers (and the PolicyReport writer) until one of them
/// ends, which does not happen on its own. The caches must have listed.
pub async fn run(client: Client, caches: Arc<Caches>, config: Config, metrics: Arc<Metrics>) {
    metrics.attach(caches.clone(), config.shards.clone());
    let reporter = Reporter {
        controller: "steward".into(),
        instance: config.instance.clone(),
    };
    let (reports_tx, reports_rx) = futures::channel::mpsc::unbounded();
    let (burst, burst_ended) = super::burst::Burst::new(metrics.clone());
    let ctx = Arc::new(Context {
        caches: caches.clone(),
        writer: Writer::new(client.clone(), reporter),
        metrics,
        key: config.key.clone(),
        reports: reports_tx,
        failures: std::sync::Mutex::default(),
        shards: config.shards.clone(),
        new_work: tokio::sync::Semaphore::new(config.new_work.max(1)),
        released: tokio::sync::Semaphore::new(config.released.max(1)),
        deciding: tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())),
        burst,
        deletes: Default::default(),
    });
    let reports = super::policy_report::run(ctx.clone(), reports_rx);
    // Each controller is its own task, so they use all cores.
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(exceptions(ctx.clone()));
    tasks.spawn(controls(ctx.clone(), burst_ended));
    tasks.spawn(reports);
    tasks.spawn(super::expiry_clock::run(ctx.clone()));
    tasks.spawn(super::sweep::run(ctx));
    match tasks.join_next().await {
        Some(Err(e)) => tracing::error!(error = %e, "a controller task failed"),
        _ => tracing::error!("a controller task ended"),
    }
}

/// Every object of `view`, each time `on` yields.
fn every<C: crate::cache::Cached>(
    view: &Arc<View<C>>,
    on: impl Stream<Item = ()> + Send + 'static,
) -> impl Stream<Item = ObjectRef<C>> + Send + 'static {
    let view = view.clone();
    on.flat_map(move |()| {
        stream::iter(
            view.state()
                .iter()
                .map(|o| ObjectRef::from_obj(o.as_ref()))
                .collect::<Vec<_>>(),
        )
    })
}

/// The objects of kind `K` whose last reconcile failed, each time `on`
/// yields. After a relist (the watch was away, the API server perhaps too),
/// what failed meanwhile goes again at once instead of at the end of a
/// backoff that grew through the outage; a relist sends only what changed,
/// so nothing else would bring it.
fn failing_after<K: Resource<DynamicType = ()> + 'static>(
    ctx: &Arc<Context>,
    on: impl Stream<Item = ()> + Send + 'static,
) -> impl Stream<Item = ObjectRef<K>> + Send + 'static {
    let ctx = ctx.clone();
    on.flat_map(move |()| stream::iter(ctx.failing::<K>()))
}

/// The exceptions' controller: its triggers, then its runner.
async fn exceptions(ctx: Arc<Context>) {
    let caches = &ctx.caches;
    let (for_co, for_co_again) = (caches.clone(), caches.clone());
    let for_ceiling = caches.clone();
    let spec_changes = SpecChanges::default();
    let triggers: Vec<BoxStream<'static, ObjectRef<PolicyException>>> = vec![
        caches
            .exceptions
            .subscribe()
            .map(|pe| ObjectRef::from_obj(pe.as_ref()))
            .boxed(),
        caches
            .controls
            .subscribe()
            .filter(move |co| futures::future::ready(spec_changes.matters(&for_co.controls, co)))
            .flat_map(move |co| stream::iter(exceptions_of(&for_co_again, &co)))
            .boxed(),
        mapped(&caches.roles, |r: Arc<CachedRole>| {
            owners_or_named::<PolicyException>(&r.metadata, rbac::exception_of)
        })
        .boxed(),
        mapped(&caches.role_bindings, move |rb: Arc<CachedRoleBinding>| {
            let mut refs = owners_or_named::<PolicyException>(&rb.metadata, rbac::exception_of);
            // The platform opted the namespace in: grants refused until now
            // can be made at once, not at the next retry.
            if for_ceiling.binds_ceiling(&rb) {
                refs.extend(in_namespace(&for_ceiling.exceptions, &rb.metadata.namespace));
            }
            refs
        })
        .boxed(),
        every(&caches.exceptions, caches.ceiling_role.subscribe().map(|_| ())).boxed(),
        // A shard taken over: its objects were skipped until now.
        every(&caches.exceptions, ctx.shards.acquisitions()).boxed(),
        failing_after(&ctx, caches.exceptions.relists()).boxed(),
    ];
    let view = caches.exceptions.clone();
    runner::run(
        stream::select_all(triggers),
        move |r| view.get(r),
        Duration::ZERO,
        exception::reconcile,
        exception_error_policy,
        ctx.clone(),
    )
    .await
}

/// The controls' controller: its triggers, then its runner.
async fn controls(ctx: Arc<Context>, burst_ended: impl Stream<Item = ObjectRef<ControlOwnership>> + Send + 'static) {
    let caches = &ctx.caches;
    let for_rb = caches.controls.clone();
    let for_crb = caches.controls.clone();
    let for_rivals = caches.clone();
    let for_ceiling = caches.clone();
    let triggers: Vec<BoxStream<'static, ObjectRef<ControlOwnership>>> = vec![
        caches
            .controls
            .subscribe()
            .map(|co| ObjectRef::from_obj(co.as_ref()))
            .boxed(),
        // The controls that share a service account with a changed one: the
        // later one's claim depends on the earlier.
        caches
            .controls
            .subscribe()
            .flat_map(move |co: Arc<ControlOwnership>| {
                stream::iter(
                    for_rivals
                        .controls_sharing(&co)
                        .iter()
                        .map(|c| ObjectRef::from_obj(c.as_ref()))
                        .collect::<Vec<_>>(),
                )
            })
            .boxed(),
        caches
            .exceptions
            .subscribe()
            .map(|pe| {
                let r = ObjectRef::new(&pe.spec.control);
                match pe.namespace() {
                    Some(ns) => r.within(&ns),
                    None => r,
                }
            })
            .boxed(),
        mapped(&caches.role_bindings, move |rb: Arc<CachedRoleBinding>| {
            let mut refs: Vec<ObjectRef<ControlOwnership>> = owners_or_named(&rb.metadata, rbac::control_of);
            let ns = Some(&*rb.metadata.namespace).filter(|n| !n.is_empty());
            refs.extend(controls_naming(&for_rb, &rb.subjects, ns));
            // The platform opted the namespace in: identities refused until
            // now can be applied at once, not at the next retry.
            if for_ceiling.binds_ceiling(&rb) {
                refs.extend(in_namespace(&for_ceiling.controls, &rb.metadata.namespace));
            }
            refs
        })
        .boxed(),
        mapped(&caches.cluster_role_bindings, move |crb: Arc<ClusterRoleBinding>| {
            controls_naming(&for_crb, crb.subjects.as_deref().unwrap_or_default(), None)
        })
        .boxed(),
        mapped(&caches.roles, |role: Arc<CachedRole>| {
            owners_or_named::<ControlOwnership>(&role.metadata, rbac::control_of)
        })
        .boxed(),
        every(&caches.controls, caches.ceiling_role.subscribe().map(|_| ())).boxed(),
        every(&caches.controls, ctx.shards.acquisitions()).boxed(),
        failing_after(&ctx, caches.controls.relists()).boxed(),
        // The controls whose count waited for a burst of new work to end.
        burst_ended.boxed(),
    ];
    let view = caches.controls.clone();
    runner::run(
        stream::select_all(triggers),
        move |r| view.get(r),
        // Creating a control's RBAC fires a watch event per object; one
        // reconcile after the burst is enough. (Not for exceptions: their
        // expiry must not wait.)
        Duration::from_millis(100),
        control::reconcile,
        error_policy,
        ctx.clone(),
    )
    .await
}

/// The exceptions of control `co`, and of the controls sharing one of its
/// service accounts (what they may grant to depends on `co`).
fn exceptions_of(caches: &Caches, co: &ControlOwnership) -> Vec<ObjectRef<PolicyException>> {
    let ns = co.namespace();
    let mut names: Vec<String> = caches.controls_sharing(co).iter().map(|c| c.name_any()).collect();
    names.push(co.name_any());
    let Some(ns) = ns else { return Vec::new() };
    caches
        .exceptions
        .in_namespace(&ns)
        .iter()
        .filter(|e| names.contains(&e.spec.control))
        .map(|e| ObjectRef::from_obj(e.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::fixtures::{control, group, sa};
    use k8s_openapi::api::rbac::v1::Subject;

    /// A binding's change wakes the controls that manage a service account
    /// it names, in the namespaces it can reach, and no other.
    #[test]
    fn a_binding_wakes_the_controls_of_the_service_accounts_it_names() {
        let in_shop = control();
        let mut elsewhere = control();
        elsewhere.metadata.namespace = Some("bank".into());
        let mut other = control();
        other.metadata.name = Some("other".into());
        other.spec.workload_identities.retain(|id| id.service_account != "api");
        let controls = View::fed(vec![in_shop, elsewhere, other]);
        let names = |subjects: &[Subject], ns: Option<&str>| {
            let mut refs: Vec<String> = controls_naming(&controls, subjects, ns)
                .iter()
                .map(|r| format!("{}/{}", r.namespace.as_deref().unwrap_or_default(), r.name))
                .collect();
            refs.sort();
            refs
        };
        // (case, subjects, the binding's namespace, controls woken)
        type Case<'a> = (&'a str, Vec<Subject>, Option<&'a str>, &'a [&'a str]);
        let table: &[Case] = &[
            ("api of shop", vec![sa("api", "shop")], Some("shop"), &["shop/payments"]),
            (
                "api of bank, from a ClusterRoleBinding",
                vec![sa("api", "bank")],
                None,
                &["bank/payments"],
            ),
            (
                "a service account no control manages",
                vec![sa("nobody", "shop")],
                Some("shop"),
                &[],
            ),
            (
                "the group of shop's service accounts",
                vec![group("system:serviceaccounts:shop")],
                None,
                &["shop/other", "shop/payments"],
            ),
            (
                "every service account",
                vec![group("system:serviceaccounts")],
                None,
                &["bank/payments", "shop/other", "shop/payments"],
            ),
            (
                "a user",
                vec![Subject {
                    kind: "User".into(),
                    name: "jane".into(),
                    ..Default::default()
                }],
                Some("shop"),
                &[],
            ),
        ];
        for (case, subjects, ns, want) in table {
            assert_eq!(names(subjects, *ns), *want, "{case}");
        }
    }
}
