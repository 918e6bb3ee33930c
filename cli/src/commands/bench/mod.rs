//! `berth bench proxy`: Berth's proxy against nginx and HAProxy (Debian's packages) as keep-alive
//! reverse proxies over the same two local backends, all loaded by `wrk` with the same settings:
//! over HTTP, then over HTTPS with the same certificate (keep-alive, and a new handshake per
//! request).
//! Berth's proxy runs the production code path: `berth_proxy::spawn` fed by a `WatchEndpoints`
//! stream, with as many worker threads as nginx has worker processes and HAProxy threads.

use super::flags::parse_duration;
use anyhow::{bail, Context};
use berth_proto::v1::endpoints_server::{Endpoints, EndpointsServer};
use berth_proto::v1::{
    Route, RoutingTable, Target, TargetHealthAck, TargetHealthCheck, TargetHealthReport,
    WatchEndpointsRequest,
};
use clap::{Args, Subcommand};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::Response;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::{Stream, StreamExt};

mod cpu;
pub mod fleet;
mod haproxy;
mod nginx;
mod proxy_report;
mod tls;
mod writes;
mod wrk;

use cpu::Counted;
use haproxy::{start_haproxy, stop_haproxy, HAPROXY};
use nginx::{start_nginx, stop_nginx, NGINX};
use proxy_report::{Measured, Settings};
use tls::BenchCert;
use wrk::{measure, Load};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Berth's proxy vs nginx and HAProxy over the same two local backends, loaded by wrk.
    Proxy(BenchProxyArgs),
    /// Write latency (RegisterTaskDefinition, UpdateService) on the embedded store vs a 3-member etcd.
    Writes(writes::BenchWritesArgs),
    /// The control plane against a simulated fleet: N agents, S services of T tasks.
    Fleet(fleet::BenchFleetArgs),
}

#[derive(Debug, Args)]
pub struct BenchProxyArgs {
    /// How long wrk loads each proxy.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// wrk's open connections.
    #[arg(long, default_value_t = 64)]
    pub connections: u32,
    /// wrk's threads.
    #[arg(long, default_value_t = 2)]
    pub threads: u32,
    /// nginx worker processes, HAProxy threads and Berth proxy worker threads [default: the
    /// number of cores].
    #[arg(long)]
    pub workers: Option<usize>,
    /// An unreported wrk run before each measured one, to open the upstream connections.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Rounds, each loading nginx, HAProxy, then Berth's proxy, over HTTP, then HTTPS with
    /// keep-alive, then HTTPS with a new handshake per request; the medians are compared.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// HTTP only: skip the HTTPS runs.
    #[arg(long)]
    pub no_https: bool,
}

pub async fn run(command: BenchCommand, format: crate::output::Format) -> anyhow::Result<()> {
    match command {
        BenchCommand::Proxy(args) => bench_proxy(args, format).await,
        BenchCommand::Writes(args) => writes::run(args, format).await,
        BenchCommand::Fleet(args) => fleet::run(args, format).await,
    }
}

