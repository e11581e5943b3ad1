//! Keeps one report named `steward` per namespace holding Steward objects,
//! in each report API the cluster serves: `wgpolicyk8s.io/v1alpha2`
//! PolicyReport and `openreports.io/v1alpha1` Report (Kyverno 1.15 and
//! Policy Reporter 3 move to the latter), both when both are there.
//! Reconcilers mark namespaces dirty; a writer per API rebuilds their
//! reports from the caches (pure `decide::policy_report::build`) and writes
//! only what differs from what the API server holds, which it knows by a
//! fingerprint per namespace (`Held`). A writer starts when its CRD
//! is established, at start or later (a watch on that one CRD by name), and
//! then writes every namespace once.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};

use super::Context;
use crate::api::{ControlOwnership, MANAGED_BY_LABEL, MANAGED_BY_VALUE, PolicyException};
use crate::cache::fingerprint;
use crate::decide::policy_report::{self, REPORT_NAME, Report};

mod held_report;
use held_report::{Have, HeldReport};

/// Batch window: many objects of one namespace changing together produce
/// one report write.
const BATCH: Duration = Duration::from_millis(100);

/// How long a newly established report CRD may take to appear in discovery
/// (the waits double from 200 ms up to this).
/// First and longest wait before writing again a report whose write
/// failed for a reason that may pass (see `is_transient`).
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Whether a failed write may succeed if sent again unchanged: no answer
/// (the API server away), a conflict, throttling or a server error. A
/// report the API server refused for what it is (400, 403, 422) is only
/// sent again once it changes.
fn is_transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => matches!(s.code, 409 | 429) || s.code >= 500,
        _ => true,
    }
}

const DISCOVERY_PATIENCE: Duration = Duration::from_secs(60);

/// A report API Steward writes when the cluster serves it.
#[derive(Clone, Copy, Debug)]
struct ReportApi {
    /// Its CRD's name.
    crd: &'static str,
    group: &'static str,
    version: &'static str,
    kind: &'static str,
}

const REPORT_APIS: [ReportApi; 2] = [
    ReportApi {
        crd: "policyreports.wgpolicyk8s.io",
        group: "wgpolicyk8s.io",
        version: "v1alpha2",
        kind: "PolicyReport",
    },
    ReportApi {
        crd: "reports.openreports.io",
        group: "openreports.io",
        version: "v1alpha1",
        kind: "Report",
    },
];

/// Runs until the channel closes: fans the dirty namespaces out to one
/// writer per report API.
pub async fn run(ctx: Arc<Context>, mut dirty: UnboundedReceiver<String>) {
    let (senders, writers): (Vec<UnboundedSender<String>>, Vec<_>) = REPORT_APIS
        .iter()
        .map(|api| {
            let (tx, rx) = unbounded();
            (tx, writer(ctx.clone(), *api, rx))
        })
        .unzip();
    // A shard taken over: its namespaces' reports are rebuilt (those of
    // other shards are dropped below, like every mark for them).
    let taken_over = {
        let caches = ctx.caches.clone();
        ctx.shards
            .acquisitions()
            .flat_map(move |()| futures::stream::iter(caches.namespaces()))
    };
    let shards = ctx.shards.clone();
    let fan_out = async move {
        let mut marks = std::pin::pin!(futures::stream::select(&mut dirty, taken_over));
        while let Some(ns) = marks.next().await {
            if !shards.owns(&ns) {
                continue;
            }
            for tx in &senders {
                let _ = tx.unbounded_send(ns.clone());
            }
        }
    };
    tokio::join!(fan_out, futures::future::join_all(writers));
}

