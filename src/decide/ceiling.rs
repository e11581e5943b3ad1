//! The grant ceiling (SPEC §3): every rule Steward grants must be covered by
//! the ceiling ClusterRole, and some rules are refused whatever it says.
//!
//! Coverage follows the RBAC authorizer: a requested rule is covered when
//! every (apiGroup, resource, verb, resourceName) it allows is allowed by
//! some ceiling rule.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::rbac::v1::PolicyRule;

use super::invalid_spec::{Invalid, Reason};

/// Verbs never granted: they let the holder exceed its own permissions.
const REFUSED_VERBS: [&str; 3] = ["escalate", "bind", "impersonate"];
/// Verbs that write.
const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// The rules of the ceiling ClusterRole, or none when it does not exist,
/// indexed once when built: checking a rule costs one lookup per entry
/// and one bit-set test per pair of classes of its groups and resources,
/// never a scan of the ceiling per permission. Cloning shares everything:
/// every waiting decision holds a clone (ten thousand of them at once after
/// a restart), and a copy of the rules took about 2 KB each.
#[derive(Clone, Debug, Default)]
pub struct Ceiling {
    /// Name of the ClusterRole, for messages.
    pub name: Arc<str>,
    /// Its rules; `None` when the ClusterRole was not found.
    rules: Option<Arc<[PolicyRule]>>,
    index: Arc<Index>,
}

impl PartialEq for Ceiling {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.rules == other.rules
    }
}

impl Ceiling {
    /// A ceiling made of these rules.
    pub fn new(name: impl Into<Arc<str>>, rules: Vec<PolicyRule>) -> Self {
        Ceiling {
            name: name.into(),
            index: Arc::new(Index::new(&rules)),
            rules: Some(rules.into()),
        }
    }

    /// A ceiling whose ClusterRole does not exist: nothing fits under it.
    pub fn missing(name: impl Into<Arc<str>>) -> Self {
        Ceiling {
            name: name.into(),
            rules: None,
            index: Arc::default(),
        }
    }

    /// Its rules; `None` when the ClusterRole was not found.
    pub fn rules(&self) -> Option<&[PolicyRule]> {
        self.rules.as_deref()
    }

    /// Checks requested rules (at `field`, e.g. `spec.grant.rules`): first the
    /// always-refused list, then coverage by the ceiling.
    pub fn check(&self, rules: &[PolicyRule], field: &str) -> Vec<Invalid> {
        let mut errors = Vec::new();
        let mut pairs = Pairs::default();
        for (i, rule) in rules.iter().enumerate() {
            let at = format!("{field}[{i}]");
            let refused = refused(rule, &at);
            if !refused.is_empty() {
                errors.extend(refused);
                continue;
            }
            if let Some(e) = self.uncovered(rule, &at, &mut pairs) {
                errors.push(e);
            }
        }
        errors
    }

    /// The first permission of `rule` (in the order group, resource, verb,
    /// resource name of the spec) that no ceiling rule allows.
    fn uncovered(&self, rule: &PolicyRule, at: &str, pairs: &mut Pairs) -> Option<Invalid> {
        if self.rules.is_none() {
            return Some(Invalid::new(
                Reason::RuleOutsideCeiling,
                at,
                format!(
                    "the grant ceiling ClusterRole {:?} does not exist, so nothing can be granted",
                    self.name
                ),
            ));
        }
        let (group, resource, verb, name) = self.index.first_uncovered(rule, pairs)?;
        let what = match name {
            Some(n) => format!(" (resourceName {n:?})"),
            None => String::new(),
        };
        Some(Invalid::new(
            Reason::RuleOutsideCeiling,
            format!("{at}.verbs"),
            format!(
                "verb {verb:?} on {:?}{what} is outside the grant ceiling ClusterRole {:?}",
                qualified(group, resource),
                self.name
            ),
        ))
    }
}

fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// Which ceiling rules name a requested API group: a class of groups the
/// ceiling names in exactly the same rules, or none (any other group).
type GroupClass = Option<u32>;
/// Which ceiling rules name a requested resource: its class as the
/// ceiling names it, and the class of the `*/sub` patterns matching its
/// subresource.
type ResourceClass = (Option<u32>, Option<u32>);

/// A set of verbs, by their number in the ceiling.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Verbs(Vec<u64>);

