//! Berth's agent: registers this host as a node, runs the tasks the control plane places here on
//! Docker, and reports what it observes. `spawn` starts it; tests start it in-process.

pub mod connect;
pub mod desired;
pub mod dns;
mod exec;
pub mod metadata;
pub mod metrics;
pub mod runner;
pub mod runtime;
mod session;
mod usage;

use runtime::{ContainerRuntime, DockerRuntime, RuntimeError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How the agent presents its node and runs its tasks.
#[derive(Debug, Clone)]
pub struct Config {
    /// The control plane, `http://HOST:PORT`.
    pub server: String,
    pub name: String,
    pub data_dir: PathBuf,
    /// The address clients and the proxy reach this node's published ports at.
    pub advertise_addr: String,
    pub attributes: Vec<(String, String)>,
    /// CPU units offered (1024 a core).
    pub cpu: i64,
    /// Memory offered, MiB.
    pub memory_mib: i64,
    pub reserved_ports: Vec<i32>,
    pub default_stop_timeout: Duration,
    /// How often stopped containers the control plane no longer keeps are looked for.
    pub sweep_interval: Duration,
    /// How often a runner re-inspects its containers.
    pub poll: Duration,
    /// Run bridge-mode tasks on this Docker network, each reached at its own address, instead
    /// of publishing host ports (agents sharing one engine, as in `berth lab`).
    pub task_network: Option<String>,
    /// Mutual TLS to the control plane (`berth_trust::enroll`); `None` is plaintext (`berth dev`).
    pub tls: Option<berth_trust::ClientTls>,
    /// Host paths tasks may bind-mount through `volumes[].host.sourcePath`; none by default.
    pub allow_host_paths: Vec<PathBuf>,
    /// When task images are pulled (as ECS_IMAGE_PULL_BEHAVIOR).
    pub pull_policy: runtime::PullPolicy,
    /// A Docker `config.json` with logins for private registries.
    pub registry_auth: Option<PathBuf>,
    /// The task metadata endpoint's port on every address of this host (ECS's agent uses
    /// 51679); taken, another is picked; 0 turns the endpoint off.
    pub metadata_port: u16,
    /// What this node lets containers do beyond Docker's defaults.
    pub powers: Powers,
    /// The node's DNS resolver for its tasks (`dns`).
    pub dns: dns::DnsListen,
    /// Where the node's Service Connect proxy listens (`connect`).
    pub connect: connect::ConnectListen,
}

/// Powers a node opts in to (`berth agent --allow-…`); a container that needs one the node
/// lacks is refused at placement and, should it reach the node anyway, at creation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Powers {
    pub privileged: bool,
    pub devices: bool,
    pub security_opt: bool,
}

impl Powers {
    /// The node attributes placement reads.
    pub const PRIVILEGED: &'static str = "berth.allow-privileged";
    pub const DEVICES: &'static str = "berth.allow-device";
    pub const SECURITY_OPT: &'static str = "berth.allow-security-opt";
}

impl Config {
    /// This host's cores and memory (less `memory_reserve_mib` for the host itself).
    pub fn for_this_host(
        server: String,
        name: String,
        data_dir: PathBuf,
        memory_reserve_mib: i64,
    ) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
        Self {
            server,
            name,
            data_dir,
            advertise_addr: "127.0.0.1".into(),
            attributes: Vec::new(),
            cpu: cores * 1024,
            memory_mib: (host_memory_mib() - memory_reserve_mib).max(128),
            reserved_ports: Vec::new(),
            default_stop_timeout: Duration::from_secs(30),
            sweep_interval: Duration::from_secs(30),
            poll: Duration::from_millis(500),
            task_network: None,
            tls: None,
            allow_host_paths: Vec::new(),
            pull_policy: runtime::PullPolicy::Default,
            registry_auth: None,
            metadata_port: DEFAULT_METADATA_PORT,
            powers: Powers::default(),
            dns: dns::DnsListen::default(),
            connect: connect::ConnectListen::default(),
        }
    }
}

