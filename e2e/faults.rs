//! Faults at scale: the API server restarted ten times (etcd too, every
//! third time) while controls converge in waves and exceptions expire, with
//! etcd compacted every two seconds, so every resumed watch is refused with
//! 410 Gone and the controller relists. Everything converges, no grant
//! outlives its expiry by more than the outage around it plus a bound, and
//! once it has converged the controller writes nothing more.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, ListParams};
use steward::api::{ControlOwnership, PolicyException};

use crate::harness::{self, Env, OUTCOME, create_retrying};

/// Controls per wave; one wave is created before each restart.
const WAVE: usize = 30;
/// Restarts of the API server.
const RESTARTS: usize = 10;
/// Namespaces the controls are spread over.
const SPREAD: usize = 5;
/// Exceptions expiring while the restarts go on, one every `STAGGER`.
const EXPIRING: usize = 8;
const STAGGER: i64 = 5;
/// How long after the API server is back a grant that expired while it
/// was down (or just before) may still exist. The controller tries a
/// failed revocation again every 500 ms rather than with its growing
/// backoff, and its watches reconnect within 5 s and relist (410 Gone),
/// after which the sweep deletes what no window keeps. Measured: the
/// delete reaches the API server within 1.3 s of its `/readyz` (a freshly
/// started API server refuses with 403 until its authorizer has synced);
/// with kube's default backoffs it took up to 5 s.
const AFTER_OUTAGE: SignedDuration = SignedDuration::from_secs(3);

fn control(name: &str) -> ControlOwnership {
    let yaml = harness::control_yaml(
        name,
        "Audit",
        &harness::reviewed_recently(),
        &[
            (
                &format!("{name}-api"),
                r#"{apiGroups: [""], resources: [configmaps], verbs: [get]}"#,
            ),
            (
                &format!("{name}-worker"),
                r#"{apiGroups: [""], resources: [configmaps], verbs: [list]}"#,
            ),
        ],
    );
    serde_yaml_ng::from_str(&yaml).expect("control")
}

fn exception(name: &str, expires: Timestamp) -> PolicyException {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "steward.dev/v1alpha1",
        "kind": "PolicyException",
        "metadata": {"name": name},
        "spec": {
            "control": "c-0", "ticket": "SEC-1", "approver": "alice@example.com",
            "reason": "Faults test", "expiresAt": expires.to_string(),
            "grant": {"serviceAccount": "c-0-api", "rules": [{"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}]}
        }
    }))
    .expect("exception")
}

