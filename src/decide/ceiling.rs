//! The grant ceiling (SPEC §3): every rule Steward grants must be covered by
//! the ceiling ClusterRole, and some rules are refused whatever it says.
//!
//! Coverage follows the RBAC authorizer: a requested rule is covered when
//! every (apiGroup, resource, verb, resourceName) it allows is allowed by
//! some ceiling rule.

use k8s_openapi::api::rbac::v1::PolicyRule;

use super::invalid_spec::{Invalid, Reason};

/// Verbs never granted: they let the holder exceed its own permissions.
const REFUSED_VERBS: [&str; 3] = ["escalate", "bind", "impersonate"];
/// Verbs that write.
const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// The rules of the ceiling ClusterRole, or none when it does not exist.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ceiling {
    /// Name of the ClusterRole, for messages.
    pub name: String,
    /// Its rules; `None` when the ClusterRole was not found.
    pub rules: Option<Vec<PolicyRule>>,
}

impl Ceiling {
    /// A ceiling made of these rules.
    pub fn new(name: impl Into<String>, rules: Vec<PolicyRule>) -> Self {
        Ceiling {
            name: name.into(),
            rules: Some(rules),
        }
    }

    /// A ceiling whose ClusterRole does not exist: nothing fits under it.
    pub fn missing(name: impl Into<String>) -> Self {
        Ceiling {
            name: name.into(),
            rules: None,
        }
    }

    /// Checks requested rules (at `field`, e.g. `spec.grant.rules`): first the
    /// always-refused list, then coverage by the ceiling.
    pub fn check(&self, rules: &[PolicyRule], field: &str) -> Vec<Invalid> {
        let mut errors = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let at = format!("{field}[{i}]");
            let refused = refused(rule, &at);
            if !refused.is_empty() {
                errors.extend(refused);
                continue;
            }
            if let Some(e) = self.uncovered(rule, &at) {
                errors.push(e);
            }
        }
        errors
    }

    fn uncovered(&self, rule: &PolicyRule, at: &str) -> Option<Invalid> {
        let Some(ceiling) = &self.rules else {
            return Some(Invalid::new(
                Reason::RuleOutsideCeiling,
                at,
                format!(
                    "the grant ceiling ClusterRole {:?} does not exist, so nothing can be granted",
                    self.name
                ),
            ));
        };
        let groups = rule.api_groups.as_deref().unwrap_or_default();
        let resources = rule.resources.as_deref().unwrap_or_default();
        let names = rule.resource_names.as_deref().unwrap_or_default();
        for group in groups {
            for resource in resources {
                for verb in &rule.verbs {
                    let covered = ceiling.iter().any(|c| covers(c, group, resource, verb, names));
                    if !covered {
                        let what = if names.is_empty() {
                            String::new()
                        } else {
                            format!(" (resourceNames {names:?})")
                        };
                        return Some(Invalid::new(
                            Reason::RuleOutsideCeiling,
                            format!("{at}.verbs"),
                            format!(
                                "verb {verb:?} on {:?}{what} is outside the grant ceiling ClusterRole {:?}",
                                qualified(group, resource),
                                self.name
                            ),
                        ));
                    }
                }
            }
        }
        None
    }
}

fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// Does ceiling rule `c` allow `verb` on `group`/`resource`, for the
/// requested `names` (empty: every name)?
fn covers(c: &PolicyRule, group: &str, resource: &str, verb: &str, names: &[String]) -> bool {
    let groups = c.api_groups.as_deref().unwrap_or_default();
    let resources = c.resources.as_deref().unwrap_or_default();
    let group_ok = groups.iter().any(|g| g == "*" || g == group);
    let verb_ok = c.verbs.iter().any(|v| v == "*" || v == verb);
    let resource_ok = resources.iter().any(|r| resource_matches(r, resource));
    let names_ok = match c.resource_names.as_deref() {
        None | Some([]) => true,
        Some(allowed) => !names.is_empty() && names.iter().all(|n| allowed.contains(n)),
    };
    group_ok && verb_ok && resource_ok && names_ok
}

