//! Samples applied the way users do, status read back through kubectl,
//! printer columns, and no writes while nothing changes.

use std::time::Duration;

use kube::api::Api;
use steward::api::{ControlOwnership, Phase, PolicyException};

use crate::harness::{condition, condition_is, env, wait_for};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/samples");

fn sample_phase_now() -> Phase {
    let pe: serde_json::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(format!("{SAMPLES}/policy-exception.yaml")).unwrap()).unwrap();
    let starts: jiff::Timestamp = pe["spec"]["startsAt"].as_str().unwrap().parse().unwrap();
    let expires: jiff::Timestamp = pe["spec"]["expiresAt"].as_str().unwrap().parse().unwrap();
    let now = jiff::Timestamp::now();
    if now < starts {
        Phase::Pending
    } else if now < expires {
        Phase::Active
    } else {
        Phase::Expired
    }
}

#[tokio::test]
async fn samples_reach_their_status_and_then_nothing_is_written() {
    let env = env();
    let ns = env.namespace("samples").await;
    env.kubectl_ok(&["apply", "-n", &ns, "-f", SAMPLES]);
    let client = env.admin().await;
    let cos: Api<ControlOwnership> = Api::namespaced(client.clone(), &ns);
    let pes: Api<PolicyException> = Api::namespaced(client, &ns);

    // Valid control: Ready, and `kubectl wait` agrees.
    wait_for(
        &cos,
        "payments-identity",
        Duration::from_secs(20),
        "Ready",
        condition_is("Ready", "True"),
    )
    .await;
    env.kubectl_ok(&[
        "wait",
        "-n",
        &ns,
        "--for=condition=Ready",
        "controlownership/payments-identity",
        "--timeout=20s",
    ]);

    // Invalid control: Ready=False, Stalled=True, message names the field.
    let invalid = wait_for(
        &cos,
        "orphaned-secrets",
        Duration::from_secs(20),
        "Stalled",
        condition_is("Stalled", "True"),
    )
    .await;
    let ready = condition(&invalid, "Ready").expect("Ready condition");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "InvalidDuration");
    assert!(
        ready["message"].as_str().unwrap().contains("spec.review.interval"),
        "{ready}"
    );
    let stalled = condition(&invalid, "Stalled").unwrap();
    assert_eq!(stalled["reason"], "InvalidDuration");

    // The exception's phase, read through kubectl as users do.
    let want = sample_phase_now();
    wait_for(
        &pes,
        "payments-debug",
        Duration::from_secs(20),
        "phased",
        |p: Option<&PolicyException>| p.and_then(|p| p.status.as_ref()).and_then(|s| s.phase).is_some(),
    )
    .await;
    let phase = env.kubectl_ok(&[
        "get",
        "-n",
        &ns,
        "policyexception/payments-debug",
        "-o",
        "jsonpath={.status.phase}",
    ]);
    assert_eq!(phase, want.as_str());
    let ready = env.kubectl_ok(&[
        "get",
        "-n",
        &ns,
        "policyexception/payments-debug",
        "-o",
        r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#,
    ]);
    assert_eq!(ready, if want == Phase::Expired { "False" } else { "True" });

    // Printer columns of SPEC §2.
    let table = env.kubectl_ok(&["get", "controlownerships,policyexceptions", "-n", &ns]);
    for col in [
        "LAYER",
        "OWNER",
        "BACKUP",
        "REVIEW-DUE",
        "DRIFT",
        "READY",
        "CONTROL",
        "TICKET",
        "APPROVER",
        "PHASE",
        "EXPIRES",
        "AGE",
    ] {
        assert!(table.contains(col), "column {col} missing:\n{table}");
    }
    assert!(table.contains("payments-team") && table.contains("SEC-1234"), "{table}");
    let all = env.kubectl_ok(&["get", "steward", "-n", &ns]);
    assert!(
        all.contains("payments-identity") && all.contains("payments-debug"),
        "category steward:\n{all}"
    );

    // Settled: wait until every object's status describes its generation,
    // then count the controller's writes in this namespace for 30 s.
    wait_for(
        &cos,
        "payments-identity",
        Duration::from_secs(20),
        "observed",
        |c: Option<&ControlOwnership>| {
            c.is_some_and(|c| c.status.as_ref().and_then(|s| s.observed_generation) == c.metadata.generation)
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = env.controller_writes_in(&ns);
    assert!(
        before > 0,
        "the audit log shows no controller writes at all; is it being read?"
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    let after = env.controller_writes_in(&ns);
    assert_eq!(
        after,
        before,
        "the controller wrote {} times in 30 s while nothing changed",
        after - before
    );
}

#[tokio::test]
async fn crds_describe_every_field_for_kubectl_explain() {
    let env = env();
    let out = env.kubectl_ok(&["explain", "policyexception.spec.expiresAt"]);
    assert!(out.contains("absolute"), "{out}");
    let out = env.kubectl_ok(&["explain", "controlownership.spec.review.interval"]);
    assert!(out.contains("30d"), "{out}");
}
