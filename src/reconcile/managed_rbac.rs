//! The Role/RoleBinding pairs Steward manages, for both reconcilers: make
//! one exist exactly as decided (writing only what differs from what the
//! server holds), remove one binding first, and find the pairs a control
//! owns.

use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use super::guarded_delete::{self, Target, delete_once};
use super::{Context, Error};
use crate::api::{ControlOwnership, EXCEPTION_LABEL};
use crate::apply::Namespaced;
use crate::cache::{View, fingerprint};
use crate::compact::{CachedRole, CachedRoleBinding, Compact, Meta, rules_digest};
use crate::decide::rbac::RbacPair;

/// Why a managed pair is not in place.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    /// Another object holds the name: Steward did not create it for this
    /// owner, so it is neither overwritten nor deleted (outside Enforce).
    #[error("{kind} {name} exists but Steward did not create it for this object; delete it or let Enforce replace it")]
    NameTaken {
        /// Role or RoleBinding.
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// The API server's escalation check refused the write: the controller
    /// does not hold the grant ceiling in this namespace, which the
    /// platform team has not opted in (the decision already keeps every
    /// rule inside the ceiling).
    #[error(
        "namespace {namespace} does not hold the grant ceiling: the API server refused Steward's {kind} (403). \
         A platform admin opts it in with RoleBinding steward-grant-ceiling of ClusterRole {ceiling} to Steward's service account (README)"
    )]
    CeilingNotHeld {
        /// The namespace.
        namespace: String,
        /// Role or RoleBinding.
        kind: &'static str,
        /// The grant ceiling ClusterRole's name.
        ceiling: String,
    },
    /// The API call failed.
    #[error(transparent)]
    Api(#[from] kube::Error),
}

impl PairError {
    /// Whether only a person can fix it: retrying the same write cannot.
    pub fn needs_person(&self) -> bool {
        match self {
            PairError::NameTaken { .. } | PairError::CeilingNotHeld { .. } => true,
            PairError::Api(kube::Error::Api(s)) => matches!(s.code, 400 | 403 | 422),
            PairError::Api(_) => false,
        }
    }
}

/// Makes a managed pair exist exactly as decided, writing only what the
/// server does not already hold (the cache shows it, or the cache is
/// behind our own last write of exactly it). The Role goes first so the
/// binding never points at nothing. An object at the pair's name that
/// Steward did not create for the pair's owner is replaced only when
/// `replace_foreign` (Enforce); otherwise the pair fails with `NameTaken`.
pub async fn ensure(ctx: &Context, pair: &RbacPair, replace_foreign: bool) -> Result<(), PairError> {
    let views = &ctx.caches;
    let rules = rules_digest(pair.role.rules.as_deref());
    let role_same = |r: &CachedRole| r.rules == rules && same_meta(&r.metadata, &pair.role.metadata);
    ensure_one(ctx, &views.roles, &pair.role, role_same, replace_foreign).await?;
    let binding_same = |b: &CachedRoleBinding| {
        b.role_ref == pair.binding.role_ref
            && *b.subjects == *pair.binding.subjects.as_deref().unwrap_or_default()
            && same_meta(&b.metadata, &pair.binding.metadata)
    };
    ensure_one(ctx, &views.role_bindings, &pair.binding, binding_same, replace_foreign).await
}

async fn ensure_one<K>(
    ctx: &Context,
    view: &View<K::Cached>,
    want: &K,
    same: impl Fn(&K::Cached) -> bool,
    replace_foreign: bool,
) -> Result<(), PairError>
where
    K: Namespaced,
{
    let key = ObjectRef::new(&want.name_any()).within(&want.namespace().unwrap_or_default());
    if view.holds(&key, fingerprint(want)) {
        return Ok(());
    }
    let have = view.get(&key);
    if let Some(have) = &have {
        if same(have) {
            return Ok(());
        }
        if !same_owner(have.meta(), want.meta()) {
            if !replace_foreign {
                return Err(PairError::NameTaken {
                    kind: kind_of::<K>(),
                    name: key.name.clone(),
                });
            }
            let ns = want.namespace().unwrap_or_default();
            let uid = Some(have.meta().uid.to_string()).filter(|u| !u.is_empty());
            ctx.writer.delete_namespaced::<K>(&ns, &key.name, uid).await?;
        }
    }
    // Absent from the cache and never written by us: create it.
    let written = if have.is_none() && !view.wrote(&key) {
        ctx.writer.create(view, want).await
    } else {
        ctx.writer.apply(view, want).await
    };
    match written {
        Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains(ESCALATION_REFUSED) => {
            Err(PairError::CeilingNotHeld {
                namespace: key.namespace.clone().unwrap_or_default(),
                kind: kind_of::<K>(),
                ceiling: ctx.caches.ceiling().name.to_string(),
            })
        }
        other => Ok(other?),
    }
}

