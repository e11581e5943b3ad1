//! The whole PolicyException lifecycle, as one pure function:
//! (exception, its control, the ceiling, now) → phase, desired grant, status,
//! next wake-up and the event to record.
//!
//! ```text
//!   invalid spec ───────────────────────────────► Rejected
//!   not approved (see `approval`), before expiry ► Pending, AwaitingApproval (wake at expiresAt)
//!   now < startsAt ─────────────────────────────► Pending   (wake at startsAt)
//!   startsAt ≤ now < expiresAt ─────────────────► Active    (wake at ExpiringSoon, expiresAt)
//!   now ≥ expiresAt, or previously Expired,
//!   or now ≥ the expiresAt recorded in status ──► Expired   (sticky, never again Active)
//! ```
//!
//! The conditions of each phase and the next wake-up are in `conditions`,
//! the Event for a phase change in `transition`.

use jiff::Timestamp;
use kube::{Resource, ResourceExt};

use super::approval::{self, Judged, State, Trust};
use super::ceiling::Ceiling;
use super::conditions::merge;
use super::invalid_spec::Invalid;
use super::notice::Notice;
use super::rbac::{self, ManagedFor, RbacPair};
use super::time;
use super::validate::{self, Against, Window};
use crate::api::{ControlOwnership, Phase, PolicyException, PolicyExceptionStatus};

mod approval_conditions;
mod conditions;
mod grant_failure;
mod history;
mod transition;

use conditions::conditions_and_wake;
pub use conditions::expiring_soon_from;
pub use grant_failure::with_grant_failure;
use transition::transition;

/// Where an exception is in its life, with the instants that matter.
#[derive(Clone, Debug, PartialEq)]
pub enum Lifecycle {
    /// The spec is invalid.
    Rejected(Vec<Invalid>),
    /// Valid, not yet started.
    Pending(Window),
    /// Valid, but not approved as it stands: nothing applies.
    Awaiting(Window, Waiting),
    /// Valid and in force.
    Active(Window),
    /// Over. `window` is `None` when the spec was changed into something
    /// invalid after it expired; it stays expired all the same.
    Expired(Option<Window>),
}

/// Why an exception waits for approval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    /// AwaitingApproval or RequesterUnverified.
    pub reason: &'static str,
    /// What is missing, and how to give it.
    pub message: String,
}

impl Lifecycle {
    /// The phase written to status.
    pub fn phase(&self) -> Phase {
        match self {
            Lifecycle::Rejected(_) => Phase::Rejected,
            Lifecycle::Pending(_) | Lifecycle::Awaiting(..) => Phase::Pending,
            Lifecycle::Active(_) => Phase::Active,
            Lifecycle::Expired(_) => Phase::Expired,
        }
    }
}

/// The instant an exception's default start is measured from.
pub fn created_at(pe: &PolicyException, now: Timestamp) -> Timestamp {
    pe.metadata.creation_timestamp.as_ref().map(|t| t.0).unwrap_or(now)
}

/// Classifies an exception at `now`. Pure: the same inputs always give the
/// same answer. Parses the control's exception rules; a caller judging many
/// exceptions to one control parses them once and calls [`lifecycle_against`].
pub fn lifecycle(
    pe: &PolicyException,
    control: Option<&ControlOwnership>,
    ceiling: &Ceiling,
    trust: Trust<'_>,
    now: Timestamp,
) -> Lifecycle {
    let rules = control.map(|c| validate::exception_rules(&c.spec));
    lifecycle_against(pe, Against::of(rules.as_ref()), ceiling, trust, now)
}

/// Classifies an exception at `now` against its control's parsed rules.
pub fn lifecycle_against(
    pe: &PolicyException,
    control: Against<'_>,
    ceiling: &Ceiling,
    trust: Trust<'_>,
    now: Timestamp,
) -> Lifecycle {
    // Expiry is sticky from the moment the window the controller last
    // recorded in status is over, even if it never got to write Expired
    // (down, stalled, handing over the lease): an expiresAt moved forward
    // after that instant must not revive the grant. An extension counts
    // only once the controller has recorded it before the old expiry.
    let (was_expired, recorded) = expiry_recorded(pe, now);
    let alone = validate::exception_alone(&pe.spec, created_at(pe, now));
    let checked = alone
        .clone()
        .and_then(|w| validate::exception_against(&pe.spec, w, control, ceiling));
    match checked {
        // Expiry is sticky: a changed or re-applied spec never revives it,
        // and the record keeps the window that really ended, not a later
        // expiresAt written since.
        _ if was_expired => Lifecycle::Expired(checked.ok().map(|w| {
            let expires_at = recorded.map_or(w.expires_at, |r| r.min(w.expires_at));
            Window {
                starts_at: w.starts_at.min(expires_at),
                expires_at,
            }
        })),
        Err(errors) => match alone {
            // A window that is over stays over, even if the control vanished.
            Ok(w) if now >= w.expires_at => Lifecycle::Expired(Some(w)),
            _ => Lifecycle::Rejected(errors),
        },
        Ok(w) if now >= w.expires_at => Lifecycle::Expired(Some(w)),
        Ok(w) => match judged(pe, control, trust, w).map(|j| j.state) {
            Some(State::Awaiting { reason, message }) => Lifecycle::Awaiting(w, Waiting { reason, message }),
            _ if now < w.starts_at => Lifecycle::Pending(w),
            _ => Lifecycle::Active(w),
        },
    }
}

