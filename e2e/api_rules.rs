//! The rules the API server enforces by itself: the CEL rules of the CRDs
//! (generated from the Rust types) and the ValidatingAdmissionPolicy of
//! `config/policy`. Each runs with the controller and the webhook stopped,
//! so the refusal can only come from the API server, and each checks the
//! message a user sees from `kubectl apply`.

use std::time::Duration;

use crate::exceptions;
use crate::harness::{self, Env, eventually, from_now};

/// The exceptions suite's control, with other owners or task.
fn control(owner: &str, backup: &str, task: &str) -> String {
    exceptions::control("payments", "")
        .replace("owner: {name: payments-team}", &format!("owner: {{name: \"{owner}\"}}"))
        .replace(
            "backupOwner: {name: security-team}",
            &format!("backupOwner: {{name: \"{backup}\"}}"),
        )
        .replace("task: Serves the API", &format!("task: \"{task}\""))
}

fn exception(name: &str, approver: &str, requester: &str, starts: &str, expires: &str) -> String {
    exceptions::Exc {
        approver,
        requester,
        starts: starts.to_string(),
        expires: expires.to_string(),
        ..exceptions::good(name)
    }
    .yaml()
}

/// Applies `yaml` and requires the API server to refuse it with a message
/// naming `field` and containing `message`; nothing is stored.
fn refused(env: &Env, ns: &str, case: &str, yaml: &str, field: &str, message: &str) {
    let out = env.apply(ns, yaml);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{case}: the API server accepted it:\n{yaml}");
    assert!(
        stderr.contains(field) && stderr.contains(message),
        "{case}: expected {field:?} and {message:?} in the refusal, got:\n{stderr}"
    );
}

#[tokio::test]
async fn the_api_server_refuses_what_one_object_shows_is_invalid() {
    let env = harness::without_controller();
    let ns = env.namespace("cel").await;
    let (start, end) = (from_now(-5), from_now(3600));

    // Valid objects are accepted: the rules refuse only what they name.
    env.apply_ok(&ns, &control("payments-team", "security-team", "Serves the API"));
    env.apply_ok(
        &ns,
        &exception("ok", "alice@example.com", "carol@example.com", &start, &end),
    );

    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "owner is backup owner",
            control("payments-team", " payments-team ", "Serves the API"),
            "spec.backupOwner.name",
            "backupOwner must name a different team than owner (OwnerIsBackupOwner)",
        ),
        (
            "empty owner",
            control(" ", "security-team", "Serves the API"),
            "spec.owner.name",
            "name is required and must not be empty (MissingField)",
        ),
        (
            "empty task",
            control("payments-team", "security-team", "  "),
            "spec.workloadIdentities[0].task",
            "task is required: one identity, one task (MissingField)",
        ),
        (
            "window backwards",
            exception("backwards", "alice@example.com", "carol@example.com", &end, &start),
            "spec.expiresAt",
            "expiresAt must be after startsAt (InvalidWindow)",
        ),
        (
            "empty window",
            exception("empty", "alice@example.com", "carol@example.com", &start, &start),
            "spec.expiresAt",
            "expiresAt must be after startsAt (InvalidWindow)",
        ),
        (
            "self-approved, other case and spaces",
            exception("self", "Alice@Example.com", " alice@example.com", &start, &end),
            "spec.approver",
            "the approver must not be the requester; someone else must approve (ApproverIsRequester)",
        ),
        (
            "empty ticket",
            exception("noticket", "alice@example.com", "carol@example.com", &start, &end)
                .replace("ticket: \"SEC-1\"", "ticket: \" \""),
            "spec: Invalid value",
            "control, ticket, approver and reason are required and must not be empty (MissingField)",
        ),
        (
            "oversized approver",
            exception("huge", &"a".repeat(300), "carol@example.com", &start, &end),
            "spec.approver",
            "may not be more than 256 bytes",
        ),
    ];
    for (case, yaml, field, message) in &cases {
        refused(env, &ns, case, yaml, field, message);
    }
    // The refused exceptions were not stored; the valid one was.
    let names = env.kubectl_ok(&["get", "policyexceptions", "-n", &ns, "-o", "name"]);
    assert_eq!(names.trim(), "policyexception.steward.dev/ok", "{names}");
}

#[tokio::test]
async fn an_expired_exception_is_a_record_the_api_server_keeps() {
    let env = harness::without_controller();
    let ns = env.namespace("vap").await;
    let (start, end) = (from_now(-7200), from_now(-3600));
    let yaml = exception("old", "alice@example.com", "carol@example.com", &start, &end);
    env.apply_ok(&ns, &control("payments-team", "security-team", "Serves the API"));
    env.apply_ok(&ns, &yaml);

    // Not yet Expired in status (no controller runs): the window may still
    // be corrected, as before the controller has seen it.
    let corrected = yaml.replace(&end, &from_now(-3000));
    env.apply_ok(&ns, &corrected);

    // The status the controller writes at expiry, written here as the
    // admin through the status subresource.
    env.kubectl_ok(&[
        "patch",
        "policyexception/old",
        "-n",
        &ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Expired"}}"#,
    ]);

    // The API server loads policies asynchronously: wait until it refuses
    // a server-side dry run before asserting on real writes.
    let revived = corrected.replace(&expires_at_of(&corrected), &from_now(3600));
    eventually(Duration::from_secs(30), "the policy in force", || {
        let out = env.apply_with(&ns, &revived, &["--dry-run=server"]);
        async move { !out.status.success() }
    })
    .await;
    let message = "spec: this PolicyException has expired and is a record";
    let edits = [
        ("extend an expired window", revived),
        (
            "change an expired grant",
            corrected.replace("verbs: [get]", "verbs: [get, list]"),
        ),
        (
            "add tolerations to an expired exception",
            format!(
                "{corrected}  tolerate:\n    - {{kind: ClusterRoleBinding, name: legacy-admin, \
                 roleRef: {{kind: ClusterRole, name: cluster-admin}}, subjects: [{{kind: ServiceAccount, name: api}}]}}\n"
            ),
        ),
        (
            "rewrite who approved it",
            corrected.replace("approver: \"alice@example.com\"", "approver: \"bob@example.com\""),
        ),
        (
            "rewrite its reason",
            corrected.replace("reason: Debug a stuck payout", "reason: Nothing to see"),
        ),
    ];
    for (case, yaml) in &edits {
        assert_ne!(yaml, &corrected, "{case}: the edit changed nothing");
        refused(env, &ns, case, yaml, message, "(ExpiredIsRecord)");
    }

    // Re-applying the record unchanged (Argo CD's resync) and labelling it
    // still work.
    env.apply_ok(&ns, &corrected);
    env.kubectl_ok(&["label", "-n", &ns, "policyexception/old", "audit=2026-q4"]);
    let stored = env.kubectl_ok(&[
        "get",
        "policyexception/old",
        "-n",
        &ns,
        "-o",
        "jsonpath={.spec.expiresAt} {.spec.approver} {.metadata.labels.audit}",
    ]);
    assert_eq!(
        stored,
        format!("{} alice@example.com 2026-q4", expires_at_of(&corrected))
    );
}

/// The `expiresAt` value written in an exception's YAML.
fn expires_at_of(yaml: &str) -> String {
    yaml.lines()
        .find_map(|l| l.trim().strip_prefix("expiresAt: "))
        .map(|v| v.trim_matches('"').to_string())
        .expect("expiresAt in the YAML")
}
