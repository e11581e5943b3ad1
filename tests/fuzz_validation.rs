//! Hostile specs through the validation, the admission verdicts and the
//! grant-ceiling check: random rules, strings around and far beyond their
//! limits, thousands of duplicates, wildcards, unicode, up to and past the
//! maximum sizes of the CRDs. Nothing panics, and every input is judged
//! within a time bound, so a spec can never stall a reconcile, the webhook
//! or `steward validate`.
//!
//! `FUZZ_CASES` sets the number of random inputs (default 300); each test
//! prints the slowest input it judged.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use proptest::prelude::*;
use steward::api::{
    BindingKind, ControlOwnership, ControlOwnershipSpec, PolicyException, PolicyExceptionSpec, PolicyReference,
    RoleKind, SubjectKind, Toleration, TolerationRoleRef, TolerationSubject, WorkloadIdentity, limits,
};
use steward::decide::validate::{self, Against};
use steward::decide::{Ceiling, admission};

/// The most one validation or admission verdict of an input the API
/// server can store (3 MiB at most) may take, on a busy debug build. The
/// slowest measured is far below (each test prints its worst case: tens of
/// milliseconds in debug, a few in release); this catches work that grows
/// with the product of a rule's lists rather than their size.
const BOUND: Duration = Duration::from_secs(2);
/// The same for every count of both CRDs at its limit at once, an object
/// (11 MB) only `steward validate` could ever see: linear, about 1.5 s in a
/// busy debug build, 60 ms in release.
const OFFLINE_BOUND: Duration = Duration::from_secs(10);

const NOW: &str = "2026-11-28T12:00:00Z";

/// Entries the ceilings below name, mixed with hostile ones.
const GROUPS: [&str; 8] = [
    "",
    "apps",
    "batch",
    "coordination.k8s.io",
    "rbac.authorization.k8s.io",
    "*",
    "APPS",
    "apps\u{200b}",
];
const RESOURCES: [&str; 12] = [
    "configmaps",
    "pods",
    "pods/log",
    "deployments",
    "deployments/scale",
    "jobs",
    "leases",
    "secrets",
    "*",
    "*/scale",
    "serviceaccounts/token",
    "ｐｏｄｓ",
];
const VERBS: [&str; 12] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "*",
    "bind",
    "ESCALATE",
    "impersonate",
    "gét",
];

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300)
}

/// The ceilings every input is judged against: the shipped one, one that
/// allows everything, one naming each group in a rule of its own, one
/// restricted to names, and a missing one.
fn ceilings() -> Vec<Ceiling> {
    let shipped: ClusterRole =
        serde_yaml_ng::from_str(include_str!("../config/rbac/grant_ceiling.yaml")).expect("the shipped ceiling parses");
    let rule = |groups: &[&str], resources: &[&str], verbs: &[&str]| PolicyRule {
        api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let per_group = GROUPS.iter().map(|g| rule(&[g], &RESOURCES, &VERBS[..7])).collect();
    let mut named = rule(&GROUPS[..4], &RESOURCES[..8], &VERBS[..4]);
    named.resource_names = Some((0..64).map(|i| format!("n{i}")).collect());
    vec![
        Ceiling::new("shipped", shipped.rules.unwrap_or_default()),
        Ceiling::new("everything", vec![rule(&["*"], &["*"], &["*"])]),
        Ceiling::new("per-group", per_group),
        Ceiling::new("named", vec![named]),
        Ceiling::missing("missing"),
    ]
}

/// A string a tenant might write where at most `max` characters fit:
/// plain, around the limit, far beyond it, multi-byte, invisible.
fn text(max: usize, pool: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        4 => proptest::sample::select(pool).prop_map(String::from),
        2 => "[a-z0-9.:/*-]{0,16}",
        1 => (max.saturating_sub(1)..=max + 1).prop_map(|n| "a".repeat(n)),
        1 => (0..=max + 1).prop_map(|n| "é".repeat(n)),
        1 => (max..=max * 4).prop_map(|n| "z".repeat(n)),
        1 => "\\PC{0,24}",
        1 => Just("\u{202e}\u{200b}\u{feff}".to_string()),
    ]
    .boxed()
}

