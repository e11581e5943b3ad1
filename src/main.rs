//! The `steward` binary: parse the command line, then dispatch.

use std::process::ExitCode;
use std::sync::Arc;

use steward::cache::Caches;
use steward::cli::{Command, RunArgs};
use steward::http::health::{Controllers, Health};

// jemalloc instead of the C library's allocator: glibc keeps what a burst
// of watch events and decisions freed in per-thread arenas, so the
// controller's memory after a burst stayed at twice what it holds
// (docs/benchmarks.md, Scale). jemalloc returns freed pages to the kernel
// within 100 ms (below) from a background thread.
// The cached objects on pages of their own (`steward::allocator`).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: steward::allocator::Steward = steward::allocator::Steward;

/// jemalloc's options, read at its start from this symbol (the prefixed
/// name of `malloc_conf` in tikv-jemalloc-sys' build): one arena per CPU,
/// pages freed by a background thread, dirty pages returned after 100 ms
/// and not kept as "muzzy". The decay is short because a restart
/// reconciles every object at once and frees as fast as it allocates: with
/// a second's decay the freed pages of that burst were still resident at
/// the peak (67–85 MiB beyond the live heap at 10,000 exceptions, against
/// 36–61 MiB at 100 ms or 0; docs/benchmarks.md). `_RJEM_MALLOC_CONF` in
/// the environment overrides it.
#[cfg(all(not(target_env = "msvc"), target_os = "linux"))]
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_CONF: JemallocConf =
    JemallocConf(c"background_thread:true,percpu_arena:percpu,dirty_decay_ms:100,muzzy_decay_ms:0".as_ptr());

/// A C string pointer jemalloc reads once; the string is static.
#[cfg(all(not(target_env = "msvc"), target_os = "linux"))]
#[repr(transparent)]
struct JemallocConf(*const std::ffi::c_char);

// Safety: the pointer is to a static, immutable C string; nothing writes
// through it.
#[cfg(all(not(target_env = "msvc"), target_os = "linux"))]
unsafe impl Sync for JemallocConf {}

fn main() -> ExitCode {
    #[cfg(not(target_env = "msvc"))]
    steward::allocator::create_arena();
    #[cfg(all(feature = "heap-profile", not(target_env = "msvc")))]
    heap_profiles();
    // The blocking pool runs the pure decisions (`reconcile::off_task`),
    // which are CPU work: more threads than a few per core only add
    // stacks and per-thread allocator caches. tokio's default of 512 let a
    // burst of thousands of reconciles start over a hundred threads, each
    // holding memory long after the burst.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads((cores * 4).max(8))
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(dispatch()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(1)
        }
    }
}

/// Writes a heap profile every `STEWARD_HEAP_DUMP_SECS` seconds (default
/// 15), to the `prof_prefix` of `_RJEM_MALLOC_CONF`; jemalloc refuses the
/// dump, and nothing is written, unless that also says `prof:true`. A
/// thread of its own, so a profile is written even while the runtime is
/// busy.
#[cfg(all(feature = "heap-profile", not(target_env = "msvc")))]
fn heap_profiles() {
    let secs = std::env::var("STEWARD_HEAP_DUMP_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(secs));
            // Safety: `prof.dump` takes a C string path, or null for a name
            // from `prof_prefix`.
            let _ = unsafe { tikv_jemalloc_ctl::raw::write(b"prof.dump\0", std::ptr::null::<std::ffi::c_char>()) };
        }
    });
}