#[tokio::test]
async fn restarts_and_compaction_during_a_convergence_lose_nothing_and_grant_nothing_extra() {
    let env = &harness::isolated_compacting("2s");
    let (mut ctl, addr) = env.spawn_ready_controller("ctl-faults", &[]).await;
    let mut nss = Vec::new();
    for _ in 0..SPREAD {
        nss.push(env.namespace("faults").await);
    }
    let client = env.admin().await;
    let in_ns = |i: usize| nss[i % SPREAD].clone();

    // The first wave, and exceptions to c-0 expiring through the restarts.
    create_wave(env, &nss, 0).await;
    let pes: Api<PolicyException> = Api::namespaced(client.clone(), &in_ns(0));
    let first = Timestamp::now() + SignedDuration::from_secs(15);
    let expiring: Vec<(String, Timestamp)> = (0..EXPIRING)
        .map(|i| {
            let at = (first + SignedDuration::from_secs(STAGGER * i as i64))
                .round(jiff::Unit::Second)
                .expect("a second");
            (format!("x-{i}"), at)
        })
        .collect();
    for (name, at) in &expiring {
        create_retrying(&pes, &exception(name, *at), OUTCOME * 4).await;
    }
    let cos: Api<ControlOwnership> = Api::namespaced(client.clone(), &in_ns(0));
    harness::wait_for(
        &cos,
        "c-0",
        OUTCOME,
        "c-0 Ready",
        harness::condition_is("Ready", "True"),
    )
    .await;
    for (name, _) in &expiring {
        harness::wait_for(
            &pes,
            name,
            OUTCOME,
            "Active",
            harness::phase_is(steward::api::Phase::Active),
        )
        .await;
    }

    // Each round: a wave of controls, a moment for the controller to be in
    // the middle of it, then a restart.
    let mut outages: Vec<(Timestamp, Timestamp)> = Vec::new();
    for round in 1..=RESTARTS {
        create_wave(env, &nss, round).await;
        // Up long enough between restarts for a delete that is due to be
        // owed (AFTER_OUTAGE), and a little longer each round so restarts
        // land at different points of the controller's work.
        tokio::time::sleep(AFTER_OUTAGE.unsigned_abs() + Duration::from_millis(1000 + 150 * round as u64)).await;
        let down = Timestamp::now();
        env.restart_api_server(round % 3 == 0);
        outages.push((down, Timestamp::now()));
    }
    eprintln!(
        "outages: {:?}",
        outages
            .iter()
            .map(|(d, u)| format!("{d} for {:#}", u.duration_since(*d)))
            .collect::<Vec<_>>()
    );

    // Everything converged: every control Ready, exactly its pairs.
    let controls = WAVE * (RESTARTS + 1);
    let all: Api<ControlOwnership> = Api::all(client.clone());
    let not_ready = || async {
        let list = all.list(&ListParams::default()).await.expect("controls");
        assert_eq!(list.items.len(), controls, "controls created");
        list.items
            .into_iter()
            .filter(|c| !harness::condition(c, "Ready").is_some_and(|r| r["status"] == "True"))
            .collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let left = not_ready().await;
        if left.is_empty() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let first: Vec<String> = left
                .iter()
                .take(3)
                .map(|c| {
                    format!(
                        "{}/{}: {:?}",
                        c.metadata.namespace.as_deref().unwrap_or_default(),
                        c.metadata.name.as_deref().unwrap_or_default(),
                        c.status
                    )
                })
                .collect();
            let logs = env.controller_logs();
            let tail: Vec<&str> = logs.lines().rev().take(60).collect();
            panic!(
                "{} of {controls} controls not Ready 180 s after the last restart; first: {first:#?}\ncontroller log tail:\n{}",
                left.len(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let managed = ListParams::default().labels("app.kubernetes.io/managed-by=steward");
    let identities = |objs: Vec<String>| objs.iter().filter(|n| !n.starts_with("steward-x:")).count();
    let roles: Vec<String> = Api::<Role>::all(client.clone())
        .list(&managed)
        .await
        .expect("roles")
        .items
        .into_iter()
        .filter_map(|r| r.metadata.name)
        .collect();
    let bindings: Vec<String> = Api::<RoleBinding>::all(client.clone())
        .list(&managed)
        .await
        .expect("bindings")
        .items
        .into_iter()
        .filter_map(|r| r.metadata.name)
        .collect();
    assert_eq!(identities(roles.clone()), 2 * controls, "identity Roles");
    assert_eq!(identities(bindings.clone()), 2 * controls, "identity RoleBindings");

    // No grant outlived its expiry beyond the outage around it.
    let rbs: Api<RoleBinding> = Api::namespaced(client.clone(), &in_ns(0));
    let mut worst = SignedDuration::ZERO;
    for (name, at) in &expiring {
        let grant = format!("steward-x:{name}");
        let revoked = env
            .controller_write(OUTCOME, "a grant's deletion", |w| {
                w.is("delete", "rolebindings", Some(&in_ns(0)), &grant) && w.code == 200
            })
            .await;
        // The bound: expiresAt, or the end of an outage it fell in (or
        // that began within the bound after it), extended by every outage
        // that began within the bound after the previous one ended: the
        // API server must be back for that long before a delete is due.
        let mut back = *at;
        while let Some(up) = outages
            .iter()
            .filter(|(down, up)| *down <= back + AFTER_OUTAGE && *up > back)
            .map(|(_, up)| *up)
            .max()
        {
            back = up;
        }
        let late = revoked.received.duration_since(back);
        eprintln!(
            "{name}: expired {at}, API server up from {back}: delete received {:#} after expiresAt, {late:#} after that",
            revoked.received.duration_since(*at)
        );
        assert!(revoked.received >= *at, "{name} revoked before it expired");
        worst = worst.max(late);
        assert!(rbs.get_opt(&grant).await.unwrap().is_none(), "{grant} still exists");
    }
    assert!(
        worst <= AFTER_OUTAGE,
        "a grant was deleted {worst:#} after its expiry and the API server were both past"
    );
    env.rbac_caught_up(&in_ns(0)).await;
    assert!(
        !env.can(&in_ns(0), "api", "get", "", "pods/log").await,
        "an expired grant works"
    );

    // Converged, the controller writes nothing more: no relist or
    // reconnect makes it write again what the server holds.
    let writes = |env: &Env| {
        let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
        for w in env.controller_writes() {
            *by_kind
                .entry(format!("{} {} {}", w.verb, w.resource, w.code))
                .or_insert(0) += 1;
        }
        by_kind
    };
    // Quiet for longer than the longest retry of a write that failed
    // during an outage (a PolicyReport's: 10 s).
    let quiet = || async {
        for ns in &nss {
            env.controller_quiet_in(ns, Duration::from_secs(15), Duration::from_secs(120))
                .await;
        }
    };
    quiet().await;
    let settled = writes(env);
    eprintln!("controller writes through the faults: {settled:?}");
    let (lists_before, reconciles_before) = (lists_by(env, "ctl-faults"), reconciles(&addr));
    env.restart_api_server_past_every_watch();
    // Every resumed watch is answered 410 Gone: wait until the controller
    // has relisted each kind it decides from, then until its reconciles
    // stop, then until it is quiet.
    let relisted = ["policyexceptions", "controlownerships", "roles", "rolebindings"];
    harness::eventually_every(
        Duration::from_millis(250),
        Duration::from_secs(90),
        "a relist of every kind after the restart",
        || async {
            let now = lists_by(env, "ctl-faults");
            relisted.iter().all(|r| now.get(*r) > lists_before.get(*r))
        },
    )
    .await;
    reconciles_settled(&addr).await;
    quiet().await;
    let after = writes(env);
    // The relists, finding what the caches held, sent nothing to
    // reconcile: a relist used to send every cached object again, one
    // reconcile each.
    let reconciled = reconciles(&addr) - reconciles_before;
    eprintln!("reconciles after the restart past every watch: {reconciled}");
    assert!(
        reconciled < (controls / 10) as f64,
        "{reconciled} reconciles after a restart that changed nothing ({controls} controls)"
    );
    if settled != after {
        let logs = env.controller_logs();
        let reports: Vec<&str> = logs.lines().filter(|l| l.contains("writing the report")).collect();
        eprintln!(
            "report writes:\n{}",
            reports[reports.len().saturating_sub(30)..].join("\n")
        );
    }
    assert_eq!(
        settled, after,
        "the controller wrote after a restart with nothing to do"
    );
    // The writes an end state needs: per control a finalizer, two Roles,
    // two RoleBindings and its status; per exception its grant pair,
    // two status writes (Active, Expired) and the pair's deletion. A write
    // whose answer a restart cut off is sent again, so allow a little more.
    let total: usize = settled.values().sum();
    let needed = controls * 6 + EXPIRING * 6;
    assert!(
        total <= needed + needed / 4,
        "{total} controller writes for an end state that needs {needed}: {settled:?}"
    );
    let _ = ctl.kill();
    let _ = ctl.wait();
}

/// Completed LIST requests per resource by the process named `identity`
/// (its User-Agent), from the audit log.
fn lists_by(env: &Env, identity: &str) -> BTreeMap<String, usize> {
    let agent = format!("({identity})");
    let log = std::fs::read_to_string(&env.audit_log).unwrap_or_default();
    let mut out = BTreeMap::new();
    for e in log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    {
        if e["verb"] == "list"
            && e["stage"] == "ResponseComplete"
            && e["userAgent"].as_str().is_some_and(|a| a.ends_with(&agent))
        {
            let resource = e["objectRef"]["resource"].as_str().unwrap_or_default().to_string();
            *out.entry(resource).or_insert(0) += 1;
        }
    }
    out
}

/// Returns once the controller has started no reconcile for 3 s (its
/// reconciles follow a relist within milliseconds).
async fn reconciles_settled(addr: &str) {
    let (mut last, mut since) = (reconciles(addr), std::time::Instant::now());
    harness::eventually_every(
        Duration::from_millis(250),
        Duration::from_secs(120),
        "the controller's reconciles settled",
        || {
            let now = reconciles(addr);
            if now != last {
                (last, since) = (now, std::time::Instant::now());
            }
            std::future::ready(since.elapsed() >= Duration::from_secs(3))
        },
    )
    .await;
}

/// The controller's reconciles so far, every kind.
fn reconciles(addr: &str) -> f64 {
    let (code, body) = harness::http_get(&format!("http://{addr}/metrics")).expect("scrape /metrics");
    assert_eq!(code, 200, "{body}");
    body.lines()
        .filter(|l| l.starts_with("steward_reconciles_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Creates wave `round` of controls (`c-<n>`), spread over `nss`.
async fn create_wave(env: &Env, nss: &[String], round: usize) {
    let client = env.admin().await;
    futures::stream::iter(round * WAVE..(round + 1) * WAVE)
        .map(|i| {
            let api: Api<ControlOwnership> = Api::namespaced(client.clone(), &nss[i % nss.len()]);
            async move {
                create_retrying(&api, &control(&format!("c-{i}")), OUTCOME * 4).await;
                Ok::<(), ()>(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .expect("wave created");
}

/// A status write the API server holds for seconds does not hold back the
/// revocation after it. kube runs one reconcile of an exception at a time:
/// the one that granted is still waiting for its status write (Active)
/// when `expiresAt` comes, and the wake-up at the expiry waits behind it.
/// The expiry clock deletes the grant on time regardless. The hold: a
/// validating webhook on this namespace's exception and control status
/// that never answers (a listener that accepts and stays silent),
/// failurePolicy Ignore, so each status write takes its full timeout and
/// then succeeds. (Held control status writes also keep the sweep, woken
/// by the control's count at the expiry, from covering for the clock.)
#[tokio::test]
async fn a_status_write_the_api_server_holds_does_not_hold_back_a_revocation() {
    /// How long each status write is held: the webhook's timeout, and the
    /// limit the API server puts on a webhook's TLS handshake.
    const HELD: u64 = 10;
    /// The exception's life from its creation: room for a busy machine to
    /// grant it, and its first status write is still held well past it.
    const LIFE: i64 = 8;
    let env = &harness::isolated();
    let (mut ctl, _) = env.spawn_ready_controller("ctl-held", &[]).await;
    let ns = env.namespace("held").await;
    let rule = r#"{apiGroups: [""], resources: [configmaps], verbs: [get]}"#;
    // What the exception grants beyond the control's own rule.
    let granted = r#"{apiGroups: [""], resources: [configmaps], verbs: [list]}"#;
    env.apply_ok(
        &ns,
        &harness::control_yaml("payments", "Audit", &harness::reviewed_recently(), &[("api", rule)]),
    );
    let client = env.admin().await;
    let cos: Api<ControlOwnership> = Api::namespaced(client.clone(), &ns);
    harness::wait_for(
        &cos,
        "payments",
        OUTCOME,
        "Ready",
        harness::condition_is("Ready", "True"),
    )
    .await;
    // An exception to probe the webhook with, before there is one.
    env.apply_ok(
        &ns,
        &harness::exception_yaml("probe", "payments", "alice@example.com", &harness::from_now(3600), ""),
    );
    let pes: Api<PolicyException> = Api::namespaced(client.clone(), &ns);
    harness::wait_for(
        &pes,
        "probe",
        OUTCOME,
        "Active",
        harness::phase_is(steward::api::Phase::Active),
    )
    .await;

    // The silent webhook. Each connection the API server makes is kept
    // open and never answered; their count says the webhook is in force.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = hole.local_addr().expect("address").port();
    let called = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let called = called.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in hole.incoming().flatten() {
                held.push(conn);
                called.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
    }
    let webhook = format!(
        r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: hold-status-{ns}}}
webhooks:
- name: hold.status.test
  clientConfig: {{url: "https://127.0.0.1:{port}/"}}
  rules: [{{apiGroups: [steward.dev], apiVersions: ["*"], operations: [UPDATE], resources: [policyexceptions/status, controlownerships/status]}}]
  namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {ns}}}}}
  failurePolicy: Ignore
  timeoutSeconds: {HELD}
  sideEffects: None
  admissionReviewVersions: [v1]
"#
    );
    let out = env.kubectl_stdin(&["apply", "-f", "-"], &webhook);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // In force once a status write (a server-side dry run, which changes
    // nothing) reaches it.
    harness::eventually(OUTCOME, "the webhook in force", || {
        let _ = env.kubectl(&[
            "patch",
            "policyexception",
            "probe",
            "-n",
            &ns,
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Active"}}"#,
            "--dry-run=server",
            "--request-timeout=1s",
        ]);
        let called = called.load(std::sync::atomic::Ordering::SeqCst);
        async move { called > 0 }
    })
    .await;

    env.apply_ok(
        &ns,
        &harness::exception_yaml(
            "debug",
            "payments",
            "alice@example.com",
            &harness::from_now(LIFE),
            &format!("  grant: {{serviceAccount: api, rules: [{granted}]}}"),
        ),
    );
    let expires: Timestamp = pes
        .get("debug")
        .await
        .expect("debug")
        .spec
        .expires_at
        .parse()
        .expect("expiresAt");
    harness::eventually(OUTCOME, "the grant in force", || {
        env.can(&ns, "api", "list", "", "configmaps")
    })
    .await;
    assert!(
        Timestamp::now() < expires,
        "setup too slow: the exception expired before its grant was seen"
    );

    let grant = "steward-x:debug";
    let revoked = env
        .controller_write(OUTCOME, "the grant's deletion", |w| {
            w.is("delete", "rolebindings", Some(&ns), grant)
        })
        .await;
    // The status write that granted, held past the expiry: what the
    // revocation would have waited for.
    let held = env
        .controller_write(Duration::from_secs(HELD + 30), "the held status write", |w| {
            w.is("patch", "policyexceptions/status", Some(&ns), "debug") && w.received < expires
        })
        .await;
    eprintln!(
        "expired {expires}; status write held from {} to {}; grant deleted {:#} after the expiry (received {:#} after)",
        held.received,
        held.completed,
        revoked.completed.duration_since(expires),
        revoked.received.duration_since(expires),
    );
    assert!(
        // Past the bound by enough that a revocation waiting for it fails.
        held.completed > expires + SignedDuration::from_millis(1500),
        "the status write was not held past the expiry: the test measured nothing"
    );
    assert!(revoked.received >= expires, "revoked before expiresAt");
    assert!(
        revoked.received.duration_since(expires) <= SignedDuration::from_secs(1),
        "the grant's delete reached the API server {:#} after its expiresAt, behind a held status write",
        revoked.received.duration_since(expires)
    );
    env.rbac_caught_up(&ns).await;
    assert!(!env.can(&ns, "api", "list", "", "configmaps").await);
    // The exception still ends Expired, once its status writes get through.
    harness::wait_for(
        &pes,
        "debug",
        Duration::from_secs(3 * HELD),
        "Expired",
        harness::phase_is(steward::api::Phase::Expired),
    )
    .await;
    let out = env.kubectl(&["delete", "validatingwebhookconfiguration", &format!("hold-status-{ns}")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = ctl.kill();
    let _ = ctl.wait();
}
