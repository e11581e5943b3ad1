//! One local control plane per test binary (e2e/control-plane.sh), the
//! CRDs and RBAC of `config/` applied as the admin, and the controller
//! running as its own service-account identity. Each test gets a fresh
//! namespace, opted in as the platform team would (the grant ceiling bound
//! to the controller there); kubectl runs as the admin.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{Condition, await_condition};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

/// How long a test waits for an outcome that has no timing contract of its
/// own (a reconcile, a watch, the API server's authorizer catching up). The
/// suite runs on loaded machines, so this is generous; where how fast is
/// the contract (expiry within a second, the review due to the second), the
/// test asserts that separately, from the API server's own timestamps.
pub const OUTCOME: Duration = Duration::from_secs(30);

/// The shared test environment.
pub struct Env {
    /// Control plane directory.
    pub dir: PathBuf,
    /// The kubectl built with the API server (same release).
    pub kubectl: PathBuf,
    /// The API server's version, such as `v1.37.2`.
    pub server_version: String,
    /// Admin kubeconfig (system:masters).
    pub admin_kubeconfig: PathBuf,
    /// Controller kubeconfig (its own identity, RBAC from config/).
    pub controller_kubeconfig: PathBuf,
    /// The controller's user name.
    pub controller_user: String,
    /// API server audit log.
    pub audit_log: PathBuf,
    /// The writes read from the audit log so far, and where reading stopped.
    audit: std::sync::Mutex<AuditLog>,
    /// Address of the controller's HTTP endpoints.
    pub metrics_addr: String,
}

/// The verbs that change something; the only ones counted as writes.
const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

/// How often waits on the audit log read it.
const AUDIT_POLL: Duration = Duration::from_millis(100);

/// One write request, as the API server's audit log records it.
#[derive(Debug, Clone)]
pub struct ApiWrite {
    /// Who made it.
    pub user: String,
    /// Whom it impersonated (`--as`), if anyone.
    pub as_user: Option<String>,
    /// create, update, patch, delete or deletecollection.
    pub verb: String,
    /// The resource, with its subresource: `controlownerships/status`.
    pub resource: String,
    /// The namespace (None for cluster-scoped objects).
    pub namespace: Option<String>,
    /// The object's name (may be empty for a create).
    pub name: String,
    /// The HTTP status code of the answer.
    pub code: u64,
    /// When the API server received the request.
    pub received: jiff::Timestamp,
    /// When the API server completed its answer.
    pub completed: jiff::Timestamp,
}

impl ApiWrite {
    /// Whether this is `verb` on `resource` (`resource/subresource`) named
    /// `name` in `ns` (None: cluster-scoped).
    pub fn is(&self, verb: &str, resource: &str, ns: Option<&str>, name: &str) -> bool {
        self.verb == verb && self.resource == resource && self.namespace.as_deref() == ns && self.name == name
    }
}

/// The audit log read so far: it only grows, so each read parses only what
/// was appended since the last one.
#[derive(Default)]
struct AuditLog {
    /// Bytes consumed (whole lines only).
    offset: u64,
    writes: Vec<ApiWrite>,
}

impl AuditLog {
    fn read_from(&mut self, path: &Path) {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut file) = std::fs::File::open(path) else {
            return;
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut appended = Vec::new();
        if file.read_to_end(&mut appended).is_err() {
            return;
        }
        // A line still being written is left for the next read.
        let Some(end) = appended.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        self.offset += end as u64 + 1;
        for line in appended[..end].split(|&b| b == b'\n') {
            let Ok(e) = serde_json::from_slice::<serde_json::Value>(line) else {
                continue;
            };
            if e["stage"] != "ResponseComplete" || !e["verb"].as_str().is_some_and(|v| WRITE_VERBS.contains(&v)) {
                continue;
            }
            let o = &e["objectRef"];
            let str_of = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            let time = |v: &serde_json::Value| {
                v.as_str()
                    .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                    .unwrap_or_else(|| panic!("audit event without a timestamp: {e}"))
            };
            self.writes.push(ApiWrite {
                user: str_of(&e["user"]["username"]),
                as_user: e["impersonatedUser"]["username"].as_str().map(str::to_string),
                verb: str_of(&e["verb"]),
                resource: match o["subresource"].as_str() {
                    Some(sub) => format!("{}/{sub}", str_of(&o["resource"])),
                    None => str_of(&o["resource"]),
                },
                namespace: o["namespace"].as_str().map(str::to_string),
                name: str_of(&o["name"]),
                code: e["responseStatus"]["code"].as_u64().unwrap_or_default(),
                received: time(&e["requestReceivedTimestamp"]),
                completed: time(&e["stageTimestamp"]),
            });
        }
    }
}

