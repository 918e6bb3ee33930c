//! Berth's HTTP load balancer: one listener per listener port, ALB-style host and path rules,
//! health-checked targets, one retry when nothing reached a target, connection draining. It learns
//! routes only from the control plane's `WatchEndpoints` stream and reports target health back with
//! `ReportTargetHealth`. `spawn` starts it; tests start it in-process. A new proxy process can take
//! over the listening sockets of a running one (`handoff`), so restarts and upgrades drop nothing.
//! A port whose routes say TCP (a network load balancer's) is a TCP listener instead (`tcp`):
//! connections balanced over healthy targets, refused while there is none.
//!
//! When every target of a service is unhealthy the proxy answers 503 (`no healthy target for
//! service NAME`) instead of failing open the way an ALB does: a broken deployment should be visible
//! at once, not hidden behind traffic sent to targets known to fail their checks.

mod balance;
mod body;
mod calls;
mod conn;
mod counters;
mod error;
mod failover;
mod forward;
pub mod handoff;
mod headers;
mod health;
mod listener;
mod metrics;
mod pattern;
mod proxy_protocol;
mod report;
mod router;
mod rules;
mod table;
mod target;
mod tcp;
mod tls;
mod upstream;
mod watch;
mod worker;

pub use error::{Failure, ProxyError};
pub use handoff::{HandoffError, Inherited, Takeover};

use arc_swap::ArcSwap;
use counters::ListenerStats;
use hyper_util::rt::TokioExecutor;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch as signal;
use tokio::task::JoinHandle;

/// How the proxy reaches the control plane, where it listens, and its timeouts.
#[derive(Debug, Clone)]
pub struct Config {
    /// The control plane's gRPC URL, `http://HOST:PORT`.
    pub server: String,
    /// Listeners bind here (`0.0.0.0` on an edge host, `127.0.0.1` in tests).
    pub bind_ip: IpAddr,
    /// Names this proxy in health reports; stable for the life of the process.
    pub proxy_id: String,
    /// How long a client may take to send a request's headers once it has started.
    pub header_read_timeout: Duration,
    /// How long a client connection may sit idle between requests (or without traffic, once
    /// upgraded or on HTTP/2) before it is closed.
    pub idle_timeout: Duration,
    /// Open client connections per listener port at most; more are closed as soon as they are
    /// accepted (shed, not queued), so a flood cannot take every file descriptor.
    pub max_connections: usize,
    /// How long an upstream may take to start answering.
    pub upstream_timeout: Duration,
    /// How long a TCP connect to an upstream may take before it counts as a connect failure.
    pub connect_timeout: Duration,
    /// Health reports are batched and sent at most this often.
    pub report_interval: Duration,
    /// The longest wait between reconnects to the control plane.
    pub reconnect_max: Duration,
    /// On shutdown (or when a listener port goes away), how long in-flight requests may finish.
    pub shutdown_grace: Duration,
    /// Accept HTTP/2 (prior knowledge) from clients besides HTTP/1.1.
    pub http2: bool,
    /// Data-plane threads, each with its own single-threaded runtime and upstream pool (nginx's
    /// worker processes). Control work (the stream, health checks, reports) stays on the caller's
    /// runtime.
    pub workers: usize,
    /// Mutual TLS to the control plane (a proxy certificate from `berth_trust::enroll`); `None`
    /// is plaintext (`berth dev`).
    pub tls: Option<berth_trust::ClientTls>,
    /// A node's Service Connect proxy: it follows the Service Connect aliases' routes (each
    /// alias port a listener on `bind_ip`, HTTP aliases told apart by Host) instead of the load
    /// balancers', and counts calls by caller.
    pub service_connect: bool,
}

impl Config {
    /// The defaults: 10 s for request headers, 60 s idle, 60 s for an upstream to answer.
    pub fn new(server: impl Into<String>, bind_ip: IpAddr, proxy_id: impl Into<String>) -> Self {
        Self {
            server: server.into(),
            bind_ip,
            proxy_id: proxy_id.into(),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
            upstream_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(2),
            report_interval: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(10),
            http2: true,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            tls: None,
            service_connect: false,
        }
    }
}

