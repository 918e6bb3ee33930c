//! The flag groups `berth dev`, `berth server`, `berth agent` and `berth proxy` share, and the
//! parsers of their values: joining a TLS control plane, what a node offers, the flags that bound
//! what clients may hold or ask for — connection hygiene on every listener (nginx's defaults), the
//! largest desired count — and the rules that keep `berth dev` local and a server's HTTP port
//! encrypted. It imports none of the commands that use it.

use berth_agent as agent;
use berth_control_plane as cp;
use berth_trust::{enroll, ClientTls, PeerKind};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Connection bounds of an HTTP port (the control plane's, `berth proxy --http`, `berth agent
/// --metrics-addr`).
#[derive(Debug, Clone, clap::Args)]
pub struct HttpLimitArgs {
    /// How long a request's headers (or a TLS handshake) may take from its first byte (nginx's
    /// client_header_timeout).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub http_header_timeout: Duration,
    /// How long a keep-alive connection may sit with no request and no traffic (nginx's
    /// keepalive_timeout).
    #[arg(long, default_value = "75s", value_parser = parse_duration)]
    pub http_idle_timeout: Duration,
    /// Open connections at most; more are closed as soon as they are accepted.
    #[arg(long, default_value_t = 1024)]
    pub http_max_connections: usize,
    /// The largest request body (nginx's client_max_body_size), e.g. 1m, 512k, 65536.
    #[arg(long, default_value = "1m", value_parser = parse_size)]
    pub http_max_body: usize,
}

impl HttpLimitArgs {
    pub fn limits(&self) -> cp::transport::http::ConnLimits {
        cp::transport::http::ConnLimits {
            header_timeout: self.http_header_timeout,
            idle_timeout: self.http_idle_timeout,
            max_connections: self.http_max_connections.max(1),
            max_body: self.http_max_body,
        }
    }
}

/// Connection bounds of the load balancer's listener ports.
#[derive(Debug, Clone, clap::Args)]
pub struct LbLimitArgs {
    /// How long a client may take to send a request's headers once they have started.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub lb_header_timeout: Duration,
    /// How long a client connection may sit idle between requests.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub lb_idle_timeout: Duration,
    /// Open client connections per listener port at most; more are closed when accepted.
    #[arg(long, default_value_t = 4096)]
    pub lb_max_connections: usize,
}

impl LbLimitArgs {
    pub fn apply(&self, config: &mut berth_proxy::Config) {
        config.header_read_timeout = self.lb_header_timeout;
        config.idle_timeout = self.lb_idle_timeout;
        config.max_connections = self.lb_max_connections.max(1);
    }
}

/// `berth dev` and `berth server`: the bounds, and who may reach the HTTP port.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeLimitArgs {
    #[command(flatten)]
    pub http: HttpLimitArgs,
    #[command(flatten)]
    pub lb: LbLimitArgs,
    /// Open connections on the gRPC port at most (agents, proxies and clients); more are closed
    /// as soon as they are accepted.
    #[arg(long, default_value_t = 4096)]
    pub grpc_max_connections: usize,
    /// The largest desiredCount a service may have (ECS's quota); larger is refused.
    #[arg(long, default_value_t = berth_core::limits::DEFAULT_MAX_DESIRED_COUNT)]
    pub max_desired_count: i32,
    /// ELBv2's quota of rules per load balancer (AWS's default; default rules not counted).
    #[arg(long, default_value_t = berth_core::limits::ElbQuotas::default().rules_per_load_balancer)]
    pub elb_max_rules_per_lb: usize,
    /// ELBv2's quota of listeners per load balancer (AWS's default).
    #[arg(long, default_value_t = berth_core::limits::ElbQuotas::default().listeners_per_load_balancer)]
    pub elb_max_listeners_per_lb: usize,
    /// ELBv2's quota of targets per target group (AWS's default): the desired tasks of the
    /// services attached to it.
    #[arg(long, default_value_t = berth_core::limits::ElbQuotas::default().targets_per_target_group)]
    pub elb_max_targets_per_tg: usize,
    /// server only: serve the HTTP port in plaintext (it uses the gRPC port's certificate
    /// otherwise). Bearer tokens then cross the network readable.
    #[arg(long)]
    pub http_insecure: bool,
    /// dev only: a Host name the HTTP port answers besides loopback names (repeatable).
    #[arg(long = "allow-host")]
    pub allow_hosts: Vec<String>,
}

/// Where dev and server listen, as the checks see it.
pub struct Listening {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub proxy_bind: Option<IpAddr>,
}

