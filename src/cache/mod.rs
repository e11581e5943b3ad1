//! The process's caches: one watch per kind, started once by `main` and
//! shared by the controllers, the admission webhook, the PolicyReport writer
//! and the metrics. Every replica keeps them, leader or standby, so a newly
//! elected leader decides at once from a full view, and `/readyz` means the
//! same on every replica: every cache has listed.

mod backoff;
mod kinds;
mod own_writes;
pub mod trim;
mod view;

use std::future::Future;
use std::sync::Arc;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource};

pub use backoff::WatchBackoff;
pub use kinds::{Cached, keep};
pub use own_writes::fingerprint;
pub use view::View;

use crate::api::{ControlOwnership, MANAGED_BY_LABEL, MANAGED_BY_VALUE, PolicyException};
use crate::compact::{CachedRole, CachedRoleBinding};
use crate::decide::Ceiling;

/// What the caches hold.
#[derive(Clone, Debug)]
pub struct Scope {
    /// Only this namespace (None: all).
    pub namespace: Option<String>,
    /// Name of the grant-ceiling ClusterRole.
    pub ceiling: String,
    /// The controller's own user name
    /// (`system:serviceaccount:<namespace>:<name>`).
    pub controller_user: String,
}

/// One view per kind Steward reads.
pub struct Caches {
    /// PolicyExceptions.
    pub exceptions: Arc<View<PolicyException>>,
    /// ControlOwnerships.
    pub controls: Arc<View<ControlOwnership>>,
    /// All RoleBindings in scope (drift can hide in any of them).
    pub role_bindings: Arc<View<CachedRoleBinding>>,
    /// All ClusterRoleBindings.
    pub cluster_role_bindings: Arc<View<ClusterRoleBinding>>,
    /// Roles labelled as Steward's.
    pub roles: Arc<View<CachedRole>>,
    /// The grant-ceiling ClusterRole (a watch of that one name).
    pub ceiling_role: Arc<View<ClusterRole>>,
    scope: Scope,
    /// The ceiling indexed from the cached ClusterRole it was built from:
    /// built once per version, not once per evaluation.
    ceiling_memo: std::sync::Mutex<Option<(Arc<ClusterRole>, Ceiling)>>,
}

impl Caches {
    /// The caches and the future that runs their watches (spawn it once).
    pub fn start(client: &Client, scope: Scope) -> (Arc<Self>, impl Future<Output = ()> + Send + 'static) {
        let ns = &scope.namespace;
        let all = watcher::Config::default;
        let managed = all().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
        let ceiling = all().fields(&format!("metadata.name={}", scope.ceiling));
        let (exceptions, p1) = View::watch(scoped(client, ns), all());
        let (controls, p2) = View::watch(scoped(client, ns), all());
        let (role_bindings, p3) = View::watch(scoped(client, ns), all());
        let (roles, p4) = View::watch(scoped(client, ns), managed);
        let (cluster_role_bindings, p5) = View::watch(Api::all(client.clone()), all());
        let (ceiling_role, p6) = View::watch(Api::all(client.clone()), ceiling);
        let caches = Arc::new(Self {
            exceptions,
            controls,
            role_bindings,
            cluster_role_bindings,
            roles,
            ceiling_role,
            scope,
            ceiling_memo: Default::default(),
        });
        // Each watch is its own task, so they use every core and a busy
        // reader never delays them.
        let watches = async move {
            let tasks = [
                tokio::spawn(p1),
                tokio::spawn(p2),
                tokio::spawn(p3),
                tokio::spawn(p4),
                tokio::spawn(p5),
                tokio::spawn(p6),
            ];
            // Watches retry forever; if one ends, so does the process.
            let _ = futures::future::select_all(tasks).await;
        };
        (caches, watches)
    }