impl Verbs {
    fn insert(&mut self, verb: u32) {
        let (word, bit) = ((verb / 64) as usize, verb % 64);
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << bit;
    }

    fn contains(&self, verb: u32) -> bool {
        let (word, bit) = ((verb / 64) as usize, verb % 64);
        self.0.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    fn extend(&mut self, other: &Verbs) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
    }

    fn is_subset(&self, other: &Verbs) -> bool {
        self.0
            .iter()
            .enumerate()
            .all(|(i, w)| w & !other.0.get(i).copied().unwrap_or(0) == 0)
    }
}

/// One ceiling rule, as coverage reads it.
#[derive(Debug, Default)]
struct IndexedRule {
    every_verb: bool,
    verbs: Verbs,
    /// `None`: every name.
    names: Option<BTreeSet<String>>,
}

impl IndexedRule {
    fn allows(&self, verb: Option<u32>) -> bool {
        self.every_verb || verb.is_some_and(|v| self.verbs.contains(v))
    }
}

/// Names (groups, resources or subresources) of the ceiling by class: two
/// names are in one class when exactly the same ceiling rules name them,
/// so they are covered alike.
#[derive(Debug, Default)]
struct Classes {
    /// Name → class.
    of: BTreeMap<String, u32>,
    /// Class → the ceiling rules naming its names, ascending.
    rules: Vec<Vec<u32>>,
}

impl Classes {
    /// From each name's rules, ascending.
    fn new(named_in: BTreeMap<String, Vec<u32>>) -> Self {
        let mut classes = Classes::default();
        let mut by_rules: BTreeMap<Vec<u32>, u32> = BTreeMap::new();
        for (name, mut rules) in named_in {
            rules.dedup();
            let next = u32::try_from(classes.rules.len()).unwrap_or(u32::MAX);
            let class = *by_rules.entry(rules.clone()).or_insert_with(|| {
                classes.rules.push(rules);
                next
            });
            classes.of.insert(name, class);
        }
        classes
    }

    fn get(&self, name: &str) -> Option<u32> {
        self.of.get(name).copied()
    }