/// A CA and a serving certificate for 127.0.0.1 in `dir` (`ca.crt`,
/// `webhook.crt`, `webhook.key`); returns the CA bundle, base64.
pub fn pki(dir: &std::path::Path) -> String {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=webhook-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "webhook.key",
        "-out",
        "webhook.csr",
    ]);
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "webhook.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext",
        "-out",
        "webhook.crt",
    ]);
    base64_encode(&std::fs::read(dir.join("ca.crt")).unwrap())
}

fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Runs `cmd` and requires success; the failure shows its stdout and stderr.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Starts everything once per test binary.
pub fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let env = start();
        env.start_approvals_webhook();
        env.start_controller();
        env
    })
}

/// A second shared control plane with config/ applied where no controller
/// (and no webhook) ever runs: what it refuses, the API server refused.
pub fn without_controller() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(start)
}

/// A control plane of its own, with config/ applied and no controller
/// running, for tests that start and kill controllers themselves. The
/// approvals webhook runs in a process of its own, so exceptions are
/// recorded and approved while those controllers come and go.
pub fn isolated() -> Env {
    let env = start();
    env.start_approvals_webhook();
    env
}

/// The user the tests' kubectl runs as (system:masters). Controls in the
/// tests list it as a trusted applier, so what the admin applies is
/// approved as if merged from Git; tests of approval itself use personas.
pub const ADMIN_USER: &str = "steward-admin";

/// Like [`isolated`], with the API server compacting etcd every
/// `compaction` (Go duration syntax, such as `2s`): a watch resumed after a
/// restart from a compacted revision gets 410 Gone and must relist.
#[allow(dead_code)]
pub fn isolated_compacting(compaction: &str) -> Env {
    let env = start_with(&[("STEWARD_ETCD_COMPACTION_INTERVAL", compaction)]);
    env.start_approvals_webhook();
    env
}

fn start() -> Env {
    start_with(&[])
}

/// A control plane of its own with nothing of Steward's installed, for
/// tests of other ways to install it (the Helm chart, the release
/// manifest): those must create every object themselves.
#[allow(dead_code)]
pub fn bare() -> Env {
    start_plane(&[])
}

fn start_with(vars: &[(&str, &str)]) -> Env {
    let env = start_plane(vars);
    env.install_config_default();
    env
}

fn start_plane(vars: &[(&str, &str)]) -> Env {
    let dir = tempfile::Builder::new()
        .prefix("steward-e2e-")
        .tempdir()
        .expect("temp dir")
        .keep();
    let script = repo().join("e2e/control-plane.sh");
    run(Command::new("bash")
        .arg(&script)
        .arg("start")
        .arg(&dir)
        .envs(vars.iter().copied()));
    // Stop the control plane and controller when this test process ends,
    // however it ends (statics are never dropped).
    let watchdog = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         [ -f '{d}/controller.pid' ] && kill -9 $(cat '{d}/controller.pid') 2>/dev/null; \
         [ -f '{d}/controllers.pids' ] && kill -9 $(cat '{d}/controllers.pids') 2>/dev/null; \
         bash '{s}' stop '{d}'; rm -rf '{d}'",
        pid = std::process::id(),
        d = dir.display(),
        s = script.display()
    );
    // Never waited for on purpose: it must outlive this process.
    let watchdog = Command::new("setsid")
        .args(["sh", "-c", &watchdog])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("watchdog");
    std::mem::forget(watchdog);

    let env_file = std::fs::read_to_string(dir.join("env")).expect("control plane env file");
    let get = |k: &str| {
        env_file
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} missing from env file"))
            .to_string()
    };
    Env {
        kubectl: PathBuf::from(get("KUBECTL")),
        server_version: get("KUBERNETES_VERSION"),
        admin_kubeconfig: PathBuf::from(get("ADMIN_KUBECONFIG")),
        controller_kubeconfig: PathBuf::from(get("CONTROLLER_KUBECONFIG")),
        controller_user: get("CONTROLLER_USER"),
        audit_log: PathBuf::from(get("AUDIT_LOG")),
        audit: Default::default(),
        metrics_addr: format!("127.0.0.1:{}", free_port()),
        dir,
    }
}