/// A list of at most about `max` entries (sometimes one more), or one
/// entry repeated many times over the limit.
fn list<T: Clone + std::fmt::Debug + 'static>(entry: BoxedStrategy<T>, max: usize) -> impl Strategy<Value = Vec<T>> {
    prop_oneof![
        6 => proptest::collection::vec(entry.clone(), 0..=(max / 4).max(2)),
        1 => proptest::collection::vec(entry.clone(), max..=max + 1),
        1 => (entry, 0..=max * 4).prop_map(|(e, n)| vec![e; n]),
    ]
}

fn rule() -> impl Strategy<Value = PolicyRule> {
    let groups = list(text(limits::API_GROUP, &GROUPS), limits::RULE_API_GROUPS);
    let resources = list(text(limits::RESOURCE, &RESOURCES), limits::RULE_RESOURCES);
    let verbs = list(text(limits::VERB, &VERBS), limits::RULE_VERBS);
    let names = list(
        text(limits::OBJECT_NAME, &["n1", "n2", "db"]),
        limits::RULE_RESOURCE_NAMES,
    );
    let urls = list(text(limits::URL, &["/healthz", "/*"]), limits::RULE_NON_RESOURCE_URLS);
    (
        proptest::option::of(groups),
        proptest::option::of(resources),
        verbs,
        proptest::option::weighted(0.3, names),
        proptest::option::weighted(0.1, urls),
    )
        .prop_map(
            |(api_groups, resources, verbs, resource_names, non_resource_urls)| PolicyRule {
                api_groups,
                resources,
                verbs,
                resource_names,
                non_resource_urls,
            },
        )
}

fn rules() -> impl Strategy<Value = Vec<PolicyRule>> {
    prop_oneof![
        8 => proptest::collection::vec(rule(), 0..4),
        1 => proptest::collection::vec(rule(), limits::RULES..=limits::RULES + 1),
        1 => (rule(), 0..=limits::RULES * 4).prop_map(|(r, n)| vec![r; n]),
    ]
}

fn toleration() -> BoxedStrategy<Toleration> {
    let subject = (
        proptest::sample::select(&[SubjectKind::ServiceAccount, SubjectKind::User, SubjectKind::Group][..]),
        text(limits::SUBJECT_NAME, &["api", "mallory", "system:authenticated"]),
        proptest::option::of(text(limits::NAMESPACE, &["shop", "other"])),
    )
        .prop_map(|(kind, name, namespace)| TolerationSubject { kind, name, namespace })
        .boxed();
    (
        proptest::sample::select(&[BindingKind::RoleBinding, BindingKind::ClusterRoleBinding][..]),
        text(limits::OBJECT_NAME, &["legacy", "view"]),
        proptest::sample::select(&[RoleKind::Role, RoleKind::ClusterRole][..]),
        text(limits::OBJECT_NAME, &["view", "cluster-admin", ""]),
        list(subject, limits::SUBJECTS),
    )
        .prop_map(|(kind, name, role_kind, role_name, subjects)| Toleration {
            kind,
            name,
            role_ref: TolerationRoleRef {
                kind: role_kind,
                name: role_name,
            },
            subjects,
        })
        .boxed()
}

fn policy() -> BoxedStrategy<PolicyReference> {
    (
        text(limits::NAME, &["kyverno"]),
        text(limits::OBJECT_NAME, &["p"]),
        list(text(limits::OBJECT_NAME, &["r"]), limits::POLICY_RULES),
    )
        .prop_map(|(engine, name, rules)| PolicyReference { engine, name, rules })
        .boxed()
}

