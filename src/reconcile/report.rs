//! Keeps one PolicyReport named `steward` per namespace holding Steward
//! objects. Reconcilers mark namespaces dirty; this task rebuilds their
//! reports from the caches (pure `decide::report::build`) and writes only
//! what differs from the cached report. Without the PolicyReport CRD it logs
//! once and writes nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc::UnboundedReceiver;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use crate::api::{ControlOwnership, MANAGED_BY_LABEL, MANAGED_BY_VALUE, PolicyException};
use crate::apply::FIELD_MANAGER;
use crate::decide::policy_report::{self as report, REPORT_NAME, Report};

/// Batch window: many objects of one namespace changing together produce
/// one report write.
const BATCH: Duration = Duration::from_millis(100);

/// Runs until the channel closes.
pub async fn run(
    client: Client,
    controls: Store<ControlOwnership>,
    exceptions: Store<PolicyException>,
    mut dirty: UnboundedReceiver<String>,
) {
    let gvk = GroupVersionKind::gvk("wgpolicyk8s.io", "v1alpha2", "PolicyReport");
    let ar = match kube::discovery::pinned_kind(&client, &gvk).await {
        Ok((ar, _)) => ar,
        Err(e) => {
            tracing::info!(error = %e, "the PolicyReport CRD (wgpolicyk8s.io/v1alpha2) is not installed; no reports will be written");
            while dirty.next().await.is_some() {}
            return;
        }
    };
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let writer = reflector::store::Writer::new(ar.clone());
    let cache = writer.as_reader();
    let wc = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    let pump = reflector::reflector(writer, watcher(all, wc).default_backoff().modify(crate::slim::slim))
        .applied_objects()
        .for_each(|_| futures::future::ready(()));
    let work = async {
        let _ = cache.wait_until_ready().await;
        // A report the API server refused is not sent again until it changes.
        let mut refused: std::collections::HashMap<String, Report> = std::collections::HashMap::new();
        while let Some(first) = dirty.next().await {
            let mut batch = BTreeSet::from([first]);
            tokio::time::sleep(BATCH).await;
            while let Ok(ns) = dirty.try_recv() {
                batch.insert(ns);
            }
            for ns in batch {
                if let Err((e, report)) = sync(&client, &ar, &cache, &controls, &exceptions, &ns, &refused).await {
                    tracing::warn!(namespace = %ns, error = %e, "could not write the PolicyReport");
                    if let Some(r) = report {
                        refused.insert(ns, r);
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = pump => {}
        _ = work => {}
    }
}

async fn sync(
    client: &Client,
    ar: &ApiResource,
    cache: &Store<DynamicObject>,
    controls: &Store<ControlOwnership>,
    exceptions: &Store<PolicyException>,
    ns: &str,
    refused: &std::collections::HashMap<String, Report>,
) -> Result<(), (kube::Error, Option<Report>)> {
    let cos = controls.state();
    let pes = exceptions.state();
    let cos: Vec<&ControlOwnership> = cos
        .iter()
        .filter(|c| c.namespace().as_deref() == Some(ns))
        .map(|c| c.as_ref())
        .collect();
    let pes: Vec<&PolicyException> = pes
        .iter()
        .filter(|e| e.namespace().as_deref() == Some(ns))
        .map(|e| e.as_ref())
        .collect();
    let desired = report::build(&cos, &pes);
    let existing = cache.get(&ObjectRef::new_with(REPORT_NAME, ar.clone()).within(ns));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
    match (desired, existing) {
        (None, Some(_)) => crate::apply::delete(&api, REPORT_NAME, None)
            .await
            .map_err(|e| (e, None)),
        (None, None) => Ok(()),
        (Some(want), have) => {
            let have: Option<Report> = have.and_then(|h| serde_json::from_value(h.data.clone()).ok());
            if have.as_ref() == Some(&want) || refused.get(ns) == Some(&want) {
                return Ok(());
            }
            let body = serde_json::json!({
                "apiVersion": "wgpolicyk8s.io/v1alpha2",
                "kind": "PolicyReport",
                "metadata": {
                    "name": REPORT_NAME,
                    "namespace": ns,
                    "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE},
                },
                "results": want.results,
                "summary": want.summary,
            });
            api.patch(
                REPORT_NAME,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(body),
            )
            .await
            .map(|_| ())
            .map_err(|e| (e, Some(want)))
        }
    }
}
