//! The sweeper: deletes managed Roles and RoleBindings whose owner is gone,
//! and exception grants whose window is not open (pure rule in
//! `decide::sweep`). It wakes on every change of a managed
//! object, a control or an exception, and looks at the namespaces that
//! changed, in batches. After every (re)list of those kinds it looks at
//! every namespace: a relist sends only what it changed, and the sweep is
//! the backstop for whatever happened while the watches were away. For a deleted exception this is the prompt path (exceptions carry
//! no finalizer), and it reports the revocation with the exception's
//! Revoked Event. A control's finalizer is its prompt path; this one does
//! not depend on it, so stripping a finalizer or deleting with
//! `--cascade=orphan` while the controller is down leaves no grant behind.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use kube::{Resource, ResourceExt};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};

use super::Context;
use super::guarded_delete::{Target, delete_once};
use crate::api::PolicyException;
use crate::cache::Caches;
use crate::decide::approval::Key;
use crate::decide::approval::Trust;
use crate::decide::exception::revoked_note;
use crate::decide::exception::window_open;
use crate::decide::notice::{Notice, reasons};
use crate::decide::rbac::exception_name;
use crate::decide::sweep::{Keeps, ManagedKind, Orphan, orphans};

/// Batch window: a burst of changes in one namespace is swept once.
const BATCH: Duration = Duration::from_millis(100);

/// First and longest wait before sweeping again a namespace where a delete
/// failed (a transient API error must not leave a grant until the next
/// change there).
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// Runs until the caches' subscriptions end.
pub async fn run(ctx: Arc<Context>) {
    let caches = &ctx.caches;
    // A shard taken over: every namespace is looked at again (those of
    // other shards are dropped below).
    let taken_over = {
        let caches = caches.clone();
        ctx.shards
            .acquisitions()
            .flat_map(move |()| stream::iter(caches.namespaces().into_iter().map(Some)))
    };
    // A completed relist of any kind the sweep reads: every namespace.
    let relisted = {
        let caches = caches.clone();
        stream::select_all([
            caches.roles.relists().boxed(),
            caches.role_bindings.relists().boxed(),
            caches.exceptions.relists().boxed(),
            caches.controls.relists().boxed(),
        ])
        .flat_map(move |()| stream::iter(caches.namespaces().into_iter().map(Some)))
    };
    let namespaces = stream::select_all([
        caches
            .roles
            .subscribe()
            .map(|o| Some(o.metadata.namespace.to_string()))
            .boxed(),
        caches
            .role_bindings
            .subscribe()
            .map(|o| Some(o.metadata.namespace.to_string()))
            .boxed(),
        caches.exceptions.subscribe().map(|o| o.namespace()).boxed(),
        caches.controls.subscribe().map(|o| o.namespace()).boxed(),
        taken_over.boxed(),
        relisted.boxed(),
    ]);
    let shards = ctx.shards.clone();
    let mut batches = namespaces
        .filter_map(move |ns| futures::future::ready(ns.filter(|ns| shards.owns(ns))))
        .ready_chunks(4096);
    let mut retry: BTreeSet<String> = BTreeSet::new();
    let mut backoff = RETRY_FIRST;
    loop {
        let first = if retry.is_empty() {
            batches.next().await
        } else {
            tokio::select! {
                batch = batches.next() => batch,
                () = tokio::time::sleep(backoff) => Some(Vec::new()),
            }
        };
        let Some(first) = first else { break };
        let mut dirty: BTreeSet<String> = first.into_iter().collect();
        dirty.append(&mut retry);
        tokio::time::sleep(BATCH).await;
        while let Some(Some(more)) = futures::FutureExt::now_or_never(batches.next()) {
            dirty.extend(more);
        }
        retry = sweep(&ctx, &dirty).await;
        backoff = if retry.is_empty() {
            RETRY_FIRST
        } else {
            (backoff * 2).min(RETRY_MAX)
        };
    }
}

/// Deletes the orphans of `namespaces`; returns the namespaces where a
/// delete failed, to be swept again.
pub(super) async fn sweep(ctx: &Context, namespaces: &BTreeSet<String>) -> BTreeSet<String> {
    let mut failed = BTreeSet::new();
    let caches = ctx.caches.clone();
    let key = ctx.key.clone();
    let dirty = namespaces.clone();
    // Judging windows verifies each exception's approval digest, over
    // objects that may be a megabyte: on the blocking pool, and only for
    // the namespaces that changed (owners and what they own share one).
    let found = super::off_task(move || found_orphans(&caches, &key, &dirty)).await;
    let Ok(found) = found else {
        return namespaces.clone();
    };
    // Bindings first: they are what grants. All of them at once, as a
    // plain client would send them (the client bounds what is in flight):
    // one after another, a thousand exceptions deleted together lost their
    // grants over a minute.
    let (bindings, roles): (Vec<Orphan>, Vec<Orphan>) =
        found.into_iter().partition(|o| o.kind == ManagedKind::RoleBinding);
    for orphans in [bindings, roles] {
        let deleted = futures::future::join_all(orphans.into_iter().map(|o| delete_orphan(ctx, o))).await;
        failed.extend(deleted.into_iter().flatten());
    }
    failed
}