async fn dispatch() -> ExitCode {
    let cli = steward::cli::parse();
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
        Command::Status(args) => status(args).await,
        Command::Version => {
            println!("steward {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Run(args) => run(*args).await,
    }
}

async fn run(args: RunArgs) -> ExitCode {
    steward::telemetry::init(args.log_format);
    let metrics = Arc::new(steward::metrics::Metrics::new());
    let identity = args.instance.clone().unwrap_or_else(default_identity);
    let client = match steward::client::build(args.max_in_flight, &identity, metrics.clone()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build a Kubernetes client");
            return ExitCode::from(1);
        }
    };
    // One watch per kind for the whole process, leader or standby.
    let scope = steward::cache::Scope {
        namespace: args.namespace.clone(),
        ceiling: args.grant_ceiling.clone(),
        controller_user: args.self_user.clone(),
    };
    // Every replica signs (webhook) and verifies (controllers) approvals
    // with the same key; nothing is admitted or reconciled without it.
    let key = match approval_key(&client, &args).await {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %steward::webhook::chain(&e), "no approval signing key");
            return ExitCode::from(1);
        }
    };
    let (caches, watches) = steward::cache::Caches::start(&client, scope);
    let health = Arc::new(Health::new());
    tokio::spawn(health.clone().watchdog());
    let http = steward::http::serve(args.metrics_addr, caches.clone(), metrics.clone(), health.clone());
    let webhook = webhook(caches.clone(), args.clone(), key.clone());
    let controllers = async {
        if args.webhook_only {
            tracing::info!("--webhook-only: no controllers in this process");
            health.set_controllers(Controllers::Running);
            return std::future::pending().await;
        }
        controllers(client, caches, args, identity, metrics, health.clone(), key).await
    };
    tokio::select! {
        _ = shutdown_signal() => {
            // Reconciles are idempotent, so stopping mid-way loses nothing:
            // the next leader or start re-derives everything from the API.
            tracing::info!("signal received; stopping");
            ExitCode::SUCCESS
        }
        _ = watches => {
            tracing::error!("a watch ended");
            ExitCode::from(1)
        }
        res = controllers => {
            match res {
                Ok(()) => tracing::error!("controllers stopped"),
                Err(e) => tracing::error!(error = %e, "stopping"),
            }
            ExitCode::from(1)
        }
        res = webhook => {
            let error = res.err().map(|e| steward::webhook::chain(&e));
            tracing::error!(error = ?error, "admission webhook failed");
            ExitCode::from(1)
        }
        res = http => {
            tracing::error!(error = ?res.err(), "HTTP endpoint failed");
            ExitCode::from(1)
        }
    }
}

/// The host name and process id, when no `--instance` is given.
fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}-{}", host.trim(), std::process::id())
}