    fn rules(&self, class: Option<u32>) -> &[u32] {
        class
            .and_then(|c| self.rules.get(c as usize))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// What the ceiling allows on a (group class, resource class) pair.
#[derive(Debug, Default)]
struct Pair {
    /// The ceiling rules matching both, ascending.
    rules: Vec<u32>,
    /// Some rule allows every verb on every name.
    every_verb: bool,
    /// Verbs some rule allows on every name.
    verbs: Verbs,
}

/// The pairs worked out while checking one list of rules (they repeat
/// from rule to rule).
#[derive(Debug, Default)]
struct Pairs(BTreeMap<(GroupClass, ResourceClass), Pair>);

/// The ceiling's rules, indexed as the RBAC authorizer reads them: a group
/// matches itself or `*`; a resource itself, `*`, or `*/sub` for any
/// resource's subresource `sub`; a verb itself or `*`; a rule without
/// resourceNames matches every name. A requested permission (one group,
/// resource, verb and name) is covered when some ceiling rule matches it.
#[derive(Debug, Default)]
struct Index {
    rules: Vec<IndexedRule>,
    /// Every verb the ceiling names (`*` aside), numbered.
    verbs: BTreeMap<String, u32>,
    /// Rules whose groups include `*`, ascending.
    any_group: Vec<u32>,
    /// Rules whose resources include `*`, ascending.
    any_resource: Vec<u32>,
    groups: Classes,
    resources: Classes,
    subresources: Classes,
}

impl Index {
    fn new(rules: &[PolicyRule]) -> Self {
        let mut index = Index::default();
        let mut groups: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let mut resources: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let mut subresources: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for (i, rule) in rules.iter().enumerate() {
            let Ok(i) = u32::try_from(i) else { break };
            for g in rule.api_groups.iter().flatten() {
                match g.as_str() {
                    "*" => index.any_group.push(i),
                    g => groups.entry(g.to_string()).or_default().push(i),
                }
            }
            for r in rule.resources.iter().flatten() {
                match (r.as_str(), r.strip_prefix("*/")) {
                    ("*", _) => index.any_resource.push(i),
                    (_, Some(sub)) => subresources.entry(sub.to_string()).or_default().push(i),
                    (r, None) => resources.entry(r.to_string()).or_default().push(i),
                }
            }
            let mut verbs = Verbs::default();
            for v in rule.verbs.iter().filter(|v| *v != "*") {
                let next = u32::try_from(index.verbs.len()).unwrap_or(u32::MAX);
                verbs.insert(*index.verbs.entry(v.clone()).or_insert(next));
            }
            index.rules.push(IndexedRule {
                every_verb: rule.verbs.iter().any(|v| v == "*"),
                verbs,
                names: rule
                    .resource_names
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .map(|n| n.iter().cloned().collect()),
            });
        }
        index.any_group.dedup();
        index.any_resource.dedup();
        index.groups = Classes::new(groups);
        index.resources = Classes::new(resources);
        index.subresources = Classes::new(subresources);
        index
    }

    fn resource_class(&self, resource: &str) -> ResourceClass {
        let sub = resource.split_once('/').and_then(|(_, sub)| self.subresources.get(sub));
        (self.resources.get(resource), sub)
    }

    /// What the ceiling allows on a pair of classes.
    fn pair(&self, group: GroupClass, resource: ResourceClass) -> Pair {
        let by_group = merged(&[self.groups.rules(group), &self.any_group]);
        let by_resource: BTreeSet<u32> = merged(&[
            self.resources.rules(resource.0),
            self.subresources.rules(resource.1),
            &self.any_resource,
        ])
        .into_iter()
        .collect();
        let mut pair = Pair::default();
        for r in by_group.into_iter().filter(|r| by_resource.contains(r)) {
            let rule = &self.rules[r as usize];
            if rule.names.is_none() {
                pair.every_verb |= rule.every_verb;
                pair.verbs.extend(&rule.verbs);
            }
            pair.rules.push(r);
        }
        pair
    }

    /// Does some rule of `pair` allow `verb` on `name`?
    fn allows_name(&self, pair: &Pair, verb: Option<u32>, name: &str) -> bool {
        pair.rules.iter().any(|&r| {
            let rule = &self.rules[r as usize];
            rule.allows(verb) && rule.names.as_ref().is_none_or(|names| names.contains(name))
        })
    }

    /// The first permission of `rule` no ceiling rule covers: (group,
    /// resource, verb, the name when the rule is restricted to names).
    ///
    /// Whether a permission is covered depends only on the classes of its
    /// group and resource (which ceiling rules name them), so each pair of
    /// classes is checked once, by its first group and resource in spec
    /// order: the first failure found is the one a check of every
    /// combination in spec order finds first. A repeated entry is never
    /// checked twice. A pair allows the rule's verbs when they are a subset
    /// of its own (a few machine words), so the work is one lookup per
    /// entry plus one subset test per pair of classes, which the ceiling
    /// bounds (one pair when it names none of the rule's groups and
    /// resources); names are looked up only for verbs the ceiling restricts
    /// to names.
    fn first_uncovered<'r>(
        &self,
        rule: &'r PolicyRule,
        pairs: &mut Pairs,
    ) -> Option<(&'r str, &'r str, &'r str, Option<&'r str>)> {
        let groups = rule.api_groups.as_deref().unwrap_or_default();
        let resources = rule.resources.as_deref().unwrap_or_default();
        let names = rule.resource_names.as_deref().unwrap_or_default();
        // Repeats cost a lookup each and are never checked again: whether
        // an entry is covered is known from its first occurrence.
        let verbs: Vec<(Option<u32>, &str)> = rule
            .verbs
            .iter()
            .map(|v| (self.verbs.get(v.as_str()).copied(), v.as_str()))
            .collect();
        let mut requested = Verbs::default();
        let unnumbered = verbs.iter().any(|(id, _)| id.is_none());
        for id in verbs.iter().filter_map(|(id, _)| *id) {
            requested.insert(id);
        }
        let group_classes = first_of_each(groups, |g| self.groups.get(g));
        let resource_classes = first_of_each(resources, |r| self.resource_class(r));
        for &(gc, group) in &group_classes {
            for &(rc, resource) in &resource_classes {
                let pair = pairs.0.entry((gc, rc)).or_insert_with(|| self.pair(gc, rc));
                if pair.every_verb || (!unnumbered && requested.is_subset(&pair.verbs)) {
                    continue;
                }
                for &(id, verb) in &verbs {
                    if pair.every_verb || id.is_some_and(|id| pair.verbs.contains(id)) {
                        continue;
                    }
                    if names.is_empty() {
                        return Some((group, resource, verb, None));
                    }
                    if let Some(name) = names.iter().find(|n| !self.allows_name(pair, id, n)) {
                        return Some((group, resource, verb, Some(name.as_str())));
                    }
                }
            }
        }
        None
    }
}

/// The first of `items` of each class, in order.
fn first_of_each<C: Ord + Copy>(items: &[String], class: impl Fn(&str) -> C) -> Vec<(C, &str)> {
    let mut seen = BTreeSet::new();
    items
        .iter()
        .map(|i| (class(i), i.as_str()))
        .filter(|(c, _)| seen.insert(*c))
        .collect()
}

/// The union of ascending lists, ascending.
fn merged(lists: &[&[u32]]) -> Vec<u32> {
    let mut out: Vec<u32> = lists.iter().flat_map(|l| l.iter().copied()).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Rules refused whatever the ceiling says (SPEC §3). Each kind of refusal
/// is reported once per list, naming its first offending entry, so a list
/// of thousands of wildcards costs its size and yields a few errors.
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
    let verbs = &rule.verbs;
    if let Some(v) = verbs.iter().find(|v| v.contains('*')) {
        refuse("verbs", format!("wildcard verb {v:?} is never granted; list the verbs"));
    }
    for never in REFUSED_VERBS {
        if let Some(v) = verbs.iter().find(|v| v.eq_ignore_ascii_case(never)) {
            refuse(
                "verbs",
                format!("verb {v:?} is never granted: it lets the holder exceed its own permissions"),
            );
        }
    }
    if let Some(g) = groups.iter().find(|g| g.contains('*')) {
        refuse(
            "apiGroups",
            format!("wildcard API group {g:?} is never granted; list the groups"),
        );
    }
    if let Some(r) = resources.iter().find(|r| r.contains('*')) {
        refuse(
            "resources",
            format!("wildcard resource {r:?} is never granted; list the resources"),
        );
    }
    if resources
        .iter()
        .any(|r| r.eq_ignore_ascii_case("serviceaccounts/token"))
    {
        refuse(
            "resources",
            "serviceaccounts/token is never granted: it mints credentials for other identities".into(),
        );
    }
    let writes_rbac = groups.iter().any(|g| g.eq_ignore_ascii_case(RBAC_GROUP))
        && verbs
            .iter()
            .any(|v| WRITE_VERBS.iter().any(|w| v.eq_ignore_ascii_case(w)));
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

    /// Every waiting decision holds a clone: a clone must not copy the
    /// rules (ten thousand copies of them after a restart).
    #[test]
    fn clones_share_the_rules() {
        let c = ceiling();
        let d = c.clone();
        let (a, b) = (c.rules().unwrap_or_default(), d.rules().unwrap_or_default());
        assert!(!a.is_empty());
        assert!(std::ptr::eq(a.as_ptr(), b.as_ptr()));
        assert!(std::ptr::eq(c.name.as_ptr(), d.name.as_ptr()));
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

    /// Names are covered one by one, as the RBAC authorizer checks each
    /// request: two ceiling rules naming one secret each cover a rule
    /// naming both; the message names the one left out.
    #[test]
    fn each_resource_name_may_come_from_another_ceiling_rule() {
        let c = Ceiling::new(
            "split",
            vec![
                named(rule(&[""], &["secrets"], &["get"]), &["a"]),
                named(rule(&[""], &["secrets"], &["get", "list"]), &["b"]),
                rule(&[""], &["configmaps"], &["*"]),
            ],
        );
        let both = named(rule(&[""], &["secrets"], &["get"]), &["a", "b"]);
        assert!(c.check(&[both], "r").is_empty());
        let list = named(rule(&[""], &["secrets"], &["list"]), &["b", "a"]);
        let errors = c.check(&[list], "r");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0]
                .message
                .contains("verb \"list\" on \"secrets\" (resourceName \"a\")"),
            "{}",
            errors[0].message
        );
        // A named request under a ceiling rule for every name.
        let cm = named(rule(&[""], &["configmaps"], &["delete"]), &["x"]);
        assert!(c.check(&[cm], "r").is_empty());
    }