fn control_spec() -> impl Strategy<Value = ControlOwnershipSpec> {
    let identity = (
        text(limits::OBJECT_NAME, &["api", "worker", "API", "a:b"]),
        text(limits::SENTENCE, &["Serves the API", " "]),
        rules(),
    )
        .prop_map(|(service_account, task, rules)| WorkloadIdentity {
            service_account,
            task,
            rules,
        })
        .boxed();
    (
        text(limits::NAME, &["payments-team"]),
        text(limits::NAME, &["security-team"]),
        list(text(limits::NAME, &["alice@example.com"]), limits::APPROVERS),
        text(limits::DURATION, &["30d", "1h30m", "0s", "99999999999999999999d"]),
        proptest::option::of(text(limits::PATTERN, &["^SEC-[0-9]+$", "(a+)+$", "[", "a{1000}{1000}"])),
        prop_oneof![
            8 => proptest::collection::vec(identity.clone(), 0..4),
            1 => proptest::collection::vec(identity, limits::IDENTITIES..=limits::IDENTITIES + 1),
        ],
    )
        .prop_map(|(owner, backup, approvers, interval, pattern, identities)| {
            let mut spec = base_control().spec;
            spec.owner.name = owner;
            spec.backup_owner.name = backup;
            spec.approvers = approvers;
            spec.review.interval = interval;
            spec.exception_policy
                .get_or_insert_with(Default::default)
                .ticket_pattern = pattern;
            spec.workload_identities = identities;
            spec
        })
}

fn exception_spec() -> impl Strategy<Value = PolicyExceptionSpec> {
    (
        text(limits::TICKET, &["SEC-1", "JIRA-1"]),
        text(
            limits::TIMESTAMP,
            &["2026-11-29T10:00:00Z", "2026-11-28T10:00:00.5Z", "tomorrow"],
        ),
        proptest::option::of((text(limits::OBJECT_NAME, &["api", "worker"]), rules())),
        list(toleration(), limits::TOLERATIONS),
        list(policy(), limits::POLICIES),
    )
        .prop_map(|(ticket, expires_at, grant, tolerate, policies)| {
            let mut spec = base_exception().spec;
            spec.ticket = ticket;
            spec.expires_at = expires_at;
            spec.grant = grant.map(|(service_account, rules)| steward::api::Grant { service_account, rules });
            spec.tolerate = tolerate;
            spec.policies = policies;
            spec
        })
}

fn base_control() -> ControlOwnership {
    serde_yaml_ng::from_str(
        r#"
apiVersion: steward.dev/v1alpha1
kind: ControlOwnership
metadata: {name: payments, namespace: shop, creationTimestamp: "2026-11-01T00:00:00Z"}
spec:
  layer: Identity
  owner: {name: payments-team}
  backupOwner: {name: security-team}
  approvers: [alice@example.com]
  review: {interval: 30d}
  exceptionPolicy: {maxDuration: 2d, ticketPattern: "^SEC-[0-9]+$"}
  workloadIdentities:
    - {serviceAccount: api, task: Serves the API, rules: [{apiGroups: [""], resources: [configmaps], verbs: [get]}]}
"#,
    )
    .expect("base control")
}

fn base_exception() -> PolicyException {
    serde_yaml_ng::from_str(
        r#"
apiVersion: steward.dev/v1alpha1
kind: PolicyException
metadata: {name: debug, namespace: shop, creationTimestamp: "2026-11-28T09:00:00Z"}
spec:
  control: payments
  ticket: SEC-1
  approver: alice@example.com
  reason: Debug a stuck payout
  startsAt: "2026-11-28T10:00:00Z"
  expiresAt: "2026-11-29T10:00:00Z"
"#,
    )
    .expect("base exception")
}

/// Everything Steward does with a control and an exception spec, against
/// each ceiling: the validations and the admission verdicts (each
/// validates the whole object, as one webhook request does). Returns the longest any one of them took: what one
/// reconcile, one admission request or one `steward validate` document
/// costs.
fn judge(control: &ControlOwnershipSpec, exception: &PolicyExceptionSpec, ceilings: &[Ceiling]) -> Duration {
    let now: Timestamp = NOW.parse().expect("now");
    let mut co = base_control();
    co.spec = control.clone();
    let mut pe = base_exception();
    pe.spec = exception.clone();
    let base = base_control();
    let mut slowest = Duration::ZERO;
    let mut timed = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        f();
        slowest = slowest.max(start.elapsed());
    };
    for ceiling in ceilings {
        timed(&mut || drop(validate::control(control, ceiling)));
        timed(&mut || {
            let rules = validate::exception_rules(control);
            drop(validate::exception(exception, now, Against::of(Some(&rules)), ceiling));
        });
        timed(&mut || drop(admission::control(&co, &[], ceiling)));
        timed(&mut || drop(admission::exception(&pe, Some(&co), ceiling, now)));
        timed(&mut || drop(admission::exception(&pe, Some(&base), ceiling, now)));
    }
    slowest
}

