//! What admission does to a PolicyException on its way in, as a pure
//! function of the request: it records who wrote the content (the verified
//! requester), turns an approver's `steward.dev/approve=<own name>` (or a
//! break-glass member's `steward.dev/break-glass=<own name>`) into a signed
//! approval of exactly that content, and approves through Git what a
//! trusted applier writes. The records are annotations no user can set:
//! whatever a request carries under those keys is replaced by what the old
//! object held, plus what this request earns.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::judge::verified_requester;
use super::policy::Policy;
use super::signing::{Key, digest, record, request_record};
use crate::api::PolicyException;
use crate::api::approval::{
    APPROVALS_ANNOTATION, APPROVE_ANNOTATION, APPROVE_DIGEST_ANNOTATION, BREAK_GLASS_ANNOTATION,
    REQUESTED_BY_ANNOTATION, Record, Via,
};

/// The shortest digest an approver may pass: `sha256:` and 12 hex digits.
pub const SHORT_DIGEST: usize = 19;
use crate::api::limits;
use crate::decide::duration;
use crate::decide::time;
use crate::decide::validate;

/// The authenticated caller, from the admission request's `userInfo`.
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    /// User name.
    pub user: &'a str,
    /// Groups.
    pub groups: &'a [String],
}

/// The annotations the object must carry, and warnings for the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admitted {
    /// The object's annotations after admission.
    pub annotations: BTreeMap<String, String>,
    /// Said back to the caller.
    pub warnings: Vec<String>,
}

/// The control's approval rules, or why there are none to apply.
pub type PolicyOf<'a> = Result<&'a Policy, &'a str>;