impl Env {
    /// Applies config/default and a PolicyReport CRD, and waits for the CRDs.
    fn install_config_default(&self) {
        // CRDs, RBAC, ceiling, Deployment: exactly what users install.
        self.kubectl_ok(&[
            "apply",
            "-k",
            repo().join("config/default").to_str().unwrap_or_default(),
        ]);
        self.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "crd/controlownerships.steward.dev",
            "crd/policyexceptions.steward.dev",
            "--timeout=60s",
        ]);
        self.install_policy_report_crd();
    }

    /// A PolicyReport CRD, Established, so a controller started afterwards
    /// keeps reports (it checks once at start).
    pub fn install_policy_report_crd(&self) {
        self.kubectl_ok(&[
            "apply",
            "-f",
            repo()
                .join("e2e/testdata/policyreport-crd.yaml")
                .to_str()
                .unwrap_or_default(),
        ]);
        self.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "crd/policyreports.wgpolicyk8s.io",
            "--timeout=60s",
        ]);
    }
}

impl Env {
    /// Serves the approvals (mutating) webhook from a `--webhook-only`
    /// process of its own, registers the shipped
    /// `config/webhook/mutating_webhook.yaml` pointed at it, and waits until
    /// the API server calls it (a server-side dry run comes back with the
    /// requester recorded).
    pub fn start_approvals_webhook(&self) {
        let dir = self.dir.join("approvals-pki");
        std::fs::create_dir_all(&dir).expect("pki dir");
        let ca = pki(&dir);
        let addr = format!("127.0.0.1:{}", free_port());
        let (child, metrics) = self.spawn_controller(
            "approvals-webhook",
            &[
                "--webhook-only",
                "--webhook-addr",
                &addr,
                "--webhook-cert",
                dir.join("webhook.crt").to_str().unwrap_or_default(),
                "--webhook-key",
                dir.join("webhook.key").to_str().unwrap_or_default(),
                "--webhook-client-ca",
                self.dir.join("pki/webhook-client-ca.crt").to_str().unwrap_or_default(),
                "--webhook-client-name",
                "kube-apiserver",
            ],
        );
        std::mem::forget(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while http_get(&format!("http://{metrics}/readyz")).is_none_or(|(c, _)| c != 200) {
            assert!(
                std::time::Instant::now() < deadline,
                "approvals webhook not ready:\n{}",
                self.controller_logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let config = mutating_webhook_config(&format!("https://{addr}/mutate"), &ca);
        let out = self.kubectl_stdin(&["apply", "-f", "-"], &config);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let probe = r#"{"apiVersion": "steward.dev/v1alpha1", "kind": "PolicyException",
            "metadata": {"name": "webhook-probe", "namespace": "default"},
            "spec": {"control": "none", "ticket": "SEC-1", "approver": "a", "reason": "probe",
                     "expiresAt": "2999-01-01T00:00:00Z"}}"#;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.kubectl_stdin(&["create", "--dry-run=server", "-o", "json", "-f", "-"], probe);
            if String::from_utf8_lossy(&out.stdout).contains("steward.dev/requested-by") {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the API server does not call the approvals webhook: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Starts the controller as the controller identity and waits for
    /// `/readyz`.
    pub fn start_controller(&self) {
        let log = std::fs::File::create(self.dir.join("controller.log")).expect("controller log");
        let child = Command::new(env!("CARGO_BIN_EXE_steward"))
            .args(["run", "--metrics-addr", &self.metrics_addr])
            .env("KUBECONFIG", &self.controller_kubeconfig)
            .env("NO_COLOR", "1")
            .env(
                "RUST_LOG",
                std::env::var("STEWARD_TEST_LOG").unwrap_or_else(|_| "info,steward=debug,kube=warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start controller");
        std::fs::write(self.dir.join("controller.pid"), child.id().to_string()).expect("pid file");
        std::mem::forget(child);
        let url = format!("http://{}/readyz", self.metrics_addr);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if http_get(&url).is_some_and(|(code, _)| code == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("controller not ready; log:\n{}", self.controller_log());
    }

    /// The controller's `/metrics`, parsed.
    pub fn metrics(&self) -> prometheus_parse::Scrape {
        let (code, body) = http_get(&format!("http://{}/metrics", self.metrics_addr)).expect("scrape /metrics");
        assert_eq!(code, 200, "{body}");
        let lines = body.lines().map(|l| Ok(l.to_string()));
        prometheus_parse::Scrape::parse(lines).expect("Prometheus text format")
    }

    /// Stops the API server (and etcd, with `etcd`) and starts it again on
    /// the same ports and data; returns once it answers `/readyz`.
    #[allow(dead_code)]
    pub fn restart_api_server(&self, etcd: bool) {
        self.restart_with(etcd.then_some("etcd"));
    }

    /// Restarts the API server as `restart_api_server(false)` does, with
    /// one write to etcd and a compaction to it while it is down: every
    /// resumed watch is answered 410 Gone and its client relists.
    #[allow(dead_code)]
    pub fn restart_api_server_past_every_watch(&self) {
        self.restart_with(Some("moved"));
    }

    fn restart_with(&self, mode: Option<&str>) {
        let script = repo().join("e2e/control-plane.sh");
        let mut cmd = Command::new("bash");
        cmd.arg(&script).arg("restart").arg(&self.dir);
        cmd.args(mode);
        run(&mut cmd);
    }

    /// The controller's process id (the bench reads its peak RSS).
    #[allow(dead_code)]
    pub fn controller_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("controller.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Starts another controller process with `extra` flags, logging to
    /// `<dir>/<name>.log`; returns it with its metrics address.
    pub fn spawn_controller(&self, name: &str, extra: &[&str]) -> (std::process::Child, String) {
        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(self.dir.join(format!("{name}.log"))).expect("controller log");
        let child = Command::new(env!("CARGO_BIN_EXE_steward"))
            .args(["run", "--metrics-addr", &addr])
            .args(extra)
            .env("KUBECONFIG", &self.controller_kubeconfig)
            .env("POD_NAME", name)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info,kube=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start controller");
        let mut pids = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("controllers.pids"))
            .expect("pid list");
        let _ = writeln!(pids, "{}", child.id());
        (child, addr)
    }

    /// Starts another controller process with `extra` flags and waits (up
    /// to a minute: several control planes may be starting on the machine)
    /// until its `/readyz` answers 200; returns it with its metrics address.
    pub async fn spawn_ready_controller(&self, name: &str, extra: &[&str]) -> (std::process::Child, String) {
        let (child, addr) = self.spawn_controller(name, extra);
        let url = format!("http://{addr}/readyz");
        eventually(Duration::from_secs(60), &format!("{name} ready"), || {
            let ok = http_get(&url).is_some_and(|(c, _)| c == 200);
            async move { ok }
        })
        .await;
        (child, addr)
    }

    /// Waits until Events with every one of `reasons` were recorded in `ns`.
    pub async fn wait_for_events(&self, ns: &str, reasons: &[&str]) {
        let deadline = std::time::Instant::now() + OUTCOME;
        loop {
            let seen = self.kubectl_ok(&[
                "get",
                "events.events.k8s.io",
                "-n",
                ns,
                "-o",
                "jsonpath={.items[*].reason}",
            ]);
            if reasons.iter().all(|r| seen.split_whitespace().any(|s| s == *r)) {
                return;
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "events {reasons:?} not in {ns} within {OUTCOME:?}: saw {seen:?}; controller logs:\n{}",
                    self.controller_logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every controller log of this control plane (the shared controller's
    /// and those tests spawned), for failure messages.
    pub fn controller_logs(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".log") && !["apiserver.log", "etcd.log", "audit.log"].contains(&name.as_str()) {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                out.push_str(&format!("--- {name}\n{text}"));
            }
        }
        out
    }

    /// The controller's log so far.
    pub fn controller_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("controller.log")).unwrap_or_default()
    }

    /// Runs kubectl as the admin.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(&self.kubectl)
            .args(args)
            .env("KUBECONFIG", &self.admin_kubeconfig)
            .output()
            .expect("kubectl")
    }

    /// Runs kubectl as the admin and requires success; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl as the controller identity.
    pub fn kubectl_as_controller(&self, args: &[&str]) -> Output {
        Command::new(&self.kubectl)
            .args(args)
            .env("KUBECONFIG", &self.controller_kubeconfig)
            .output()
            .expect("kubectl")
    }

    /// `kubectl apply -n ns -f -` with `yaml` on stdin.
    pub fn apply(&self, ns: &str, yaml: &str) -> Output {
        self.apply_with(ns, yaml, &[])
    }

    /// `kubectl apply -n ns -f - EXTRA...` with `yaml` on stdin.
    pub fn apply_with(&self, ns: &str, yaml: &str, extra: &[&str]) -> Output {
        let mut args = vec!["apply", "-n", ns, "-f", "-"];
        args.extend_from_slice(extra);
        self.kubectl_stdin(&args, yaml)
    }

    /// kubectl `args` as the admin, with `input` on stdin.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = Command::new(&self.kubectl)
            .args(args)
            .env("KUBECONFIG", &self.admin_kubeconfig)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("kubectl")
    }

    /// Applies and requires success.
    pub fn apply_ok(&self, ns: &str, yaml: &str) {
        let out = self.apply(ns, yaml);
        assert!(
            out.status.success(),
            "kubectl apply failed:\n{}\n{yaml}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// An admin client.
    pub async fn admin(&self) -> Client {
        client_from(&self.admin_kubeconfig).await
    }

    /// A fresh namespace, opted in (`opt_in`): where Steward manages
    /// identities.
    pub async fn namespace(&self, prefix: &str) -> String {
        let name = self.bare_namespace(prefix).await;
        self.opt_in(&name).await;
        name
    }

    /// A fresh namespace the platform has not opted in: the controller
    /// does not hold the grant ceiling there.
    pub async fn bare_namespace(&self, prefix: &str) -> String {
        let name = format!("{prefix}-{}", &uuid_like()[..8]);
        let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).expect("namespace");
        Api::<Namespace>::all(self.admin().await)
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
        name
    }

    /// Opts `ns` in as the platform team does (README): the admin binds the
    /// grant ceiling to the controller there with the shipped sample, then
    /// waits until the API server's authorizer has seen it, so the
    /// controller's first Role there is not refused.
    pub async fn opt_in(&self, ns: &str) {
        let sample = repo().join("config/samples/grant-ceiling-binding.yaml");
        self.kubectl_ok(&["apply", "-n", ns, "-f", sample.to_str().unwrap_or_default()]);
        eventually(OUTCOME, "the controller holds the grant ceiling", || {
            self.controller_can(ns, "get", "", "configmaps")
        })
        .await;
    }

    /// Whether the controller's identity may `verb` `resource` (in `group`)
    /// in `ns`, as the API server's authorizer answers.
    pub async fn controller_can(&self, ns: &str, verb: &str, group: &str, resource: &str) -> bool {
        let groups = match self.controller_user.strip_prefix("system:serviceaccount:") {
            Some(sa) => service_account_groups(sa.split(':').next().unwrap_or_default()),
            None => vec!["system:authenticated".into()],
        };
        self.user_can(&self.controller_user, groups, ns, verb, group, resource)
            .await
    }

    /// Every write (create, update, patch, delete, deletecollection) the
    /// controller made, in the order the API server's audit log records
    /// them. Other verbs (get, list, watch) are never included, whatever the
    /// audit policy logs.
    pub fn controller_writes(&self) -> Vec<ApiWrite> {
        self.with_writes(|all| all.iter().filter(|w| w.user == self.controller_user).cloned().collect())
    }

    /// `f` of every write anyone made (see `controller_writes`), the audit
    /// log read up to its end.
    fn with_writes<R>(&self, f: impl FnOnce(&[ApiWrite]) -> R) -> R {
        let mut audit = self.audit.lock().unwrap_or_else(|e| e.into_inner());
        audit.read_from(&self.audit_log);
        f(&audit.writes)
    }

    /// Writes the controller made in `ns` according to the API server's
    /// audit log.
    pub fn controller_writes_in(&self, ns: &str) -> usize {
        self.controller_writes_where(|n| n == ns)
    }

    /// Writes the controller made in `ns`, counted by "verb resource[/sub] code".
    pub fn controller_writes_by_kind(&self, ns: &str) -> std::collections::BTreeMap<String, usize> {
        let mut out = std::collections::BTreeMap::new();
        for w in self
            .controller_writes()
            .into_iter()
            .filter(|w| w.namespace.as_deref() == Some(ns))
        {
            *out.entry(format!("{} {} {}", w.verb, w.resource, w.code)).or_insert(0) += 1;
        }
        out
    }

    /// Writes the controller made in the namespaces `pick` accepts.
    pub fn controller_writes_where(&self, pick: impl Fn(&str) -> bool) -> usize {
        self.controller_writes()
            .iter()
            .filter(|w| w.namespace.as_deref().is_some_and(&pick))
            .count()
    }

    /// Waits until the audit log holds a write `pick` accepts, and returns
    /// the first one. The log can trail what a watch already shows by a
    /// moment, so this is how a test reads when the API server did something.
    pub async fn audited(&self, timeout: Duration, what: &str, pick: impl Fn(&ApiWrite) -> bool) -> ApiWrite {
        let mut found = None;
        eventually_every(AUDIT_POLL, timeout, what, || {
            found = self.with_writes(|all| all.iter().find(|w| pick(w)).cloned());
            let ok = found.is_some();
            async move { ok }
        })
        .await;
        found.expect("found by the probe")
    }

    /// `audited`, for the controller's writes only.
    pub async fn controller_write(&self, timeout: Duration, what: &str, pick: impl Fn(&ApiWrite) -> bool) -> ApiWrite {
        self.audited(timeout, what, |w| w.user == self.controller_user && pick(w))
            .await
    }

    /// Waits until the controller has written nothing in `ns` for `quiet`,
    /// as the audit log shows (a measured quiet period, not a guess), and
    /// returns the instant that period began: when its last write there
    /// completed. Panics after `timeout`: a controller that never stops
    /// writing never settles.
    pub async fn controller_quiet_in(&self, ns: &str, quiet: Duration, timeout: Duration) -> jiff::Timestamp {
        let quiet = jiff::SignedDuration::try_from(quiet).expect("a short duration");
        let waiting_since = jiff::Timestamp::now();
        let mut since = waiting_since;
        eventually_every(
            AUDIT_POLL,
            timeout,
            &format!("no controller write in {ns} for {quiet:#}"),
            || {
                since = self
                    .with_writes(|all| {
                        all.iter()
                            .filter(|w| w.user == self.controller_user && w.namespace.as_deref() == Some(ns))
                            .map(|w| w.completed)
                            .max()
                    })
                    .unwrap_or(waiting_since);
                let ok = jiff::Timestamp::now().duration_since(since) >= quiet;
                async move { ok }
            },
        )
        .await;
        since
    }

    /// Returns once the API server's RBAC authorizer has seen every Role and
    /// RoleBinding written in `ns` so far. Its caches follow the API server
    /// in order, so once a Role and RoleBinding written now grant a probe
    /// identity, everything written before them is in force too. A denial
    /// asserted after this is a real denial, not an authorizer that has not
    /// caught up yet.
    pub async fn rbac_caught_up(&self, ns: &str) {
        let probe = format!("rbac-probe-{}", &uuid_like()[..8]);
        self.apply_ok(
            ns,
            &format!(
                r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: {probe}}}
rules: [{{apiGroups: [""], resources: [configmaps], verbs: [get]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: {probe}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: {probe}}}
subjects: [{{kind: ServiceAccount, name: {probe}, namespace: {ns}}}]
"#
            ),
        );
        eventually(OUTCOME, "the RBAC authorizer caught up", || {
            self.can(ns, &probe, "get", "", "configmaps")
        })
        .await;
    }

    /// Whether service account `sa` of `ns` may `verb` `resource` (in
    /// `group`), as the API server's authorizer answers.
    pub async fn can(&self, ns: &str, sa: &str, verb: &str, group: &str, resource: &str) -> bool {
        let user = format!("system:serviceaccount:{ns}:{sa}");
        self.user_can(&user, service_account_groups(ns), ns, verb, group, resource)
            .await
    }

    /// Whether `user` in `groups` may `verb` `resource` (in `group`) in
    /// `ns`, as the API server's authorizer answers.
    pub async fn user_can(
        &self,
        user: &str,
        groups: Vec<String>,
        ns: &str,
        verb: &str,
        group: &str,
        resource: &str,
    ) -> bool {
        let (resource, subresource) = match resource.split_once('/') {
            Some((r, s)) => (r.to_string(), Some(s.to_string())),
            None => (resource.to_string(), None),
        };
        let sar = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.to_string()),
                groups: Some(groups),
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(ns.to_string()),
                    verb: Some(verb.to_string()),
                    group: Some(group.to_string()),
                    resource: Some(resource),
                    subresource,
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.admin().await);
        let answer = api
            .create(&PostParams::default(), &sar)
            .await
            .expect("SubjectAccessReview");
        answer.status.is_some_and(|s| s.allowed)
    }
}

/// The groups the API server gives every service account of `ns`.
fn service_account_groups(ns: &str) -> Vec<String> {
    vec![
        "system:serviceaccounts".into(),
        format!("system:serviceaccounts:{ns}"),
        "system:authenticated".into(),
    ]
}

/// A client from a kubeconfig file.
pub async fn client_from(path: &Path) -> Client {
    let kc = Kubeconfig::read_from(path).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("client config");
    Client::try_from(config).expect("client")
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:016x}", (t as u64) ^ (n.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
}

/// Minimal HTTP GET on loopback: (status, body).
pub fn http_get(url: &str) -> Option<(u16, String)> {
    use std::io::Read;
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}")))?;
    let mut s = std::net::TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let code = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((code, body))
}