impl ServeLimitArgs {
    /// Checks the listen addresses against the mode and fills `config`. `secure`: TLS and
    /// tokens are on (server, or dev with --secure).
    pub fn apply(
        &self,
        dev: bool,
        secure: bool,
        at: &Listening,
        config: &mut cp::Config,
    ) -> anyhow::Result<()> {
        if self.max_desired_count < 1 {
            anyhow::bail!(
                "--max-desired-count {}: must be 1 or more",
                self.max_desired_count
            );
        }
        if dev && !secure {
            let open = [
                ("--listen", Some(at.grpc.ip())),
                ("--http", Some(at.http.ip())),
                ("--proxy-bind", at.proxy_bind),
            ];
            for (flag, ip) in open {
                if let Some(ip) = ip.filter(|ip| !ip.is_loopback()) {
                    anyhow::bail!(
                        "{flag} {ip}: berth dev serves without auth (its API can start host-network tasks), so only on loopback (127.0.0.1); use --secure, or berth server"
                    );
                }
            }
        }
        if !dev && secure && self.http_insecure && !at.http.ip().is_loopback() {
            crate::say!(
                "berth server: WARNING: --http-insecure on {}: bearer tokens and the console cross the network unencrypted",
                at.http
            );
        }
        if !dev && !secure && !at.http.ip().is_loopback() {
            crate::say!(
                "berth server: WARNING: --insecure on --http {}: anyone who reaches this port controls the cluster",
                at.http
            );
        }
        if !dev && !self.allow_hosts.is_empty() {
            anyhow::bail!(
                "--allow-host is for berth dev; berth server answers any Host and checks tokens"
            );
        }
        config.limits.max_desired_count = self.max_desired_count;
        config.limits.elb.rules_per_load_balancer = self.elb_max_rules_per_lb;
        config.limits.elb.listeners_per_load_balancer = self.elb_max_listeners_per_lb;
        config.limits.elb.targets_per_target_group = self.elb_max_targets_per_tg;
        config.grpc_max_connections = self.grpc_max_connections.max(1);
        config.http.limits = self.http.limits();
        config.http.plaintext = self.http_insecure;
        // dev's API is open: only pages of this machine's own names may call it.
        config.http.allowed_hosts = (dev && !secure).then(|| self.allow_hosts.clone());
        Ok(())
    }
}

/// `1m`, `512k`, `64KiB`, `65536`: bytes.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 1m, 512k or 65536"))?;
    let mult = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        "g" | "gb" | "gib" => 1024 * 1024 * 1024,
        _ => return Err(format!("{s:?} is not a size like 1m, 512k or 65536")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// How an agent or proxy gets its certificate from a TLS control plane (`berth server`).
#[derive(Debug, Clone, clap::Args)]
pub struct JoinArgs {
    /// The cluster's join token (DATA/join.token on the server), presented once for a
    /// certificate that is kept in the data directory and renewed. Prefer BERTH_JOIN_TOKEN or
    /// --join-token-file: a token on the command line shows in `ps`.
    #[arg(long, env = "BERTH_JOIN_TOKEN", hide_env_values = true)]
    pub join_token: Option<String>,
    /// Read the join token from this file instead.
    #[arg(long, conflicts_with = "join_token")]
    pub join_token_file: Option<PathBuf>,
}

impl JoinArgs {
    /// TLS material for a TLS server (an `https://` URL, a join token, or a certificate kept in
    /// `dir`); `None` for a plaintext one (`berth dev`, `berth server --insecure`).
    pub async fn enroll(
        &self,
        server: &str,
        dir: &Path,
        kind: PeerKind,
        requested_id: String,
    ) -> anyhow::Result<Option<ClientTls>> {
        let token = match (&self.join_token, &self.join_token_file) {
            (Some(t), _) => Some(t.trim().to_string()),
            (None, Some(f)) => Some(enroll::read_token_file(f)?),
            (None, None) => None,
        };
        let has_cert = dir.join(enroll::IDENTITY_FILE).exists();
        if token.is_none() && !has_cert && !server.starts_with("https://") {
            return Ok(None);
        }
        let e = enroll::Enrollment {
            server: server.to_string(),
            dir: dir.to_path_buf(),
            kind,
            join_token: token,
            ca_file: crate::client::credentials().ca,
            requested_id,
        };
        Ok(Some(e.load_or_join().await?))
    }
}

/// Node settings shared by `berth agent` and the local agent of `berth dev`.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    /// Address clients and the proxy reach this node's published ports at.
    #[arg(long, default_value = "127.0.0.1")]
    pub advertise_addr: String,
    /// A node attribute for placement constraints, NAME=VALUE (repeatable).
    #[arg(long = "attribute", value_parser = parse_key_value)]
    pub attributes: Vec<(String, String)>,
    /// Memory (MiB) kept back for the host itself.
    #[arg(long, default_value_t = 256)]
    pub memory_reserve: i64,
    /// CPU units to offer instead of cores × 1024.
    #[arg(long)]
    pub cpu: Option<i64>,
    /// Memory (MiB) to offer instead of the host's less the reserve.
    #[arg(long)]
    pub memory: Option<i64>,
    /// A host port tasks may not use (repeatable).
    #[arg(long = "reserved-port")]
    pub reserved_ports: Vec<i32>,
    /// Run bridge-mode tasks on this Docker network, each reached at its own address, instead
    /// of publishing host ports (for agents that share one Docker engine).
    #[arg(long)]
    pub task_network: Option<String>,
    /// The node's DNS resolver for its tasks (`name.namespace` of Cloud Map, the rest relayed to
    /// /etc/resolv.conf's servers): `auto` (port 53 of the task network's gateway, else of
    /// Docker's default bridge), `off`, or IP[:PORT]. Tasks get it unless they set dnsServers.
    #[arg(long, env = "BERTH_DNS_ADDR", default_value = "auto")]
    pub dns_addr: agent::dns::DnsListen,
    /// Where the node's Service Connect proxy answers the aliases (`http://api:8080`): `auto`
    /// (the DNS resolver's address: the task network's or default bridge's gateway), `off`, or an
    /// IP. Tasks of Service Connect services map their namespace's aliases to it in /etc/hosts.
    #[arg(long, env = "BERTH_SERVICE_CONNECT_ADDR", default_value = "auto")]
    pub service_connect_addr: agent::connect::ConnectListen,
    /// Time between SIGTERM and SIGKILL when a container sets no stopTimeout.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub stop_timeout: Duration,
    /// A host directory tasks may bind-mount with `volumes[].host.sourcePath`, it or anything
    /// under it (repeatable). Without one, no task may mount a host path.
    #[arg(long = "allow-host-path", value_parser = parse_absolute)]
    pub allow_host_paths: Vec<PathBuf>,
    /// When task images are pulled, as ECS_IMAGE_PULL_BEHAVIOR: default (at every start,
    /// falling back to the cached image when the registry cannot be reached), always, once, or
    /// prefer-cached. An image built or imported on the node is never pulled, except by always.
    #[arg(long, default_value = "default")]
    pub pull_policy: agent::runtime::PullPolicy,
    /// A Docker config.json (`auths`) with this node's logins to private registries; read at
    /// each pull.
    #[arg(long)]
    pub registry_auth: Option<PathBuf>,
    /// Run containers that ask for `privileged` (off: such tasks are placed elsewhere).
    #[arg(long)]
    pub allow_privileged: bool,
    /// Give containers the host devices they ask for (`linuxParameters.devices`).
    #[arg(long)]
    pub allow_device: bool,
    /// Apply the `dockerSecurityOptions` containers ask for.
    #[arg(long)]
    pub allow_security_opt: bool,
}

