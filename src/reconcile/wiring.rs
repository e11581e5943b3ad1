//! Wiring: one watch per kind, each feeding a cache (read by both
//! reconcilers) and fanned out as triggers to the controllers that care.
//! No second watch of the same kind, no polling.

use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::written::Written;
use super::{Context, control, error_policy, exception};
use crate::api::{ControlOwnership, MANAGED_BY_LABEL, MANAGED_BY_VALUE, PolicyException};
use crate::decide::drift::affected_namespaces;

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Watch only this namespace (None: all).
    pub namespace: Option<String>,
    /// Name of the grant-ceiling ClusterRole.
    pub ceiling: String,
    /// Reporting instance for Events (pod name).
    pub instance: Option<String>,
}

type Sink<K> = mpsc::UnboundedSender<Result<K, watcher::Error>>;
type Source<K> = mpsc::UnboundedReceiver<Result<K, watcher::Error>>;

/// A cache of `K` kept by one watch, plus `n` trigger streams of every
/// object it sees change (deletions included).
///
/// After a (re)list, the objects are sent as triggers only once the whole
/// list is in the cache: the reflector swaps it in at `InitDone`, and a
/// reconcile triggered earlier would read the cache as it was before the
/// list, older than what the read-your-writes memo was told it now shows.
fn shared<K>(
    api: Api<K>,
    wc: watcher::Config,
    n: usize,
    written: Arc<Written>,
) -> (Store<K>, Vec<Source<K>>, impl Future<Output = ()>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let (sinks, sources): (Vec<Sink<K>>, Vec<Source<K>>) = (0..n).map(|_| mpsc::unbounded()).unzip();
    let kind = K::kind(&()).to_string();
    let listed = reader.clone();
    let touched = move |obj: &K| {
        written.seen(
            &kind,
            obj.meta().namespace.as_deref().unwrap_or_default(),
            obj.meta().name.as_deref().unwrap_or_default(),
            obj.meta().resource_version.as_deref(),
        );
        for s in &sinks {
            let _ = s.unbounded_send(Ok(obj.clone()));
        }
    };
    let pump = reflector::reflector(writer, watcher(api, wc).default_backoff().modify(crate::slim::slim)).for_each(
        move |ev| {
            match ev {
                Ok(watcher::Event::Apply(obj) | watcher::Event::Delete(obj)) => touched(&obj),
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                Ok(watcher::Event::InitDone) => {
                    for obj in listed.state() {
                        touched(&obj);
                    }
                }
                Err(e) => tracing::warn!(kind = %K::kind(&()), error = %e, "watch error; retrying with backoff"),
            }
            futures::future::ready(())
        },
    );
    (reader, sources, pump)
}

fn scoped<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
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

