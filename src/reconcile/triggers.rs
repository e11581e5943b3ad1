//! Triggers: which changes wake which reconcile. Each controller
//! subscribes to the shared caches (one watch per kind per process, see
//! `cache`) and maps a change of another kind to the objects it can affect.

use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
use kube::runtime::Controller;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};

use super::{Context, control, error_policy, exception};
use crate::api::{ControlOwnership, PolicyException};
use crate::apply::Writer;
use crate::cache::Caches;
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
}

/// COs that manage a service account these subjects name (in a binding of
/// namespace `binding_ns`, None for a ClusterRoleBinding): only they can see
/// drift change. Group subjects reach every control of their namespaces.
fn controls_naming(
    store: &Store<ControlOwnership>,
    subjects: &[k8s_openapi::api::rbac::v1::Subject],
    binding_ns: Option<&str>,
) -> Vec<ObjectRef<ControlOwnership>> {
    let Some(namespaces) = affected_namespaces(subjects, binding_ns) else {
        return store.state().iter().map(|c| ObjectRef::from_obj(c.as_ref())).collect();
    };
    if namespaces.is_empty() {
        return Vec::new();
    }
    store
        .state()
        .iter()
        .filter(|c| {
            let Some(ns) = c.namespace().filter(|n| namespaces.contains(n)) else {
                return false;
            };
            c.spec.workload_identities.iter().any(|id| {
                subjects
                    .iter()
                    .any(|s| crate::decide::drift::names_service_account(s, binding_ns, &ns, &id.service_account))
            })
        })
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

/// The owners of `obj` of kind `O`, and the `O` whose managed name `obj`
/// has (`named`: [`rbac::control_of`] or [`rbac::exception_of`]): an object
/// squatting that name, or its deletion, concerns it although it has no
/// owner reference.
fn owners_or_named<K, O>(obj: &K, named: fn(&str) -> Option<&str>) -> Vec<ObjectRef<O>>
where
    K: Resource<DynamicType = ()>,
    O: Resource<DynamicType = ()>,
{
    let mut refs = owners::<K, O>(obj);
    let name = obj.meta().name.as_deref().unwrap_or_default();
    if let (Some(owner), Some(ns)) = (named(name), obj.namespace()) {
        let r = ObjectRef::new(owner).within(&ns);
        if !refs.contains(&r) {
            refs.push(r);
        }
    }
    refs
}

/// References to the `objs` in the namespace of `of`.
fn in_namespace_of<O: Resource<DynamicType = ()>>(objs: &[Arc<O>], of: &impl Resource) -> Vec<ObjectRef<O>> {
    objs.iter()
        .filter(|o| o.namespace() == of.namespace())
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

fn owners<K: Resource<DynamicType = ()>, O: Resource<DynamicType = ()>>(obj: &K) -> Vec<ObjectRef<O>> {
    let ns = obj.namespace();
    obj.owner_references()
        .iter()
        .filter(|o| o.kind == O::kind(&()) && o.api_version == O::api_version(&()))
        .map(|o| {
            let r = ObjectRef::new(&o.name);
            match &ns {
                Some(ns) => r.within(ns),
                None => r,
            }
        })
        .collect()
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
        burst,
    });
    let reports = super::policy_report::run(ctx.clone(), reports_rx);
    // Each controller is its own task, so they use all cores.
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(exceptions(ctx.clone()).for_each(log_result));
    tasks.spawn(controls(ctx.clone(), burst_ended).for_each(log_result));
    tasks.spawn(reports);
    tasks.spawn(super::sweep::run(ctx));
    match tasks.join_next().await {
        Some(Err(e)) => tracing::error!(error = %e, "a controller task failed"),
        _ => tracing::error!("a controller task ended"),
    }
}

type Outcome<K> = Result<
    (ObjectRef<K>, kube::runtime::controller::Action),
    kube::runtime::controller::Error<super::Error, kube::runtime::watcher::Error>,
>;

