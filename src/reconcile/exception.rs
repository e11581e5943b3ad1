//! PolicyException reconciler: grant exactly while Active, revoke first,
//! then status; wake at the next lifecycle instant.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;

use super::written::fingerprint;
use super::{Context, Error, requeue_at};
use crate::api::{FINALIZER, PolicyException};
use crate::apply;
use crate::decide::exception::{self, Lifecycle};
use crate::decide::rbac::{self, RbacPair};

/// Reconciles one PolicyException.
#[tracing::instrument(skip_all, fields(ns = %pe.namespace().unwrap_or_default(), name = %pe.name_any()))]
pub async fn reconcile(pe: Arc<PolicyException>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = pe.namespace().unwrap_or_default();
    let api: Api<PolicyException> = Api::namespaced(ctx.client.clone(), &ns);
    let started = std::time::Instant::now();
    let key = super::key(pe.as_ref());
    let action = finalizer(&api, FINALIZER, pe, |event| async {
        match event {
            FinalizerEvent::Apply(pe) => apply_exception(&pe, &ctx, &api).await,
            FinalizerEvent::Cleanup(pe) => cleanup(&pe, &ctx).await,
        }
    })
    .await;
    let action = super::finalizer_outcome(action)?;
    ctx.succeeded(&key);
    ctx.report_dirty(&ns);
    ctx.metrics
        .reconciled("PolicyException", started.elapsed().as_secs_f64());
    Ok(action)
}

async fn apply_exception(pe: &PolicyException, ctx: &Context, api: &Api<PolicyException>) -> Result<Action, Error> {
    let ns = pe.namespace().unwrap_or_default();
    let control = ctx.controls.get(&ObjectRef::new(&pe.spec.control).within(&ns));
    let now = Timestamp::now();
    let d = exception::decide(pe, control.as_deref(), &ctx.ceiling(), now);

    let name = rbac::exception_name(&pe.name_any());
    let revoked = match &d.grant {
        Some(pair) => {
            ensure_pair(ctx, pair).await?;
            false
        }
        // Revocation comes before anything else, status included.
        None => remove_pair(ctx, &ns, &name).await?,
    };
    match (&d.lifecycle, revoked) {
        (Lifecycle::Expired(Some(w)), true) => {
            ctx.metrics
                .expiry_enforced(now.duration_since(w.expires_at).as_secs_f64());
        }
        (Lifecycle::Expired(None), true) => {}
        (_, true) => {
            ctx.event(pe, "Revoked", true, exception::revoked_note(&pe.name_any()))
                .await
        }
        (_, false) => {}
    }
    if pe.status.as_ref() != Some(&d.status) {
        apply::status(api, pe, &d.status).await?;
    }
    if let Some(t) = &d.event {
        ctx.event(pe, t.reason, t.warning, t.note.clone()).await;
    }
    Ok(requeue_at(d.wake_at, now))
}

async fn cleanup(pe: &PolicyException, ctx: &Context) -> Result<Action, Error> {
    let ns = pe.namespace().unwrap_or_default();
    if remove_pair(ctx, &ns, &rbac::exception_name(&pe.name_any())).await? {
        ctx.event(
            pe,
            "Revoked",
            false,
            format!("{} (exception deleted)", exception::revoked_note(&pe.name_any())),
        )
        .await;
    }
    Ok(Action::await_change())
}

/// Applies a managed Role/RoleBinding pair unless the server is known to
/// hold exactly it: the cache shows it, or the cache is behind our own last
/// write of it. The Role goes first so the binding never points at nothing.
pub(super) async fn ensure_pair(ctx: &Context, pair: &RbacPair) -> Result<(), Error> {
    let ns = pair.role.namespace().unwrap_or_default();
    let name = pair.name();
    let role = ctx.roles.get(&ObjectRef::new(name).within(&ns));
    let role_fp = fingerprint(&pair.role);
    let role_ok = role
        .as_ref()
        .is_some_and(|r| r.rules == pair.role.rules && same_meta(&r.metadata, &pair.role.metadata))
        || ctx.written.holds(
            "Role",
            &ns,
            name,
            role.and_then(|r| r.resource_version()).as_deref(),
            role_fp,
        );
    if !role_ok {
        let applied = apply::apply::<Role>(&ctx.client, &pair.role).await?;
        ctx.written
            .record("Role", &ns, name, applied.resource_version().as_deref(), role_fp);
    }
    let binding = ctx.role_bindings.get(&ObjectRef::new(name).within(&ns));
    let binding_fp = fingerprint(&pair.binding);
    let binding_ok = binding.as_ref().is_some_and(|b| {
        b.role_ref == pair.binding.role_ref
            && b.subjects == pair.binding.subjects
            && same_meta(&b.metadata, &pair.binding.metadata)
    }) || ctx.written.holds(
        "RoleBinding",
        &ns,
        name,
        binding.and_then(|b| b.resource_version()).as_deref(),
        binding_fp,
    );
    if !binding_ok {
        let applied = apply::apply::<RoleBinding>(&ctx.client, &pair.binding).await?;
        ctx.written.record(
            "RoleBinding",
            &ns,
            name,
            applied.resource_version().as_deref(),
            binding_fp,
        );
    }
    Ok(())
}

/// Labels we set are present with our values, and our owner reference is there.
fn same_meta(
    have: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    want: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> bool {
    let labels_ok = want
        .labels
        .iter()
        .flatten()
        .all(|(k, v)| have.labels.as_ref().and_then(|l| l.get(k)) == Some(v));
    let owners_ok = want
        .owner_references
        .iter()
        .flatten()
        .all(|o| have.owner_references.iter().flatten().any(|h| h.uid == o.uid));
    labels_ok && owners_ok
}

/// Deletes a managed pair, binding first (that is what revokes access).
/// Returns whether anything existed.
pub(super) async fn remove_pair(ctx: &Context, ns: &str, name: &str) -> Result<bool, Error> {
    let mut existed = false;
    if let Some(b) = ctx.role_bindings.get(&ObjectRef::new(name).within(ns)) {
        existed = true;
        apply::delete(&Api::<RoleBinding>::namespaced(ctx.client.clone(), ns), name, b.uid()).await?;
    }
    if let Some(r) = ctx.roles.get(&ObjectRef::new(name).within(ns)) {
        existed = true;
        apply::delete(&Api::<Role>::namespaced(ctx.client.clone(), ns), name, r.uid()).await?;
    }
    Ok(existed)
}