/// Creates `obj` with `api`, sending it again for up to `timeout` while
/// the API server fails it (restarting, or swamped); an object created by a
/// request whose answer was lost counts as created.
pub async fn create_retrying<K>(api: &Api<K>, obj: &K, timeout: Duration)
where
    K: Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match api.create(&PostParams::default(), obj).await {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 409 => return,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("create of {name} sent again: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{name} not created: {e}"),
        }
    }
}

/// Waits (watching, not sleeping) until `cond` holds for the named object;
/// panics with `what` after `timeout`.
pub async fn wait_for<K>(api: &Api<K>, name: &str, timeout: Duration, what: &str, cond: impl Condition<K>) -> K
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, cond)).await {
        Ok(Ok(Some(obj))) => obj,
        Ok(Ok(None)) => panic!("{name}: deleted while waiting for {what}"),
        Ok(Err(e)) => panic!("{name}: watch failed while waiting for {what}: {e}"),
        Err(_) => {
            let now = api.get_opt(name).await.ok().flatten();
            panic!("{name}: not {what} within {timeout:?}; object now: {now:#?}")
        }
    }
}

/// Polls `probe` every 20 ms until it returns true (for answers that cannot
/// be watched, such as SubjectAccessReviews); returns the time it took.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, probe: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_every(Duration::from_millis(20), timeout, what, probe).await
}

