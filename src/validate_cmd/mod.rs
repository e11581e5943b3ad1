//! `steward validate PATH...`: offline checks of manifests for pull
//! requests, with the controller's own validation (`decide`), a fixed clock
//! (`--now`) and file:line positions. Exit 0 clean, 1 violations, 2 usage,
//! I/O or parse errors.

mod load;
mod render;

pub use load::{Document, LoadError, Source, documents, read_paths};
pub use render::{Format, render};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::ResourceExt;

use crate::api::{ControlOwnership, PolicyException};
use crate::decide::exception::{Lifecycle, lifecycle};
use crate::decide::{Ceiling, validate};

/// Error or warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Fails the check.
    Error,
    /// Reported, does not fail.
    Warning,
}

/// One finding, positioned in its file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// File path as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Error or warning.
    pub severity: Severity,
    /// Object kind.
    pub kind: String,
    /// Object namespace.
    pub namespace: String,
    /// Object name.
    pub name: String,
    /// Field path, e.g. `spec.approver`.
    pub field: String,
    /// CamelCase reason, as in status conditions.
    pub reason: String,
    /// What is wrong.
    pub message: String,
}

/// How to judge the input.
#[derive(Clone, Debug)]
pub struct Options {
    /// The clock.
    pub now: Timestamp,
    /// Expired exceptions are warnings, not errors.
    pub allow_expired: bool,
    /// Warn about exceptions expiring within this.
    pub warn_within: SignedDuration,
    /// The grant ceiling; `None`: the one `config/default` ships.
    pub ceiling: Option<Ceiling>,
    /// Namespace of documents without one.
    pub namespace: String,
}

/// The grant ceiling `config/default` installs, for runs without
/// `--ceiling`: a pull request is judged against what a cluster installed
/// as shipped would allow, never against an open ceiling.
pub fn shipped_ceiling() -> Ceiling {
    const SHIPPED: &str = include_str!("../../config/rbac/grant_ceiling.yaml");
    // The file is part of this build and a unit test parses it; should it
    // ever not parse, nothing fits, which fails closed.
    ceiling_from_yaml(SHIPPED).unwrap_or_else(|_| Ceiling::missing("steward-grantable"))
}

