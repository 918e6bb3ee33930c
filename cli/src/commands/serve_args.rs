//! The flags of `berth dev` and `berth server` (`ServeArgs`) and which of the two runs (`Mode`):
//! what `serve` starts and `serve_handoff` takes over with.

use super::flags::{parse_duration, NodeArgs, ServeLimitArgs};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Where the store lives.
    #[arg(long, env = "BERTH_DATA", default_value = "./berth-data")]
    pub data: PathBuf,
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// HTTP listen address (web console, JSON API, health, metrics).
    #[arg(long, default_value = "127.0.0.1:7080")]
    pub http: SocketAddr,
    /// How often agents heartbeat.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub heartbeat: Duration,
    /// An agent silent this long is disconnected.
    #[arg(long, default_value = "6s", value_parser = parse_duration)]
    pub heartbeat_timeout: Duration,
    /// How long a stopped task (its record, and so its containers) is kept.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub task_retention: Duration,
    /// Resync period of the service controllers.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub resync: Duration,
    /// A node disconnected this long is lost; its tasks are replaced elsewhere.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub lost_node_timeout: Duration,
    /// A node whose agent's connection closed without a goodbye (a crashed agent) and has not
    /// reconnected this long is lost at once, without waiting out --lost-node-timeout.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub crash_grace: Duration,
    /// A service task counts as healthy only after running this long (with passing checks).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub min_healthy_time: Duration,
    /// How often auto scaling policies are evaluated, each over a metric window as long.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub scaling_interval: Duration,
    /// Do not run the load balancer in this process (run `berth proxy` elsewhere).
    #[arg(long)]
    pub no_proxy: bool,
    /// Where the proxy's listeners bind (default: 127.0.0.1 for dev, 0.0.0.0 for server).
    #[arg(long)]
    pub proxy_bind: Option<std::net::IpAddr>,
    /// server only: serve plaintext gRPC without any auth (tokens, certificates). For a trusted
    /// network or a test that is not about trust; never on an open network.
    #[arg(long, conflicts_with = "secure")]
    pub insecure: bool,
    /// dev only: TLS, tokens and certificates as `berth server` has them (dev is open otherwise).
    #[arg(long)]
    pub secure: bool,
    /// A DNS name or IP address the server's certificate is also valid for (repeatable), besides
    /// the hostname, localhost, 127.0.0.1 and the listen IP.
    #[arg(long = "tls-san")]
    pub tls_sans: Vec<String>,
    /// How long agent and proxy certificates last; they renew at two thirds.
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    pub cert_lifetime: Duration,
    /// The region in ARNs (`arn:aws:ecs:REGION:…`) when a request's SigV4 scope names none.
    #[arg(long, default_value = "us-east-1", value_parser = parse_region)]
    pub region: String,
    /// The 12-digit account id in ARNs. A 12-digit access key id selects that account instead,
    /// as LocalStack does.
    #[arg(long, default_value = "000000000000", value_parser = parse_account)]
    pub account_id: String,
    /// The key that seals secret values at rest (32 bytes, base64), kept outside the store;
    /// servers on one etcd share the file. Default: DATA.secrets-key beside the data directory,
    /// made on first start.
    #[arg(long, env = "BERTH_SECRETS_KEY_FILE")]
    pub secrets_key_file: Option<PathBuf>,
    /// The ACME directory URL that `aws acm request-certificate` orders from (RFC 8555; e.g.
    /// Let's Encrypt's https://acme-v02.api.letsencrypt.org/directory). None: requests FAIL,
    /// saying so.
    #[arg(long, env = "BERTH_ACME_DIRECTORY")]
    pub acme_directory: Option<String>,
    /// The ACME account's contact address.
    #[arg(long, env = "BERTH_ACME_EMAIL")]
    pub acme_email: Option<String>,
    /// A PEM root to trust for the ACME directory's HTTPS besides the system's (a private CA).
    #[arg(long)]
    pub acme_ca_root: Option<PathBuf>,
    /// DNS-01 (`--validation-method DNS`, wildcards): a URL POSTed {"action": "present" or
    /// "cleanup", "domain", "name", "value"} that answers 2xx once the TXT record is set.
    #[arg(long)]
    pub acme_dns_hook: Option<String>,
    /// dev only: the local node's name.
    #[arg(long, default_value = "dev")]
    pub node_name: String,
    /// server only: keep the state in etcd (client URLs, comma-separated) instead of the
    /// embedded store in --data. Several servers on one etcd elect one leader; any of them serves clients.
    #[arg(long, env = "BERTH_ETCD", value_delimiter = ',')]
    pub etcd: Vec<String>,
    /// Every key Berth keeps in etcd is under this prefix.
    #[arg(long, default_value = "/berth/")]
    pub etcd_prefix: String,
    /// etcd user (its password from BERTH_ETCD_PASSWORD, never argv).
    #[arg(long)]
    pub etcd_user: Option<String>,
    /// The CA etcd's certificate is from (PEM), for https:// etcd URLs.
    #[arg(long)]
    pub etcd_cacert: Option<PathBuf>,
    /// A client certificate and key (PEM) for etcd's client-cert auth.
    #[arg(long, requires = "etcd_key")]
    pub etcd_cert: Option<PathBuf>,
    #[arg(long, requires = "etcd_cert")]
    pub etcd_key: Option<PathBuf>,
    /// etcd's --max-txn-ops (128 by default): each planner pass is sized to fit it.
    #[arg(long, default_value_t = 128)]
    pub etcd_max_txn_ops: usize,
    /// The leader's lease on etcd: a leader cut off from etcd stops acting within it.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub leader_ttl: Duration,
    /// The gRPC URL `berth server list` shows for this server (default: from --listen).
    #[arg(long)]
    pub advertise: Option<String>,
    #[command(flatten)]
    pub node: NodeArgs,
    #[command(flatten)]
    pub limits: ServeLimitArgs,
}

#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Dev,
    Server,
}

fn parse_region(s: &str) -> Result<String, String> {
    if berth_core::arn::is_region(s) {
        Ok(s.to_string())
    } else {
        Err(format!("{s:?} is not a region name (like us-east-1)"))
    }
}

fn parse_account(s: &str) -> Result<String, String> {
    if berth_core::arn::is_account_id(s) {
        Ok(s.to_string())
    } else {
        Err(format!("{s:?} must be 12 digits"))
    }
}