/// `eventually`, probing every `interval` (for probes that cost more, such
/// as reading the audit log).
pub async fn eventually_every<F, Fut>(interval: Duration, timeout: Duration, what: &str, mut probe: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    loop {
        if probe().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < timeout, "not {what} within {timeout:?}");
        tokio::time::sleep(interval).await;
    }
}

/// Condition: the object's status condition `type_` has `status`.
pub fn condition_is<K: serde::Serialize + Resource>(
    type_: &'static str,
    status: &'static str,
) -> impl Fn(Option<&K>) -> bool {
    move |obj: Option<&K>| {
        obj.and_then(|o| serde_json::to_value(o).ok())
            .and_then(|v| {
                v["status"]["conditions"]
                    .as_array()
                    .map(|cs| cs.iter().any(|c| c["type"] == type_ && c["status"] == status))
            })
            .unwrap_or(false)
    }
}

/// Condition: a PolicyException has reached `phase`.
pub fn phase_is(phase: steward::api::Phase) -> impl Fn(Option<&steward::api::PolicyException>) -> bool {
    move |p| p.and_then(|p| p.status.as_ref()).and_then(|s| s.phase) == Some(phase)
}

/// A condition of an object by type, as JSON.
pub fn condition<K: serde::Serialize>(obj: &K, type_: &str) -> Option<serde_json::Value> {
    let v = serde_json::to_value(obj).ok()?;
    v["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

/// RFC 3339 with Z, `secs` from now (negative: in the past).
pub fn from_now(secs: i64) -> String {
    let t = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(secs);
    t.round(jiff::Unit::Second).unwrap_or(t).to_string()
}

/// A review reviewed an hour ago, due every 30 days.
pub fn reviewed_recently() -> String {
    format!(r#"{{interval: 30d, lastReviewed: "{}"}}"#, from_now(-3600))
}

/// A ControlOwnership `name` owned by payments-team (backup
/// security-team, approver alice@example.com) with `review` and
/// `enforcement`, and one identity per `(service account, rule)`; the review
/// and the rules are written in YAML flow style.
pub fn control_yaml(name: &str, enforcement: &str, review: &str, identities: &[(&str, &str)]) -> String {
    let identities: String = identities
        .iter()
        .map(|(sa, rule)| format!("    - serviceAccount: {sa}\n      task: Does its job\n      rules: [{rule}]\n"))
        .collect();
    format!(
        r#"
apiVersion: steward.dev/v1alpha1
kind: ControlOwnership
metadata: {{name: {name}}}
spec:
  layer: Identity
  owner: {{name: payments-team}}
  backupOwner: {{name: security-team}}
  approvers: [alice@example.com]
  review: {review}
  exceptionPolicy: {{trustedAppliers: [{ADMIN_USER}]}}
  enforcement: {enforcement}
  workloadIdentities:
{identities}"#
    )
}

/// A PolicyException `name` of control `control`, approved (claimed) by
/// `approver`, expiring at `expires`, with `extra` spec lines (two-space
/// indented YAML: a grant, a window start, tolerations) appended.
#[allow(dead_code)]
pub fn exception_yaml(name: &str, control: &str, approver: &str, expires: &str, extra: &str) -> String {
    format!(
        r#"
apiVersion: steward.dev/v1alpha1
kind: PolicyException
metadata: {{name: {name}}}
spec:
  control: {control}
  ticket: SEC-1
  approver: {approver}
  reason: Needed for the test
  expiresAt: "{expires}"
{extra}"#
    )
}

/// The shipped `config/webhook/mutating_webhook.yaml`, pointed at `url`
/// with the CA bundle `ca` instead of the in-cluster Service and
/// cert-manager's injection; everything else exactly as users install it.
pub fn mutating_webhook_config(url: &str, ca: &str) -> String {
    let shipped = include_str!("../config/webhook/mutating_webhook.yaml");
    let mut config: serde_json::Value = serde_yaml_ng::from_str(shipped).expect("webhook YAML");
    config["metadata"]["annotations"] = serde_json::json!({});
    for hook in config["webhooks"].as_array_mut().expect("webhooks") {
        hook["clientConfig"] = serde_json::json!({"url": url, "caBundle": ca});
    }
    serde_json::to_string(&config).expect("webhook JSON")
}

/// A RoleBinding `name` of the ClusterRole `admin` to service account `sa`
/// of the namespace it is applied in: drift for a control managing `sa`.
pub fn admin_binding_yaml(name: &str, sa: &str) -> String {
    format!(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: {name}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: admin}}
subjects: [{{kind: ServiceAccount, name: {sa}}}]
"#
    )
}