    /// Thousands of repeated entries cost their deduplicated size, and the
    /// first uncovered permission is still the one reported.
    #[test]
    fn repeated_entries_are_checked_once() {
        let c = ceiling();
        fn many(s: &str, n: usize) -> Vec<&str> {
            vec![s; n]
        }
        let mut r = rule(
            &many("", 10_000),
            &many("configmaps", 10_000),
            &[many("get", 10_000), vec!["delete"]].concat(),
        );
        r.resource_names = None;
        let start = std::time::Instant::now();
        let errors = c.check(&[r], "r");
        assert!(
            start.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("\"delete\""), "{}", errors[0].message);
    }

    /// The naive check: every permission of the rule, in spec order,
    /// against every ceiling rule (what the index must agree with).
    fn naive(ceiling: &[PolicyRule], rule: &PolicyRule) -> Option<(String, String, String, Option<String>)> {
        fn resource_matches(c: &str, r: &str) -> bool {
            if c == "*" || c == r {
                return true;
            }
            match (c.strip_prefix("*/"), r.split_once('/')) {
                (Some(sub), Some((_, rs))) => sub == rs,
                _ => false,
            }
        }
        let covers = |c: &PolicyRule, g: &str, r: &str, v: &str, n: Option<&str>| {
            let groups = c.api_groups.as_deref().unwrap_or_default();
            let resources = c.resources.as_deref().unwrap_or_default();
            groups.iter().any(|x| x == "*" || x == g)
                && c.verbs.iter().any(|x| x == "*" || x == v)
                && resources.iter().any(|x| resource_matches(x, r))
                && match c.resource_names.as_deref() {
                    None | Some([]) => true,
                    Some(allowed) => n.is_some_and(|n| allowed.iter().any(|a| a == n)),
                }
        };
        let names: Vec<Option<&str>> = match rule.resource_names.as_deref() {
            None | Some([]) => vec![None],
            Some(names) => names.iter().map(|n| Some(n.as_str())).collect(),
        };
        for g in rule.api_groups.iter().flatten() {
            for r in rule.resources.iter().flatten() {
                for v in &rule.verbs {
                    for &n in &names {
                        if !ceiling.iter().any(|c| covers(c, g, r, v, n)) {
                            return Some((g.clone(), r.clone(), v.clone(), n.map(String::from)));
                        }
                    }
                }
            }
        }
        None
    }