/// The slowest random input judged so far, printed as it changes.
static WORST: std::sync::Mutex<Duration> = std::sync::Mutex::new(Duration::ZERO);

fn record(took: Duration, bound: Duration, what: &str) {
    assert!(took < bound, "{what}: judged in {took:?}, more than {bound:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn hostile_specs_are_judged_in_bounded_time(control in control_spec(), exception in exception_spec()) {
        static CEILINGS: std::sync::LazyLock<Vec<Ceiling>> = std::sync::LazyLock::new(ceilings);
        let took = judge(&control, &exception, &CEILINGS);
        let mut worst = WORST.lock().unwrap_or_else(|e| e.into_inner());
        if took > *worst {
            *worst = took;
            eprintln!("fuzz_validation: slowest random input so far: {took:?}");
        }
        record(took, BOUND, "random input");
    }
}

/// `n` distinct entries, the first ones from `pool` (names the permissive
/// ceilings cover, so the check cannot stop at a first failure), the rest
/// made distinct and `len` characters long (at least their own number).
fn distinct(pool: &[&str], n: usize, len: usize) -> Vec<String> {
    (0..n)
        .map(|i| match pool.get(i) {
            Some(p) => p.to_string(),
            None => {
                let s = format!("{}-{i}-", pool[i % pool.len()]);
                let pad = len.saturating_sub(s.chars().count());
                format!("{s}{}", "x".repeat(pad))
            }
        })
        .collect()
}

/// A rule with every list at its limit, entries distinct and `len`
/// characters long at most.
fn widest_rule(len: impl Fn(usize) -> usize) -> PolicyRule {
    PolicyRule {
        api_groups: Some(distinct(&GROUPS[..4], limits::RULE_API_GROUPS, len(limits::API_GROUP))),
        resources: Some(distinct(&RESOURCES[..8], limits::RULE_RESOURCES, len(limits::RESOURCE))),
        verbs: distinct(&VERBS[..7], limits::RULE_VERBS, len(limits::VERB)),
        resource_names: None,
        non_resource_urls: None,
    }
}

/// The ceilings, and one that covers every permission of `wide`, one rule
/// per group (no class of groups to share): the most pairs to check.
fn ceilings_with_one_covering(wide: &PolicyRule) -> Vec<Ceiling> {
    let mut all = ceilings();
    let per_group = wide
        .api_groups
        .iter()
        .flatten()
        .map(|g| PolicyRule {
            api_groups: Some(vec![g.clone()]),
            ..wide.clone()
        })
        .collect();
    all.push(Ceiling::new("covers-the-widest-rule", per_group));
    all
}

/// An exception with every list at its limit and every string at its
/// longest, granting `rules`.
fn widest_exception(rules: Vec<PolicyRule>) -> PolicyExceptionSpec {
    let mut exception = base_exception().spec;
    exception.grant = Some(steward::api::Grant {
        service_account: "sa-0".into(),
        rules,
    });
    let subject = TolerationSubject {
        kind: SubjectKind::ServiceAccount,
        name: "s".repeat(limits::SUBJECT_NAME),
        namespace: Some("n".repeat(limits::NAMESPACE)),
    };
    exception.tolerate = vec![
        Toleration {
            kind: BindingKind::RoleBinding,
            name: "b".repeat(limits::OBJECT_NAME),
            role_ref: TolerationRoleRef {
                kind: RoleKind::ClusterRole,
                name: "r".repeat(limits::OBJECT_NAME),
            },
            subjects: vec![subject; limits::SUBJECTS],
        };
        limits::TOLERATIONS
    ];
    exception.policies = vec![
        PolicyReference {
            engine: "e".repeat(limits::NAME),
            name: "p".repeat(limits::OBJECT_NAME),
            rules: vec!["r".repeat(limits::OBJECT_NAME); limits::POLICY_RULES],
        };
        limits::POLICIES
    ];
    exception
}