/// Runs both controllers until SIGTERM/SIGINT. `ready` is set once every
/// cache has synced.
pub async fn run(client: Client, config: Config, ready: Arc<Mutex<bool>>, metrics: Arc<crate::metrics::Metrics>) {
    let ns = &config.namespace;
    let written = Arc::new(Written::default());
    let managed = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    let (pe_store, mut pe_src, pe_pump) = shared(
        scoped::<PolicyException>(&client, ns),
        watcher::Config::default(),
        2,
        written.clone(),
    );
    let (co_store, mut co_src, co_pump) = shared(
        scoped::<ControlOwnership>(&client, ns),
        watcher::Config::default(),
        2,
        written.clone(),
    );
    let (rb_store, mut rb_src, rb_pump) = shared(
        scoped::<RoleBinding>(&client, ns),
        watcher::Config::default(),
        2,
        written.clone(),
    );
    let (role_store, mut role_src, role_pump) = shared(scoped::<Role>(&client, ns), managed, 2, written.clone());
    let (crb_store, mut crb_src, crb_pump) = shared(
        Api::<ClusterRoleBinding>::all(client.clone()),
        watcher::Config::default(),
        1,
        written.clone(),
    );
    let (ceiling_store, mut ceiling_src, ceiling_pump) = shared(
        Api::<ClusterRole>::all(client.clone()),
        watcher::Config::default().fields(&format!("metadata.name={}", config.ceiling)),
        2,
        written.clone(),
    );

    metrics.attach(crate::metrics::Caches {
        exceptions: pe_store.clone(),
        controls: co_store.clone(),
    });
    let reporter = Reporter {
        controller: "steward".into(),
        instance: config.instance.clone(),
    };
    let (reports_tx, reports_rx) = mpsc::unbounded();
    let ctx = Arc::new(Context {
        client: client.clone(),
        ceiling_name: config.ceiling.clone(),
        exceptions: pe_store.clone(),
        controls: co_store.clone(),
        role_bindings: rb_store.clone(),
        cluster_role_bindings: crb_store.clone(),
        roles: role_store.clone(),
        ceiling: ceiling_store.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        metrics: metrics.clone(),
        reports: reports_tx,
        written,
        failures: Mutex::default(),
    });

    let exceptions = {
        let pe_for_co = pe_store.clone();
        Controller::for_stream(pop(&mut pe_src), pe_store.clone())
            .watches_stream(pop(&mut co_src), move |co: ControlOwnership| {
                let ns = co.namespace();
                let name = co.name_any();
                pe_for_co
                    .state()
                    .iter()
                    .filter(|e| e.namespace() == ns && e.spec.control == name)
                    .map(|e| ObjectRef::from_obj(e.as_ref()))
                    .collect::<Vec<_>>()
            })
            .owns_stream(pop(&mut role_src))
            .owns_stream(pop(&mut rb_src))
            .reconcile_all_on(unit(pop(&mut ceiling_src)))
            .run(exception::reconcile, error_policy, ctx.clone())
            .for_each(log_result)
    };

    let controls = {
        let co_for_rb = co_store.clone();
        let co_for_crb = co_store.clone();
        Controller::for_stream(pop(&mut co_src), co_store.clone())
            .watches_stream(pop(&mut pe_src), |pe: PolicyException| {
                let r = ObjectRef::new(&pe.spec.control);
                vec![match pe.namespace() {
                    Some(ns) => r.within(&ns),
                    None => r,
                }]
            })
            .watches_stream(pop(&mut rb_src), move |rb: RoleBinding| {
                let mut refs: Vec<ObjectRef<ControlOwnership>> = owners(&rb);
                let ns = rb.namespace();
                let subjects = rb.subjects.clone().unwrap_or_default();
                refs.extend(controls_naming(&co_for_rb, &subjects, ns.as_deref()));
                refs
            })
            .watches_stream(pop(&mut crb_src), move |crb: ClusterRoleBinding| {
                let subjects = crb.subjects.clone().unwrap_or_default();
                controls_naming(&co_for_crb, &subjects, None)
            })
            .watches_stream(pop(&mut role_src), |role: Role| owners::<Role, ControlOwnership>(&role))
            .reconcile_all_on(unit(pop(&mut ceiling_src)))
            // Creating a control's RBAC fires a watch event per object; one
            // reconcile after the burst is enough. (Not for exceptions: their
            // expiry must not wait.)
            .with_config(kube::runtime::controller::Config::default().debounce(std::time::Duration::from_millis(100)))
            .run(control::reconcile, error_policy, ctx.clone())
            .for_each(log_result)
    };

    let readiness = {
        let ctx = ctx.clone();
        async move {
            ctx.caches_ready().await;
            if let Ok(mut r) = ready.lock() {
                *r = true;
            }
            tracing::info!("caches synced; reconciling");
        }
    };

    let reports = super::report::run(client.clone(), co_store.clone(), pe_store.clone(), reports_rx);

    // Every watch pump and each controller is its own task, so they use all
    // cores and a busy reconciler never delays the caches.
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(pe_pump);
    tasks.spawn(co_pump);
    tasks.spawn(rb_pump);
    tasks.spawn(role_pump);
    tasks.spawn(crb_pump);
    tasks.spawn(ceiling_pump);
    tasks.spawn(reports);
    // Controllers start only once every cache is full: a decision on a
    // partial view could report (or, in Enforce, remove) drift wrongly.
    // Triggers queue in the channels meanwhile.
    let (started_tx, started_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        readiness.await;
        let _ = started_tx.send(true);
    });
    let mut rx = started_rx.clone();
    tasks.spawn(async move {
        let _ = rx.wait_for(|s| *s).await;
        exceptions.await
    });
    let mut rx = started_rx;
    tasks.spawn(async move {
        let _ = rx.wait_for(|s| *s).await;
        controls.await
    });
    // None of them ends on its own; if one does, stop so the process restarts.
    match tasks.join_next().await {
        Some(Err(e)) => tracing::error!(error = %e, "a controller task failed"),
        _ => tracing::error!("a controller task ended"),
    }
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

/// Takes one of the trigger streams `shared` made.
fn pop<K>(sources: &mut Vec<Source<K>>) -> Source<K> {
    // shared() is always asked for exactly as many streams as are popped.
    sources.pop().expect("shared() was asked for enough streams")
}

fn unit(s: Source<ClusterRole>) -> impl Stream<Item = ()> + Send + 'static {
    s.map(|_| ())
}