impl NodeArgs {
    pub fn config(&self, server: String, name: String, data: PathBuf) -> agent::Config {
        let mut c = agent::Config::for_this_host(server, name, data, self.memory_reserve);
        c.advertise_addr = self.advertise_addr.clone();
        c.attributes = self.attributes.clone();
        if let Some(cpu) = self.cpu {
            c.cpu = cpu;
        }
        if let Some(m) = self.memory {
            c.memory_mib = m;
        }
        c.reserved_ports = self.reserved_ports.clone();
        c.default_stop_timeout = self.stop_timeout;
        c.task_network = self.task_network.clone();
        c.dns = self.dns_addr;
        c.connect = self.service_connect_addr;
        c.allow_host_paths = self.allow_host_paths.clone();
        c.pull_policy = self.pull_policy;
        c.registry_auth = self.registry_auth.clone();
        c.powers = agent::Powers {
            privileged: self.allow_privileged,
            devices: self.allow_device,
            security_opt: self.allow_security_opt,
        };
        // Placement reads what a node allows, and its GPUs, from its attributes.
        let gpus = agent::gpu_count();
        if gpus > 0 {
            c.attributes
                .push(("berth.gpus".to_string(), gpus.to_string()));
        }
        for (on, name) in [
            (self.allow_privileged, agent::Powers::PRIVILEGED),
            (self.allow_device, agent::Powers::DEVICES),
            (self.allow_security_opt, agent::Powers::SECURITY_OPT),
        ] {
            if on {
                c.attributes.push((name.to_string(), "true".to_string()));
            }
        }
        c
    }
}

pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} must be NAME=VALUE")),
    }
}

/// `500ms`, `30s`, `1.5s`, `10m`, `24h`, `1h 30m` (humantime's units) or a bare number of seconds.
/// clap names the flag in front of the error.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let bare = s.parse::<f64>().ok().map(Duration::try_from_secs_f64);
    match bare {
        Some(Ok(d)) => Ok(d),
        Some(Err(_)) => Err(format!("{s:?} is not a number of seconds zero or more")),
        None => humantime::parse_duration(s)
            .map_err(|e| format!("{s:?} is not a duration like 500ms, 30s, 10m or 24h ({e})")),
    }
}

fn parse_absolute(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    if p.is_absolute() {
        Ok(p)
    } else {
        Err(format!("{s:?} must be an absolute path such as /srv/data"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1m").unwrap(), 1024 * 1024);
        assert_eq!(parse_size("512k").unwrap(), 512 * 1024);
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86400)
        );
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("0.25").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        let soon = parse_duration("soon").unwrap_err();
        assert!(
            soon.contains("\"soon\" is not a duration like 500ms"),
            "{soon}"
        );
        let unit = parse_duration("5x").unwrap_err();
        assert!(unit.contains("unknown time unit \"x\""), "{unit}");
        assert!(parse_duration("-5").unwrap_err().contains("zero or more"));
    }
}
