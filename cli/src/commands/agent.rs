//! `berth agent`: this host as a node of a Berth control plane.

use berth_agent as agent;
use berth_trust::{enroll, ClientTls, PeerKind};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// The node's name (shown in `node list`).
    #[arg(long, env = "BERTH_NODE_NAME")]
    pub name: Option<String>,
    /// Where the agent keeps its node id.
    #[arg(long, env = "BERTH_AGENT_DATA", default_value = "./berth-agent-data")]
    pub data: PathBuf,
    /// Serve the agent's `/metrics` (Prometheus) here, e.g. 127.0.0.1:7082 (off by default).
    #[arg(long)]
    pub metrics_addr: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub node: NodeArgs,
    #[command(flatten)]
    pub join: JoinArgs,
    #[command(flatten)]
    pub http_limits: super::limits::HttpLimitArgs,
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
    /// Time between SIGTERM and SIGKILL when a container sets no stopTimeout.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub stop_timeout: Duration,
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

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "node".into())
}

pub async fn run(args: AgentArgs, server: &str) -> anyhow::Result<()> {
    let name = args.name.clone().unwrap_or_else(hostname);
    let config = args
        .node
        .config(server.to_string(), name.clone(), args.data.clone());
    crate::say!(
        "berth agent: node {name} ({} CPU units, {} MiB) for {server}; data in {}",
        config.cpu,
        config.memory_mib,
        args.data.display()
    );
    let metrics_listener = match args.metrics_addr {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (--metrics-addr): {e}"))?,
        ),
        None => None,
    };
    let mut config = config;
    config.tls = args
        .join
        .enroll(
            server,
            &args.data,
            PeerKind::Node,
            agent::read_node_id(&args.data),
        )
        .await?;
    let renewal = config.tls.as_ref().map(|tls| {
        let identity = tls.identity().map_or_else(String::new, |i| i.to_string());
        crate::say!(
            "berth agent: mutual TLS as {identity}; certificate in {}/tls",
            args.data.display()
        );
        tokio::spawn(enroll::renew_forever(
            tls.clone(),
            server.to_string(),
            args.data.clone(),
        ))
    });
    let a = agent::spawn(config).await?;
    let metrics = metrics_listener.map(|l| {
        if let Ok(addr) = l.local_addr() {
            crate::say!("berth agent: metrics on http://{addr}/metrics");
        }
        let registry = berth_control_plane::metrics::SharedRegistry::default();
        berth_control_plane::metrics::register_with(&registry, |r| a.register_metrics(r));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(super::metrics_http::serve(
            l,
            args.http_limits.limits(),
            super::metrics_http::metrics_only(registry),
            stopped,
        ));
        (stop, task)
    });
    super::serve::wait_for_signal().await;
    crate::say!("berth agent: shutting down (tasks keep running; a restarted agent adopts them)");
    if let Some((stop, task)) = metrics {
        let _ = stop.send(true);
        task.abort();
    }
    if let Some(r) = renewal {
        r.abort();
    }
    a.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
