//! Command line: `steward run | crds | validate | status | version`, also
//! as the kubectl plugin `kubectl steward ...`.

use clap::{Parser, Subcommand, ValueEnum};

/// Steward: owners, least-privilege workload RBAC and time-bound exceptions,
/// enforced in the cluster.
#[derive(Debug, Parser)]
#[command(name = "steward", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller.
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as YAML.
    Crds {
        /// Write one file per CRD into this directory instead of printing.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
    /// Check manifests offline with the controller's own validation.
    Validate(ValidateArgs),
    /// Summarize controls and exceptions in the cluster: by phase, expiring
    /// soon, awaiting approval, overdue reviews, drift.
    Status(StatusArgs),
    /// Print the version.
    Version,
}

/// The file name kubectl runs a plugin by: `kubectl steward` finds the
/// binary installed (or linked) as `kubectl-steward` on PATH.
pub const PLUGIN_NAME: &str = "kubectl-steward";

/// Parses the process's arguments; invoked as `kubectl-steward`, help and
/// errors name the command as users type it (`kubectl steward`).
pub fn parse() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let plugin = std::env::args_os()
        .next()
        .and_then(|a| std::path::Path::new(&a).file_name().map(|n| n == PLUGIN_NAME))
        .unwrap_or(false);
    let mut command = Cli::command();
    if plugin {
        command = command.name("kubectl steward").bin_name("kubectl steward");
    }
    Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit())
}

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line.
    Json,
}

/// Flags of `steward run`.
#[derive(Clone, Debug, clap::Args)]
// How the webhook authenticates its callers: chosen explicitly, never by
// omission.
#[command(group = clap::ArgGroup::new("webhook_auth").args(["webhook_client_ca", "webhook_unauthenticated"]))]
pub struct RunArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "STEWARD_NAMESPACE")]
    pub namespace: Option<String>,
    /// ClusterRole whose rules bound everything Steward grants.
    #[arg(long, env = "STEWARD_GRANT_CEILING", default_value = "steward-grantable")]
    pub grant_ceiling: String,
    /// Address of the /metrics, /healthz and /readyz endpoints.
    #[arg(long, env = "STEWARD_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: std::net::SocketAddr,
    /// Log format.
    #[arg(long, env = "STEWARD_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Reporting instance for Events and leader identity (the pod name in a
    /// Deployment).
    #[arg(long, env = "POD_NAME")]
    pub instance: Option<String>,
    /// Most API requests in flight at once. Every request holds a connection
    /// (and its TLS buffers) while in flight; a burst of reconciles queues
    /// here, in order, instead of opening a connection each. Deletes have
    /// a lane of their own beside it (as many, at least 8). Reconciles that
    /// can only add (new exceptions and controls) run at most 16 per slot
    /// at once; those that may revoke never wait.
    #[arg(long, env = "STEWARD_MAX_IN_FLIGHT", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_in_flight: u16,
    /// Run the controllers only while holding the leader Lease.
    #[arg(long, env = "STEWARD_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Namespace of the leader Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "steward-system")]
    pub leader_election_namespace: String,
    /// Name of the leader Lease.
    #[arg(long, default_value = "steward-controller")]
    pub leader_election_lease: String,
    /// Lease duration in seconds: how long a dead leader can block a new one.
    #[arg(long, default_value_t = 15)]
    pub lease_duration: u64,
    /// Split the namespaces among this many shards, each reconciled by the
    /// replica holding its Lease (`<leader-election-lease>-shard-<i>`).
    /// Every replica keeps every cache and serves the webhook; a dead
    /// holder's shards are taken over within the lease duration. 1: no
    /// sharding (one leader with `--leader-elect`, or none).
    #[arg(long, env = "STEWARD_SHARDS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::shard::MAX_SHARDS)))]
    pub shards: u32,
    /// Serve the validating admission webhook (HTTPS) on this address.
    #[arg(long, env = "STEWARD_WEBHOOK_ADDR", requires_all = ["webhook_cert", "webhook_key", "webhook_auth"])]
    pub webhook_addr: Option<std::net::SocketAddr>,
    /// PEM certificate (chain) of the webhook.
    #[arg(long, env = "STEWARD_WEBHOOK_CERT")]
    pub webhook_cert: Option<std::path::PathBuf>,
    /// PEM private key of the webhook.
    #[arg(long, env = "STEWARD_WEBHOOK_KEY")]
    pub webhook_key: Option<std::path::PathBuf>,
    /// PEM CA certificates: the webhook requires a client certificate signed
    /// by one of them (the API server's, set in its
    /// --admission-control-config-file). Read again when it changes, like
    /// the certificate and key.
    #[arg(long, env = "STEWARD_WEBHOOK_CLIENT_CA", conflicts_with = "webhook_unauthenticated")]
    pub webhook_client_ca: Option<std::path::PathBuf>,
    /// A DNS name the client certificate must carry as a subjectAltName, for
    /// a client CA that signs other clients too.
    #[arg(
        long,
        env = "STEWARD_WEBHOOK_CLIENT_NAME",
        requires = "webhook_client_ca",
        conflicts_with = "webhook_unauthenticated"
    )]
    pub webhook_client_name: Option<String>,
    /// Serve the webhook to any caller, without a client certificate: for
    /// clusters whose API server cannot be given one (most managed
    /// clusters). Then only the NetworkPolicy keeps other callers out.
    #[arg(long, env = "STEWARD_WEBHOOK_UNAUTHENTICATED")]
    pub webhook_unauthenticated: bool,
    /// Secret (in the --leader-election-namespace, the controller's own)
    /// holding the key that signs approval records; created with a random
    /// key when missing.
    #[arg(long, env = "STEWARD_APPROVAL_KEY_SECRET", default_value = "steward-approval-key")]
    pub approval_key_secret: String,
    /// Serve the admission webhook only, without the controllers: for a
    /// webhook Deployment of its own, which keeps admitting (and recording
    /// approvals) while the controllers are rolled or down.
    #[arg(long, requires = "webhook_addr")]
    pub webhook_only: bool,
    /// The controller's own user name, whose writes the webhook always admits.
    #[arg(
        long,
        env = "STEWARD_SELF_USER",
        default_value = "system:serviceaccount:steward-system:steward"
    )]
    pub self_user: String,
}

