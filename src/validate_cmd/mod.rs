//! `steward validate PATH...`: offline checks of manifests for pull
//! requests, with the controller's own validation (`decide`), a fixed clock
//! (`--now`) and file:line positions. Exit 0 clean, 1 violations, 2 usage,
//! I/O or parse errors.

mod load;
mod render;

pub use load::{Document, LoadError, Source, documents, read_paths};
pub use render::{Format, render};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
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
    /// The grant ceiling, when given.
    pub ceiling: Option<Ceiling>,
    /// Namespace of documents without one.
    pub namespace: String,
}

/// A ceiling that allows everything the always-refused list does not
/// refuse, for runs without `--ceiling`.
pub fn open_ceiling() -> Ceiling {
    Ceiling::new(
        "(no --ceiling given)",
        vec![PolicyRule {
            api_groups: Some(vec!["*".into()]),
            resources: Some(vec!["*".into()]),
            verbs: vec!["*".into()],
            ..Default::default()
        }],
    )
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
    let ceiling = opts.ceiling.clone().unwrap_or_else(open_ceiling);
    let ns_of = |d: &Document| d.namespace.clone().unwrap_or_else(|| opts.namespace.clone());
    let mut controls: Vec<(String, ControlOwnership)> = Vec::new();
    let mut findings = Vec::new();
    for d in docs.iter().filter(|d| d.kind == "ControlOwnership") {
        match serde_json::from_value::<ControlOwnership>(d.value.clone()) {
            Ok(co) => {
                if let Err(errors) = validate::control(&co.spec, &ceiling) {
                    for e in errors {
                        findings.push(d.finding(&ns_of(d), Severity::Error, &e.field, e.reason.as_str(), &e.message));
                    }
                }
                controls.push((ns_of(d), co));
            }
            Err(e) => findings.push(d.finding(&ns_of(d), Severity::Error, "spec", "InvalidSchema", &e.to_string())),
        }
    }
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
            .find(|(cns, co)| *cns == ns && co.name_any() == pe.spec.control)
            .map(|(_, co)| co);
        match lifecycle(&pe, control, &ceiling, opts.now) {
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
            Lifecycle::Pending(w) | Lifecycle::Active(w) => {
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
