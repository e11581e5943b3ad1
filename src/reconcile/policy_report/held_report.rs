//! A report as the writer's watch decodes it: its name and namespace, and
//! the fingerprint of what Steward reads of it. A report lists a whole
//! namespace; decoded as `DynamicObject` (JSON values in B-trees) a list of
//! the reports of ten thousand exceptions took 46 MiB until the last page
//! item was in, the largest part of a restarted controller's peak. Each
//! item is now reduced to this as it is decoded, so a list holds one
//! report's JSON values at a time.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::{ApiResource, DynamicObject};
use kube::core::DynamicResourceScope;
use serde::{Deserialize, Deserializer};

use crate::cache::fingerprint;
use crate::decide::policy_report::Report;

/// What the API server holds of one report: its fingerprint, or that it
/// exists but does not read as a report (so any write differs from it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Have {
    Report(u64),
    Unreadable,
}

/// One report, reduced.
#[derive(Clone, Debug)]
pub struct HeldReport {
    /// Name, namespace, uid and resourceVersion (the watch resumes from
    /// the last one); nothing else is kept.
    pub metadata: ObjectMeta,
    /// Its content, as Steward reads it.
    pub have: Have,
}

impl From<DynamicObject> for HeldReport {
    fn from(obj: DynamicObject) -> Self {
        let have =
            <Report as Deserialize>::deserialize(&obj.data).map_or(Have::Unreadable, |r| Have::Report(fingerprint(&r)));
        let m = obj.metadata;
        Self {
            metadata: ObjectMeta {
                name: m.name,
                namespace: m.namespace,
                uid: m.uid,
                resource_version: m.resource_version,
                ..ObjectMeta::default()
            },
            have,
        }
    }
}

impl<'de> Deserialize<'de> for HeldReport {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        DynamicObject::deserialize(d).map(Self::from)
    }
}

/// As `DynamicObject`'s: the kind is the report API the writer watches.
impl Resource for HeldReport {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_read_as_its_fingerprint_and_the_metadata_the_watch_needs() {
        let written = serde_json::to_value(Report::default()).expect("a report serialises");
        let wire = |data: serde_json::Value| {
            let mut obj = serde_json::json!({
                "apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
                "metadata": {
                    "name": "steward", "namespace": "shop", "uid": "u-1", "resourceVersion": "42",
                    "labels": {"app.kubernetes.io/managed-by": "steward"},
                    "managedFields": [{"manager": "steward", "operation": "Apply"}]
                },
                "scope": {"kind": "Namespace", "name": "shop"}
            });
            obj.as_object_mut()
                .expect("an object")
                .extend(data.as_object().cloned().unwrap_or_default());
            serde_json::to_string(&obj).expect("JSON")
        };
        let held: HeldReport = serde_json::from_str(&wire(written)).expect("decodes");
        assert_eq!(held.have, Have::Report(fingerprint(&Report::default())));
        let m = &held.metadata;
        assert_eq!(
            (
                m.name.as_deref(),
                m.namespace.as_deref(),
                m.uid.as_deref(),
                m.resource_version.as_deref()
            ),
            (Some("steward"), Some("shop"), Some("u-1"), Some("42"))
        );
        assert_eq!((m.labels.as_ref(), m.managed_fields.as_ref()), (None, None));

        // One that is not a report Steward can read still decodes (a list
        // never fails on it), and differs from every report Steward writes.
        let odd: HeldReport = serde_json::from_str(&wire(serde_json::json!({"results": 7}))).expect("decodes");
        assert_eq!(odd.have, Have::Unreadable);
        // Two different reports have different fingerprints.
        let mut other = Report::default();
        other.summary.pass = 1;
        let one: HeldReport =
            serde_json::from_str(&wire(serde_json::to_value(&other).expect("JSON"))).expect("decodes");
        assert_ne!(one.have, held.have);
    }
}