async fn bench_proxy(args: BenchProxyArgs, format: crate::output::Format) -> anyhow::Result<()> {
    if !Path::new(NGINX).exists() {
        bail!("{NGINX} not found: install Debian's nginx package (apt-get install -y nginx)");
    }
    if !Path::new(HAPROXY).exists() {
        bail!("{HAPROXY} not found: install Debian's haproxy package (apt-get install -y haproxy)");
    }
    let wrk = find_in_path("wrk")
        .context("wrk not found: install Debian's wrk package (apt-get install -y wrk)")?;
    if args.connections < args.threads || args.threads == 0 {
        bail!("--connections must be at least --threads, and --threads at least 1");
    }
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = args.workers.unwrap_or(cores).max(1);

    let backends = [start_backend(1).await?, start_backend(2).await?];
    let dir = std::env::temp_dir().join(format!("berth-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let measured = async {
        let cert = match args.no_https {
            true => None,
            false => Some(BenchCert::generate(&dir)?),
        };
        compare(&args, &wrk, workers, backends, &dir, cert.as_ref()).await
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    let settings = Settings {
        wrk_threads: args.threads,
        wrk_connections: args.connections,
        duration_seconds: args.duration.as_secs_f64(),
        workers,
        cores,
        rounds: args.rounds,
    };
    proxy_report::print(&settings, &measured?, format)
}

/// Loads nginx, HAProxy and Berth's proxy, `args.rounds` times each; Berth's runs come last.
/// With `cert`, each also serves HTTPS with it on a second port, loaded after HTTP.
async fn compare(
    args: &BenchProxyArgs,
    wrk: &Path,
    workers: usize,
    backends: [SocketAddr; 2],
    dir: &Path,
    cert: Option<&BenchCert>,
) -> anyhow::Result<Vec<Measured>> {
    // Each proxy's HTTPS port, if the bench runs HTTPS.
    let https_port = || async {
        match cert {
            Some(cert) => anyhow::Ok(Some((free_port().await?, cert))),
            None => Ok(None),
        }
    };
    let nginx_port = free_port().await?;
    let nginx_https = https_port().await?;
    let mut nginx = start_nginx(dir, workers, nginx_port, nginx_https, backends).await?;
    let haproxy_port = free_port().await?;
    let haproxy_https = https_port().await?;
    let mut haproxy = match start_haproxy(dir, workers, haproxy_port, haproxy_https, backends).await
    {
        Ok(haproxy) => haproxy,
        Err(e) => {
            stop_nginx(&mut nginx).await;
            return Err(e);
        }
    };

    // Berth's proxy, fed by a control plane stand-in, with as many worker threads as nginx has
    // worker processes.
    let berth_port = free_port().await?;
    let berth_https = https_port().await?;
    let started = start_berth(berth_port, berth_https, backends, workers).await;
    let proxy = match started {
        Ok(proxy) => proxy,
        Err(e) => {
            stop_nginx(&mut nginx).await;
            stop_haproxy(&mut haproxy).await;
            return Err(e);
        }
    };

    // Each round loads nginx, HAProxy, then Berth's proxy (the idle ones cost nothing
    // meanwhile), so load from elsewhere on the machine hits all alike; HTTP first, then HTTPS.
    let rounds = async {
        wait_until_serving(berth_port, "Berth's proxy").await?;
        let master = nginx.id().context("nginx exited")?;
        let haproxy_pid = haproxy.id().context("HAProxy exited")?;
        let proxies = [
            (
                "nginx",
                nginx_port,
                nginx_https,
                Counted::NginxWorkers(master),
            ),
            (
                "haproxy",
                haproxy_port,
                haproxy_https,
                Counted::Process(haproxy_pid),
            ),
            ("berth", berth_port, berth_https, Counted::BerthWorkers),
        ];
        if let Some(cert) = cert {
            let client = cert.client()?;
            for (name, _, https, _) in &proxies {
                if let Some((port, _)) = https {
                    tls::wait_until_serving(*port, name, &client).await?;
                }
            }
        }
        let mut measured = plan(&proxies, cert.is_some());
        for round in 1..=args.rounds {
            let mut line = format!("round {round}/{}:", args.rounds);
            for (m, port, counted) in &mut measured {
                let r = measure(wrk, args, m.load, *port, *counted)
                    .await
                    .with_context(|| format!("loading {} ({})", m.name, m.load.key()))?;
                line.push_str(&format!(
                    " {} {} {:.0} req/s",
                    m.name,
                    m.load.key(),
                    r.requests_per_sec
                ));
                m.rounds.push(r);
            }
            eprintln!("{line}");
        }
        anyhow::Ok(measured.into_iter().map(|(m, _, _)| m).collect())
    }
    .await;
    stop_nginx(&mut nginx).await;
    stop_haproxy(&mut haproxy).await;
    proxy.shutdown().await;
    rounds
}

/// Berth's proxy, fed by a control plane stand-in, on `port` (and `https`), with `workers`
/// threads.
async fn start_berth(
    port: u16,
    https: Option<(u16, &BenchCert)>,
    backends: [SocketAddr; 2],
    workers: usize,
) -> anyhow::Result<berth_proxy::Proxy> {
    let mut table = RoutingTable {
        routes: vec![route("bench", port, backends)],
        ..Default::default()
    };
    if let Some((https_port, cert)) = https {
        // The same service behind both listeners, as a target group behind HTTP and HTTPS
        // listeners is: one set of targets, health-checked once.
        table.routes.push(route("bench", https_port, backends));
        table.tls_listeners.push(cert.listener(https_port));
    }
    let endpoints = start_endpoints(table).await?;
    let mut config = berth_proxy::Config::new(
        format!("http://{endpoints}"),
        [127, 0, 0, 1].into(),
        "bench",
    );
    config.workers = workers;
    Ok(berth_proxy::spawn(config).await?)
}

/// A proxy under test: its name, HTTP port, HTTPS port (with the certificate) and what is
/// counted of its CPU.
type Proxied<'a> = (&'static str, u16, Option<(u16, &'a BenchCert)>, Counted);

/// One entry a load and proxy, in the order each round runs them: HTTP first, then (with a
/// certificate) HTTPS keep-alive and HTTPS with a new handshake a request.
fn plan(proxies: &[Proxied<'_>], https: bool) -> Vec<(Measured, u16, Counted)> {
    let loads = if https {
        &[Load::Http, Load::HttpsKeepAlive, Load::HttpsNewHandshake][..]
    } else {
        &[Load::Http][..]
    };
    let mut measured = Vec::new();
    for &load in loads {
        for (name, http, https, counted) in proxies {
            let port = match (load, https) {
                (Load::Http, _) => *http,
                (_, Some((port, _))) => *port,
                (_, None) => continue,
            };
            let m = Measured {
                load,
                name,
                rounds: Vec::new(),
            };
            measured.push((m, port, *counted));
        }
    }
    measured
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

async fn free_port() -> anyhow::Result<u16> {
    let probe = TcpListener::bind("127.0.0.1:0").await?;
    Ok(probe.local_addr()?.port())
}

/// A backend answering every request with a small fixed body, HTTP/1.1 keep-alive.
async fn start_backend(n: u8) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let body = Bytes::from(format!("hello from backend {n}\n"));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let body = body.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_req| {
                    let body = body.clone();
                    async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// A route of Berth's proxy: both backends, checked every 5 s, healthy after one pass.
fn route(service: &str, port: u16, backends: [SocketAddr; 2]) -> Route {
    Route {
        cluster: "bench".into(),
        service_name: service.into(),
        service_arn: format!("arn:berth:bench:service/{service}"),
        listener_port: i32::from(port),
        health_check: Some(TargetHealthCheck {
            path: "/".into(),
            interval_seconds: Some(5),
            timeout_seconds: Some(2),
            healthy_threshold: Some(1),
            unhealthy_threshold: Some(2),
            matcher: "200-399".into(),
            ..Default::default()
        }),
        drain_timeout_seconds: 30,
        algorithm: "round_robin".into(),
        targets: backends
            .iter()
            .enumerate()
            .map(|(i, b)| Target {
                task_arn: format!("arn:berth:bench:task/{i}"),
                address: b.ip().to_string(),
                port: i32::from(b.port()),
                draining: false,
            })
            .collect(),
        ..Default::default()
    }
}

/// A control plane stand-in that serves one fixed routing table.
struct FixedTable(RoutingTable);

type TableStream = Pin<Box<dyn Stream<Item = Result<RoutingTable, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl Endpoints for FixedTable {
    type WatchEndpointsStream = TableStream;

    async fn watch_endpoints(
        &self,
        _request: tonic::Request<WatchEndpointsRequest>,
    ) -> Result<tonic::Response<TableStream>, tonic::Status> {
        let stream = tokio_stream::once(Ok(self.0.clone())).chain(tokio_stream::pending());
        Ok(tonic::Response::new(Box::pin(stream)))
    }

    async fn report_target_health(
        &self,
        _request: tonic::Request<TargetHealthReport>,
    ) -> Result<tonic::Response<TargetHealthAck>, tonic::Status> {
        Ok(tonic::Response::new(TargetHealthAck {}))
    }
}

async fn start_endpoints(table: RoutingTable) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let service = EndpointsServer::new(FixedTable(table));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    Ok(addr)
}

/// `kill SIGNAL` to the one process we started, then SIGKILL if it has not exited within 10 s.
async fn stop_with(child: &mut tokio::process::Child, signal: &str) {
    if let Some(pid) = child.id() {
        let _ = tokio::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .await;
    }
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

async fn wait_until_serving(port: u16, what: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if get_status(port).await == Some(200) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{what} did not answer 200 on 127.0.0.1:{port} within 15 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn get_status(port: u16) -> Option<u16> {
    let exchange = async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf);
        text.split_whitespace().nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .ok()
        .flatten()
}
