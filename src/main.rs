//! The `steward` binary: parse the command line, then dispatch.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::Parser;
use steward::cli::{Cli, Command, RunArgs};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds { dir: Some(dir) } => match steward::crds::write_dir(&dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Crds { dir: None } => match steward::crds::all_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Validate(args) => validate(args),
        Command::Version => {
            println!("steward {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Run(args) => run(*args).await,
    }
}

async fn run(args: RunArgs) -> ExitCode {
    steward::telemetry::init(args.log_format);
    let metrics = std::sync::Arc::new(steward::metrics::Metrics::new());
    let client = match steward::client::build(args.max_in_flight, metrics.clone()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build a Kubernetes client");
            return ExitCode::from(1);
        }
    };
    let ready = Arc::new(Mutex::new(false));
    let identity = args.instance.clone().unwrap_or_else(|| {
        format!(
            "{}-{}",
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .unwrap_or_default()
                .trim(),
            std::process::id()
        )
    });
    let config = steward::reconcile::Config {
        namespace: args.namespace,
        ceiling: args.grant_ceiling,
        instance: Some(identity.clone()),
    };
    // Without a webhook there is nothing of its to wait for.
    let serves_webhook = args.webhook_addr.is_some() && args.webhook_cert.is_some() && args.webhook_key.is_some();
    let webhook_synced = Arc::new(std::sync::atomic::AtomicBool::new(!serves_webhook));
    let http = steward::http::serve(
        args.metrics_addr,
        ready.clone(),
        webhook_synced.clone(),
        metrics.clone(),
    );
    let webhook_client = client.clone();
    let webhook_ceiling = config.ceiling.clone();
    let webhook = async move {
        match (args.webhook_addr, args.webhook_cert.clone(), args.webhook_key.clone()) {
            (Some(addr), Some(cert), Some(key)) => {
                let config = steward::webhook::Config {
                    addr,
                    cert,
                    key,
                    ceiling: webhook_ceiling,
                    controller_user: Some(args.self_user.clone()),
                };
                steward::webhook::serve(webhook_client, config, webhook_synced).await
            }
            _ => std::future::pending().await,
        }
    };
    let work = steward::reconcile::run(client.clone(), config, ready.clone(), metrics.clone());
    let controllers = async {
        if !args.leader_elect {
            metrics.set_leader(true);
            work.await;
            return Ok(());
        }
        // A standby holds no controller caches: ready once its webhook's
        // caches (if it serves one) have listed.
        if let Ok(mut r) = ready.lock() {
            *r = true;
        }
        let election = steward::leader::Election {
            namespace: args.leader_election_namespace,
            name: args.leader_election_lease,
            identity,
            duration_seconds: args.lease_duration,
        };
        let elected = || {
            metrics.set_leader(true);
            if let Ok(mut r) = ready.lock() {
                *r = false;
            }
        };
        steward::leader::lead(client, election, elected, work).await
    };
    tokio::select! {
        _ = shutdown_signal() => {
            // Reconciles are idempotent, so stopping mid-way loses nothing:
            // the next leader or start re-derives everything from the API.
            tracing::info!("signal received; stopping");
            ExitCode::SUCCESS
        }
        res = controllers => match res {
            Ok(()) => {
                tracing::error!("controllers stopped");
                ExitCode::from(1)
            }
            Err(e) => {
                tracing::error!(error = %e, "stopping");
                ExitCode::from(1)
            }
        },
        res = webhook => {
            tracing::error!(error = ?res.err(), "admission webhook failed");
            ExitCode::from(1)
        }
        res = http => {
            tracing::error!(error = ?res.err(), "HTTP endpoint failed");
            ExitCode::from(1)
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

fn validate(args: steward::cli::ValidateArgs) -> ExitCode {
    use steward::validate_cmd as v;
    let usage = |msg: String| {
        eprintln!("error: {msg}");
        ExitCode::from(2)
    };
    let now = match &args.now {
        Some(s) => match steward::decide::time::parse(s) {
            Ok(t) => t,
            Err(e) => return usage(format!("--now: {e}")),
        },
        None => jiff::Timestamp::now(),
    };
    let warn_within = match steward::decide::duration::parse(&args.warn_within) {
        Ok(d) => d,
        Err(e) => return usage(format!("--warn-within: {e}")),
    };
    let ceiling = match &args.ceiling {
        Some(path) => match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| v::ceiling_from_yaml(&t))
        {
            Ok(c) => Some(c),
            Err(e) => return usage(format!("--ceiling {}: {e}", path.display())),
        },
        None => None,
    };
    let sources = match v::read_paths(&args.paths) {
        Ok(s) => s,
        Err(e) => return usage(e.to_string()),
    };
    let mut docs = Vec::new();
    for src in &sources {
        match v::documents(src) {
            Ok(d) => docs.extend(d),
            Err(e) => return usage(e.to_string()),
        }
    }
    let opts = v::Options {
        now,
        allow_expired: args.allow_expired,
        warn_within,
        ceiling,
        namespace: args.namespace,
    };
    let findings = v::check(&docs, &opts);
    print!("{}", v::render(&findings, docs.len(), args.output));
    if findings.iter().any(|f| f.severity == v::Severity::Error) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
