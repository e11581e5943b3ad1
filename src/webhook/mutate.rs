//! The mutating webhook for PolicyExceptions (`/mutate`): records the
//! authenticated writer as the requester, turns approval annotations into
//! signed approvals, and refuses approvals that are not the caller's own
//! to give (`decide::approval::admit`). Its failurePolicy is Fail: no
//! exception is written without passing here, and one that was (the webhook
//! unregistered) carries no record the controller will trust.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use kube::api::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};

use super::review::{self, Read, Refusal};
use super::{Judge, is_own};
use crate::api::PolicyException;
use crate::decide::approval::{self, Caller};
use crate::decide::validate;

type Answer = Result<Json<AdmissionReview<DynamicObject>>, Refusal>;

/// Answers one mutating admission review, read straight into the typed
/// object (`review::read`: large ones within a budget, one at a time).
pub async fn mutate(State(judge): State<Arc<Judge>>, request: Request) -> Answer {
    let Read { review, _held } = review::read::<PolicyException>(&judge.reviews, request).await?;
    let request: AdmissionRequest<PolicyException> = match review.try_into() {
        Ok(r) => r,
        Err(e) => return Ok(Json(AdmissionResponse::invalid(e.to_string()).into_review())),
    };
    let response = AdmissionResponse::from(&request);
    let own = is_own(&request, &judge);
    let relevant = request.kind.kind == "PolicyException"
        && matches!(request.operation, Operation::Create | Operation::Update)
        && request.sub_resource.is_none()
        // The controller only adds and removes its finalizer.
        && !own;
    if !relevant {
        return Ok(Json(response.into_review()));
    }
    if !judge.wait_synced().await {
        return Err((StatusCode::SERVICE_UNAVAILABLE, "admission caches not synced yet"));
    }
    let now = jiff::Timestamp::now();
    let verdict = tokio::task::spawn_blocking(move || decide(request, &judge, now))
        .await
        .map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, "the verdict failed"))?;
    let response = match verdict {
        Ok(None) => response,
        Ok(Some((patch, warnings))) => {
            let mut response = match response.clone().with_patch(patch) {
                Ok(r) => r,
                Err(_) => return Err((StatusCode::INTERNAL_SERVER_ERROR, "the patch could not be written")),
            };
            if !warnings.is_empty() {
                response.warnings = Some(warnings);
            }
            response
        }
        Err(message) => response.deny(message),
    };
    Ok(Json(response.into_review()))
}

/// The patch and warnings for one request (`None`: nothing to change), or
/// why it is refused. Pure apart from reading the caches.
/// Takes the request by value: the objects are moved, not copied (an
/// exception may be megabytes).
pub fn decide(
    mut request: AdmissionRequest<PolicyException>,
    judge: &Judge,
    now: jiff::Timestamp,
) -> Result<Option<(json_patch::Patch, Vec<String>)>, String> {
    let Some(mut new) = request.object.take() else {
        return Ok(None);
    };
    let ns = request.namespace.clone().unwrap_or_default();
    if !judge.caches.covers(&ns) {
        return Ok(None);
    }
    new.metadata.namespace = Some(ns.clone());
    if new.metadata.name.as_deref().is_none_or(str::is_empty) && !request.name.is_empty() {
        new.metadata.name = Some(request.name.clone());
    }
    let old: Option<PolicyException> = match (&request.operation, request.old_object.take()) {
        (Operation::Update, Some(mut old)) => {
            old.metadata.namespace = Some(ns.clone());
            Some(old)
        }
        _ => None,
    };
    let control = judge.caches.control_for_exceptions(&ns, &new.spec.control);
    let rules = control.as_ref().map(|c| validate::exception_rules(&c.spec));
    let why;
    let policy = match &rules {
        Some(Ok(r)) => Ok(&r.approval),
        Some(Err(_)) => {
            why = format!("ControlOwnership {:?} is invalid", new.spec.control);
            Err(why.as_str())
        }
        None => {
            why = format!(
                "ControlOwnership {:?} does not exist in this namespace",
                new.spec.control
            );
            Err(why.as_str())
        }
    };
    let groups = request.user_info.groups.clone().unwrap_or_default();
    let caller = Caller {
        user: request.user_info.username.as_deref().unwrap_or_default(),
        groups: &groups,
    };
    let admitted = approval::admit(caller, old.as_ref(), &new, policy, &judge.key, now)?;
    let before = new.metadata.annotations.clone().unwrap_or_default();
    if admitted.annotations == before && admitted.warnings.is_empty() {
        return Ok(None);
    }
    let patch = serde_json::from_value(serde_json::json!([
        {"op": "add", "path": "/metadata/annotations", "value": admitted.annotations}
    ]))
    .map_err(|e| format!("internal: {e}"))?;
    Ok(Some((patch, admitted.warnings)))
}
