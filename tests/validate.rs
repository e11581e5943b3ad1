//! `steward validate`: golden outputs in the three formats, exit codes,
//! every validation reason covered by a fixture, and 100,000 generated
//! inputs through the YAML path without a panic.

use std::path::Path;
use std::process::{Command, Output};

use proptest::prelude::*;
use steward::validate_cmd::{Options, Source, check, documents};

const NOW: &str = "2026-11-28T12:00:00Z";

fn validate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_steward"))
        .arg("validate")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run steward validate")
}

fn violations(format: &str) -> Output {
    validate(&[
        "tests/validate/fixtures/violations",
        "--now",
        NOW,
        "--warn-within",
        "2d",
        "--ceiling",
        "tests/validate/fixtures/ceiling.yaml",
        "--output",
        format,
    ])
}

/// Compares with a golden file; `UPDATE_GOLDEN=1` rewrites it.
fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/validate/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    assert_eq!(actual, expected, "{name} differs from its golden file");
}

#[test]
fn golden_outputs_and_exit_codes() {
    for (format, file) in [("human", "human.txt"), ("json", "json.json"), ("github", "github.txt")] {
        let out = violations(format);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        golden(file, &String::from_utf8_lossy(&out.stdout));
    }
}

#[test]
fn every_reason_has_a_fixture() {
    let out = violations("json");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reasons: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["reason"].as_str().unwrap())
        .collect();
    for r in [
        "MissingField",
        "OwnerIsBackupOwner",
        "InvalidDuration",
        "InvalidTimestamp",
        "InvalidTicketPattern",
        "ControlNotFound",
        "ControlInvalid",
        "ApproverNotAllowed",
        "ApproverIsRequester",
        "TicketPatternMismatch",
        "WindowTooLong",
        "InvalidWindow",
        "RuleOutsideCeiling",
        "RuleRefused",
        "OutsideNamespace",
        "DuplicateIdentity",
        "InvalidName",
        "Expired",
        "ExpiringSoon",
    ] {
        assert!(reasons.contains(&r), "no fixture produces {r}");
    }
    assert_eq!(v["warnings"], 1);
}

#[test]
fn clean_input_exits_zero_and_expired_can_be_allowed() {
    let out = validate(&[
        "tests/validate/fixtures/clean",
        "--now",
        NOW,
        "--ceiling",
        "tests/validate/fixtures/ceiling.yaml",
        "--warn-within",
        "1h",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    // The same exception long after it ended: an error, or a warning when allowed.
    let late = ["tests/validate/fixtures/clean", "--now", "2027-01-01T00:00:00Z"];
    assert_eq!(validate(&late).status.code(), Some(1));
    let mut allowed = late.to_vec();
    allowed.push("--allow-expired");
    assert_eq!(validate(&allowed).status.code(), Some(0));
}

#[test]
fn usage_io_and_parse_errors_exit_two() {
    let broken = validate(&["tests/validate/fixtures/broken"]);
    assert_eq!(broken.status.code(), Some(2));
    let err = String::from_utf8_lossy(&broken.stderr);
    assert!(err.contains("broken.yaml:6:8"), "{err}");
    assert_eq!(validate(&["does/not/exist.yaml"]).status.code(), Some(2));
    assert_eq!(
        validate(&["tests/validate/fixtures/clean", "--now", "tomorrow"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        validate(&["tests/validate/fixtures/clean", "--output", "xml"])
            .status
            .code(),
        Some(2)
    );
}

fn opts() -> Options {
    Options {
        now: NOW.parse().unwrap(),
        allow_expired: false,
        warn_within: jiff::SignedDuration::from_hours(24),
        ceiling: None,
        namespace: "default".into(),
    }
}

fn run(text: String) {
    if let Ok(docs) = documents(&Source {
        path: "gen.yaml".into(),
        text,
    }) {
        let _ = check(&docs, &opts());
    }
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9@._:/-]{0,12}",
        Just(String::new()),
        Just("\"\"".to_string()),
        Just("2026-11-28T10:00:00Z".to_string()),
        Just("99999999999999999999d".to_string()),
        Just("[\"*\"]".to_string()),
        Just("{".to_string()),
        Just("~".to_string()),
        "\\PC{0,8}",
    ]
}

fn document() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("ControlOwnership"), Just("PolicyException")],
        proptest::collection::vec((scalar(), scalar()), 0..6),
        scalar(),
        scalar(),
        scalar(),
    )
        .prop_map(|(kind, fields, a, b, c)| {
            let mut s = format!("apiVersion: steward.dev/v1alpha1\nkind: {kind}\nmetadata: {{name: {a}}}\nspec:\n");
            let keys = [
                "control", "ticket", "approver", "requester", "reason", "startsAt", "expiresAt", "layer", "interval",
            ];
            for (i, (k, v)) in fields.iter().enumerate() {
                let key = if i % 2 == 0 { keys[i % keys.len()].to_string() } else { k.clone() };
                s.push_str(&format!("  {key}: {v}\n"));
            }
            s.push_str(&format!(
                "  owner: {{name: {b}}}\n  backupOwner: {{name: {c}}}\n  review: {{interval: {b}, lastReviewed: {c}}}\n  grant: {{serviceAccount: {a}, rules: [{{apiGroups: [{b}], resources: [{c}], verbs: [{a}]}}]}}\n  workloadIdentities: [{{serviceAccount: {c}, task: {a}, rules: []}}]\n"
            ));
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40_000, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
        run(s);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 60_000, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn generated_manifests_never_panic(docs in proptest::collection::vec(document(), 1..4)) {
        run(docs.join("---\n"));
    }
}
