//! The node's DNS resolver for its tasks: answers `service.namespace` (A and SRV) for Cloud Map
//! services in private DNS namespaces, from the endpoint stream the proxies follow (so it keeps
//! answering while the control plane is away), and relays every other name to the host's own
//! resolvers. Tasks are given it as their DNS server unless their definition sets `dnsServers`.
//!
//! It listens on port 53 of an address the containers reach: by default the gateway of the task
//! network (`--task-network`), else of Docker's default bridge; an agent that is itself on the
//! task network (a `berth lab` agent) uses its own address there. Several agents on one host
//! share the gateway through SO_REUSEPORT; they serve the same records.

mod server;
pub mod zone;

use crate::runtime::ContainerRuntime;
use crate::Config;
use berth_proto::v1::endpoints_client::EndpointsClient;
use berth_proto::v1::WatchEndpointsRequest;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::task::JoinHandle;
use zone::Zone;

/// Where the resolver listens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DnsListen {
    /// No resolver; tasks keep Docker's DNS.
    Off,
    /// Port 53 of the task network's gateway, else the default bridge's.
    #[default]
    Auto,
    /// This address. Tasks are given it only on port 53 (resolv.conf names no port).
    At(SocketAddr),
}

impl std::str::FromStr for DnsListen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "off" => Ok(Self::Off),
            "auto" => Ok(Self::Auto),
            a => a
                .parse::<SocketAddr>()
                .or_else(|_| {
                    a.parse::<std::net::IpAddr>()
                        .map(|ip| SocketAddr::new(ip, 53))
                })
                .map(Self::At)
                .map_err(|_| format!("{a:?}: give off, auto, IP or IP:PORT")),
        }
    }
}

/// The running resolver: the address tasks are given (None: they are given none) and its tasks.
pub struct NodeDns {
    pub task_dns: Option<String>,
    pub listening: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl NodeDns {
    pub fn stop(self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Agents sharing a host (and so the gateway) each serve the same records.
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    tokio::net::UdpSocket::from_std(s.into())
}

/// The addresses a node's own services (this resolver, the Service Connect proxy) listen on
/// for its tasks, best first: the task network's gateway, else the default bridge's; and for an
/// agent that is itself a host on the task network (a `berth lab` agent in a container, which
/// cannot bind the gateway), its own address there.
pub async fn node_addresses<R: ContainerRuntime>(config: &Config, rt: &R) -> Vec<IpAddr> {
    let network = config.task_network.clone().unwrap_or_default();
    let mut out: Vec<IpAddr> = rt
        .network_gateway(&network)
        .await
        .into_iter()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    if config.task_network.is_some() {
        out.extend(own_addresses(&config.advertise_addr).await);
    }
    out
}

/// The agent's advertised address as IPs (a `berth lab` agent advertises its container's name,
/// which the task network's DNS resolves); none for loopback.
async fn own_addresses(advertised: &str) -> Vec<IpAddr> {
    let ips: Vec<IpAddr> = match advertised.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => match tokio::net::lookup_host((advertised, 0)).await {
            Ok(found) => found.map(|a| a.ip()).filter(IpAddr::is_ipv4).collect(),
            Err(e) => {
                tracing::debug!(%advertised, error = %e, "cannot resolve the advertised address");
                Vec::new()
            }
        },
    };
    ips.into_iter().filter(|ip| !ip.is_loopback()).collect()
}

/// Starts the resolver; None (with a warning) when it is off or cannot listen: tasks then keep
/// Docker's DNS.
pub async fn start<R: ContainerRuntime>(config: &Config, rt: Arc<R>) -> Option<NodeDns> {
    let candidates: Vec<SocketAddr> = match config.dns {
        DnsListen::Off => return None,
        DnsListen::At(a) => vec![a],
        DnsListen::Auto => node_addresses(config, rt.as_ref())
            .await
            .into_iter()
            .map(|ip| SocketAddr::new(ip, 53))
            .collect(),
    };
    let mut bound = None;
    for addr in &candidates {
        match bind(*addr) {
            Ok(s) => {
                bound = Some(s);
                break;
            }
            Err(e) => tracing::debug!(%addr, error = %e, "node DNS cannot listen here"),
        }
    }
    let Some(socket) = bound else {
        tracing::warn!(
            tried = ?candidates,
            "node DNS off: cannot listen (set --dns-addr IP[:PORT], or --dns-addr off); tasks keep Docker's DNS"
        );
        return None;
    };
    let listening = match socket.local_addr() {
        Ok(a) => a,
        Err(_) => return None,
    };
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let upstream = server::upstreams(&resolv, listening);
    let zone = Arc::new(RwLock::new(Arc::new(Zone::default())));
    let serve = tokio::spawn(server::serve(socket, zone.clone(), upstream));
    let watch = tokio::spawn(follow(config.clone(), zone));
    tracing::info!(%listening, "node DNS listening");
    Some(NodeDns {
        task_dns: (listening.port() == 53).then(|| listening.ip().to_string()),
        listening,
        tasks: vec![serve, watch],
    })
}

/// Keeps the zone following the control plane's endpoint stream, reconnecting after a break;
/// the last zone keeps being served meanwhile.
async fn follow(config: Config, zone: Arc<RwLock<Arc<Zone>>>) {
    let id = format!("dns-{}-{:08x}", config.name, rand_id());
    let mut backoff = Duration::from_millis(200);
    loop {
        match crate::session::connect(&config).await {
            Ok(channel) => {
                let mut client = EndpointsClient::new(channel);
                let req = WatchEndpointsRequest {
                    proxy_id: id.clone(),
                    discovery_only: true,
                    service_connect: false,
                };
                match client.watch_endpoints(req).await {
                    Ok(stream) => {
                        backoff = Duration::from_millis(200);
                        let mut stream = stream.into_inner();
                        loop {
                            match stream.message().await {
                                Ok(Some(table)) => {
                                    let z = Arc::new(Zone::from_records(&table.discovery));
                                    if let Ok(mut w) = zone.write() {
                                        *w = z;
                                    }
                                }
                                Ok(None) => break,
                                Err(e) => {
                                    tracing::debug!(error = %e, "node DNS: endpoint stream broke");
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "node DNS: cannot watch endpoints"),
                }
            }
            Err(e) => tracing::debug!(error = %e, "node DNS: cannot reach the control plane"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

fn rand_id() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() ^ std::process::id())
}
