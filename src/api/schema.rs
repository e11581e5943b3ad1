//! Bounded schemas for the Kubernetes types the CRDs embed: k8s-openapi's
//! own schemas of `PolicyRule` and `Condition` bound nothing, so these add
//! the `maxItems` and `maxLength` of `limits` to them.

use k8s_openapi::api::rbac::v1::PolicyRule;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::{Schema, SchemaGenerator, json_schema};
use serde_json::{Map, Value, json};

use super::limits;

fn properties(schema: &mut Schema) -> Option<&mut Map<String, Value>> {
    schema.get_mut("properties").and_then(Value::as_object_mut)
}

/// `maxLength` on string property `field`.
fn bound_string(props: &mut Map<String, Value>, field: &str, max: usize) {
    if let Some(p) = props.get_mut(field).and_then(Value::as_object_mut) {
        p.insert("maxLength".into(), json!(max));
    }
}

/// `maxItems` on list property `field`, and `maxLength` on its strings.
fn bound_strings(props: &mut Map<String, Value>, field: &str, items: usize, length: usize) {
    if let Some(p) = props.get_mut(field).and_then(Value::as_object_mut) {
        p.insert("maxItems".into(), json!(items));
        if let Some(i) = p.get_mut("items").and_then(Value::as_object_mut) {
            i.insert("maxLength".into(), json!(length));
        }
    }
}

/// A list of at most `limits::RULES` RBAC rules, each list and string in
/// them bounded.
pub fn rules(generator: &mut SchemaGenerator) -> Schema {
    let mut rule = generator.subschema_for::<PolicyRule>();
    if let Some(props) = properties(&mut rule) {
        bound_strings(props, "apiGroups", limits::RULE_API_GROUPS, limits::API_GROUP);
        bound_strings(props, "resources", limits::RULE_RESOURCES, limits::RESOURCE);
        bound_strings(props, "verbs", limits::RULE_VERBS, limits::VERB);
        bound_strings(props, "resourceNames", limits::RULE_RESOURCE_NAMES, limits::OBJECT_NAME);
        bound_strings(props, "nonResourceURLs", limits::RULE_NON_RESOURCE_URLS, limits::URL);
    }
    json_schema!({
        "type": "array",
        "maxItems": limits::RULES,
        "items": rule,
    })
}

/// A list of at most `limits::CONDITIONS` conditions, with
/// metav1.Condition's own limits on their strings.
pub fn conditions(generator: &mut SchemaGenerator) -> Schema {
    let mut condition = generator.subschema_for::<Condition>();
    if let Some(props) = properties(&mut condition) {
        bound_string(props, "type", limits::CONDITION_TYPE);
        bound_string(props, "reason", limits::CONDITION_REASON);
        bound_string(props, "message", limits::CONDITION_MESSAGE);
        bound_string(props, "lastTransitionTime", limits::TIMESTAMP);
        if let Some(status) = props.get_mut("status").and_then(Value::as_object_mut) {
            status.insert("enum".into(), json!(["True", "False", "Unknown"]));
        }
    }
    json_schema!({
        "type": "array",
        "maxItems": limits::CONDITIONS,
        "items": condition,
    })
}
