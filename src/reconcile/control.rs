//! ControlOwnership reconciler: identity RBAC, drift (removed in Enforce),
//! review, then status; wake at the next review or exception instant.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;

use super::exception::{ensure_pair, remove_pair};
use super::written::fingerprint;
use super::{Context, Error, requeue_at};
use crate::api::{BindingKind, ControlOwnership, EXCEPTION_LABEL, FINALIZER};
use crate::apply;
use crate::decide::control::{self, Observed};
use crate::decide::drift::names_service_account;

/// Reconciles one ControlOwnership.
#[tracing::instrument(skip_all, fields(ns = %co.namespace().unwrap_or_default(), name = %co.name_any()))]
pub async fn reconcile(co: Arc<ControlOwnership>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = co.namespace().unwrap_or_default();
    let api: Api<ControlOwnership> = Api::namespaced(ctx.client.clone(), &ns);
    let started = std::time::Instant::now();
    let key = super::key(co.as_ref());
    let action = finalizer(&api, FINALIZER, co, |event| async {
        match event {
            FinalizerEvent::Apply(co) => apply_control(&co, &ctx, &api).await,
            FinalizerEvent::Cleanup(co) => cleanup(&co, &ctx).await,
        }
    })
    .await;
    let action = super::finalizer_outcome(action)?;
    ctx.succeeded(&key);
    ctx.report_dirty(&ns);
    ctx.metrics
        .reconciled("ControlOwnership", started.elapsed().as_secs_f64());
    Ok(action)
}

/// Names of the identity Roles/RoleBindings this control owns (by owner
/// uid, which cannot be forged by copying labels). Exception grants are
/// owned by their exception, not by the control.
fn owned_names(co: &ControlOwnership, ctx: &Context) -> Vec<String> {
    let ns = co.namespace().unwrap_or_default();
    let uid = co.uid().unwrap_or_default();
    let owned = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.namespace.as_deref() == Some(ns.as_str())
            && !meta.labels.as_ref().is_some_and(|l| l.contains_key(EXCEPTION_LABEL))
            && meta.owner_references.iter().flatten().any(|o| o.uid == uid)
    };
    let mut names: Vec<String> = ctx
        .roles
        .state()
        .iter()
        .filter(|r| owned(&r.metadata))
        .map(|r| r.name_any())
        .chain(
            ctx.role_bindings
                .state()
                .iter()
                .filter(|b| owned(&b.metadata))
                .map(|b| b.name_any()),
        )
        .collect();
    names.sort();
    names.dedup();
    names
}

async fn apply_control(co: &ControlOwnership, ctx: &Context, api: &Api<ControlOwnership>) -> Result<Action, Error> {
    let ns = co.namespace().unwrap_or_default();
    // Decide only from the newest view of this control. The object handed
    // to a reconcile is read when it is queued, and the cache may have moved
    // on since; the watch event that moved it queued another reconcile.
    // Likewise, while the cache is older than our own last status write
    // (our RBAC writes trigger reconciles that quickly), a decision would
    // write that status again with a new transition time; the watch event
    // of our write brings the next reconcile. The requeue only covers a
    // lost event.
    let version = co.resource_version();
    let newest = ctx
        .controls
        .get(&ObjectRef::from_obj(co))
        .and_then(|c| c.resource_version());
    if newest != version
        || ctx
            .written
            .behind("ControlOwnership", &ns, &co.name_any(), version.as_deref())
    {
        return Ok(Action::requeue(super::written::TTL));
    }
    // Only what can matter to this control is copied out of the caches:
    // bindings naming one of its service accounts and exceptions that are
    // its own or grant to one of them. The decision is the same as over
    // everything, and a namespace with thousands of bindings stays cheap.
    let sas: Vec<&str> = co
        .spec
        .workload_identities
        .iter()
        .map(|i| i.service_account.as_str())
        .collect();
    let names_ours = |subjects: Option<&Vec<k8s_openapi::api::rbac::v1::Subject>>, binding_ns: Option<&str>| {
        subjects
            .into_iter()
            .flatten()
            .any(|s| sas.iter().any(|sa| names_service_account(s, binding_ns, &ns, sa)))
    };
    let name = co.name_any();
    let exceptions: Vec<_> = ctx
        .exceptions
        .state()
        .iter()
        .filter(|e| e.namespace().as_deref() == Some(ns.as_str()))
        .filter(|e| {
            e.spec.control == name
                || e.spec
                    .grant
                    .as_ref()
                    .is_some_and(|g| sas.contains(&g.service_account.as_str()))
        })
        .map(|e| (**e).clone())
        .collect();
    let role_bindings: Vec<_> = ctx
        .role_bindings
        .state()
        .iter()
        .filter(|b| b.namespace().as_deref() == Some(ns.as_str()) && names_ours(b.subjects.as_ref(), Some(&ns)))
        .map(|b| (**b).clone())
        .collect();
    let cluster_role_bindings: Vec<_> = ctx
        .cluster_role_bindings
        .state()
        .iter()
        .filter(|b| names_ours(b.subjects.as_ref(), None))
        .map(|b| (**b).clone())
        .collect();
    let managed_names = owned_names(co, ctx);
    let observed = Observed {
        exceptions: &exceptions,
        role_bindings: &role_bindings,
        cluster_role_bindings: &cluster_role_bindings,
        managed_names: &managed_names,
    };
    let now = Timestamp::now();
    let d = control::decide(co, &observed, &ctx.ceiling(), now);

    // One pair after the other: applying them concurrently made later
    // reconciles see a cache behind our own writes and apply again (twice
    // the writes in the bench for a small gain in time).
    for pair in &d.apply {
        ensure_pair(ctx, pair).await?;
    }
    for name in &d.delete {
        remove_pair(ctx, &ns, name).await?;
    }
    for r in &d.remove_drift {
        match r.kind {
            BindingKind::RoleBinding => {
                let uid = ctx
                    .role_bindings
                    .get(&ObjectRef::new(&r.name).within(&ns))
                    .and_then(|b| b.uid());
                apply::delete(&Api::<RoleBinding>::namespaced(ctx.client.clone(), &ns), &r.name, uid).await?;
            }
            BindingKind::ClusterRoleBinding => {
                let uid = ctx
                    .cluster_role_bindings
                    .get(&ObjectRef::new(&r.name))
                    .and_then(|b| b.uid());
                apply::delete(&Api::<ClusterRoleBinding>::all(ctx.client.clone()), &r.name, uid).await?;
            }
        }
        ctx.event(
            co,
            "DriftRemoved",
            true,
            format!(
                "deleted {} {} ({}): it granted a managed identity undeclared permissions",
                r.kind.as_str(),
                r.name,
                r.role_ref
            ),
        )
        .await;
    }
    if co.status.as_ref() != Some(&d.status) {
        let rv = apply::status(api, co, &d.status).await?;
        tracing::debug!(
            from_version = co.resource_version().unwrap_or_default(),
            written_version = rv.as_deref().unwrap_or_default(),
            "status written"
        );
        ctx.written
            .record("ControlOwnership", &ns, &name, rv.as_deref(), fingerprint(&d.status));
    }
    for n in &d.notes {
        ctx.event(co, n.reason, n.warning, n.note.clone()).await;
    }
    Ok(requeue_at(d.wake_at, now))
}

async fn cleanup(co: &ControlOwnership, ctx: &Context) -> Result<Action, Error> {
    let ns = co.namespace().unwrap_or_default();
    for name in owned_names(co, ctx) {
        remove_pair(ctx, &ns, &name).await?;
    }
    Ok(Action::await_change())
}
