//! Whether an exception, as it stands, is approved: the signed records
//! admission wrote, checked against the key, the current content and the
//! control's approval rules as they are now (an approver removed from the
//! control no longer counts, a trusted applier no longer listed neither).

use jiff::SignedDuration;
use kube::ResourceExt;

use super::policy::Policy;
use super::signing::{Key, digest};
use crate::api::approval::{APPROVALS_ANNOTATION, REQUESTED_BY_ANNOTATION, Record, Via};
use crate::api::limits;
use crate::api::{ApprovalEntry, ApprovalStatus, PolicyException};

/// How approval records are judged.
#[derive(Clone, Copy, Debug)]
pub enum Trust<'a> {
    /// Verified with the key: the controller and the webhook.
    Verify(&'a Key),
    /// Taken as approved: `steward validate` offline, which cannot know who
    /// did what (it says so), and unit tests of everything else.
    AssumeApproved,
}

/// Condition reasons of approval. API, like the other reasons.
pub mod reasons {
    /// Not yet approved by enough approvers.
    pub const AWAITING_APPROVAL: &str = "AwaitingApproval";
    /// No verified record of who wrote the exception as it stands.
    pub const REQUESTER_UNVERIFIED: &str = "RequesterUnverified";
    /// Approved by enough approvers.
    pub const APPROVED: &str = "Approved";
    /// Approved through the Git review a trusted applier applied.
    pub const TRUSTED_APPLIER: &str = "ApprovedViaTrustedApplier";
    /// Approved by its own requester in an emergency.
    pub const BREAK_GLASS: &str = "BreakGlass";
    /// A break-glass exception an approver has since reviewed.
    pub const REVIEWED: &str = "Reviewed";
}

/// How an exception came to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// Enough distinct approvers.
    Approvers,
    /// A trusted GitOps applier wrote it.
    TrustedApplier,
    /// A break-glass group member approved it themselves.
    BreakGlass,
}

/// The verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Approved: the grant and tolerations may apply.
    Approved(How),
    /// Nothing applies until approved.
    Awaiting {
        /// AwaitingApproval or RequesterUnverified.
        reason: &'static str,
        /// What is missing and how to give it.
        message: String,
    },
}

impl State {
    /// Whether the grant and tolerations may apply.
    pub fn applies(&self) -> bool {
        matches!(self, State::Approved(_))
    }
}

/// The verdict with what status shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judged {
    /// The verdict.
    pub state: State,
    /// A break-glass approval of the content as it stands: `Some(false)`
    /// until an approver has reviewed it, `Some(true)` after.
    pub break_glass: Option<bool>,
    /// Verified requester and approvals, for status.
    pub status: Option<ApprovalStatus>,
}

/// The records on `pe`, as written (unverified).
pub fn records(pe: &PolicyException) -> (Option<Record>, Vec<Record>) {
    let annotations = pe.annotations();
    let requester = annotations
        .get(REQUESTED_BY_ANNOTATION)
        .and_then(|s| serde_json::from_str::<Record>(s).ok());
    let mut approvals: Vec<Record> = annotations
        .get(APPROVALS_ANNOTATION)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    approvals.truncate(limits::APPROVAL_RECORDS);
    (requester, approvals)
}

/// The verified requester of `pe` as it stands: a record signed by `key`
/// for this exception and its current content.
pub fn verified_requester(pe: &PolicyException, key: &Key) -> Option<Record> {
    let (requester, _) = records(pe);
    let d = digest(pe);
    requester.filter(|r| r.via == Via::Request && r.digest == d && verifies(key, pe, r))
}

fn verifies(key: &Key, pe: &PolicyException, r: &Record) -> bool {
    key.verifies(
        pe.metadata.namespace.as_deref().unwrap_or_default(),
        pe.metadata.name.as_deref().unwrap_or_default(),
        r,
    )
}

