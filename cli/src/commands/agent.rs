//! `berth agent`: this host as a node of a Berth control plane.

use super::flags::{HttpLimitArgs, JoinArgs, NodeArgs};
use berth_agent as agent;
use berth_trust::{enroll, PeerKind};
use std::path::PathBuf;

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
    pub http_limits: HttpLimitArgs,
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
    let tls = config.tls.clone();
    let a = agent::spawn(config).await?;
    let a = super::connect_proxy::Node::start(
        a,
        server,
        &format!("connect-{name}-{}", std::process::id()),
        tls,
        None,
    )
    .await;
    let metrics = metrics_listener.map(|l| {
        if let Ok(addr) = l.local_addr() {
            crate::say!("berth agent: metrics on http://{addr}/metrics");
        }
        let registry = berth_control_plane::state::metrics::SharedRegistry::default();
        berth_control_plane::state::metrics::register_with(&registry, |r| {
            a.agent.register_metrics(r)
        });
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(super::metrics_http::serve(
            l,
            args.http_limits.limits(),
            super::metrics_http::metrics_only(registry),
            stopped,
        ));
        (stop, task)
    });
    super::lifecycle::wait_for_signal().await;
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