/// ECS's agent serves task metadata on 51679 behind 169.254.170.2; Berth serves it there directly.
pub const DEFAULT_METADATA_PORT: u16 = 51679;

/// The NVIDIA GPUs on this host (`/dev/nvidiaN`), which Docker's device requests hand out;
/// none is a valid answer.
pub fn gpu_count() -> usize {
    std::fs::read_dir("/dev")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_prefix("nvidia"))
                        .is_some_and(|rest| {
                            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
                        })
                })
                .count()
        })
        .unwrap_or(0)
}

/// MemTotal from /proc/meminfo, in MiB (1024 when unknown).
pub fn host_memory_mib() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<i64>().ok())
        })
        .map_or(1024, |kb| kb / 1024)
}

/// The demo web server image `berth dev` and the tests use.
pub const DEMO_IMAGE: &str = "berth-demo:latest";

/// Builds `berth-demo:latest` from this executable when it is missing or out of date.
pub async fn ensure_demo_image() -> Result<runtime::image::ImageOutcome, AgentError> {
    let rt = DockerRuntime::connect().await?;
    Ok(runtime::image::ensure_self_image(rt.client(), DEMO_IMAGE, &["demo"], Some(80)).await?)
}

/// The image of Berth itself (server, agent, proxy): this executable on an empty root.
pub const BERTH_IMAGE: &str = "berth:latest";

/// Builds `berth:latest` from this executable when it is missing or out of date.
pub async fn ensure_berth_image() -> Result<runtime::image::ImageOutcome, AgentError> {
    let rt = DockerRuntime::connect().await?;
    Ok(runtime::image::ensure_self_image(rt.client(), BERTH_IMAGE, &["--help"], None).await?)
}

/// etcd for `berth lab up --ha`, imported from this host's `etcd` (Debian's `etcd-server`).
pub const ETCD_IMAGE: &str = "berth-etcd:latest";