/// Flags of `steward validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// YAML files or directories (searched recursively for *.yaml, *.yml).
    #[arg(required = true)]
    pub paths: Vec<std::path::PathBuf>,
    /// The clock, RFC 3339 (default: now), for reproducible runs.
    #[arg(long)]
    pub now: Option<String>,
    /// Report expired exceptions as warnings instead of errors.
    #[arg(long)]
    pub allow_expired: bool,
    /// Warn about exceptions expiring within this duration.
    #[arg(long, default_value = "7d")]
    pub warn_within: String,
    /// A ClusterRole YAML whose rules are the grant ceiling (default: the
    /// one config/default installs, config/rbac/grant_ceiling.yaml).
    #[arg(long)]
    pub ceiling: Option<std::path::PathBuf>,
    /// Namespace of documents that name none.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "human")]
    pub output: crate::validate_cmd::Format,
}

/// Flags of `steward status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Namespace (default: the kubeconfig context's).
    #[arg(long, short)]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(long, short = 'A')]
    pub all_namespaces: bool,
    /// Exceptions ending within this duration are listed as expiring soon.
    #[arg(long, default_value = "7d")]
    pub expiring_within: String,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Cli;

    fn run(extra: &[&str]) -> Result<Cli, clap::Error> {
        let base = [
            "steward",
            "run",
            "--webhook-addr=127.0.0.1:9443",
            "--webhook-cert=c",
            "--webhook-key=k",
        ];
        Cli::try_parse_from(base.iter().chain(extra))
    }

    #[test]
    fn the_webhook_needs_its_callers_authentication_chosen() {
        assert!(run(&[]).is_err());
        assert!(run(&["--webhook-client-ca=ca.crt"]).is_ok());
        assert!(run(&["--webhook-client-ca=ca.crt", "--webhook-client-name=kube-apiserver"]).is_ok());
        assert!(run(&["--webhook-unauthenticated"]).is_ok());
        assert!(run(&["--webhook-client-ca=ca.crt", "--webhook-unauthenticated"]).is_err());
        assert!(run(&["--webhook-unauthenticated", "--webhook-client-name=kube-apiserver"]).is_err());
    }

    #[test]
    fn without_a_webhook_no_authentication_is_asked_for() {
        assert!(Cli::try_parse_from(["steward", "run"]).is_ok());
    }
}