    /// Whether `rb` binds the ceiling ClusterRole: the platform opting its
    /// namespace in (or out), which decides whether Steward can write there.
    /// Only a binding to Steward's own service account counts: a tenant's
    /// bindings of the ceiling to anyone else must not make every control
    /// and exception of the namespace reconcile on each change.
    pub fn binds_ceiling(&self, rb: &CachedRoleBinding) -> bool {
        let ns = Some(&*rb.metadata.namespace).filter(|n| !n.is_empty());
        rb.role_ref.kind == "ClusterRole"
            && rb.role_ref.name == self.scope.ceiling
            && rb.subjects.iter().any(|s| {
                let user = match s.kind.as_str() {
                    "ServiceAccount" => format!(
                        "system:serviceaccount:{}:{}",
                        s.namespace.as_deref().or(ns).unwrap_or_default(),
                        s.name
                    ),
                    "User" => s.name.clone(),
                    _ => return false,
                };
                user == self.scope.controller_user
            })
    }

    /// The current grant ceiling (empty, and saying so, when its
    /// ClusterRole is missing). Indexed once per cached version of the
    /// ClusterRole; a clone shares the index.
    pub fn ceiling(&self) -> Ceiling {
        let name = &self.scope.ceiling;
        let Some(cr) = self.ceiling_role.get(&ObjectRef::new(name)) else {
            return Ceiling::missing(name.clone());
        };
        let mut memo = self.ceiling_memo.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((from, ceiling)) = memo.as_ref()
            && Arc::ptr_eq(from, &cr)
        {
            return ceiling.clone();
        }
        let ceiling = Ceiling::new(name.clone(), cr.rules.clone().unwrap_or_default());
        *memo = Some((cr, ceiling.clone()));
        ceiling
    }

    /// The other controls of `co`'s namespace that declare one of its
    /// service accounts (one service account belongs to one control).
    pub fn controls_sharing(&self, co: &ControlOwnership) -> Vec<Arc<ControlOwnership>> {
        let Some(ns) = co.metadata.namespace.as_deref() else {
            return Vec::new();
        };
        let name = co.metadata.name.as_deref();
        let sas: Vec<&str> = co.spec.service_accounts();
        self.controls
            .in_namespace(ns)
            .into_iter()
            .filter(|o| o.metadata.name.as_deref() != name)
            .filter(|o| {
                o.spec
                    .workload_identities
                    .iter()
                    .any(|i| sas.contains(&i.service_account.as_str()))
            })
            .collect()
    }

    /// Control `name` of `namespace` as its exceptions see it: without the
    /// service accounts another control of the namespace claimed first.
    /// The cached object itself when no other control claims any (a copy
    /// per reconcile, held while thousands wait for their decision, was a
    /// large part of a burst's memory).
    pub fn control_for_exceptions(&self, namespace: &str, name: &str) -> Option<Arc<ControlOwnership>> {
        let control = self.controls.get(&ObjectRef::new(name).within(namespace))?;
        let rivals = self.controls_sharing(&control);
        if rivals.is_empty() {
            return Some(control);
        }
        let rivals: Vec<&ControlOwnership> = rivals.iter().map(|r| r.as_ref()).collect();
        Some(Arc::new(crate::decide::control::claims::without_claimed(
            &control, &rivals,
        )))
    }

    /// Every namespace holding a Steward object, a managed Role or a
    /// RoleBinding.
    pub fn namespaces(&self) -> std::collections::BTreeSet<String> {
        let mut all: std::collections::BTreeSet<String> = self.controls.namespaces().into_iter().collect();
        all.extend(self.exceptions.namespaces());
        all.extend(self.roles.namespaces());
        all.extend(self.role_bindings.namespaces());
        all
    }

    /// Whether Steward's caches cover `namespace` (all do without
    /// `--namespace`).
    pub fn covers(&self, namespace: &str) -> bool {
        self.scope.namespace.as_deref().is_none_or(|ns| ns == namespace)
    }

    /// Whether every cache has listed once.
    pub fn synced(&self) -> bool {
        self.exceptions.is_listed()
            && self.controls.is_listed()
            && self.role_bindings.is_listed()
            && self.cluster_role_bindings.is_listed()
            && self.roles.is_listed()
            && self.ceiling_role.is_listed()
    }

