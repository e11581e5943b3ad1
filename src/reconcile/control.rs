//! ControlOwnership reconciler: identity RBAC, drift (removed in Enforce),
//! review, then status; wake at the next review or exception instant.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, Subject};
use kube::ResourceExt;
use kube::runtime::finalizer::Event as FinalizerEvent;
use kube::runtime::reflector::ObjectRef;

use super::{Action, Context, Error, LOST_EVENT_RETRY, managed_rbac, requeue_at};
use crate::api::{ControlOwnership, Enforcement, PolicyException};
use crate::compact::CachedRoleBinding;
use crate::decide::approval::Trust;
use crate::decide::control::drift::Removal;
use crate::decide::control::failures::IdentityFailure;
use crate::decide::control::{self, Decision, Observed};
use crate::decide::drift::names_service_account;
use crate::decide::notice::{Notice, reasons};

/// Reconciles one ControlOwnership.
// The span is at debug level for the reason given at `exception::reconcile`.
#[tracing::instrument(level = "debug", skip_all, fields(ns = %co.namespace().unwrap_or_default(), name = %co.name_any()))]
pub async fn reconcile(co: Arc<ControlOwnership>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.writes_for(co.as_ref()) {
        return Ok(Action::await_change());
    }
    // A control never reconciled yet can only add (its pairs, its first
    // status): in a burst of new controls it waits for a turn, so the burst
    // holds a bounded amount of work in memory. Any other reconcile (drift
    // to remove, an identity or the control going) never waits.
    let _turn = if co.status.is_none() && co.metadata.deletion_timestamp.is_none() {
        Some(ctx.new_work_turn().await)
    } else {
        None
    };
    // Released at the end of a burst, with every other control whose count
    // waited: one turn each, so thousands do not decide at once.
    let _released = if ctx.burst.take_released(&ObjectRef::from_obj(co.as_ref())) {
        ctx.released_turn().await
    } else {
        None
    };
    super::finalized(&ctx, co, |event| async {
        match event {
            FinalizerEvent::Apply(co) => apply_control(co, &ctx).await,
            FinalizerEvent::Cleanup(co) => Box::pin(cleanup(&co, &ctx)).await,
        }
    })
    .await
}

/// What the caches hold that can matter to one control: bindings naming one
/// of its service accounts, exceptions that are its own or grant to one of
/// them, and the pairs it owns. The decision is the same as over everything,
/// and a namespace with thousands of bindings stays cheap.
struct Relevant {
    // Shared, not copied: an exception may be a megabyte, and a control is
    // reconciled at every change of one of its exceptions.
    exceptions: Vec<Arc<PolicyException>>,
    role_bindings: Vec<CachedRoleBinding>,
    cluster_role_bindings: Vec<ClusterRoleBinding>,
    managed_names: Vec<String>,
    controls: Vec<Arc<ControlOwnership>>,
}

fn relevant(co: &ControlOwnership, ctx: &Context) -> Relevant {
    let ns = co.namespace().unwrap_or_default();
    let name = co.name_any();
    let sas: Vec<&str> = co.spec.service_accounts();
    let names_ours = |subjects: &[Subject], binding_ns: Option<&str>| {
        subjects
            .iter()
            .any(|s| sas.iter().any(|sa| names_service_account(s, binding_ns, &ns, sa)))
    };
    let caches = &ctx.caches;
    let exceptions = caches
        .exceptions
        .in_namespace(&ns)
        .iter()
        .filter(|e| {
            e.spec.control == name
                || e.spec
                    .grant
                    .as_ref()
                    .is_some_and(|g| sas.contains(&g.service_account.as_str()))
        })
        .cloned()
        .collect();
    let role_bindings = caches
        .role_bindings
        .in_namespace(&ns)
        .iter()
        .filter(|b| names_ours(&b.subjects, Some(&ns)))
        .map(|b| (**b).clone())
        .collect();
    let cluster_role_bindings = caches
        .cluster_role_bindings
        .state()
        .iter()
        .filter(|b| names_ours(b.subjects.as_deref().unwrap_or_default(), None))
        .map(|b| (**b).clone())
        .collect();
    Relevant {
        exceptions,
        role_bindings,
        cluster_role_bindings,
        managed_names: managed_rbac::owned_by(co, ctx),
        controls: caches.controls_sharing(co),
    }
}