/// RBAC's resource matching: `*`, exact, or `*/sub` for any resource's
/// subresource `sub`.
fn resource_matches(rule: &str, requested: &str) -> bool {
    if rule == "*" || rule == requested {
        return true;
    }
    match (rule.strip_prefix("*/"), requested.split_once('/')) {
        (Some(sub), Some((_, requested_sub))) => sub == requested_sub,
        _ => false,
    }
}

/// Rules refused whatever the ceiling says (SPEC §3).
pub fn refused(rule: &PolicyRule, at: &str) -> Vec<Invalid> {
    let mut errors = Vec::new();
    let groups = rule.api_groups.as_deref().unwrap_or_default();
    let resources = rule.resources.as_deref().unwrap_or_default();
    let mut refuse = |field: &str, message: String| {
        errors.push(Invalid::new(Reason::RuleRefused, format!("{at}.{field}"), message));
    };
    if rule.verbs.is_empty() {
        refuse("verbs", "a rule must list at least one verb".into());
    }
    if groups.is_empty() {
        refuse(
            "apiGroups",
            "a rule must list at least one API group (\"\" is the core group)".into(),
        );
    }
    if resources.is_empty() {
        refuse("resources", "a rule must list at least one resource".into());
    }
    if rule.non_resource_urls.as_deref().is_some_and(|u| !u.is_empty()) {
        refuse(
            "nonResourceURLs",
            "nonResourceURLs are cluster-wide and cannot be granted in a namespace".into(),
        );
    }
    for v in &rule.verbs {
        if v.contains('*') {
            refuse("verbs", format!("wildcard verb {v:?} is never granted; list the verbs"));
        } else if REFUSED_VERBS.contains(&v.to_ascii_lowercase().as_str()) {
            refuse(
                "verbs",
                format!("verb {v:?} is never granted: it lets the holder exceed its own permissions"),
            );
        }
    }
    for g in groups {
        if g.contains('*') {
            refuse(
                "apiGroups",
                format!("wildcard API group {g:?} is never granted; list the groups"),
            );
        }
    }
    for r in resources {
        if r.contains('*') {
            refuse(
                "resources",
                format!("wildcard resource {r:?} is never granted; list the resources"),
            );
        } else if r.eq_ignore_ascii_case("serviceaccounts/token") {
            refuse(
                "resources",
                "serviceaccounts/token is never granted: it mints credentials for other identities".into(),
            );
        }
    }
    let writes_rbac = groups.iter().any(|g| g.eq_ignore_ascii_case(RBAC_GROUP))
        && rule
            .verbs
            .iter()
            .any(|v| WRITE_VERBS.contains(&v.to_ascii_lowercase().as_str()));
    if writes_rbac {
        refuse(
            "apiGroups",
            format!("writes to {RBAC_GROUP} are never granted: they change who may do what"),
        );
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::fixtures::rule;

    fn named(mut r: PolicyRule, names: &[&str]) -> PolicyRule {
        r.resource_names = Some(names.iter().map(|s| s.to_string()).collect());
        r
    }

    fn ceiling() -> Ceiling {
        Ceiling::new(
            "steward-grantable",
            vec![
                rule(&[""], &["configmaps", "pods", "pods/log"], &["get", "list", "watch"]),
                rule(&["apps"], &["deployments", "*/scale"], &["get", "patch"]),
                named(rule(&[""], &["secrets"], &["get"]), &["db-password", "api-key"]),
            ],
        )
    }

    /// A named rule.
    type Case = (&'static str, PolicyRule);

    #[test]
    fn coverage_table() {
        let c = ceiling();
        let tables = [
            (None, within_cases()),
            (Some(Reason::RuleOutsideCeiling), outside_cases()),
            (Some(Reason::RuleRefused), refused_cases()),
        ];
        for (want, cases) in tables {
            for (name, r) in cases {
                let got = c.check(std::slice::from_ref(&r), "spec.grant.rules");
                assert_eq!(got.first().map(|e| e.reason), want, "{name}: {got:?}");
                if let Some(e) = got.first() {
                    assert!(e.field.starts_with("spec.grant.rules[0]"), "{name}: {}", e.field);
                }
            }
        }
    }

    /// Rules the RBAC authorizer would find in the ceiling.
    fn within_cases() -> Vec<Case> {
        vec![
            ("exact", rule(&[""], &["configmaps"], &["get"])),
            ("subset of verbs", rule(&[""], &["pods", "pods/log"], &["get", "list"])),
            (
                "subresource wildcard in ceiling",
                rule(&["apps"], &["deployments/scale"], &["patch"]),
            ),
            (
                "named within names",
                named(rule(&[""], &["secrets"], &["get"]), &["api-key"]),
            ),
        ]
    }

    /// Rules the RBAC authorizer would not find in the ceiling.
    fn outside_cases() -> Vec<Case> {
        vec![
            ("verb outside", rule(&[""], &["configmaps"], &["delete"])),
            ("resource outside", rule(&[""], &["services"], &["get"])),
            ("group outside", rule(&["batch"], &["jobs"], &["get"])),
            ("core vs apps", rule(&["apps"], &["configmaps"], &["get"])),
            (
                "named outside names",
                named(rule(&[""], &["secrets"], &["get"]), &["other"]),
            ),
            ("all names vs named ceiling", rule(&[""], &["secrets"], &["get"])),
        ]
    }

    /// Rules refused whatever the ceiling holds.
    fn refused_cases() -> Vec<Case> {
        vec![
            ("wildcard verb", rule(&[""], &["configmaps"], &["*"])),
            ("wildcard resource", rule(&[""], &["*"], &["get"])),
            ("wildcard subresource", rule(&[""], &["*/log"], &["get"])),
            ("wildcard group", rule(&["*"], &["configmaps"], &["get"])),
            ("escalate", rule(&[RBAC_GROUP], &["roles"], &["escalate"])),
            ("bind", rule(&[RBAC_GROUP], &["roles"], &["bind"])),
            ("impersonate", rule(&[""], &["users"], &["impersonate"])),
            ("case folded bind", rule(&[RBAC_GROUP], &["roles"], &["BIND"])),
            ("rbac write", rule(&[RBAC_GROUP], &["rolebindings"], &["create"])),
            ("token", rule(&[""], &["serviceaccounts/token"], &["create"])),
            ("no verbs", rule(&[""], &["configmaps"], &[])),
            ("no groups", rule(&[], &["configmaps"], &["get"])),
        ]
    }

    #[test]
    fn refused_even_when_ceiling_allows_everything() {
        let c = Ceiling::new("everything", vec![rule(&["*"], &["*"], &["*"])]);
        let errors = c.check(&[rule(&[RBAC_GROUP], &["clusterroles"], &["escalate"])], "r");
        assert_eq!(errors[0].reason, Reason::RuleRefused);
        assert!(c.check(&[rule(&["apps"], &["deployments"], &["get"])], "r").is_empty());
    }

    #[test]
    fn a_missing_ceiling_allows_nothing() {
        let c = Ceiling::missing("steward-grantable");
        let errors = c.check(&[rule(&[""], &["configmaps"], &["get"])], "r");
        assert_eq!(errors[0].reason, Reason::RuleOutsideCeiling);
        assert!(errors[0].message.contains("does not exist"));
    }

    #[test]
    fn message_names_the_verb_and_resource() {
        let errors = ceiling().check(&[rule(&[""], &["configmaps"], &["get", "delete"])], "spec.grant.rules");
        assert_eq!(errors[0].field, "spec.grant.rules[0].verbs");
        assert!(errors[0].message.contains("\"delete\""), "{}", errors[0].message);
        assert!(errors[0].message.contains("configmaps"), "{}", errors[0].message);
    }
}