    fn small_rule() -> impl proptest::strategy::Strategy<Value = PolicyRule> {
        use proptest::prelude::*;
        let pick = |options: &'static [&'static str]| {
            proptest::collection::vec(proptest::sample::select(options), 0..5)
                .prop_map(|v| v.into_iter().map(String::from).collect::<Vec<_>>())
        };
        (
            pick(&["", "apps", "batch", "*"]),
            pick(&[
                "pods",
                "pods/log",
                "deployments",
                "deployments/scale",
                "*",
                "*/scale",
                "*/log",
            ]),
            pick(&["get", "list", "delete", "*"]),
            proptest::option::of(pick(&["a", "b", "c"])),
        )
            .prop_map(|(g, r, v, n)| PolicyRule {
                api_groups: Some(g),
                resources: Some(r),
                verbs: v,
                resource_names: n,
                ..Default::default()
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// The index answers exactly as the naive check, first failure
        /// included, with the pairs of one list of rules shared (wildcards
        /// in requests too: the index does not rely on their refusal).
        #[test]
        fn the_index_agrees_with_the_naive_check(
            ceiling_rules in proptest::collection::vec(small_rule(), 0..6),
            requested in proptest::collection::vec(small_rule(), 1..4),
        ) {
            let index = Index::new(&ceiling_rules);
            let mut pairs = Pairs::default();
            for r in &requested {
                let want = naive(&ceiling_rules, r);
                let got = index
                    .first_uncovered(r, &mut pairs)
                    .map(|(g, r, v, n)| (g.to_string(), r.to_string(), v.to_string(), n.map(String::from)));
                proptest::prop_assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn message_names_the_verb_and_resource() {
        let errors = ceiling().check(&[rule(&[""], &["configmaps"], &["get", "delete"])], "spec.grant.rules");
        assert_eq!(errors[0].field, "spec.grant.rules[0].verbs");
        assert!(errors[0].message.contains("\"delete\""), "{}", errors[0].message);
        assert!(errors[0].message.contains("configmaps"), "{}", errors[0].message);
    }
}