async fn apply_control(co: Arc<ControlOwnership>, ctx: &Context) -> Result<Action, Error> {
    // Decide only from the newest view of this control. The object handed
    // to a reconcile is read when it is queued, and the cache may have moved
    // on since; the watch event that moved it queued another reconcile.
    // Likewise, while the cache is older than our own last status write
    // (our RBAC writes trigger reconciles that quickly), a decision would
    // write that status again with a new transition time; the watch event
    // of our write brings the next reconcile.
    if !ctx.caches.controls.is_newest(&co) {
        return Ok(Action::requeue(LOST_EVENT_RETRY));
    }
    let deciding = ctx.decision_slot().await;
    let seen = relevant(&co, ctx);
    let now = Timestamp::now();
    let (ceiling, key) = (ctx.caches.ceiling(), ctx.key.clone());
    let (d, co) = super::off_task(move || {
        let controls: Vec<&ControlOwnership> = seen.controls.iter().map(|c| c.as_ref()).collect();
        let exceptions: Vec<&PolicyException> = seen.exceptions.iter().map(|e| e.as_ref()).collect();
        let observed = Observed {
            exceptions: &exceptions,
            role_bindings: &seen.role_bindings,
            cluster_role_bindings: &seen.cluster_role_bindings,
            managed_names: &seen.managed_names,
            controls: &controls,
        };
        let d = control::decide(&co, &observed, &ceiling, Trust::Verify(&key), now);
        (d, co)
    })
    .await?;
    drop(deciding);
    // Boxed: thousands of reconciles may wait for their decision at once,
    // and each would otherwise hold room for the writes' largest state.
    let count_waits = Box::pin(write(&co, &d, ctx, now)).await?;
    let wake_at = match (d.wake_at, count_waits) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(requeue_at(wake_at, now))
}

/// Carries out a decision: pairs, then removals, then status, then Events.
/// One identity that cannot be served does not stop the others, the drift
/// removal or the status: its failure goes into status, and the reconcile
/// is retried with backoff afterwards. A status changed in its count of
/// active exceptions alone may wait for a burst of new work to end
/// (`burst`); returns by when it must be written if so.
async fn write(co: &ControlOwnership, d: &Decision, ctx: &Context, now: Timestamp) -> Result<Option<Timestamp>, Error> {
    let ns = co.namespace().unwrap_or_default();
    let uid = co.uid().unwrap_or_default();
    let failures = apply_pairs(co, d, ctx).await;
    for name in &d.delete {
        managed_rbac::remove(ctx, &ns, name, &uid).await?;
    }
    for r in &d.remove_drift {
        remove_drift(co, r, ctx).await?;
    }
    let previous = co.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    let status = control::failures::with_failures(&d.status, previous, &failures, Timestamp::now());
    let changed = co.status.as_ref() != Some(&status);
    let count_waits = ctx
        .burst
        .count_waits(&ObjectRef::from_obj(co), co.status.as_ref(), &status, now);
    if changed && count_waits.is_none() {
        ctx.writer.status(&ctx.caches.controls, co, &status).await?;
    }
    for n in &d.notes {
        ctx.writer.event(co, n).await;
    }
    // Once per change of what status says, not once per retry.
    for f in failures.iter().filter(|_| changed) {
        let note = format!("identity {}: {}", f.service_account, f.message);
        ctx.writer
            .event(co, &Notice::warning(reasons::IDENTITY_NOT_APPLIED, note))
            .await;
    }
    match failures.len() {
        0 => Ok(count_waits),
        n => Err(Error::Identities(n)),
    }
}

/// Applies each identity's pair; returns the identities that failed.
async fn apply_pairs(co: &ControlOwnership, d: &Decision, ctx: &Context) -> Vec<IdentityFailure> {
    // In Enforce, a foreign object at an identity's name is replaced; in
    // Audit it is reported on that identity.
    let enforce = co.spec.enforcement == Some(Enforcement::Enforce);
    let mut failures = Vec::new();
    // One pair after the other: applying them concurrently made later
    // reconciles see a cache behind our own writes and apply again (twice
    // the writes in the bench for a small gain in time).
    for pair in &d.apply {
        if let Err(e) = managed_rbac::ensure(ctx, pair, enforce).await {
            let service_account = pair
                .binding
                .subjects
                .iter()
                .flatten()
                .next()
                .map(|s| s.name.clone())
                .unwrap_or_default();
            failures.push(IdentityFailure {
                service_account,
                needs_person: e.needs_person(),
                message: e.to_string(),
            });
        }
    }
    failures
}

async fn remove_drift(co: &ControlOwnership, r: &Removal, ctx: &Context) -> Result<(), Error> {
    // Only RoleBindings of the control's namespace are ever removed, and
    // only the very object found (its uid): by now Steward's own binding may
    // stand under the same name.
    let Some(uid) = r.uid.clone() else {
        return Ok(());
    };
    let ns = co.namespace().unwrap_or_default();
    ctx.writer
        .delete_namespaced::<RoleBinding>(&ns, &r.name, Some(uid))
        .await?;
    let note = format!(
        "deleted {} {} ({}): it granted a managed identity undeclared permissions",
        r.kind.as_str(),
        r.name,
        r.role_ref
    );
    ctx.writer
        .event(co, &Notice::warning(reasons::DRIFT_REMOVED, note))
        .await;
    Ok(())
}

async fn cleanup(co: &ControlOwnership, ctx: &Context) -> Result<Action, Error> {
    let ns = co.namespace().unwrap_or_default();
    let uid = co.uid().unwrap_or_default();
    for name in managed_rbac::owned_by(co, ctx) {
        managed_rbac::remove(ctx, &ns, &name, &uid).await?;
    }
    Ok(Action::await_change())
}
