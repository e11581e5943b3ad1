//! Inputs the benchmark generates.

/// Generates `n` valid documents (controls and exceptions) as one YAML
/// stream, for the benchmark.
pub fn documents(n: usize) -> String {
    let mut out = String::new();
    for i in 0..n {
        if i % 2 == 0 {
            out.push_str(&format!(
                "apiVersion: steward.dev/v1alpha1\nkind: ControlOwnership\nmetadata: {{name: c{i}, namespace: ns}}\nspec:\n  layer: Identity\n  owner: {{name: a}}\n  backupOwner: {{name: b}}\n  approvers: [alice]\n  review: {{interval: 30d, lastReviewed: \"2026-11-01T00:00:00Z\"}}\n  workloadIdentities:\n    - serviceAccount: sa\n      task: Task\n      rules:\n        - {{apiGroups: [\"\"], resources: [configmaps], verbs: [get]}}\n---\n"
            ));
        } else {
            out.push_str(&format!(
                "apiVersion: steward.dev/v1alpha1\nkind: PolicyException\nmetadata: {{name: e{i}, namespace: ns}}\nspec:\n  control: c{}\n  ticket: T-{i}\n  approver: alice\n  reason: Bench\n  startsAt: \"2026-11-28T00:00:00Z\"\n  expiresAt: \"2026-12-20T00:00:00Z\"\n---\n",
                i - 1
            ));
        }
    }
    out
}