/// Builds `ETCD_IMAGE` from the `etcd` on this host's PATH, if it is missing or stale.
pub async fn ensure_etcd_image() -> Result<runtime::image::ImageOutcome, AgentError> {
    let etcd = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("etcd"))
        .find(|p| p.is_file())
        .ok_or(AgentError::Missing(
            "etcd is not on PATH: install it (Debian: apt-get install etcd-server)",
        ))?;
    let rt = DockerRuntime::connect().await?;
    Ok(
        runtime::image::ensure_binary_image(rt.client(), ETCD_IMAGE, &etcd, "/etcd", &[], None)
            .await?,
    )
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Missing(&'static str),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("building an image of this executable: {0}")]
    Image(#[from] runtime::image::ImageError),
    #[error("agent data directory {dir}: {source}")]
    DataDir {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// A running agent. Its tasks keep running after `shutdown`, as ECS's agent does; a restarted
/// agent adopts them.
pub struct Agent {
    stop: watch::Sender<bool>,
    join: JoinHandle<()>,
    metrics: Arc<metrics::AgentMetrics>,
    name: String,
    dns: Option<dns::NodeDns>,
    connect: Option<std::net::IpAddr>,
}

fn node_id_file(dir: &Path) -> PathBuf {
    dir.join("node-id")
}

pub(crate) fn save_node_id(dir: &Path, id: &str) -> std::io::Result<()> {
    let tmp = dir.join("node-id.tmp");
    std::fs::write(&tmp, id)?;
    std::fs::rename(tmp, node_id_file(dir))
}

/// The node id a previous run kept in `dir` (empty on a first start).
pub fn read_node_id(dir: &Path) -> String {
    std::fs::read_to_string(node_id_file(dir))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Connects to Docker, then serves the control plane's stream (reconnecting) until shutdown.
pub async fn spawn(config: Config) -> Result<Agent, AgentError> {
    let rt = DockerRuntime::connect()
        .await?
        .with_pull(runtime::PullConfig::new(
            config.pull_policy,
            config.registry_auth.clone(),
        ));
    spawn_with(config, Arc::new(rt)).await
}

/// As `spawn`, on any runtime.
pub async fn spawn_with<R: ContainerRuntime>(
    config: Config,
    rt: Arc<R>,
) -> Result<Agent, AgentError> {
    // Owner-only: it holds the node's key.
    berth_trust::files::owner_only(&config.data_dir, &["node-id", "tls"]).map_err(|source| {
        AgentError::DataDir {
            dir: config.data_dir.clone(),
            source,
        }
    })?;
    let node_id = match config.tls.as_ref().and_then(|t| t.identity()) {
        // The certificate names the node; kept for `read_node_id` (re-issuing in-process).
        Some(who) => {
            save_node_id(&config.data_dir, &who.id).map_err(|source| AgentError::DataDir {
                dir: config.data_dir.clone(),
                source,
            })?;
            who.id
        }
        None => read_node_id(&config.data_dir),
    };
    let (stop, stopped) = watch::channel(false);
    let metrics = Arc::new(metrics::AgentMetrics::default());
    let name = config.name.clone();
    let metadata = start_metadata(&config, rt.clone()).await;
    let dns = dns::start(&config, rt.clone()).await;
    let connect = connect::address(&config, rt.as_ref(), dns.as_ref()).await;
    let mut session = session::Session::new(rt, config, node_id, metrics.clone());
    session.metadata = metadata;
    session.dns = dns.as_ref().and_then(|d| d.task_dns.clone());
    session.connect = connect.map(|ip| ip.to_string());
    let join = tokio::spawn(session.run(stopped));
    Ok(Agent {
        stop,
        join,
        metrics,
        name,
        dns,
        connect,
    })
}

impl Agent {
    /// Adds this agent's metrics (labelled with its node's name) to the process's registry.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.metrics.register(registry, &self.name);
    }

    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.join.await;
        if let Some(d) = self.dns {
            d.stop();
        }
    }

    /// Where this node's Service Connect proxy is to listen (None: off): tasks of Service
    /// Connect services map their aliases here, so the caller starts the proxy on it.
    pub fn service_connect_addr(&self) -> Option<std::net::IpAddr> {
        self.connect
    }

    /// Where this node's DNS resolver listens (None: off).
    pub fn dns_addr(&self) -> Option<std::net::SocketAddr> {
        self.dns.as_ref().map(|d| d.listening)
    }
}

/// Starts the task metadata endpoint and learns the address each network's containers reach it
/// at. Off (with a warning) when it cannot listen: tasks then run without the URIs.
async fn start_metadata<R: ContainerRuntime>(
    config: &Config,
    rt: Arc<R>,
) -> Option<Arc<metadata::Registry>> {
    if config.metadata_port == 0 {
        return None;
    }
    let registry = match metadata::Registry::open(&config.data_dir) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            tracing::warn!(error = %e, "task metadata endpoint off: no key");
            return None;
        }
    };
    // The port adopted containers were told last time comes first, so their URIs still work.
    let kept = config.data_dir.join("metadata-port");
    let last: Option<u16> = std::fs::read_to_string(&kept)
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let mut listener = None;
    for port in last.into_iter().chain([config.metadata_port, 0]) {
        if let Ok(l) = tokio::net::TcpListener::bind(("0.0.0.0", port)).await {
            listener = Some(l);
            break;
        }
    }
    let Some(listener) = listener else {
        tracing::warn!("task metadata endpoint off: cannot listen");
        return None;
    };
    let port = listener.local_addr().map(|a| a.port()).ok()?;
    if last != Some(port) {
        if let Err(e) = std::fs::write(&kept, port.to_string()) {
            tracing::warn!(error = %e, "cannot keep the metadata endpoint's port");
        }
    }
    registry.set_endpoint("host", format!("127.0.0.1:{port}"));
    let mut networks = vec![String::new()];
    networks.extend(config.task_network.clone());
    for n in networks {
        if let Some(gw) = rt.network_gateway(&n).await {
            registry.set_endpoint(&n, format!("{gw}:{port}"));
        }
    }
    tracing::info!(port, "task metadata endpoint listening");
    tokio::spawn(metadata::serve(listener, registry.clone(), rt));
    Some(registry)
}