fn exceptions(ctx: Arc<Context>) -> impl Stream<Item = Outcome<PolicyException>> + Send {
    let caches = &ctx.caches;
    let for_co = caches.clone();
    let for_ceiling = caches.clone();
    Controller::for_shared_stream(caches.exceptions.subscribe(), caches.exceptions.store())
        .watches_shared_stream(caches.controls.subscribe(), move |co| exceptions_of(&for_co, &co))
        .watches_shared_stream(caches.roles.subscribe(), |r: Arc<Role>| {
            owners_or_named::<Role, PolicyException>(r.as_ref(), rbac::exception_of)
        })
        .watches_shared_stream(caches.role_bindings.subscribe(), move |rb: Arc<RoleBinding>| {
            let mut refs = owners_or_named::<RoleBinding, PolicyException>(rb.as_ref(), rbac::exception_of);
            // The platform opted the namespace in: grants refused until now
            // can be made at once, not at the next retry.
            if for_ceiling.binds_ceiling(&rb) {
                refs.extend(in_namespace_of(&for_ceiling.exceptions.state(), rb.as_ref()));
            }
            refs
        })
        .reconcile_all_on(caches.ceiling_role.subscribe().map(|_| ()))
        // A shard taken over: its objects were skipped until now.
        .reconcile_all_on(ctx.shards.acquisitions())
        .run(exception::reconcile, error_policy, ctx.clone())
}

fn controls(
    ctx: Arc<Context>,
    burst_ended: impl Stream<Item = ObjectRef<ControlOwnership>> + Send + 'static,
) -> impl Stream<Item = Outcome<ControlOwnership>> + Send {
    let caches = &ctx.caches;
    let for_rb = caches.controls.store();
    let for_crb = caches.controls.store();
    let for_rivals = caches.clone();
    let for_ceiling = caches.clone();
    Controller::for_shared_stream(caches.controls.subscribe(), caches.controls.store())
        // The controls that share a service account with a changed one: the
        // later one's claim depends on the earlier.
        .watches_shared_stream(caches.controls.subscribe(), move |co: Arc<ControlOwnership>| {
            for_rivals
                .controls_sharing(&co)
                .iter()
                .map(|c| ObjectRef::from_obj(c.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches_shared_stream(caches.exceptions.subscribe(), |pe| {
            let r = ObjectRef::new(&pe.spec.control);
            Some(match pe.namespace() {
                Some(ns) => r.within(&ns),
                None => r,
            })
        })
        .watches_shared_stream(caches.role_bindings.subscribe(), move |rb: Arc<RoleBinding>| {
            let mut refs: Vec<ObjectRef<ControlOwnership>> = owners_or_named(rb.as_ref(), rbac::control_of);
            let subjects = rb.subjects.as_deref().unwrap_or_default();
            refs.extend(controls_naming(&for_rb, subjects, rb.namespace().as_deref()));
            // The platform opted the namespace in: identities refused until
            // now can be applied at once, not at the next retry.
            if for_ceiling.binds_ceiling(&rb) {
                refs.extend(in_namespace_of(&for_ceiling.controls.state(), rb.as_ref()));
            }
            refs
        })
        .watches_shared_stream(
            caches.cluster_role_bindings.subscribe(),
            move |crb: Arc<ClusterRoleBinding>| {
                controls_naming(&for_crb, crb.subjects.as_deref().unwrap_or_default(), None)
            },
        )
        .watches_shared_stream(caches.roles.subscribe(), |role: Arc<Role>| {
            owners_or_named::<Role, ControlOwnership>(role.as_ref(), rbac::control_of)
        })
        .reconcile_all_on(caches.ceiling_role.subscribe().map(|_| ()))
        .reconcile_all_on(ctx.shards.acquisitions())
        // The controls whose count waited for a burst of new work to end.
        .reconcile_on(burst_ended)
        // Creating a control's RBAC fires a watch event per object; one
        // reconcile after the burst is enough. (Not for exceptions: their
        // expiry must not wait.)
        .with_config(kube::runtime::controller::Config::default().debounce(std::time::Duration::from_millis(100)))
        .run(control::reconcile, error_policy, ctx.clone())
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

fn log_result<K: Resource, E: std::error::Error>(
    res: Result<(ObjectRef<K>, kube::runtime::controller::Action), kube::runtime::controller::Error<super::Error, E>>,
) -> futures::future::Ready<()> {
    match res {
        Ok((obj, action)) => tracing::debug!(object = %obj, ?action, "reconciled"),
        // Reconciler errors were already logged by the error policy.
        Err(kube::runtime::controller::Error::ReconcilerFailed(..)) => {}
        Err(e) => tracing::warn!(error = %e, "controller error"),
    }
    futures::future::ready(())
}
