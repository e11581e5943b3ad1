//! The Role/RoleBinding pairs Steward manages, for both reconcilers: make
//! one exist exactly as decided (writing only what differs from what the
//! server holds), remove one binding first, and find the pairs a control
//! owns.

use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use super::{Context, Error};
use crate::api::{ControlOwnership, EXCEPTION_LABEL};
use crate::cache::fingerprint;
use crate::decide::rbac::RbacPair;

/// Applies a managed pair unless the server is known to hold exactly it:
/// the cache shows it, or the cache is behind our own last write of it. The
/// Role goes first so the binding never points at nothing.
pub async fn ensure(ctx: &Context, pair: &RbacPair) -> Result<(), Error> {
    let views = &ctx.caches;
    let role_key = ObjectRef::from_obj(&pair.role);
    let role_ok = views
        .roles
        .get(&role_key)
        .is_some_and(|r| r.rules == pair.role.rules && same_meta(&r.metadata, &pair.role.metadata))
        || views.roles.holds(&role_key, fingerprint(&pair.role));
    if !role_ok {
        ctx.writer.apply(&views.roles, &pair.role).await?;
    }
    let binding_key = ObjectRef::from_obj(&pair.binding);
    let binding_ok = views.role_bindings.get(&binding_key).is_some_and(|b| {
        b.role_ref == pair.binding.role_ref
            && b.subjects == pair.binding.subjects
            && same_meta(&b.metadata, &pair.binding.metadata)
    }) || views.role_bindings.holds(&binding_key, fingerprint(&pair.binding));
    if !binding_ok {
        ctx.writer.apply(&views.role_bindings, &pair.binding).await?;
    }
    Ok(())
}

/// Labels we set are present with our values, and our owner reference is there.
fn same_meta(have: &ObjectMeta, want: &ObjectMeta) -> bool {
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
pub async fn remove(ctx: &Context, ns: &str, name: &str) -> Result<bool, Error> {
    let mut existed = false;
    if let Some(b) = ctx.caches.role_bindings.get(&ObjectRef::new(name).within(ns)) {
        existed = true;
        ctx.writer.delete_namespaced::<RoleBinding>(ns, name, b.uid()).await?;
    }
    if let Some(r) = ctx.caches.roles.get(&ObjectRef::new(name).within(ns)) {
        existed = true;
        ctx.writer.delete_namespaced::<Role>(ns, name, r.uid()).await?;
    }
    Ok(existed)
}

/// Names of the identity Roles/RoleBindings `co` owns (by owner uid, which
/// cannot be forged by copying labels). Exception grants are owned by their
/// exception, not by the control.
pub fn owned_by(co: &ControlOwnership, ctx: &Context) -> Vec<String> {
    let ns = co.namespace().unwrap_or_default();
    let uid = co.uid().unwrap_or_default();
    let owned = |meta: &ObjectMeta| {
        meta.namespace.as_deref() == Some(ns.as_str())
            && !meta.labels.as_ref().is_some_and(|l| l.contains_key(EXCEPTION_LABEL))
            && meta.owner_references.iter().flatten().any(|o| o.uid == uid)
    };
    let roles = ctx.caches.roles.state();
    let bindings = ctx.caches.role_bindings.state();
    let mut names: Vec<String> = roles
        .iter()
        .map(|r| &r.metadata)
        .chain(bindings.iter().map(|b| &b.metadata))
        .filter(|m| owned(m))
        .filter_map(|m| m.name.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}
