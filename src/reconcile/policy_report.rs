//! Keeps one PolicyReport named `steward` per namespace holding Steward
//! objects. Reconcilers mark namespaces dirty; this task rebuilds their
//! reports from the caches (pure `decide::policy_report::build`) and writes only
//! what differs from the cached report. Without the PolicyReport CRD it logs
//! once and writes nothing.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc::UnboundedReceiver;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};

use super::Context;
use crate::api::{ControlOwnership, MANAGED_BY_LABEL, MANAGED_BY_VALUE, PolicyException};
use crate::decide::policy_report::{self, REPORT_NAME, Report};

/// Batch window: many objects of one namespace changing together produce
/// one report write.
const BATCH: Duration = Duration::from_millis(100);

/// Runs until the channel closes.
pub async fn run(ctx: Arc<Context>, mut dirty: UnboundedReceiver<String>) {
    let client = ctx.writer.client().clone();
    let gvk = GroupVersionKind::gvk("wgpolicyk8s.io", "v1alpha2", "PolicyReport");
    let ar = match kube::discovery::pinned_kind(&client, &gvk).await {
        Ok((ar, _)) => ar,
        Err(e) => {
            tracing::info!(error = %e, "the PolicyReport CRD (wgpolicyk8s.io/v1alpha2) is not installed; no reports will be written");
            while dirty.next().await.is_some() {}
            return;
        }
    };
    // The reports are the one kind only this task reads, so its watch is
    // here rather than in `cache`.
    let all: Api<DynamicObject> = Api::all_with(client, &ar);
    let writer = reflector::store::Writer::new(ar.clone());
    let cache = writer.as_reader();
    let wc = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    let pump = reflector::reflector(
        writer,
        watcher(all, wc).default_backoff().modify(crate::cache::trim::trim),
    )
    .applied_objects()
    .for_each(|_| futures::future::ready(()));
    let work = async {
        let _ = cache.wait_until_ready().await;
        // A report the API server refused is not sent again until it changes.
        let mut refused: HashMap<String, Report> = HashMap::new();
        while let Some(first) = dirty.next().await {
            let mut batch = BTreeSet::from([first]);
            tokio::time::sleep(BATCH).await;
            while let Ok(ns) = dirty.try_recv() {
                batch.insert(ns);
            }
            for ns in batch {
                if let Err((e, report)) = sync(&ctx, &ar, &cache, &ns, &refused).await {
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

/// The report `ns` should have, from the cached Steward objects there.
fn desired(ctx: &Context, ns: &str) -> Option<Report> {
    let cos = ctx.caches.controls.state();
    let pes = ctx.caches.exceptions.state();
    let in_ns = |n: Option<String>| n.as_deref() == Some(ns);
    let cos: Vec<&ControlOwnership> = cos
        .iter()
        .filter(|c| in_ns(c.namespace()))
        .map(|c| c.as_ref())
        .collect();
    let pes: Vec<&PolicyException> = pes
        .iter()
        .filter(|e| in_ns(e.namespace()))
        .map(|e| e.as_ref())
        .collect();
    policy_report::build(&cos, &pes)
}

async fn sync(
    ctx: &Context,
    ar: &ApiResource,
    cache: &Store<DynamicObject>,
    ns: &str,
    refused: &HashMap<String, Report>,
) -> Result<(), (kube::Error, Option<Report>)> {
    let existing = cache.get(&ObjectRef::new_with(REPORT_NAME, ar.clone()).within(ns));
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.writer.client().clone(), ns, ar);
    match (desired(ctx, ns), existing) {
        (None, Some(_)) => ctx
            .writer
            .delete_policy_report(&api, REPORT_NAME)
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
            ctx.writer
                .policy_report(&api, REPORT_NAME, body)
                .await
                .map_err(|e| (e, Some(want)))
        }
    }
}