/// Admits a CREATE (`old` is `None`) or UPDATE of `new` by `caller`, or
/// says why not. `new` carries its namespace and name.
pub fn admit(
    caller: Caller<'_>,
    old: Option<&PolicyException>,
    new: &PolicyException,
    policy: PolicyOf<'_>,
    key: &Key,
    now: Timestamp,
) -> Result<Admitted, String> {
    let (ns, name) = (
        new.metadata.namespace.clone().unwrap_or_default(),
        new.metadata.name.clone().unwrap_or_default(),
    );
    if name.is_empty() {
        return Err(
            "a PolicyException needs metadata.name: Steward records who asked for it under its name, \
                    so generateName is not supported"
                .into(),
        );
    }
    let mut annotations = new.metadata.annotations.clone().unwrap_or_default();
    let mut warnings = Vec::new();
    let old_annotations = old.and_then(|o| o.metadata.annotations.clone()).unwrap_or_default();
    for k in [REQUESTED_BY_ANNOTATION, APPROVALS_ANNOTATION] {
        let sent = annotations.remove(k);
        let held = old_annotations.get(k).cloned();
        if sent.is_some() && sent != held {
            warnings.push(format!(
                "{k} is written by Steward's admission only; the value sent was replaced"
            ));
        }
        if let Some(v) = held {
            annotations.insert(k.to_string(), v);
        }
    }
    let approve = annotations.remove(APPROVE_ANNOTATION);
    let glass = annotations.remove(BREAK_GLASS_ANNOTATION);
    let reviewed = annotations.remove(APPROVE_DIGEST_ANNOTATION);
    let d = digest(new);
    let changed = old.is_none_or(|o| digest(o) != d);
    let stamp = time::format(now);
    let sign = |user: &str, groups: Vec<String>, via: Via| record(key, (&ns, &name), user, groups, via, &d, &stamp);

    if changed {
        if approve.is_some() || glass.is_some() {
            return Err(match old {
                None => format!(
                    "an exception cannot be approved as it is created: create it, then an approver runs \
                     kubectl annotate policyexception {name} -n {ns} {APPROVE_ANNOTATION}=<their user name>"
                ),
                Some(_) => "an approval must not change what it approves: make the change first, then approve \
                            the exception as it then stands"
                    .into(),
            });
        }
        let groups = policy.map(|p| p.relevant_groups(caller.groups)).unwrap_or_default();
        // The writer wrote all of the content when it created it, or
        // changed content it had written itself; a patch over someone
        // else's edit may keep fields the writer never had. (Whether the
        // writer is a trusted applier is the control's call, judged later:
        // the control may not be in the cache yet when Git applies both.)
        // Whole content stays whole only through writes by the same writer
        // over content it wrote whole: once anyone else has touched it,
        // fields the writer never set may survive every later patch.
        let whole = old.is_none_or(|o| verified_requester(o, key).is_some_and(|r| r.user == caller.user && r.whole));
        let requester = request_record(key, (&ns, &name), caller.user, groups, whole, &d, &stamp);
        put(&mut annotations, &requester, &[]);
        return Ok(Admitted { annotations, warnings });
    }
    let (value, via) = match (approve, glass) {
        (None, None) if reviewed.is_some() => {
            return Err(format!(
                "{APPROVE_DIGEST_ANNOTATION} goes with {APPROVE_ANNOTATION} or {BREAK_GLASS_ANNOTATION}"
            ));
        }
        (None, None) => return Ok(Admitted { annotations, warnings }),
        (Some(_), Some(_)) => {
            return Err(format!(
                "set {APPROVE_ANNOTATION} or {BREAK_GLASS_ANNOTATION}, not both"
            ));
        }
        (Some(v), None) => (v, Via::Approver),
        (None, Some(v)) => (v, Via::BreakGlass),
    };
    let key_name = if via == Via::Approver {
        APPROVE_ANNOTATION
    } else {
        BREAK_GLASS_ANNOTATION
    };
    if value.trim() != caller.user {
        return Err(format!(
            "{key_name} names {value:?}, but you are {:?}: an approval is an act of the approver's own \
             identity, so set it to your own user name",
            caller.user
        ));
    }
    if let Some(r) = reviewed.as_deref().map(str::trim)
        && (r.len() < SHORT_DIGEST || !d.starts_with(r))
    {
        return Err(format!(
            "{APPROVE_DIGEST_ANNOTATION}={r:?} is not what this exception asks for now ({}): it changed since it \
             was read, or the digest is shorter than {SHORT_DIGEST} characters; review it again",
            &d[..SHORT_DIGEST.min(d.len())]
        ));
    }
    // `changed` is false, so `old` exists.
    let Some(old) = old else {
        return Err("nothing to approve".into());
    };
    let policy = policy.map_err(|why| format!("cannot approve: {why}"))?;
    let Some(requester) = verified_requester(old, key) else {
        return Err(
            "this exception has no verified requester (it was written while Steward's admission \
                    webhook was not called): create it again, then approve it"
                .into(),
        );
    };
    let created = old.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
    let window = validate::exception_alone(&old.spec, created).ok();
    // After expiry an approval changes nothing, except the review a
    // break-glass exception still owes: that may come after the fact.
    let broken_glass = super::judge::records(old)
        .1
        .iter()
        .any(|r| r.via == Via::BreakGlass && r.digest == d && key.verifies(&ns, &name, r));
    if window.is_some_and(|w| now >= w.expires_at) && !(via == Via::Approver && broken_glass) {
        return Err("the exception has expired: an approval would change nothing".into());
    }
    let control = &old.spec.control;
    let groups = match via {
        Via::Approver => {
            if caller.user == requester.user {
                return Err(format!(
                    "{} asked for this exception (created it, or last changed what it asks for): someone \
                     else must approve it",
                    caller.user
                ));
            }
            if !policy.is_approver(caller.user, caller.groups) {
                return Err(format!(
                    "{} is not an approver of ControlOwnership {control:?} ({})",
                    caller.user,
                    policy.describe_approvers()
                ));
            }
            policy.relevant_groups(caller.groups)
        }
        _ => {
            if caller.user != requester.user {
                return Err(format!(
                    "break glass approves your own exception only; {} asked for this one, so an approver \
                     of ControlOwnership {control:?} must approve it ({})",
                    requester.user,
                    policy.describe_approvers()
                ));
            }
            let Some(bg) = policy.break_glass_for(caller.groups) else {
                return Err(match &policy.break_glass {
                    None => format!("ControlOwnership {control:?} allows no break glass"),
                    Some(b) => format!(
                        "{} is in none of the break-glass groups of ControlOwnership {control:?} ({})",
                        caller.user,
                        b.groups.join(", ")
                    ),
                });
            };
            let Some(w) = window else {
                return Err("the exception's window is invalid; fix it before breaking glass".into());
            };
            let length = w.expires_at.duration_since(w.starts_at);
            if length > bg.max_duration {
                return Err(format!(
                    "break glass is limited to windows of {}; this one is {}: shorten it first",
                    duration::format(bg.max_duration),
                    duration::format(length)
                ));
            }
            policy.relevant_groups(caller.groups)
        }
    };
    let (_, mut approvals) = super::judge::records(old);
    // Only Steward's own records of this content: one written while the
    // webhook was not called counts for nothing, and must not stand in
    // for (and so block) the approver's real approval.
    approvals.retain(|r| r.digest == d && key.verifies(&ns, &name, r));
    if !approvals.iter().any(|r| r.user == caller.user && r.via == via) {
        approvals.push(sign(caller.user, groups, via));
    }
    if approvals.len() > limits::APPROVAL_RECORDS {
        approvals.drain(..approvals.len() - limits::APPROVAL_RECORDS);
    }
    put(&mut annotations, &requester, &approvals);
    Ok(Admitted { annotations, warnings })
}

fn put(annotations: &mut BTreeMap<String, String>, requester: &Record, approvals: &[Record]) {
    // Serializing records of strings cannot fail.
    annotations.insert(
        REQUESTED_BY_ANNOTATION.into(),
        serde_json::to_string(requester).unwrap_or_default(),
    );
    if approvals.is_empty() {
        annotations.remove(APPROVALS_ANNOTATION);
    } else {
        annotations.insert(
            APPROVALS_ANNOTATION.into(),
            serde_json::to_string(approvals).unwrap_or_default(),
        );
    }
}
