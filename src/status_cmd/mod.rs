//! `steward status` (`kubectl steward status`): lists ControlOwnerships and
//! PolicyExceptions with the user's own kubeconfig and prints the summary
//! of `summary`, which is pure.

pub mod summary;

use jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ListParams};

use crate::api::{ControlOwnership, PolicyException};
pub use summary::{Scope, Summary, render, summarize};

/// Why the status could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// `--expiring-within` is not a duration.
    #[error("--expiring-within: {0}")]
    Horizon(#[source] crate::decide::duration::DurationError),
    /// No usable kubeconfig or in-cluster configuration.
    #[error("cannot load a Kubernetes configuration: {0}")]
    Config(#[source] kube::config::InferConfigError),
    /// The client could not be built from it.
    #[error("cannot build a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// Listing a kind failed (RBAC, CRDs not installed, server down).
    #[error("cannot list {kind}: {source}")]
    List {
        /// The resource that could not be listed.
        kind: &'static str,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// Where to look and how far ahead.
#[derive(Debug, Clone)]
pub struct Options {
    /// A namespace; None: the kubeconfig context's.
    pub namespace: Option<String>,
    /// Every namespace (wins over `namespace`).
    pub all_namespaces: bool,
    /// How far ahead an expiry is "soon", as users write durations (`7d`).
    pub expiring_within: String,
}

/// Lists both kinds in scope and renders the summary at the current time.
pub async fn run(opts: &Options) -> Result<String, StatusError> {
    let horizon: SignedDuration =
        crate::decide::duration::parse(&opts.expiring_within).map_err(StatusError::Horizon)?;
    let config = kube::Config::infer().await.map_err(StatusError::Config)?;
    let scope = if opts.all_namespaces {
        Scope::All
    } else {
        Scope::Namespace(
            opts.namespace
                .clone()
                .unwrap_or_else(|| config.default_namespace.clone()),
        )
    };
    let client = kube::Client::try_from(config).map_err(StatusError::Client)?;
    let (controls, exceptions): (Api<ControlOwnership>, Api<PolicyException>) = match &scope {
        Scope::All => (Api::all(client.clone()), Api::all(client)),
        Scope::Namespace(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client, ns)),
    };
    let lp = ListParams::default();
    let controls = controls.list(&lp).await.map_err(|source| StatusError::List {
        kind: "controlownerships.steward.dev",
        source,
    })?;
    let exceptions = exceptions.list(&lp).await.map_err(|source| StatusError::List {
        kind: "policyexceptions.steward.dev",
        source,
    })?;
    // To the second: the summary is read by people, and expiries are
    // written to the second.
    let now = Timestamp::now();
    let now = now.round(jiff::Unit::Second).unwrap_or(now);
    let summary = summarize(&controls.items, &exceptions.items, now, horizon);
    Ok(render(&summary, &scope, now, horizon))
}
