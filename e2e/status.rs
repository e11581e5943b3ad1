//! What other tools read: kstatus for every state of SPEC §2, the
//! PolicyReport of a namespace, `/metrics`, and Events.

use std::time::Duration;

use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams};
use steward::api::{ControlOwnership, Phase, PolicyException};

use crate::harness::{Env, OUTCOME, condition_is, env, eventually, from_now, phase_is, wait_for};

use crate::kstatus::{self, Status};

fn control(name: &str, owner: &str, backup: &str, review: &str, enforcement: &str) -> String {
    format!(
        r#"
apiVersion: steward.dev/v1alpha1
kind: ControlOwnership
metadata: {{name: {name}}}
spec:
  layer: Identity
  owner: {{name: {owner}}}
  backupOwner: {{name: {backup}}}
  approvers: [alice@example.com]
  review: {review}
  exceptionPolicy: {{trustedAppliers: [{admin}]}}
  enforcement: {enforcement}
  workloadIdentities:
    - serviceAccount: {name}-sa
      task: Does one thing
      rules:
        - {{apiGroups: [""], resources: [configmaps], verbs: [get]}}
"#,
        admin = crate::harness::ADMIN_USER
    )
}

fn fresh() -> String {
    format!(r#"{{interval: 30d, lastReviewed: "{}"}}"#, from_now(-60))
}

/// Due in 10 days: inside the default 14-day warning.
fn due_soon() -> String {
    format!(r#"{{interval: 30d, lastReviewed: "{}"}}"#, from_now(-20 * 86_400))
}

fn overdue() -> String {
    format!(r#"{{interval: 1d, lastReviewed: "{}"}}"#, from_now(-3 * 86_400))
}

fn exception(name: &str, control: &str, approver: &str, starts: String, expires: String) -> String {
    format!(
        r#"
apiVersion: steward.dev/v1alpha1
kind: PolicyException
metadata: {{name: {name}}}
spec:
  control: {control}
  ticket: SEC-{name}
  approver: {approver}
  reason: Needed for a migration
  startsAt: "{starts}"
  expiresAt: "{expires}"
  grant:
    serviceAccount: {control}-sa
    rules:
      - {{apiGroups: [""], resources: [pods/log], verbs: [get]}}
"#
    )
}

fn settled<K: kube::Resource + serde::Serialize>(obj: Option<&K>) -> bool {
    obj.and_then(|o| serde_json::to_value(o).ok()).is_some_and(|v| {
        v["status"]["observedGeneration"] == v["metadata"]["generation"] && v["status"]["conditions"].is_array()
    })
}

/// One namespace holding an object in every state of the SPEC §2 table.
async fn every_state(env: &Env, prefix: &str) -> (String, Api<ControlOwnership>, Api<PolicyException>) {
    let ns = env.namespace(prefix).await;
    let mut docs = vec![
        control("healthy", "team-a", "team-b", &fresh(), "Audit"),
        control("due-soon", "team-a", "team-b", &due_soon(), "Audit"),
        control("overdue", "team-a", "team-b", &overdue(), "Audit"),
        control("drifted", "team-a", "team-b", &fresh(), "Audit"),
        // Invalid in a way only the controller can tell (the API server
        // refuses owner = backupOwner itself).
        control("invalid", "team-a", "team-b", "{interval: monthly}", "Audit"),
    ];
    docs.push(exception(
        "active",
        "healthy",
        "alice@example.com",
        from_now(-60),
        from_now(3600),
    ));
    docs.push(exception(
        "pending",
        "healthy",
        "alice@example.com",
        from_now(3600),
        from_now(7200),
    ));
    docs.push(exception(
        "expired",
        "healthy",
        "alice@example.com",
        from_now(-7200),
        from_now(-3600),
    ));
    // In the last fifth of its window: ExpiringSoon.
    docs.push(exception(
        "expiring-soon",
        "healthy",
        "alice@example.com",
        from_now(-3600),
        from_now(600),
    ));
    docs.push(exception(
        "rejected",
        "healthy",
        "mallory@example.com",
        from_now(-60),
        from_now(3600),
    ));
    env.apply_ok(&ns, &docs.join("---\n"));
    // Filed by someone who is not a trusted applier (the admin's powers,
    // another name), and approved by nobody.
    let out = env.apply_with(
        &ns,
        &exception(
            "awaiting-approval",
            "healthy",
            "alice@example.com",
            from_now(-60),
            from_now(3600),
        ),
        &["--as=erin", "--as-group=system:masters"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    env.apply_ok(
        &ns,
        &format!(
            r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: legacy}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}}
subjects: [{{kind: ServiceAccount, name: drifted-sa, namespace: {ns}}}]
"#
        ),
    );
    let client = env.admin().await;
    let cos: Api<ControlOwnership> = Api::namespaced(client.clone(), &ns);
    let pes: Api<PolicyException> = Api::namespaced(client, &ns);
    for name in ["healthy", "due-soon", "overdue", "drifted", "invalid"] {
        wait_for(&cos, name, Duration::from_secs(60), "settled", settled).await;
    }
    wait_for(&cos, "drifted", OUTCOME, "drifted", condition_is("Drifted", "True")).await;
    // Each in its own phase, not only settled: an exception judged before
    // the controller's cache held its control is Rejected (ControlNotFound)
    // until the control shows up.
    for (name, phase) in [
        ("active", Phase::Active),
        ("expiring-soon", Phase::Active),
        ("pending", Phase::Pending),
        ("awaiting-approval", Phase::Pending),
        ("expired", Phase::Expired),
        ("rejected", Phase::Rejected),
    ] {
        wait_for(
            &pes,
            name,
            Duration::from_secs(60),
            "settled",
            |p: Option<&PolicyException>| settled(p) && phase_is(phase)(p),
        )
        .await;
    }
    (ns, cos, pes)
}

/// Being reconciled: the API server's answer to a spec change of control
/// `healthy` carries the new generation with the old status.
fn being_reconciled(env: &Env, ns: &str) -> serde_json::Value {
    let out = env.kubectl_ok(&[
        "patch",
        "-n",
        ns,
        "controlownership/healthy",
        "--type=merge",
        "-p",
        r#"{"spec":{"description":"changed"}}"#,
        "-o",
        "json",
    ]);
    serde_json::from_str(&out).unwrap()
}

#[tokio::test]
async fn kstatus_of_every_state() {
    let env = env();
    let (ns, cos, pes) = every_state(env, "kstatus").await;
    let ks = |v: serde_json::Value| kstatus::compute(&v);
    let co = |name: &str| {
        let cos = cos.clone();
        let name = name.to_string();
        async move { serde_json::to_value(cos.get(&name).await.unwrap()).unwrap() }
    };
    let pe = |name: &str| {
        let pes = pes.clone();
        let name = name.to_string();
        async move { serde_json::to_value(pes.get(&name).await.unwrap()).unwrap() }
    };
    assert_eq!(ks(co("healthy").await), Status::Current);
    assert_eq!(ks(co("due-soon").await), Status::Current);
    assert_eq!(ks(co("overdue").await), Status::Current);
    assert_eq!(ks(co("drifted").await), Status::Current);
    assert_eq!(ks(co("invalid").await), Status::Failed);
    assert_eq!(ks(pe("active").await), Status::Current);
    assert_eq!(ks(pe("pending").await), Status::Current);
    assert_eq!(ks(pe("expiring-soon").await), Status::Current);
    // Expiry is the designed end of an exception, not a failure.
    assert_eq!(ks(pe("expired").await), Status::Current);
    assert_eq!(ks(pe("rejected").await), Status::Failed);
    assert_eq!(ks(being_reconciled(env, &ns)), Status::InProgress);
    let settled_again = wait_for(&cos, "healthy", OUTCOME, "re-settled", settled).await;
    assert_eq!(ks(serde_json::to_value(settled_again).unwrap()), Status::Current);
}

#[tokio::test]
async fn the_policy_report_lists_every_state() {
    let env = env();
    let (ns, _cos, _pes) = every_state(env, "report").await;
    let gvk = GroupVersionKind::gvk("wgpolicyk8s.io", "v1alpha2", "PolicyReport");
    let (ar, _) = kube::discovery::pinned_kind(&env.admin().await, &gvk).await.unwrap();
    let reports: Api<DynamicObject> = Api::namespaced_with(env.admin().await, &ns, &ar);
    let want_summary = serde_json::json!({"pass": 7, "fail": 3, "warn": 4, "error": 0, "skip": 1});
    let report = report_with_summary(&reports, &want_summary, "the namespace's states were reported").await;
    let mut got: Vec<(String, String, String)> = report.data["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["resources"][0]["name"].as_str().unwrap().to_string(),
                r["rule"].as_str().unwrap().to_string(),
                r["result"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    let want = vec![
        s("active", "exception-active", "skip"),
        s("awaiting-approval", "exception-awaiting-approval", "warn"),
        s("drifted", "no-undeclared-bindings", "fail"),
        s("drifted", "owner-and-backup-owner", "pass"),
        s("drifted", "review-up-to-date", "pass"),
        s("due-soon", "owner-and-backup-owner", "pass"),
        s("due-soon", "review-up-to-date", "warn"),
        s("expired", "exception-expired", "warn"),
        s("expiring-soon", "exception-expiring-soon", "warn"),
        s("healthy", "owner-and-backup-owner", "pass"),
        s("healthy", "review-up-to-date", "pass"),
        s("invalid", "owner-and-backup-owner", "pass"),
        s("invalid", "valid-spec", "fail"),
        s("overdue", "owner-and-backup-owner", "pass"),
        s("overdue", "review-up-to-date", "fail"),
    ];
    assert_eq!(got, want, "{:#}", report.data);
    // Warnings carry what Policy Reporter's targets route on.
    for r in report.data["results"].as_array().unwrap() {
        assert!(r["category"].is_string() && r["severity"].is_string(), "{r:#}");
    }
    let severity_of = |rule: &str| {
        report.data["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["rule"] == rule)
            .map(|r| r["severity"].clone())
    };
    assert_eq!(severity_of("exception-expiring-soon"), Some("low".into()));
    assert_eq!(severity_of("no-undeclared-bindings"), Some("high".into()));
    // The control whose review falls due within two weeks says so, with an
    // Event.
    let cos: Api<ControlOwnership> = Api::namespaced(env.admin().await, &ns);
    let due = cos.get("due-soon").await.unwrap();
    let soon = crate::harness::condition(&due, "ReviewDueSoon").expect("ReviewDueSoon");
    assert_eq!(
        (soon["status"].as_str(), soon["reason"].as_str()),
        (Some("True"), Some("ReviewDueSoon"))
    );
    env.wait_for_events(&ns, &["ReviewDueSoon"]).await;
    let drift = report.data["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "no-undeclared-bindings")
        .unwrap();
    assert_eq!(drift["properties"]["binding"], "RoleBinding/legacy");

    // Someone else's edit, then a deletion: each time the report comes back
    // as Steward builds it, with nothing in the namespace changing.
    let forged = serde_json::json!({"summary": {"pass": 15, "fail": 0, "warn": 0, "error": 0, "skip": 0}});
    reports
        .patch("steward", &PatchParams::default(), &Patch::Merge(&forged))
        .await
        .expect("edit the report");
    report_with_summary(&reports, &want_summary, "the edited report was restored").await;
    reports
        .delete("steward", &Default::default())
        .await
        .expect("delete the report");
    report_with_summary(&reports, &want_summary, "the deleted report was restored").await;
}

/// The report named `steward` once its summary is `want`; fails with the
/// last one read if that does not happen within `OUTCOME`.
async fn report_with_summary(reports: &Api<DynamicObject>, want: &serde_json::Value, what: &str) -> DynamicObject {
    let deadline = std::time::Instant::now() + OUTCOME;
    loop {
        let r = reports.get_opt("steward").await.unwrap();
        if let Some(r) = r.as_ref().filter(|r| r.data["summary"] == *want) {
            return r.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not so within {OUTCOME:?}: {what} (summary {want}); last report: {:#}",
            r.map(|r| r.data).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn metrics_count_what_happens() {
    let env = env();
    let ns = env.namespace("metrics").await;
    let scrape = env.metrics();
    let value = |scrape: &prometheus_parse::Scrape, name: &str, label: Option<(&str, &str)>| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                // A histogram's value here is its observation count (+Inf bucket).
                prometheus_parse::Value::Histogram(ref buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
                _ => 0.0,
            })
            .sum()
    };
    let reconciles = value(&scrape, "steward_reconciles_total", Some(("kind", "PolicyException")));
    let expiries = value(&scrape, "steward_expiries_enforced_total", None);

    env.apply_ok(&ns, &control("owner", "team-a", "team-b", &fresh(), "Audit"));
    // Long enough for a loaded machine to show it Active, and gauged, well
    // before it expires.
    let expires = from_now(12);
    let expires_at: jiff::Timestamp = expires.parse().unwrap();
    env.apply_ok(
        &ns,
        &exception("short", "owner", "alice@example.com", from_now(-1), expires),
    );
    let pes: Api<PolicyException> = Api::namespaced(env.admin().await, &ns);
    wait_for(&pes, "short", OUTCOME, "Active", phase_is(Phase::Active)).await;
    // The gauges come from the controller's cache, which sees the status
    // write through its own watch, after the admin's watch did: poll them
    // until they count this exception. The next expiry is this one's, or
    // an earlier one's (other tests share the controller): at most the time
    // left until this one expires (plus the time between the controller
    // rendering the scrape and this test reading its clock).
    let mut during = env.metrics();
    eventually(OUTCOME, "the Active exception's expiry gauged", || {
        during = env.metrics();
        let left = expires_at.duration_since(jiff::Timestamp::now()).as_secs_f64();
        let next = value(&during, "steward_next_expiry_seconds", None);
        let active = value(&during, "steward_exceptions", Some(("phase", "Active")));
        let ok = active >= 1.0 && left > 0.0 && next <= left + 1.0;
        async move { ok }
    })
    .await;
    // Per object: this exception's expiry and its control's review due date,
    // as Unix time, labelled by namespace and name.
    let series = |scrape: &prometheus_parse::Scrape, metric: &str, name: &str| -> Option<f64> {
        scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == metric
                    && s.labels.get("namespace") == Some(ns.as_str())
                    && s.labels.get("name") == Some(name)
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    // Per object, once the controller's cache holds this exception's status.
    let mut labels = None;
    eventually(OUTCOME, "this exception's expiry gauged", || {
        let scrape = env.metrics();
        labels = scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == "steward_exception_expiry_timestamp_seconds"
                    && s.labels.get("namespace") == Some(ns.as_str())
                    && s.labels.get("name") == Some("short")
            })
            .map(|s| (s.labels.get("control").map(str::to_string), s.value.clone()));
        let ok = labels.is_some();
        async move { ok }
    })
    .await;
    let (control_label, expiry) = labels.expect("gauged");
    assert_eq!(control_label.as_deref(), Some("owner"));
    assert!(
        matches!(expiry, prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) if v == expires_at.as_second() as f64),
        "per-exception expiry gauge {expiry:?}, want {expires_at}"
    );
    // The control's status (with its due date) may reach the cache after
    // the exception's.
    eventually(OUTCOME, "the control's review due date gauged", || {
        let due = series(&env.metrics(), "steward_control_review_due_timestamp_seconds", "owner");
        let ok = due.is_some_and(|d| d > jiff::Timestamp::now().as_second() as f64);
        async move { ok }
    })
    .await;
    // Counted when a reconcile ends, after the status write (and its
    // Events) the watch above may already have shown.
    eventually(OUTCOME, "the exception's reconcile counted", || {
        let ok = value(
            &env.metrics(),
            "steward_reconciles_total",
            Some(("kind", "PolicyException")),
        ) > reconciles;
        async move { ok }
    })
    .await;
    wait_for(&pes, "short", OUTCOME, "Expired", phase_is(Phase::Expired)).await;
    // Counted before the status write that said Expired.
    let after = env.metrics();
    assert!(value(&after, "steward_expiries_enforced_total", None) >= expiries + 1.0);
    assert!(value(&after, "steward_expiry_lag_seconds", None) >= 1.0);
    // An expired exception leaves the expiry series: it expires no more.
    eventually(OUTCOME, "the expired exception's series gone", || {
        let gone = series(&env.metrics(), "steward_exception_expiry_timestamp_seconds", "short").is_none();
        async move { gone }
    })
    .await;
    // The revocation was a DELETE, the status a PATCH; the caches watch
    // (since start-up: watches are long-running).
    for verb in ["delete", "patch"] {
        assert!(
            value(&after, "steward_api_requests_total", Some(("verb", verb)))
                > value(&scrape, "steward_api_requests_total", Some(("verb", verb))),
            "no {verb} request counted"
        );
    }
    assert!(value(&after, "steward_api_requests_total", Some(("verb", "watch"))) >= 6.0);
    for name in [
        "steward_reconciles_total",
        "steward_reconcile_duration_seconds",
        "steward_exceptions",
        "steward_reviews_overdue",
        "steward_drift_bindings",
        "steward_expiries_enforced_total",
        "steward_expiry_lag_seconds",
    ] {
        assert!(
            after.samples.iter().any(|s| s.metric == name),
            "{name} missing from /metrics"
        );
    }
}

#[tokio::test]
async fn every_transition_records_an_event() {
    let env = env();
    let ns = env.namespace("events").await;
    env.apply_ok(&ns, &control("owner", "team-a", "team-b", &overdue(), "Audit"));
    // Reconciled first, so no exception below is judged (and Rejected, with
    // an event) before the controller's cache holds its control: the
    // Rejected event must come from the approver change.
    let cos: Api<ControlOwnership> = Api::namespaced(env.admin().await, &ns);
    wait_for(&cos, "owner", Duration::from_secs(60), "settled", settled).await;
    // Long enough for a loaded machine to see it Active (and record
    // Granted) before it expires.
    env.apply_ok(
        &ns,
        &exception("short", "owner", "alice@example.com", from_now(-1), from_now(12)),
    );
    env.apply_ok(
        &ns,
        &exception("revoke", "owner", "alice@example.com", from_now(-1), from_now(3600)),
    );
    let pes: Api<PolicyException> = Api::namespaced(env.admin().await, &ns);
    wait_for(&pes, "short", OUTCOME, "Active", phase_is(Phase::Active)).await;
    wait_for(&pes, "revoke", OUTCOME, "Active", phase_is(Phase::Active)).await;
    // Approver no longer allowed: the grant is revoked and the exception rejected.
    env.apply_ok(
        &ns,
        &exception("revoke", "owner", "mallory@example.com", from_now(-1), from_now(3600)),
    );
    env.apply_ok(
        &ns,
        &format!(
            r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: extra}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}}
subjects: [{{kind: ServiceAccount, name: owner-sa, namespace: {ns}}}]
"#
        ),
    );
    let want = [
        "Granted",
        "Expired",
        "Revoked",
        "Rejected",
        "ReviewOverdue",
        "DriftDetected",
    ];
    env.wait_for_events(&ns, &want).await;
    let who = env.kubectl_ok(&[
        "get",
        "events.events.k8s.io",
        "-n",
        &ns,
        "-o",
        "jsonpath={.items[*].reportingController}",
    ]);
    assert!(who.split_whitespace().all(|c| c == "steward"), "{who}");
    // The record outlives the Events: each exception lists its own
    // transitions, in order, with their times.
    let history = |pe: PolicyException| -> Vec<String> {
        pe.status
            .map(|s| s.history.into_iter().map(|h| h.reason).collect())
            .unwrap_or_default()
    };
    let short = wait_for(&pes, "short", OUTCOME, "Expired", phase_is(Phase::Expired)).await;
    assert_eq!(
        history(short.clone()).first().map(String::as_str),
        Some("Granted"),
        "{:?}",
        history(short.clone())
    );
    assert_eq!(
        history(short.clone()).last().map(String::as_str),
        Some("Expired"),
        "{:?}",
        history(short)
    );
    let revoke = pes.get("revoke").await.unwrap();
    assert_eq!(
        history(revoke.clone()).first().map(String::as_str),
        Some("Granted"),
        "{:?}",
        history(revoke.clone())
    );
    assert_eq!(
        history(revoke.clone()).last().map(String::as_str),
        Some("Rejected"),
        "{:?}",
        history(revoke)
    );
}

/// The README's status table, checked with the libraries other tools run:
/// every object in every state is read back from the API server, written to
/// a directory, and judged by the Go module in e2e/conformance (kstatus from
/// sigs.k8s.io/cli-utils, the Argo CD health checks under gopher-lua).
#[tokio::test]
async fn conformance_with_kstatus_and_gopher_lua() {
    let env = env();
    let (ns, cos, pes) = every_state(env, "conform").await;
    let dir = env.dir.join(format!("live-{ns}"));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |kind: &str, name: &str, v: serde_json::Value| {
        std::fs::write(dir.join(format!("{kind}_{name}.json")), v.to_string()).unwrap();
    };
    for name in ["healthy", "due-soon", "overdue", "drifted", "invalid"] {
        write(
            "ControlOwnership",
            name,
            serde_json::to_value(cos.get(name).await.unwrap()).unwrap(),
        );
    }
    for name in [
        "active",
        "expiring-soon",
        "pending",
        "awaiting-approval",
        "expired",
        "rejected",
    ] {
        write(
            "PolicyException",
            name,
            serde_json::to_value(pes.get(name).await.unwrap()).unwrap(),
        );
    }
    write("ControlOwnership", "being-reconciled", being_reconciled(env, &ns));

    let module = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/conformance");
    let out = std::process::Command::new("go")
        .args(["test", "-count=1", "-v", "-run", "TestLive", "./..."])
        .current_dir(&module)
        .env("STEWARD_LIVE_OBJECTS", &dir)
        .output()
        .expect("run go test (Go is needed for the local control plane too)");
    let log = String::from_utf8_lossy(&out.stdout);
    eprintln!("{log}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the live objects differ from the README's table");
    // Not skipped, and every row judged.
    assert!(!log.contains("SKIP"), "{log}");
    assert_eq!(
        log.matches("--- PASS: TestLiveObjectsFollowTheTable/").count(),
        12,
        "{log}"
    );
    assert!(
        log.contains("--- PASS: TestLiveFluxHealthCheckOverAnExpiredException"),
        "{log}"
    );
}

/// Both report APIs: a cluster that serves `openreports.io/v1alpha1` gets
/// the same report as `wgpolicyk8s.io/v1alpha2`, also when that CRD is
/// installed after the controller started. (A control plane of its own: the
/// new API makes the controller write a report in every namespace.)
#[tokio::test]
async fn reports_in_both_report_apis_including_one_installed_later() {
    let env = crate::harness::isolated();
    env.start_controller();
    let ns = env.namespace("reports").await;
    env.apply_ok(&ns, &control("owner", "team-a", "team-b", &overdue(), "Audit"));
    env.apply_ok(
        &ns,
        &exception("debug", "owner", "alice@example.com", from_now(-60), from_now(3600)),
    );
    let client = env.admin().await;
    let report_in = |group: &str, version: &str, kind: &str| {
        let client = client.clone();
        let ns = ns.clone();
        let gvk = GroupVersionKind::gvk(group, version, kind);
        async move {
            let (ar, _) = kube::discovery::pinned_kind(&client, &gvk).await.unwrap();
            let api: Api<DynamicObject> = Api::namespaced_with(client, &ns, &ar);
            api.get_opt("steward").await.unwrap()
        }
    };
    // Polls until `probe` yields, within OUTCOME.
    async fn within<F: std::future::Future<Output = Option<DynamicObject>>>(
        what: &str,
        mut probe: impl FnMut() -> F,
    ) -> Option<DynamicObject> {
        let deadline = std::time::Instant::now() + OUTCOME;
        loop {
            if let Some(r) = probe().await {
                return Some(r);
            }
            if std::time::Instant::now() >= deadline {
                eprintln!("{what} never came");
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let wg = within("the wgpolicyk8s.io report", || async {
        report_in("wgpolicyk8s.io", "v1alpha2", "PolicyReport")
            .await
            .filter(|r| r.data["summary"]["fail"] == 1)
    })
    .await
    .unwrap_or_else(|| panic!("no wgpolicyk8s.io report; controller log:\n{}", env.controller_log()));

    // The platform installs the OpenReports CRD now.
    let crd = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/testdata/openreports-crd.yaml");
    env.kubectl_ok(&["apply", "-f", crd.to_str().unwrap()]);
    env.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/reports.openreports.io",
        "--timeout=60s",
    ]);
    // The same report in both APIs (read together: statuses may still move).
    let last = std::sync::Arc::new(std::sync::Mutex::new(None));
    let same = within("the same report in both APIs", || {
        let both = (
            report_in("wgpolicyk8s.io", "v1alpha2", "PolicyReport"),
            report_in("openreports.io", "v1alpha1", "Report"),
        );
        let last = last.clone();
        async move {
            let (wg, open) = (both.0.await, both.1.await);
            let same = matches!((&wg, &open), (Some(w), Some(o))
                if o.data["summary"] == w.data["summary"] && o.data["results"] == w.data["results"]);
            *last.lock().unwrap() = Some((wg.map(|w| w.data), open.as_ref().map(|o| o.data.clone())));
            if same { open } else { None }
        }
    })
    .await;
    let open = same.unwrap_or_else(|| {
        panic!(
            "the reports never matched; last seen {last:#?}; controller log:\n{}",
            env.controller_log()
        )
    });
    let _ = wg;
    assert_eq!(open.types.as_ref().map(|t| t.kind.as_str()), Some("Report"));
}