/// The approval verdict of `pe` with window `w`, when its control's rules
/// are known.
fn judged(pe: &PolicyException, control: Against<'_>, trust: Trust<'_>, w: Window) -> Option<Judged> {
    match control {
        Against::Rules(rules) => Some(approval::judge(
            pe,
            &rules.approval,
            trust,
            w.expires_at.duration_since(w.starts_at),
        )),
        _ => None,
    }
}

/// May this exception hold its grant at `now`, judged from its own stored
/// spec and status alone: its window parses, has started, has not ended,
/// and expiry has not been recorded. The sweeper's backstop rule; it needs
/// neither the control nor the ceiling. It can keep a grant [`lifecycle`]
/// would not (a Rejected exception, an approver the control no longer
/// lists): those are its reconciler's to revoke, at once, on the change
/// that caused them.
/// With a key, it also needs a signed approval of the content as it
/// stands (whether its approver still counts is the reconciler's call).
pub fn window_open(pe: &PolicyException, trust: Trust<'_>, policy: Option<&approval::Policy>, now: Timestamp) -> bool {
    let (was_expired, _) = expiry_recorded(pe, now);
    let window = validate::exception_alone(&pe.spec, created_at(pe, now));
    !was_expired && window.is_ok_and(|w| w.starts_at <= now && now < w.expires_at) && signed_approval(pe, trust, policy)
}

/// Whether `pe` carries a verified requester and at least one approval
/// signed for its current content, or a requester who wrote all of it and
/// whom its control (`policy`) trusts as its GitOps applier.
fn signed_approval(pe: &PolicyException, trust: Trust<'_>, policy: Option<&approval::Policy>) -> bool {
    let Trust::Verify(key) = trust else {
        return true;
    };
    let d = approval::digest(pe);
    let (ns, name) = (pe.namespace().unwrap_or_default(), pe.name_any());
    let Some(requester) = approval::verified_requester(pe, key) else {
        return false;
    };
    (requester.whole && policy.is_some_and(|p| p.is_trusted_applier(&requester.user)))
        || approval::records(pe)
            .1
            .iter()
            .any(|r| r.digest == d && key.verifies(&ns, &name, r))
}

/// Whether status already records the end at `now` (Expired, or a
/// recorded `expiresAt` that has passed). The end is sticky: whatever the
/// spec says, the decision for such an exception revokes, so a caller may
/// revoke on this alone, before deciding anything else.
pub fn ended_by_status(pe: &PolicyException, now: Timestamp) -> bool {
    expiry_recorded(pe, now).0
}

/// The instant from which no grant of `pe` may exist, whatever else is
/// judged: the earlier of the end its status records (final, see
/// `ended_by_status`) and the end its spec sets (a window is open only
/// before it). None when neither names one. The expiry clock revokes on
/// this alone, so it must never be earlier than a decision would revoke.
pub fn grant_ends(pe: &PolicyException) -> Option<Timestamp> {
    let recorded = pe
        .status
        .as_ref()
        .and_then(|s| s.expires_at.as_deref())
        .and_then(|t| time::parse(t).ok());
    let spec = time::parse(&pe.spec.expires_at).ok();
    recorded.into_iter().chain(spec).min()
}

/// Whether status already records the end (Expired, or a recorded
/// `expiresAt` that has passed at `now`), and the recorded `expiresAt`.
fn expiry_recorded(pe: &PolicyException, now: Timestamp) -> (bool, Option<Timestamp>) {
    let status = pe.status.as_ref();
    let recorded = status
        .and_then(|s| s.expires_at.as_deref())
        .and_then(|t| time::parse(t).ok());
    let ended = status.is_some_and(|s| s.phase == Some(Phase::Expired)) || recorded.is_some_and(|r| now >= r);
    (ended, recorded)
}