/// Judges `pe` against its control's `policy`; `window` is its length.
pub fn judge(pe: &PolicyException, policy: &Policy, trust: Trust<'_>, window: SignedDuration) -> Judged {
    let key = match trust {
        crate::decide::approval::Trust::AssumeApproved => {
            return Judged {
                state: State::Approved(How::Approvers),
                break_glass: None,
                status: None,
            };
        }
        Trust::Verify(key) => key,
    };
    let required = policy.min_approvals;
    let Some(requester) = verified_requester(pe, key) else {
        return Judged {
            state: State::Awaiting {
                reason: reasons::REQUESTER_UNVERIFIED,
                message: "there is no verified record of who wrote this exception as it stands (it was written \
                          while Steward's admission webhook was not called, or the record is not Steward's): \
                          nothing applies; create it again with the webhook in place"
                    .into(),
            },
            break_glass: None,
            status: Some(ApprovalStatus {
                required: i32::try_from(required).ok(),
                ..Default::default()
            }),
        };
    };
    let d = digest(pe);
    let (_, approvals) = records(pe);
    let mut approvers: Vec<&Record> = Vec::new();
    // A trusted applier approves what it wrote whole: Git's content.
    let via_git: Option<&Record> =
        (requester.whole && policy.is_trusted_applier(&requester.user)).then_some(&requester);
    let mut break_glass: Option<&Record> = None;
    for r in approvals.iter().filter(|r| r.digest == d && verifies(key, pe, r)) {
        match r.via {
            Via::Approver
                if r.user != requester.user
                    && policy.is_approver(&r.user, &r.groups)
                    && !approvers.iter().any(|a| a.user == r.user) =>
            {
                approvers.push(r)
            }
            // Break glass is self-approval: by the requester of this very
            // content, nobody else.
            Via::BreakGlass
                if r.user == requester.user
                    && policy
                        .break_glass_for(&r.groups)
                        .is_some_and(|b| window <= b.max_duration) =>
            {
                break_glass = break_glass.or(Some(r))
            }
            _ => {}
        }
    }
    let entry = |r: &Record, reviewer: Option<String>| ApprovalEntry {
        user: r.user.clone(),
        via: match r.via {
            Via::Request => Via::TrustedApplier.as_str().into(),
            via => via.as_str().into(),
        },
        time: r.at.clone(),
        reviewer,
    };
    let mut entries: Vec<ApprovalEntry> = Vec::new();
    if let Some(r) = via_git {
        entries.push(entry(r, Some(pe.spec.approver.clone())));
    }
    if let Some(r) = break_glass {
        entries.push(entry(r, None));
    }
    entries.extend(approvers.iter().map(|r| entry(r, None)));
    let approved_by = (!entries.is_empty()).then(|| {
        let names: Vec<String> = entries
            .iter()
            .map(|e| match (&e.reviewer, e.via.as_str()) {
                (Some(reviewer), _) => format!("{reviewer} (via trusted applier {})", e.user),
                (None, "BreakGlass") => format!("{} (break glass)", e.user),
                _ => e.user.clone(),
            })
            .collect();
        names.join(", ")
    });
    let have = approvers.len() as u32;
    let state = if have >= required {
        State::Approved(How::Approvers)
    } else if via_git.is_some() {
        State::Approved(How::TrustedApplier)
    } else if break_glass.is_some() {
        State::Approved(How::BreakGlass)
    } else {
        State::Awaiting {
            reason: reasons::AWAITING_APPROVAL,
            message: format!(
                "approved by {have} of the {required} distinct approvers required (not counting the requester {}); \
                 approvers: {}; an approver runs: kubectl annotate policyexception {} -n {} {}=<their user name> {}={}",
                requester.user,
                policy.describe_approvers(),
                pe.name_any(),
                pe.namespace().unwrap_or_default(),
                crate::api::approval::APPROVE_ANNOTATION,
                crate::api::approval::APPROVE_DIGEST_ANNOTATION,
                &d[..super::admit::SHORT_DIGEST.min(d.len())],
            ),
        }
    };
    Judged {
        state,
        break_glass: break_glass.map(|_| have > 0),
        status: Some(ApprovalStatus {
            requested_by: Some(requester.user.clone()),
            approved_by,
            required: i32::try_from(required).ok(),
            digest: Some(d.clone()),
            approvals: entries,
        }),
    }
}