/// Waits until `api`'s CRD is established, then keeps its reports.
async fn writer(ctx: Arc<Context>, api: ReportApi, mut dirty: UnboundedReceiver<String>) {
    let client = ctx.writer.client().clone();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let by_name = watcher::Config::default().fields(&format!("metadata.name={}", api.crd));
    let established = |crd: &CustomResourceDefinition| {
        crd.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Established" && c.status == "True"))
    };
    let mut events = std::pin::pin!(watcher(crds, by_name).default_backoff().applied_objects());
    let waiting = async {
        loop {
            match events.try_next().await {
                Ok(Some(crd)) if established(&crd) => return true,
                Ok(Some(_)) => {}
                Ok(None) => return false,
                Err(e) => tracing::debug!(crd = api.crd, error = %e, "watching for the report CRD"),
            }
        }
    };
    // Until then, nothing to write: drop what is dirty.
    let drain = async { while dirty.next().await.is_some() {} };
    let appeared = tokio::select! {
        appeared = waiting => appeared,
        () = drain => return,
    };
    if !appeared {
        return;
    }
    let gvk = GroupVersionKind::gvk(api.group, api.version, api.kind);
    // Discovery serves a new CRD a moment after it is Established.
    let mut wait = Duration::from_millis(200);
    let ar = loop {
        match kube::discovery::pinned_kind(&client, &gvk).await {
            Ok((ar, _)) => break ar,
            Err(e) if wait < DISCOVERY_PATIENCE => {
                tracing::debug!(crd = api.crd, error = %e, "report API not discovered yet");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(e) => {
                tracing::warn!(crd = api.crd, error = %e, "the report CRD is established but its API is not served; no reports of this kind");
                while dirty.next().await.is_some() {}
                return;
            }
        }
    };
    tracing::info!(api = %format!("{}/{}", api.group, api.version), kind = api.kind, "writing reports");
    // The reports are the one kind only this task reads, so its watch is
    // here rather than in `cache`, and it keeps a fingerprint per namespace
    // instead of the objects: a report lists every control and exception of
    // its namespace, and held as parsed JSON the reports of ten thousand
    // exceptions took tens of MiB to answer one question, "is it already
    // this?". Each is reduced as it is decoded (`HeldReport`).
    let all: Api<HeldReport> = Api::all_with(client, &ar);
    let held = std::sync::Mutex::new(Held::default());
    let (listed_tx, mut listed) = tokio::sync::watch::channel(false);
    let wc = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    // Reports that changed under Steward (`Held::changed`), to build again.
    let (again_tx, mut again) = unbounded::<String>();
    let pump = watcher(all, wc)
        .backoff(crate::cache::WatchBackoff::default())
        .for_each(|event| {
            if let Ok(event) = event {
                let mut held = lock(&held);
                if held.saw(event) {
                    listed_tx.send_replace(true);
                }
                for ns in held.take_changed().into_iter().filter(|ns| ctx.shards.owns(ns)) {
                    let _ = again_tx.unbounded_send(ns);
                }
            }
            futures::future::ready(())
        });
    let work = async {
        let _ = listed.wait_for(|listed| *listed).await;
        // A report the API server refused is not sent again until it changes
        // (its fingerprint, by namespace).
        let mut refused: HashMap<String, u64> = HashMap::new();
        // Every namespace once: the API may have appeared after them.
        let mut pending: BTreeSet<String> = ctx
            .caches
            .controls
            .state()
            .iter()
            .filter_map(|c| c.namespace())
            .chain(ctx.caches.exceptions.state().iter().filter_map(|e| e.namespace()))
            .filter(|ns| ctx.shards.owns(ns))
            .collect();
        // Namespaces whose write failed for a reason that may pass (the API
        // server away, overloaded): tried again after `backoff`.
        let mut retry: BTreeSet<String> = BTreeSet::new();
        let mut backoff = RETRY_FIRST;
        loop {
            if pending.is_empty() {
                let first = tokio::select! {
                    ns = dirty.next() => ns,
                    Some(ns) = again.next() => Some(ns),
                    () = tokio::time::sleep(backoff), if !retry.is_empty() => retry.pop_first(),
                };
                let Some(first) = first else { return };
                pending.insert(first);
                tokio::time::sleep(BATCH).await;
            }
            while let Ok(ns) = dirty.try_recv() {
                pending.insert(ns);
            }
            while let Ok(ns) = again.try_recv() {
                pending.insert(ns);
            }
            pending.append(&mut retry);
            for ns in std::mem::take(&mut pending) {
                let have = lock(&held).get(&ns);
                match sync(&ctx, api, &ar, have, &ns, &refused).await {
                    Ok(()) => {}
                    Err((e, _)) if is_transient(&e) => {
                        tracing::warn!(namespace = %ns, kind = api.kind, error = %e, "could not write the report; retrying");
                        retry.insert(ns);
                    }
                    Err((e, report)) => {
                        tracing::warn!(namespace = %ns, kind = api.kind, error = %e, "the report was refused");
                        if let Some(r) = report {
                            refused.insert(ns, r);
                        }
                    }
                }
            }
            backoff = if retry.is_empty() {
                RETRY_FIRST
            } else {
                (backoff * 2).min(RETRY_MAX)
            };
        }
    };
    tokio::select! {
        _ = pump => {}
        _ = work => {}
    }
}

/// The report `ns` should have, from the cached Steward objects there.
fn desired(ctx: &Context, ns: &str) -> Option<Report> {
    let cos = ctx.caches.controls.in_namespace(ns);
    let pes = ctx.caches.exceptions.in_namespace(ns);
    let cos: Vec<&ControlOwnership> = cos.iter().map(|c| c.as_ref()).collect();
    let pes: Vec<&PolicyException> = pes.iter().map(|e| e.as_ref()).collect();
    policy_report::build(&cos, &pes)
}

/// The reports named `steward` the watch has shown, by namespace, as the
/// fingerprints of what Steward reads of them. A relist is gathered apart
/// and swapped in whole when it completes, so a namespace is never
/// reported missing halfway through one.
#[derive(Debug, Default)]
struct Held {
    by_namespace: HashMap<String, Have>,
    relisting: Option<HashMap<String, Have>>,
    /// Namespaces whose report changed or went since they were last taken
    /// (`take_changed`): each is built again and written if it is not what
    /// Steward would write. Someone else's edit or deletion is undone that
    /// way, and so is one the watch missed while it was away (a relist
    /// shows it). Steward's own writes are in it too; their rebuild finds
    /// the report as it is and writes nothing.
    changed: Vec<String>,
    /// Whether a complete list has been seen.
    listed: bool,
}

impl Held {
    /// Applies one watch event; true once a complete list has been seen.
    fn saw(&mut self, event: watcher::Event<HeldReport>) -> bool {
        let entry =
            |obj: &HeldReport| (obj.name_any() == REPORT_NAME).then(|| (obj.namespace().unwrap_or_default(), obj.have));
        match event {
            watcher::Event::Apply(obj) => {
                if let Some((ns, have)) = entry(&obj)
                    && self.by_namespace.insert(ns.clone(), have) != Some(have)
                {
                    self.changed.push(ns);
                }
            }
            watcher::Event::Delete(obj) => {
                if let Some((ns, _)) = entry(&obj)
                    && self.by_namespace.remove(&ns).is_some()
                {
                    self.changed.push(ns);
                }
            }
            watcher::Event::Init => self.relisting = Some(HashMap::new()),
            watcher::Event::InitApply(obj) => {
                if let (Some(relisting), Some((ns, have))) = (self.relisting.as_mut(), entry(&obj)) {
                    relisting.insert(ns, have);
                }
            }
            watcher::Event::InitDone => {
                if let Some(relisted) = self.relisting.take() {
                    // The first list: every report found, as the writer
                    // starts (one left in a namespace Steward has left goes).
                    // A relist: those that differ from what was held.
                    let listed = std::mem::replace(&mut self.listed, true);
                    let old = std::mem::replace(&mut self.by_namespace, relisted);
                    let new = &self.by_namespace;
                    self.changed.extend(
                        new.iter()
                            .filter(|(ns, have)| !listed || old.get(*ns) != Some(*have))
                            .map(|(ns, _)| ns.clone())
                            .chain(old.keys().filter(|ns| !new.contains_key(*ns)).cloned()),
                    );
                    self.by_namespace.shrink_to_fit();
                }
                return true;
            }
        }
        false
    }

    fn get(&self, ns: &str) -> Option<Have> {
        self.by_namespace.get(ns).copied()
    }

    /// The namespaces whose report changed since the last call.
    fn take_changed(&mut self) -> Vec<String> {
        std::mem::take(&mut self.changed)
    }
}

/// The lock is held for a map operation only; a panic while holding it
/// cannot leave the map half-changed, so a poisoned lock is used as is.
fn lock(held: &std::sync::Mutex<Held>) -> std::sync::MutexGuard<'_, Held> {
    held.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn sync(
    ctx: &Context,
    report_api: ReportApi,
    ar: &ApiResource,
    have: Option<Have>,
    ns: &str,
    refused: &HashMap<String, u64>,
) -> Result<(), (kube::Error, Option<u64>)> {
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.writer.client().clone(), ns, ar);
    match (desired(ctx, ns), have) {
        (None, Some(_)) => ctx
            .writer
            .delete_policy_report(&api, REPORT_NAME)
            .await
            .map_err(|e| (e, None)),
        (None, None) => Ok(()),
        (Some(want), have) => {
            let wanted = fingerprint(&want);
            if have == Some(Have::Report(wanted)) || refused.get(ns) == Some(&wanted) {
                return Ok(());
            }
            tracing::debug!(
                namespace = ns,
                kind = report_api.kind,
                held = ?have,
                results = want.results.len(),
                summary = ?want.summary,
                "writing the report"
            );
            let body = serde_json::json!({
                "apiVersion": format!("{}/{}", report_api.group, report_api.version),
                "kind": report_api.kind,
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
                .map_err(|e| (e, Some(wanted)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refusals_of_the_report_itself_wait_for_a_change() {
        let api = |code: u16| kube::Error::Api(kube::core::Status::failure("", "").with_code(code).boxed());
        for (code, transient) in [
            (400, false),
            (403, false),
            (422, false),
            (409, true),
            (429, true),
            (500, true),
            (503, true),
        ] {
            assert_eq!(is_transient(&api(code)), transient, "{code}");
        }
        let away = kube::Error::Service(Box::new(std::io::Error::other("connection refused")));
        assert!(is_transient(&away));
    }

    fn report(ns: &str, name: &str, data: serde_json::Value) -> HeldReport {
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("wgpolicyk8s.io", "v1alpha2", "PolicyReport"));
        let mut obj = DynamicObject::new(name, &ar).within(ns);
        obj.data = data;
        obj.into()
    }

    #[test]
    fn held_reports_are_fingerprints_swapped_in_whole_at_each_relist() {
        let empty = Report::default();
        let written = serde_json::to_value(&empty).expect("a report serialises");
        let mut held = Held::default();
        assert!(!held.saw(watcher::Event::Init));
        assert!(!held.saw(watcher::Event::InitApply(report("a", REPORT_NAME, written.clone()))));
        // Another name under the label is not Steward's report.
        assert!(!held.saw(watcher::Event::InitApply(report("b", "other", written.clone()))));
        // Until the list completes, nothing is known.
        assert_eq!(held.get("a"), None);
        assert!(held.saw(watcher::Event::InitDone));
        assert_eq!(held.get("a"), Some(Have::Report(fingerprint(&empty))));
        assert_eq!(held.get("b"), None);
        // The first list: each report found is looked at once.
        assert_eq!(held.take_changed(), ["a"]);
        assert!(held.take_changed().is_empty());
        // The same report again (a resync, a bookmark): nothing to look at.
        held.saw(watcher::Event::Apply(report("a", REPORT_NAME, written.clone())));
        assert!(held.take_changed().is_empty());

        // A report Steward cannot read differs from every report it writes.
        held.saw(watcher::Event::Apply(report(
            "c",
            REPORT_NAME,
            serde_json::json!({"results": 7}),
        )));
        assert_eq!(held.get("c"), Some(Have::Unreadable));
        assert_eq!(held.take_changed(), ["c"], "an edit is looked at");

        // A relist replaces what was held: "a" is gone from the new list.
        held.saw(watcher::Event::Init);
        held.saw(watcher::Event::InitApply(report("d", REPORT_NAME, written.clone())));
        assert_eq!(
            held.get("a"),
            Some(Have::Report(fingerprint(&empty))),
            "kept until the relist completes"
        );
        held.saw(watcher::Event::InitDone);
        assert_eq!((held.get("a"), held.get("c")), (None, None));
        assert!(held.get("d").is_some());
        // What the relist changed: the new, and the gone (deleted while the
        // watch was away).
        let mut changed = held.take_changed();
        changed.sort();
        assert_eq!(changed, ["a", "c", "d"]);
        // A relist finding it all as held: nothing.
        held.saw(watcher::Event::Init);
        held.saw(watcher::Event::InitApply(report("d", REPORT_NAME, written.clone())));
        held.saw(watcher::Event::InitDone);
        assert!(held.take_changed().is_empty());

        held.saw(watcher::Event::Delete(report("d", REPORT_NAME, written)));
        assert_eq!(held.get("d"), None);
        assert_eq!(held.take_changed(), ["d"], "a deletion is looked at");
    }
}
