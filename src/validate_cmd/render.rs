//! Output formats: human (`file:line:col`), JSON, and GitHub Actions
//! annotations.

use super::{Finding, Severity};

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `file:line:col: error: Kind/ns/name field: Reason — message`.
    Human,
    /// One JSON document.
    Json,
    /// `::error file=…,line=…,col=…::…` workflow commands.
    Github,
}

fn counts(findings: &[Finding]) -> (usize, usize) {
    let errors = findings.iter().filter(|f| f.severity == Severity::Error).count();
    (errors, findings.len() - errors)
}

fn what(f: &Finding) -> String {
    format!(
        "{}/{}/{} {}: {} — {}",
        f.kind, f.namespace, f.name, f.field, f.reason, f.message
    )
}

/// What `steward validate` cannot check, said in every human and JSON
/// output: identities exist only in the cluster.
pub const IDENTITY_NOTE: &str = "who requested and who approved each exception are checked in the cluster \
(admission records the authenticated identities, the controller verifies them); here spec.requester and \
spec.approver are checked as claims only";

/// Renders findings (and how many documents were checked).
pub fn render(findings: &[Finding], documents: usize, format: Format) -> String {
    let (errors, warnings) = counts(findings);
    match format {
        Format::Human => {
            let mut out = String::new();
            for f in findings {
                let sev = if f.severity == Severity::Error {
                    "error"
                } else {
                    "warning"
                };
                out.push_str(&format!("{}:{}:{}: {sev}: {}\n", f.file, f.line, f.column, what(f)));
            }
            out.push_str(&format!("note: {IDENTITY_NOTE}\n"));
            out.push_str(&format!(
                "{documents} documents checked: {errors} errors, {warnings} warnings\n"
            ));
            out
        }
        Format::Json => {
            let v = serde_json::json!({"findings": findings, "documents": documents, "errors": errors, "warnings": warnings, "note": IDENTITY_NOTE});
            format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
        }
        Format::Github => {
            let mut out = String::new();
            for f in findings {
                let cmd = if f.severity == Severity::Error {
                    "error"
                } else {
                    "warning"
                };
                // Workflow commands need %, CR and LF escaped in the message.
                let msg = what(f).replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A");
                out.push_str(&format!(
                    "::{cmd} file={},line={},col={}::{msg}\n",
                    f.file, f.line, f.column
                ));
            }
            out
        }
    }
}