/// What the router, the listeners and every request share. The routing snapshot is the only part
/// the hot path reads, through `ArcSwap`; the mutex guards only the listener list for `/metrics`.
pub(crate) struct Shared {
    pub config: Config,
    pub snapshot: ArcSwap<table::Snapshot>,
    pub workers: worker::Workers,
    pub server: hyper_util::server::conn::auto::Builder<TokioExecutor>,
    pub listeners: Mutex<BTreeMap<u16, Arc<ListenerStats>>>,
    /// A copy of each listening socket, to hand to a successor.
    pub sockets: Mutex<BTreeMap<u16, std::net::TcpListener>>,
    /// Sockets and target health taken over from the previous proxy process.
    pub inherited: Option<Arc<Inherited>>,
    pub tables: signal::Sender<u64>,
    /// HTTPS listener ports' TLS settings and ACME challenges, swapped whole on each table.
    pub tls: ArcSwap<tls::Tls>,
    /// A Service Connect proxy's calls by caller (None on a load balancer proxy).
    pub calls: Option<calls::Calls>,
}

/// A running proxy. Dropping it without `shutdown` stops its worker threads at once (no draining)
/// and leaves its control tasks to the runtime.
pub struct Proxy {
    shared: Arc<Shared>,
    stop: signal::Sender<bool>,
    watcher: JoinHandle<()>,
    reporter: JoinHandle<()>,
    threads: worker::WorkerThreads,
    /// Turns true once a successor took over the listeners and is serving.
    handed_over: signal::Sender<bool>,
}

/// Starts the proxy: connects (lazily, with retries) to the control plane, and opens listeners as
/// routing tables arrive. Fails only on an unusable configuration; an unreachable control plane is
/// retried forever.
pub async fn spawn(config: Config) -> Result<Proxy, ProxyError> {
    spawn_inheriting(config, None).await
}

/// As `spawn`, opening listeners on the sockets `inherited` from a previous proxy where they match
/// (the rest are closed once the first table is in), and starting its targets from their health.
pub async fn spawn_inheriting(
    config: Config,
    inherited: Option<Arc<Inherited>>,
) -> Result<Proxy, ProxyError> {
    let invalid = |source| ProxyError::InvalidServer {
        server: config.server.clone(),
        source,
    };
    let mut channels = Vec::new();
    for server in config
        .server
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let url = match &config.tls {
            Some(_) => berth_trust::client::plain_scheme(server),
            None => server.to_string(),
        };
        let endpoint = tonic::transport::Endpoint::from_shared(url)
            .map_err(invalid)?
            .connect_timeout(Duration::from_secs(2))
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        // With TLS every reconnect presents the certificate current then (renewals included).
        channels.push(match &config.tls {
            Some(tls) => tls.connect_lazy(endpoint),
            None => endpoint.connect_lazy(),
        });
    }
    if channels.is_empty() {
        return Err(invalid(
            tonic::transport::Endpoint::from_shared(String::new()).unwrap_err(),
        ));
    }
    let channel = failover::Failover::new(channels);

    let (workers, threads) = worker::Workers::start(&config).map_err(ProxyError::Workers)?;

    let mut server = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // Small responses go out in one buffer rather than as head and body iovecs.
    server.http1().keep_alive(true).writev(false);
    server.http2().max_concurrent_streams(256);
    if !config.http2 {
        server = server.http1_only();
    }

    let (tables, _) = signal::channel(0);
    let shared = Arc::new(Shared {
        config: config.clone(),
        snapshot: ArcSwap::from_pointee(table::Snapshot::default()),
        workers,
        server,
        listeners: Mutex::new(BTreeMap::new()),
        sockets: Mutex::new(BTreeMap::new()),
        inherited,
        tables,
        tls: ArcSwap::from_pointee(tls::Tls::default()),
        calls: config.service_connect.then(calls::Calls::default),
    });
    let (stop, stop_rx) = signal::channel(false);
    let (reporter, reports) = report::channel();
    let client = berth_proto::v1::endpoints_client::EndpointsClient::new(channel);
    let reporter_task = tokio::spawn(report::run(
        reports,
        client.clone(),
        config.proxy_id.clone(),
        config.report_interval,
        {
            let shared = shared.clone();
            move || {
                (
                    metrics::request_totals(&shared),
                    metrics::revision_totals(&shared),
                    shared
                        .calls
                        .as_ref()
                        .map(calls::Calls::totals)
                        .unwrap_or_default(),
                )
            }
        },
        stop_rx.clone(),
    ));
    let router = router::Router::new(shared.clone(), reporter);
    let watcher = tokio::spawn(watch::run(router, client, config, stop_rx));
    Ok(Proxy {
        shared,
        stop,
        watcher,
        reporter: reporter_task,
        threads,
        handed_over: signal::channel(false).0,
    })
}