/// Deletes one orphan and reports it; returns its namespace if the delete
/// failed.
async fn delete_orphan(ctx: &Context, o: Orphan) -> Option<String> {
    // What a reconciler (or an earlier sweep) already deleted and the cache
    // does not show yet is not deleted again: at a mass expiry the sweep,
    // woken by the Expired statuses, met every grant the reconcilers had
    // just revoked.
    let (ns, name, target) = (&o.namespace, &o.name, Target::Uid(&o.uid));
    let done = match o.kind {
        ManagedKind::RoleBinding => delete_once::<RoleBinding>(ctx, &ctx.caches.role_bindings, ns, name, target).await,
        ManagedKind::Role => delete_once::<Role>(ctx, &ctx.caches.roles, ns, name, target).await,
    }?;
    if let Err(e) = done {
        tracing::warn!(namespace = %o.namespace, name = %o.name, error = %e, "could not delete an orphan; retrying");
        return Some(o.namespace);
    }
    tracing::info!(namespace = %o.namespace, name = %o.name, kind = ?o.kind, "deleted a managed object no live owner keeps");
    if let Some(pe) = &o.deleted_exception {
        let note = format!("{} (exception deleted)", revoked_note(&pe.name));
        let reference = ObjectReference {
            api_version: Some(PolicyException::api_version(&()).into()),
            kind: Some(PolicyException::kind(&()).into()),
            name: Some(pe.name.clone()),
            namespace: Some(o.namespace.clone()),
            uid: Some(pe.uid.clone()),
            ..Default::default()
        };
        ctx.writer
            .event_on(&reference, &Notice::normal(reasons::REVOKED, note))
            .await;
    }
    None
}

/// The orphans among the managed objects of `namespaces` (pure rule in
/// `decide::sweep`), judged from the caches at this instant.
fn found_orphans(caches: &Caches, key: &Key, namespaces: &BTreeSet<String>) -> Vec<Orphan> {
    let exceptions: Vec<Arc<PolicyException>> = namespaces
        .iter()
        .flat_map(|ns| caches.exceptions.in_namespace(ns))
        .collect();
    let controls: Vec<_> = namespaces
        .iter()
        .flat_map(|ns| caches.controls.in_namespace(ns))
        .collect();
    let now = jiff::Timestamp::now();
    // Each control's approval rules, parsed once per sweep: a grant written
    // whole by its requester is kept only if the control trusts that
    // requester as its GitOps applier.
    let mut policies: BTreeMap<(String, String), Option<crate::decide::approval::Policy>> = BTreeMap::new();
    let live: BTreeMap<&str, Keeps> = exceptions
        .iter()
        .filter_map(|e| {
            let ns = e.namespace().unwrap_or_default();
            let policy = policies
                .entry((ns.clone(), e.spec.control.clone()))
                .or_insert_with(|| {
                    caches
                        .control_for_exceptions(&ns, &e.spec.control)
                        .and_then(|c| crate::decide::validate::exception_rules(&c.spec).ok())
                        .map(|r| r.approval)
                })
                .as_ref();
            let keeps = Keeps::Exception {
                name: exception_name(&e.name_any()),
                open: window_open(e, Trust::Verify(key), policy, now),
            };
            Some((e.meta().uid.as_deref()?, keeps))
        })
        .chain(
            controls
                .iter()
                .filter_map(|c| Some((c.meta().uid.as_deref()?, Keeps::Control))),
        )
        .collect();
    let roles: Vec<_> = namespaces.iter().flat_map(|ns| caches.roles.in_namespace(ns)).collect();
    let bindings: Vec<_> = namespaces
        .iter()
        .flat_map(|ns| caches.role_bindings.in_namespace(ns))
        .collect();
    let managed = bindings
        .iter()
        .map(|b| (ManagedKind::RoleBinding, &b.metadata))
        .chain(roles.iter().map(|r| (ManagedKind::Role, &r.metadata)));
    orphans(managed, &live)
}