/// What the API server's RBAC escalation check says when it refuses a Role
/// or RoleBinding beyond the writer's own permissions in that namespace.
const ESCALATION_REFUSED: &str = "attempting to grant RBAC permissions not currently held";

fn kind_of<K: Namespaced>() -> &'static str {
    if K::kind(&()) == "Role" { "Role" } else { "RoleBinding" }
}

/// Whether `have` carries every owner reference (by uid) `want` declares:
/// Steward created it for this owner. (A pair without an owner reference
/// is never foreign.)
fn same_owner(have: &Meta, want: &ObjectMeta) -> bool {
    want.owner_references.iter().flatten().all(|o| have.owned_by(&o.uid))
}

/// Labels we set are present with our values, and our owner reference is there.
fn same_meta(have: &Meta, want: &ObjectMeta) -> bool {
    have.labels.include(want.labels.iter().flatten()) && same_owner(have, want)
}

/// Deletes the managed pair `name`, binding first (that is what revokes
/// access), but only objects owned by `owner_uid`: a name Steward would use
/// that someone else holds is not Steward's to delete. Returns whether
/// anything of ours existed.
pub async fn remove(ctx: &Context, ns: &str, name: &str, owner_uid: &str) -> Result<bool, Error> {
    let binding = remove_binding(ctx, ns, name, owner_uid).await?;
    let role = remove_role(ctx, ns, name, owner_uid).await?;
    Ok(binding || role)
}

/// Deletes the RoleBinding of pair `name` if `owner_uid` owns it (what
/// revokes access); returns whether it existed.
pub async fn remove_binding(ctx: &Context, ns: &str, name: &str, owner_uid: &str) -> Result<bool, Error> {
    let view = &ctx.caches.role_bindings;
    Ok(
        delete_once::<RoleBinding>(ctx, view, ns, name, Target::OwnedBy(owner_uid))
            .await
            .transpose()?
            .is_some(),
    )
}

/// Deletes the Role of pair `name` if `owner_uid` owns it; returns whether
/// it existed.
pub async fn remove_role(ctx: &Context, ns: &str, name: &str, owner_uid: &str) -> Result<bool, Error> {
    let view = &ctx.caches.roles;
    Ok(delete_once::<Role>(ctx, view, ns, name, Target::OwnedBy(owner_uid))
        .await
        .transpose()?
        .is_some())
}

/// Whether the Role of pair `name`, owned by `owner_uid`, is still there to
/// delete.
pub fn holds_role(ctx: &Context, ns: &str, name: &str, owner_uid: &str) -> bool {
    guarded_delete::pending::<Role>(&ctx.caches.roles, ns, name, Target::OwnedBy(owner_uid))
}

/// Names of the identity Roles/RoleBindings `co` owns (by owner uid, which
/// cannot be forged by copying labels). Exception grants are owned by their
/// exception, not by the control.
pub fn owned_by(co: &ControlOwnership, ctx: &Context) -> Vec<String> {
    let ns = co.namespace().unwrap_or_default();
    let uid = co.uid().unwrap_or_default();
    let owned =
        |meta: &Meta| *meta.namespace == *ns && meta.labels.get(EXCEPTION_LABEL).is_none() && meta.owned_by(&uid);
    let roles = ctx.caches.roles.in_namespace(&ns);
    let bindings = ctx.caches.role_bindings.in_namespace(&ns);
    let mut names: Vec<String> = roles
        .iter()
        .map(|r| &r.metadata)
        .chain(bindings.iter().map(|b| &b.metadata))
        .filter(|m| owned(m))
        .map(|m| m.name.to_string())
        .collect();
    names.sort();
    names.dedup();
    names
}