impl Proxy {
    /// Stops accepting, lets in-flight requests finish (up to `shutdown_grace`), stops health checks
    /// and the control plane link.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.watcher.await;
        // The reporter may be in the middle of a call to an unreachable control plane.
        let grace = Duration::from_secs(1);
        let mut reporter = self.reporter;
        if tokio::time::timeout(grace, &mut reporter).await.is_err() {
            reporter.abort();
        }
        self.threads.stop().await;
    }

    /// Prometheus text: requests by service, target and status class, latency histograms, requests
    /// in flight and target health per target, open client connections per listener port.
    pub fn metrics_text(&self) -> String {
        self.telemetry().metrics_text()
    }

    /// The listener ports bound right now.
    pub fn listening_ports(&self) -> Vec<u16> {
        self.telemetry().listening_ports()
    }

    /// A cheap, cloneable read-only view for an HTTP endpoint serving `/metrics` and `/healthz`.
    pub fn telemetry(&self) -> Telemetry {
        Telemetry {
            shared: self.shared.clone(),
        }
    }

    /// Waits until at least one routing table has been applied (listeners are open).
    pub async fn first_table(&self) {
        let mut rx = self.shared.tables.subscribe();
        let _ = rx.wait_for(|n| *n > 0).await;
    }

    /// Serves the handoff socket at `path` (replacing a file left there), owner-only: a new proxy
    /// process that connects gets this one's listening sockets, and `extra`'s (the CLI's
    /// `/metrics` port). `handed_over` resolves once one of them is serving.
    pub fn offer_handoff(
        &self,
        path: &std::path::Path,
        extra: Vec<std::net::TcpListener>,
    ) -> Result<(), HandoffError> {
        use std::os::unix::fs::PermissionsExt;
        let io = |source| HandoffError::Io {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
        let listener = tokio::net::UnixListener::bind(path).map_err(io)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        let shared = self.shared.clone();
        let handed_over = self.handed_over.clone();
        let mut stop = self.stop.subscribe();
        let extra = Arc::new(extra);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = stopped(&mut stop) => return,
                };
                let Ok(stream) = accepted.and_then(|(s, _)| s.into_std()) else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let (shared, extra) = (shared.clone(), extra.clone());
                let given = tokio::task::spawn_blocking(move || {
                    stream.set_nonblocking(false)?;
                    handoff::give(stream, &shared, &extra)
                })
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
                let ready = match given {
                    Ok(Some(stream)) => tokio::select! {
                        ready = handoff::wait_ready(stream) => ready,
                        _ = stopped(&mut stop) => return,
                    },
                    Ok(None) => Ok(false),
                    Err(e) => Err(e),
                };
                match ready {
                    Ok(true) => {
                        tracing::info!("a new proxy process took over the listeners");
                        handed_over.send_replace(true);
                        return;
                    }
                    Ok(false) => {
                        tracing::warn!(
                            "a process on the handoff socket did not take over; serving on"
                        )
                    }
                    Err(e) => tracing::warn!("handoff failed: {e}; serving on"),
                }
            }
        });
        Ok(())
    }

    /// Resolves once a new proxy process that took over the listeners is serving: this one
    /// should then `shutdown` (stop accepting and drain).
    pub async fn handed_over(&self) {
        let mut rx = self.handed_over.subscribe();
        let _ = rx.wait_for(|h| *h).await;
    }
}

/// What a running proxy shows about itself, detached from its lifetime: it holds no task.
#[derive(Clone)]
pub struct Telemetry {
    shared: Arc<Shared>,
}

impl Telemetry {
    /// Adds the proxy's metrics to the process's registry (read when it is encoded).
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register_collector(Box::new(metrics::ProxyMetrics(self.shared.clone())));
    }

    /// This proxy's metrics alone, as Prometheus text.
    pub fn metrics_text(&self) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        self.register_metrics(&mut registry);
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
        out
    }

    pub fn listening_ports(&self) -> Vec<u16> {
        self.shared
            .listeners
            .lock()
            .map(|l| l.keys().copied().collect())
            .unwrap_or_default()
    }

    /// How many routing tables have been applied since start (0: still waiting for the control
    /// plane).
    pub fn tables_applied(&self) -> u64 {
        *self.shared.tables.borrow()
    }
}

/// Resolves once `stop` turns true (or its sender is gone). Returns nothing, so no lock guard is
/// held across a `select!`.
pub(crate) async fn stopped(stop: &mut signal::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
