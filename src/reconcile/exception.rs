//! PolicyException reconciler: grant exactly while Active, revoke first,
//! then status; wake at the next lifecycle instant.

use std::sync::Arc;

use jiff::Timestamp;
use kube::runtime::finalizer::Event as FinalizerEvent;
use kube::{Resource, ResourceExt};

use super::guarded_delete::{self, Target};
use super::{Action, Context, Error, managed_rbac, requeue_at};
use crate::api::{ControlOwnership, Enforcement, FINALIZER, PolicyException};
use crate::decide::approval::Trust;
use crate::decide::exception::{self, Lifecycle};
use crate::decide::notice::{Notice, reasons};
use crate::decide::rbac;

/// Reconciles one PolicyException.
///
/// Exceptions carry no finalizer: the grant is owned by its exception, and
/// the sweeper deletes a grant whose exception is gone within its batch
/// window (`sweep`), which it must do anyway for records deleted while the
/// controller was down. A finalizer would cost a write per exception, a
/// second reconcile before the grant, and refused patches whenever the cache
/// is a step behind. Exceptions created by earlier versions still carry
/// it; kube's helper revokes and removes it when they are deleted.
// The span is at debug level: at info, one per reconcile in flight (every
// object at once after a restart) grew the span registry's slab, which
// keeps its slots for good: 4 MiB at 14,000 objects. What is logged at info
// names its object itself.
#[tracing::instrument(level = "debug", skip_all, fields(ns = %pe.namespace().unwrap_or_default(), name = %pe.name_any()))]
pub async fn reconcile(pe: Arc<PolicyException>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.writes_for(pe.as_ref()) {
        return Ok(Action::await_change());
    }
    let deleting = pe.meta().deletion_timestamp.is_some();
    if deleting && pe.finalizers().iter().any(|f| f == FINALIZER) {
        return Box::pin(super::finalized(&ctx, pe, |event| async {
            match event {
                FinalizerEvent::Apply(pe) => apply_exception(pe, &ctx).await,
                FinalizerEvent::Cleanup(pe) => cleanup(&pe, &ctx).await,
            }
        }))
        .await;
    }
    // A reconcile that can only add waits for a turn, so a burst of new
    // exceptions holds a bounded amount of work in memory; one that may
    // take a grant away (an expiry among them) goes at once, so no burst,
    // a tenant's flood included, delays a revocation.
    let _turn = if deleting || may_revoke(&pe, &ctx) {
        None
    } else {
        Some(ctx.new_work_turn().await)
    };
    let ns = pe.namespace().unwrap_or_default();
    let key = super::key(pe.as_ref());
    let started = std::time::Instant::now();
    // Held by someone else's finalizer: on its way out, so nothing is
    // granted any more.
    let action = if deleting {
        Box::pin(cleanup(&pe, &ctx)).await?
    } else {
        apply_exception(pe.clone(), &ctx).await?
    };
    Ok(ctx.done::<PolicyException>(&key, &ns, started, action))
}

/// Whether reconciling `pe` may revoke something: its grant's RoleBinding
/// is there and ours (any change, or the clock, may end it), or the status
/// it was last given says Active (a tolerance ends with it, and the status
/// must say so on time). Everything else can only add. A binding someone
/// else put at the grant's name does not count: it is not ours to revoke,
/// and squatting names must not buy a tenant's flood a way past the turns.
fn may_revoke(pe: &PolicyException, ctx: &Context) -> bool {
    let active = pe.status.as_ref().and_then(|s| s.phase) == Some(crate::api::Phase::Active);
    let (Some(ns), Some(uid)) = (pe.namespace(), pe.uid()) else {
        return active;
    };
    let name = rbac::exception_name(&pe.name_any());
    active
        || guarded_delete::pending::<k8s_openapi::api::rbac::v1::RoleBinding>(
            &ctx.caches.role_bindings,
            &ns,
            &name,
            Target::OwnedBy(&uid),
        )
}

async fn apply_exception(pe: Arc<PolicyException>, ctx: &Context) -> Result<Action, Error> {
    let ns = pe.namespace().unwrap_or_default();
    let control = ctx.caches.control_for_exceptions(&ns, &pe.spec.control);
    let now = Timestamp::now();
    // At an expiry the binding goes before the decision is even made: the
    // end recorded in status is final, and a decision (validation, approval
    // signatures, the ceiling) waits its turn on the blocking pool, behind a
    // thousand others when a thousand expire together.
    let name = rbac::exception_name(&pe.name_any());
    let uid = pe.uid().unwrap_or_default();
    // The requests' futures are boxed here and below: thousands of
    // reconciles wait for their decision at once in a burst (or after a
    // restart), and each waiting one would otherwise hold room for the
    // largest state it can reach.
    let revoked_early = if exception::ended_by_status(&pe, now) {
        Box::pin(managed_rbac::remove_binding(ctx, &ns, &name, &uid))
            .await
            .map_err(|e| Error::Revocation(Box::new(e)))?
    } else {
        false
    };
    let deciding = ctx.decision_slot().await;
    let (ceiling, key) = (ctx.caches.ceiling(), ctx.key.clone());
    let (d, pe, control) = super::off_task(move || {
        let d = exception::decide(&pe, control.as_deref(), &ceiling, Trust::Verify(&key), now);
        (d, pe, control)
    })
    .await?;
    drop(deciding);
    Box::pin(carry_out(&pe, d, control.as_deref(), revoked_early, ctx, now)).await
}