/// Serves the admission webhook if it is configured; otherwise never ends.
/// The approval key, retried for a while: the API server may still be
/// starting with the controller.
async fn approval_key(
    client: &kube::Client,
    args: &RunArgs,
) -> Result<steward::decide::approval::Key, steward::approval_key::KeyError> {
    let mut attempt = 0;
    loop {
        match steward::approval_key::load_or_create(
            client.clone(),
            &args.leader_election_namespace,
            &args.approval_key_secret,
        )
        .await
        {
            Ok(k) => return Ok(k),
            Err(e) if attempt < 20 => {
                attempt += 1;
                tracing::warn!(error = %steward::webhook::chain(&e), attempt, "approval key not available yet; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn webhook(
    caches: Arc<Caches>,
    args: RunArgs,
    signing: steward::decide::approval::Key,
) -> Result<(), steward::webhook::WebhookError> {
    let (Some(addr), Some(cert), Some(key)) = (args.webhook_addr, args.webhook_cert, args.webhook_key) else {
        return std::future::pending().await;
    };
    // Unauthenticated only when asked for by name: a webhook anyone can
    // call tells them what Steward would refuse, and costs it CPU.
    if args.webhook_client_ca.is_none() && !args.webhook_unauthenticated {
        return Err(steward::webhook::WebhookError::NoClientAuth);
    }
    let config = steward::webhook::Config {
        addr,
        tls: steward::webhook::Files {
            cert,
            key,
            client_ca: args.webhook_client_ca,
            client_name: args.webhook_client_name,
        },
        controller_user: Some(args.self_user),
        key: signing,
    };
    steward::webhook::serve(caches, config).await
}

/// Runs the controllers, at once or while holding the lease.
async fn controllers(
    client: kube::Client,
    caches: Arc<Caches>,
    args: RunArgs,
    identity: String,
    metrics: Arc<steward::metrics::Metrics>,
    health: Arc<Health>,
    key: steward::decide::approval::Key,
) -> Result<(), steward::leader::LeaderError> {
    let shards = Arc::new(if args.shards > 1 {
        steward::shard::Held::none(args.shards)
    } else {
        steward::shard::Held::everything()
    });
    let config = steward::reconcile::Config {
        instance: Some(identity.clone()),
        key,
        shards: shards.clone(),
        // Each reconcile makes its few writes one after another, so many
        // more reconciles than request slots keep the slots busy (at twice
        // as many, a thousand activations took a third longer). A reconcile
        // in progress holds about 13 KiB: 1,024 of them (at the default) are
        // about 13 MiB, where ten thousand at once held 126 MiB.
        new_work: usize::from(args.max_in_flight) * 16,
        // A released control makes one status write.
        released: usize::from(args.max_in_flight) * 2,
    };
    let work = {
        let (client, metrics) = (client.clone(), metrics.clone());
        async move {
            // A decision on a partial view could report (or, in Enforce,
            // remove) drift wrongly: the controllers start once every cache
            // has listed.
            if caches.wait_synced().await {
                tracing::info!("caches synced; reconciling");
                health.set_controllers(Controllers::Running);
                steward::reconcile::run(client, caches, config, metrics).await;
                health.set_controllers(Controllers::Stopped("a controller task ended".into()));
            } else {
                health.set_controllers(Controllers::Stopped("a watch ended before listing".into()));
            }
        }
    };
    let election = steward::leader::Election {
        namespace: args.leader_election_namespace,
        name: args.leader_election_lease,
        identity,
        duration_seconds: args.lease_duration,
    };
    if args.shards > 1 {
        // Every replica runs the controllers; each writes only for the
        // shards it holds, and stops the moment it loses one.
        let leases = steward::leader::hold_shards(client, election, shards, move |shard| {
            tracing::info!(shard, "holding shard");
            metrics.set_leader(true);
        });
        return tokio::select! {
            () = work => Ok(()),
            res = leases => res,
        };
    }
    if !args.leader_elect {
        metrics.set_leader(true);
        work.await;
        return Ok(());
    }
    steward::leader::lead(client, election, || metrics.set_leader(true), work).await
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

async fn status(args: steward::cli::StatusArgs) -> ExitCode {
    let opts = steward::status_cmd::Options {
        namespace: args.namespace,
        all_namespaces: args.all_namespaces,
        expiring_within: args.expiring_within,
    };
    match steward::status_cmd::run(&opts).await {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
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
        Some(path) => match v::read_ceiling(path) {
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

#[cfg(all(test, not(target_env = "msvc"), target_os = "linux"))]
mod tests {
    /// jemalloc reads its options from a symbol it looks up by name, and
    /// ignores a misnamed one without a word: this checks that the options
    /// above are the ones in force. (`_RJEM_MALLOC_CONF` in the environment
    /// would override them; the test expects it unset.)
    #[test]
    fn the_allocator_runs_with_steward_s_options() {
        // Safety: each name is an `opt.*` entry of jemalloc 5.3 and read as
        // the type it has there (`ssize_t`, `bool`).
        let dirty = unsafe { tikv_jemalloc_ctl::raw::read::<isize>(b"opt.dirty_decay_ms\0") };
        let muzzy = unsafe { tikv_jemalloc_ctl::raw::read::<isize>(b"opt.muzzy_decay_ms\0") };
        let background = unsafe { tikv_jemalloc_ctl::raw::read::<bool>(b"opt.background_thread\0") };
        assert_eq!(dirty.ok(), Some(100));
        assert_eq!(muzzy.ok(), Some(0));
        assert_eq!(background.ok(), Some(true));
    }

    /// What `steward::allocator::long_lived` allocates comes from the
    /// arena of its own, and nothing else does.
    #[test]
    fn long_lived_allocations_come_from_an_arena_of_their_own() {
        steward::allocator::create_arena();
        let arena = steward::allocator::arena().expect("jemalloc creates the arena");
        let name = format!("stats.arenas.{arena}.small.nmalloc\0");
        let allocations = || {
            tikv_jemalloc_ctl::epoch::advance().expect("statistics refresh");
            // Safety: a `uint64_t` entry of jemalloc 5.3's statistics.
            unsafe { tikv_jemalloc_ctl::raw::read::<u64>(name.as_bytes()) }.expect("arena statistics")
        };
        let before = allocations();
        let outside: Vec<Box<[u8; 40]>> = (0..100).map(|_| Box::new([0; 40])).collect();
        let between = allocations();
        let inside: Vec<Box<[u8; 40]>> =
            steward::allocator::long_lived(|| (0..100).map(|_| Box::new([1; 40])).collect());
        let after = allocations();
        assert_eq!(between - before, 0, "an ordinary allocation stays out of the arena");
        // The 100 boxes and the vector holding them.
        assert_eq!(after - between, 101);
        assert_eq!((outside.len(), inside.len()), (100, 100));

        // What a cache keeps of an object is such an allocation: its `Arc`
        // and every string and list in it.
        use steward::cache::Cached;
        let role: k8s_openapi::api::rbac::v1::RoleBinding = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "rb", "namespace": "ns", "uid": "u", "resourceVersion": "1"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "api", "namespace": "ns"}]
        }))
        .expect("a RoleBinding");
        let form = steward::compact::CachedRoleBinding::cache_form(role);
        let before = allocations();
        let kept = steward::cache::keep(&form);
        assert!(
            allocations() - before >= 8,
            "the Arc, the metadata's strings, roleRef's and the subject's"
        );
        assert_eq!(*kept, form);
    }
}