/// Everything the reconciler needs to do for one exception.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Where it is.
    pub lifecycle: Lifecycle,
    /// The grant that must exist; `None` means any grant must be deleted.
    pub grant: Option<RbacPair>,
    /// The status to hold (compare before writing).
    pub status: PolicyExceptionStatus,
    /// The next instant the decision changes by itself.
    pub wake_at: Option<Timestamp>,
    /// Event for a phase change, if any: Granted, Activated, Expired,
    /// Rejected, Pending or AwaitingApproval.
    pub event: Option<Notice>,
    /// Event for a break-glass approval, or its review.
    pub break_glass_event: Option<Notice>,
    /// Approved by break glass and not reviewed yet (reported loudly).
    pub break_glass_unreviewed: bool,
}

/// Decides the desired state of one exception at `now`.
pub fn decide(
    pe: &PolicyException,
    control: Option<&ControlOwnership>,
    ceiling: &Ceiling,
    trust: Trust<'_>,
    now: Timestamp,
) -> Decision {
    let rules = control.map(|c| validate::exception_rules(&c.spec));
    let against = Against::of(rules.as_ref());
    let lifecycle = lifecycle_against(pe, against, ceiling, trust, now);
    let grant = grant(pe, &lifecycle);
    let (mut conditions, wake_at) = conditions_and_wake(&lifecycle, grant.is_some(), now);
    let previous = pe.status.clone().unwrap_or_default();
    let judged = match &lifecycle {
        Lifecycle::Rejected(_) | Lifecycle::Expired(None) => None,
        Lifecycle::Pending(w) | Lifecycle::Active(w) | Lifecycle::Awaiting(w, _) | Lifecycle::Expired(Some(w)) => {
            judged(pe, against, trust, *w)
        }
    };
    if let Some(j) = &judged {
        conditions.extend(approval_conditions::conditions(j, &pe.spec.approver));
    }
    let generation = pe.metadata.generation;
    let expires_at = match &lifecycle {
        Lifecycle::Pending(w) | Lifecycle::Awaiting(w, _) | Lifecycle::Active(w) | Lifecycle::Expired(Some(w)) => {
            Some(time::format(w.expires_at))
        }
        Lifecycle::Expired(None) => previous.expires_at.clone(),
        // Keeps the expiry of the last window it was valid for, so a detour
        // through Rejected does not wipe the record that makes expiry sticky.
        Lifecycle::Rejected(_) => previous.expires_at.clone(),
    };
    let approval = match &judged {
        Some(j) => j.status.clone(),
        // Rejected, or expired into something invalid: the last verified
        // record stays.
        None => previous.approval.clone(),
    };
    let mut status = PolicyExceptionStatus {
        observed_generation: generation,
        phase: Some(lifecycle.phase()),
        expires_at,
        granted_role: grant.as_ref().map(|g| g.name().to_string()),
        conditions: merge(&previous.conditions, conditions, generation, now),
        approval,
        history: previous.history.clone(),
    };
    let event = transition(&previous, &lifecycle, pe.spec.grant.is_some(), &status);
    let break_glass_event = approval_conditions::break_glass_event(&previous, &status);
    status.history = history::recorded(&previous, &status, event.as_ref(), now);
    if let Some(e) = &break_glass_event {
        history::append(&mut status.history, now, e.reason, &e.note);
    }
    let break_glass_unreviewed = matches!(lifecycle, Lifecycle::Active(_) | Lifecycle::Pending(_))
        && judged.as_ref().is_some_and(|j| j.break_glass == Some(false));
    Decision {
        lifecycle,
        grant,
        status,
        wake_at,
        event,
        break_glass_event,
        break_glass_unreviewed,
    }
}

/// The grant pair, which exists only while Active.
fn grant(pe: &PolicyException, lifecycle: &Lifecycle) -> Option<RbacPair> {
    let (Lifecycle::Active(_), Some(g)) = (lifecycle, &pe.spec.grant) else {
        return None;
    };
    let name = pe.name_any();
    Some(rbac::pair(
        &rbac::exception_name(&name),
        &pe.namespace().unwrap_or_default(),
        &g.service_account,
        &g.rules,
        &ManagedFor::Exception {
            exception: &name,
            control: &pe.spec.control,
        },
        pe.controller_owner_ref(&()),
    ))
}

/// The event for a grant removed because the exception left Active other
/// than by expiry (rejected after a change, or deleted).
pub fn revoked_note(name: &str) -> String {
    format!("revoked the grant {}", rbac::exception_name(name))
}

#[cfg(test)]
mod tests;