/// Carries out decision `d` about `pe`: the grant in place, or revoked;
/// then the status and Events (`record`).
pub(super) async fn carry_out(
    pe: &PolicyException,
    d: exception::Decision,
    control: Option<&ControlOwnership>,
    revoked_early: bool,
    ctx: &Context,
    now: Timestamp,
) -> Result<Action, Error> {
    let ns = pe.namespace().unwrap_or_default();
    let name = rbac::exception_name(&pe.name_any());
    let uid = pe.uid().unwrap_or_default();
    let mut failure = None;
    let revoked = match &d.grant {
        Some(pair) => {
            // Decided before the grant's end, carried out after it (the
            // decision waited for the blocking pool): the expiry clock may
            // have revoked it already, and this would grant it again.
            // Decide again instead.
            if let Lifecycle::Active(w) = &d.lifecycle
                && Timestamp::now() >= w.expires_at
            {
                return Ok(Action::requeue(std::time::Duration::ZERO));
            }
            // A foreign object at the grant's name is replaced only when the
            // control enforces; otherwise the grant waits (and is retried).
            let enforce = control.and_then(|c| c.spec.enforcement) == Some(Enforcement::Enforce);
            match managed_rbac::ensure(ctx, pair, enforce).await {
                Ok(()) => {}
                // Only a person can fix it: say so in status, then retry.
                Err(e) if e.needs_person() => failure = Some(e),
                Err(e) => return Err(e.into()),
            }
            false
        }
        // Revocation comes before anything else: the binding is what
        // grants. Then the status says so, then the Role goes (alone it
        // grants nothing). The client sends these writes in that order when
        // many wait (`client::lanes`): with a thousand expiring together,
        // every binding first, then every status, then the Roles and
        // Events. (Without that order, writing the status before the Role
        // brought Expired sooner but the revocations later, p99 1.6 ->
        // 4.9 s: the status writes loaded the API server while bindings
        // were still being deleted.)
        None => {
            let binding = managed_rbac::remove_binding(ctx, &ns, &name, &uid)
                .await
                .map_err(|e| Error::Revocation(Box::new(e)))?;
            let role = managed_rbac::holds_role(ctx, &ns, &name, &uid);
            // Counted by whoever deleted the binding: this reconcile, or the
            // expiry clock before it.
            if let (Lifecycle::Expired(Some(w)), true) = (&d.lifecycle, revoked_early || binding) {
                ctx.metrics
                    .expiry_enforced(now.duration_since(w.expires_at).as_secs_f64());
            }
            let recorded = record(pe, ctx, &d, None, revoked_early || binding || role, now).await;
            if role {
                managed_rbac::remove_role(ctx, &ns, &name, &uid)
                    .await
                    .map_err(|e| Error::Revocation(Box::new(e)))?;
            }
            return recorded;
        }
    };
    record(pe, ctx, &d, failure, revoked, now).await
}

/// After the grant is in place or revoked: the Revoked Event, the status,
/// then the decision's Events.
async fn record(
    pe: &PolicyException,
    ctx: &Context,
    d: &exception::Decision,
    failure: Option<managed_rbac::PairError>,
    revoked: bool,
    now: Timestamp,
) -> Result<Action, Error> {
    let name = rbac::exception_name(&pe.name_any());
    match (&d.lifecycle, revoked) {
        (Lifecycle::Expired(_), true) => {}
        (_, true) => {
            let note = exception::revoked_note(&pe.name_any());
            ctx.writer.event(pe, &Notice::warning(reasons::REVOKED, note)).await
        }
        (_, false) => {}
    }
    // While the cache is older than our own last status write, the status
    // it shows is not what the server holds: the watch event of that write
    // triggers the next reconcile, which compares against the real one.
    // (Grants and revocations above never wait for this.)
    let previous = pe.status.clone().unwrap_or_default();
    let status = match &failure {
        Some(e) => exception::with_grant_failure(&d.status, &previous, &e.to_string(), true, now),
        None => d.status.clone(),
    };
    let changed = pe.status.as_ref() != Some(&status);
    if changed && !ctx.caches.exceptions.is_newest(pe) {
        // The transition (and its Event) was that earlier write's.
        let retry = now.checked_add(super::LOST_EVENT_RETRY).unwrap_or(now);
        return Ok(requeue_at(Some(d.wake_at.map_or(retry, |w| w.min(retry))), now));
    }
    if changed {
        ctx.writer.status(&ctx.caches.exceptions, pe, &status).await?;
    }
    if let Some(e) = failure {
        // One Event per change of status, not one per retry.
        if changed {
            let note = format!("the grant {name} is not in place: {e}");
            ctx.writer
                .event(pe, &Notice::warning(reasons::GRANT_NOT_APPLIED, note))
                .await;
        }
        return Err(e.into());
    }
    if let Some(t) = &d.event {
        ctx.writer.event(pe, t).await;
    }
    if let Some(t) = &d.break_glass_event {
        if t.reason == reasons::BREAK_GLASS {
            ctx.metrics.glass_broken();
        }
        ctx.writer.event(pe, t).await;
    }
    Ok(requeue_at(d.wake_at, now))
}

async fn cleanup(pe: &PolicyException, ctx: &Context) -> Result<Action, Error> {
    let ns = pe.namespace().unwrap_or_default();
    let uid = pe.uid().unwrap_or_default();
    if managed_rbac::remove(ctx, &ns, &rbac::exception_name(&pe.name_any()), &uid).await? {
        let note = format!("{} (exception deleted)", exception::revoked_note(&pe.name_any()));
        ctx.writer.event(pe, &Notice::normal(reasons::REVOKED, note)).await;
    }
    Ok(Action::await_change())
}