    /// Resolves once every cache has listed; false if a watch is gone.
    pub async fn wait_synced(&self) -> bool {
        let (a, b, c, d, e, f) = futures::join!(
            self.exceptions.listed(),
            self.controls.listed(),
            self.role_bindings.listed(),
            self.cluster_role_bindings.listed(),
            self.roles.listed(),
            self.ceiling_role.listed(),
        );
        a && b && c && d && e && f
    }
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

#[cfg(test)]
impl Caches {
    /// Caches fed by hand, every one listed, for tests.
    pub fn fed(controls: Vec<ControlOwnership>, exceptions: Vec<PolicyException>) -> Self {
        Self {
            exceptions: View::fed(exceptions),
            controls: View::fed(controls),
            role_bindings: View::fed(vec![]),
            cluster_role_bindings: View::fed(vec![]),
            roles: View::fed(vec![]),
            ceiling_role: View::fed(vec![]),
            scope: test_scope(),
            ceiling_memo: Default::default(),
        }
    }

    /// Caches whose first list has not arrived, and the means to list them.
    pub fn unlisted() -> (Self, Unlisted) {
        let caches = Self {
            exceptions: View::unlisted(),
            controls: View::unlisted(),
            role_bindings: View::unlisted(),
            cluster_role_bindings: View::unlisted(),
            roles: View::unlisted(),
            ceiling_role: View::unlisted(),
            scope: test_scope(),
            ceiling_memo: Default::default(),
        };
        let views = Unlisted(
            caches.exceptions.clone(),
            caches.controls.clone(),
            caches.role_bindings.clone(),
            caches.cluster_role_bindings.clone(),
            caches.roles.clone(),
            caches.ceiling_role.clone(),
        );
        (caches, views)
    }
}

#[cfg(test)]
fn test_scope() -> Scope {
    Scope {
        namespace: None,
        ceiling: "steward-grantable".into(),
        controller_user: "system:serviceaccount:steward-system:steward".into(),
    }
}

/// The views of unlisted test caches.
#[cfg(test)]
pub struct Unlisted(
    Arc<View<PolicyException>>,
    Arc<View<ControlOwnership>>,
    Arc<View<CachedRoleBinding>>,
    Arc<View<ClusterRoleBinding>>,
    Arc<View<CachedRole>>,
    Arc<View<ClusterRole>>,
);

#[cfg(test)]
impl Unlisted {
    /// Completes an empty first list of every cache, the RBAC kinds' only
    /// if `rbac_too`.
    pub fn list(&mut self, rbac_too: bool) {
        self.0.list_empty();
        self.1.list_empty();
        self.5.list_empty();
        if rbac_too {
            self.2.list_empty();
            self.3.list_empty();
            self.4.list_empty();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};

    fn binding(role: &str, subject: Subject) -> CachedRoleBinding {
        RoleBinding {
            metadata: kube::api::ObjectMeta {
                name: Some("b".into()),
                namespace: Some("shop".into()),
                ..Default::default()
            },
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: role.into(),
            },
            subjects: Some(vec![subject]),
        }
        .into()
    }

    fn service_account(ns: Option<&str>, name: &str) -> Subject {
        Subject {
            kind: "ServiceAccount".into(),
            name: name.into(),
            namespace: ns.map(String::from),
            ..Default::default()
        }
    }

    /// Only the platform's binding of the ceiling to Steward wakes a
    /// namespace, not a tenant's binding of it to anyone else.
    #[test]
    fn only_the_ceiling_bound_to_steward_opts_a_namespace_in() {
        let caches = Caches::fed(vec![], vec![]);
        let steward = service_account(Some("steward-system"), "steward");
        assert!(caches.binds_ceiling(&binding("steward-grantable", steward.clone())));
        assert!(!caches.binds_ceiling(&binding("view", steward)));
        assert!(!caches.binds_ceiling(&binding("steward-grantable", service_account(None, "steward"))));
        assert!(!caches.binds_ceiling(&binding("steward-grantable", service_account(Some("shop"), "app"))));
    }
}