fn identities(n: usize, rules: &[PolicyRule]) -> Vec<WorkloadIdentity> {
    (0..n)
        .map(|i| WorkloadIdentity {
            service_account: format!("sa-{i}"),
            task: "t".repeat(limits::SENTENCE),
            rules: rules.to_vec(),
        })
        .collect()
}

fn json_size<T: serde::Serialize>(value: &T) -> usize {
    serde_json::to_vec(value).map(|v| v.len()).unwrap_or(0)
}

/// The API server refuses a request body over 3 MiB (and etcd stores at
/// most 1.5 MiB by default): the largest object it can hold.
const REQUEST_LIMIT: usize = 3 << 20;

/// The largest objects the API server can hold, in the shape that costs
/// the most: rules with every list at its limit, every string at its
/// longest, entries distinct (deduplication saves nothing) and covered by
/// a permissive ceiling (no early stop), as many as fit in a request.
#[test]
fn the_largest_storable_specs_are_judged_in_bounded_time() {
    let wide = widest_rule(|max| max);
    let mut control = base_control().spec;
    control.approvers = distinct(&["alice@example.com"], limits::APPROVERS, limits::NAME);
    control.description = Some("d".repeat(limits::SENTENCE));
    let per_identity = (REQUEST_LIMIT / json_size(&wide)).min(limits::RULES);
    let identities_that_fit = (REQUEST_LIMIT / (per_identity * json_size(&wide))).clamp(1, limits::IDENTITIES);
    control.workload_identities = identities(identities_that_fit, &vec![wide.clone(); per_identity]);
    let exception = widest_exception(vec![wide.clone(); per_identity]);
    let sizes = (json_size(&control), json_size(&exception));
    let took = judge(&control, &exception, &ceilings_with_one_covering(&wide));
    let what = format!(
        "largest storable control ({} bytes) and exception ({} bytes)",
        sizes.0, sizes.1
    );
    eprintln!("fuzz_validation: {what}: {took:?}");
    record(took, BOUND, &what);
}

/// Every count of both CRDs at its limit at once (100 identities of 64
/// rules with every list full, distinct entries): more than twice what a
/// request may hold, so only `steward validate` could ever see it.
#[test]
fn every_count_at_its_limit_is_judged_in_bounded_time() {
    let wide = widest_rule(|_| 1);
    let mut control = base_control().spec;
    control.approvers = distinct(&["alice@example.com"], limits::APPROVERS, 1);
    control.workload_identities = identities(limits::IDENTITIES, &vec![wide.clone(); limits::RULES]);
    let exception = widest_exception(vec![wide.clone(); limits::RULES]);
    let size = json_size(&control);
    let ceilings = ceilings_with_one_covering(&wide);
    let took = judge(&control, &exception, &ceilings);
    let what = format!("every count at its limit ({size} bytes)");
    eprintln!("fuzz_validation: {what}: {took:?}");
    record(took, OFFLINE_BOUND, &what);
    // One over every limit, and a hundred times over: refused as TooLong,
    // without looking further.
    let mut over = control.clone();
    over.workload_identities.push(over.workload_identities[0].clone());
    for id in &mut over.workload_identities {
        id.rules.push(wide.clone());
    }
    let mut far = exception.clone();
    if let Some(g) = far.grant.as_mut() {
        g.rules = vec![wide; limits::RULES * 100];
    }
    let took = judge(&over, &far, &ceilings);
    eprintln!("fuzz_validation: one over every limit, and a hundred times over: {took:?}");
    record(took, OFFLINE_BOUND, "one over every limit, and a hundred times over");
}