/// Why `--ceiling` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CeilingError {
    /// The file could not be read.
    #[error("cannot read it: {0}")]
    Read(#[source] std::io::Error),
    /// It is not a ClusterRole.
    #[error("not a ClusterRole: {0}")]
    NotAClusterRole(#[source] serde_yaml_ng::Error),
}

/// Reads a ClusterRole YAML as the ceiling.
pub fn ceiling_from_yaml(text: &str) -> Result<Ceiling, CeilingError> {
    let cr: ClusterRole = serde_yaml_ng::from_str(text).map_err(CeilingError::NotAClusterRole)?;
    Ok(Ceiling::new(cr.name_any(), cr.rules.unwrap_or_default()))
}

/// Reads the ClusterRole file at `path` as the ceiling.
pub fn read_ceiling(path: &std::path::Path) -> Result<Ceiling, CeilingError> {
    let text = std::fs::read_to_string(path).map_err(CeilingError::Read)?;
    ceiling_from_yaml(&text)
}

/// Checks every Steward document; exceptions are resolved against the
/// controls in the same input.
pub fn check(docs: &[Document], opts: &Options) -> Vec<Finding> {
    let ceiling = opts.ceiling.clone().unwrap_or_else(shipped_ceiling);
    let ns_of = |d: &Document| d.namespace.clone().unwrap_or_else(|| opts.namespace.clone());
    let mut controls: Vec<(String, ControlOwnership, &Document)> = Vec::new();
    let mut findings = Vec::new();
    for d in docs.iter().filter(|d| d.kind == "ControlOwnership") {
        match serde_json::from_value::<ControlOwnership>(d.value.clone()) {
            Ok(co) => {
                if let Err(errors) = validate::control(&co.spec, &ceiling) {
                    for e in errors {
                        findings.push(d.finding(&ns_of(d), Severity::Error, &e.field, e.reason.as_str(), &e.message));
                    }
                }
                controls.push((ns_of(d), co, d));
            }
            Err(e) => findings.push(d.finding(&ns_of(d), Severity::Error, "spec", "InvalidSchema", &e.to_string())),
        }
    }
    findings.extend(claimed_twice(&controls));
    for d in docs.iter().filter(|d| d.kind == "PolicyException") {
        let ns = ns_of(d);
        let mut pe = match serde_json::from_value::<PolicyException>(d.value.clone()) {
            Ok(pe) => pe,
            Err(e) => {
                findings.push(d.finding(&ns, Severity::Error, "spec", "InvalidSchema", &e.to_string()));
                continue;
            }
        };
        pe.status = None;
        let control = controls
            .iter()
            .find(|(cns, co, _)| *cns == ns && co.name_any() == pe.spec.control)
            .map(|(_, co, _)| co);
        // Who asked and who approved are facts only the cluster knows.
        match lifecycle(
            &pe,
            control,
            &ceiling,
            crate::decide::approval::Trust::AssumeApproved,
            opts.now,
        ) {
            Lifecycle::Rejected(errors) => {
                for e in errors {
                    findings.push(d.finding(&ns, Severity::Error, &e.field, e.reason.as_str(), &e.message));
                }
            }
            Lifecycle::Expired(_) => {
                let severity = if opts.allow_expired {
                    Severity::Warning
                } else {
                    Severity::Error
                };
                let msg = format!(
                    "expired at {}; expired exceptions grant nothing: remove it",
                    pe.spec.expires_at
                );
                findings.push(d.finding(&ns, severity, "spec.expiresAt", "Expired", &msg));
            }
            Lifecycle::Pending(w) | Lifecycle::Awaiting(w, _) | Lifecycle::Active(w) => {
                if w.expires_at.duration_since(opts.now) <= opts.warn_within {
                    let msg = format!("expires at {}", crate::decide::time::format(w.expires_at));
                    findings.push(d.finding(&ns, Severity::Warning, "spec.expiresAt", "ExpiringSoon", &msg));
                }
            }
        }
    }
    findings.sort_by(|a, b| (&a.file, a.line, a.column, &a.field).cmp(&(&b.file, b.line, b.column, &b.field)));
    findings
}

/// One service account, one control: every identity a control declares that
/// another control of the same namespace in the input declares too. In a
/// cluster the control created first keeps it; files carry no creation
/// order, so both are reported.
fn claimed_twice(controls: &[(String, ControlOwnership, &Document)]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (ns, co, d) in controls {
        for (i, id) in co.spec.workload_identities.iter().enumerate() {
            let others: Vec<String> = controls
                .iter()
                .filter(|(other_ns, other, _)| {
                    other_ns == ns
                        && other.name_any() != co.name_any()
                        && other
                            .spec
                            .workload_identities
                            .iter()
                            .any(|o| o.service_account == id.service_account)
                })
                .map(|(_, other, od)| format!("{} ({}:{})", other.name_any(), od.path, od.position("metadata.name").0))
                .collect();
            if !others.is_empty() {
                // A name shared by hundreds of controls must not make a
                // message of hundreds of lines.
                let mut named = others.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
                if others.len() > 3 {
                    named.push_str(&format!(" and {} more", others.len() - 3));
                }
                let message = format!(
                    "service account {:?} is also declared by {named}; one service account belongs to one control (in a cluster, the control created first keeps it)",
                    id.service_account,
                );
                let field = format!("spec.workloadIdentities[{i}].serviceAccount");
                findings.push(d.finding(ns, Severity::Error, &field, "ServiceAccountClaimed", &message));
            }
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Options {
        Options {
            now: "2026-11-28T12:00:00Z".parse().expect("a timestamp"),
            allow_expired: false,
            warn_within: SignedDuration::from_hours(24),
            ceiling: None,
            namespace: "shop".into(),
        }
    }

    fn control(name: &str, sa: &str, verbs: &str) -> String {
        format!(
            "apiVersion: steward.dev/v1alpha1
kind: ControlOwnership
metadata: {{name: {name}}}
spec:
  layer: Identity
  owner: {{name: a}}
  backupOwner: {{name: b}}
  review: {{interval: 30d}}
  workloadIdentities:
    - serviceAccount: {sa}
      task: t
      rules: [{{apiGroups: [\"\"], resources: [configmaps], verbs: {verbs}}}]
"
        )
    }

    fn check_text(text: String) -> Vec<Finding> {
        let docs = documents(&Source {
            path: "x.yaml".into(),
            text,
        })
        .expect("documents");
        check(&docs, &opts())
    }

    #[test]
    fn the_shipped_ceiling_is_the_default() {
        let shipped = shipped_ceiling();
        assert_eq!(&*shipped.name, "steward-grantable");
        assert!(shipped.rules().is_some_and(|r| !r.is_empty()));
        assert!(check_text(control("c", "api", "[get]")).is_empty());
        // Deleting configmaps is not in the shipped ceiling: not an open one.
        let findings = check_text(control("c", "api", "[deletecollection]"));
        assert!(
            findings.iter().any(|f| f.reason == "RuleOutsideCeiling"),
            "{findings:?}"
        );
    }

    #[test]
    fn a_service_account_declared_by_two_controls_is_reported_on_both() {
        let text = format!(
            "{}---\n{}---\n{}",
            control("first", "api", "[get]"),
            control("second", "api", "[get]"),
            control("third", "worker", "[get]")
        );
        let findings = check_text(text);
        let claimed: Vec<(&str, &str)> = findings
            .iter()
            .filter(|f| f.reason == "ServiceAccountClaimed")
            .map(|f| (f.name.as_str(), f.field.as_str()))
            .collect();
        assert_eq!(
            claimed,
            [
                ("first", "spec.workloadIdentities[0].serviceAccount"),
                ("second", "spec.workloadIdentities[0].serviceAccount")
            ]
        );
        assert!(
            findings[0].message.contains("second (x.yaml:"),
            "{}",
            findings[0].message
        );
    }
}
