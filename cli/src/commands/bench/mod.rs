//! `berth bench proxy`: Berth's proxy against nginx (Debian's package) as keep-alive reverse
//! proxies over the same two local backends, both loaded by `wrk` with the same settings. Berth's
//! proxy runs the production code path: `berth_proxy::spawn` fed by a `WatchEndpoints` stream,
//! with as many worker threads as nginx has worker processes.

use super::agent::parse_duration;
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
mod nginx;
mod writes;
mod wrk;

use cpu::Counted;
use nginx::{start_nginx, stop_nginx, NGINX};
use wrk::{measure, WrkResult};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Berth's proxy vs nginx over the same two local backends, loaded by wrk.
    Proxy(BenchProxyArgs),
    /// Write latency (RegisterTaskDefinition, UpdateService) on sled vs a 3-member etcd.
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
    /// nginx worker processes and Berth proxy worker threads [default: the number of cores].
    #[arg(long)]
    pub workers: Option<usize>,
    /// An unreported wrk run before each measured one, to open the upstream connections.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Rounds, each loading nginx then Berth's proxy; the medians are compared.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
}

pub async fn run(command: BenchCommand, format: crate::output::Format) -> anyhow::Result<()> {
    match command {
        BenchCommand::Proxy(args) => bench_proxy(args).await,
        BenchCommand::Writes(args) => writes::run(args, format).await,
        BenchCommand::Fleet(args) => fleet::run(args, format).await,
    }
}

async fn bench_proxy(args: BenchProxyArgs) -> anyhow::Result<()> {
    let nginx = Path::new(NGINX);
    if !nginx.exists() {
        bail!("{NGINX} not found: install Debian's nginx package (apt-get install -y nginx)");
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
    let result = compare(&args, &wrk, workers, cores, backends, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn compare(
    args: &BenchProxyArgs,
    wrk: &Path,
    workers: usize,
    cores: usize,
    backends: [SocketAddr; 2],
    dir: &Path,
) -> anyhow::Result<()> {
    let nginx_port = free_port().await?;
    let mut nginx = start_nginx(dir, workers, nginx_port, backends).await?;

    // Berth's proxy, fed by a control plane stand-in, with as many worker threads as nginx has
    // worker processes.
    let berth_port = free_port().await?;
    let started = async {
        let endpoints = start_endpoints(route(berth_port, backends)).await?;
        let mut config = berth_proxy::Config::new(
            format!("http://{endpoints}"),
            [127, 0, 0, 1].into(),
            "bench",
        );
        config.workers = workers;
        anyhow::Ok(berth_proxy::spawn(config).await?)
    }
    .await;
    let proxy = match started {
        Ok(proxy) => proxy,
        Err(e) => {
            stop_nginx(&mut nginx).await;
            return Err(e);
        }
    };

    // Each round loads nginx, then Berth's proxy (the idle one costs nothing meanwhile), so load
    // from elsewhere on the machine hits both sides alike.
    let rounds = async {
        wait_until_serving(berth_port, "Berth's proxy").await?;
        let master = nginx.id().context("nginx exited")?;
        let mut rounds = Vec::new();
        for round in 1..=args.rounds {
            let n = measure(wrk, args, nginx_port, Counted::NginxWorkers(master))
                .await
                .context("loading nginx")?;
            let b = measure(wrk, args, berth_port, Counted::BerthWorkers)
                .await
                .context("loading Berth's proxy")?;
            eprintln!(
                "round {round}/{}: nginx {:.0} req/s, berth {:.0} req/s",
                args.rounds, n.requests_per_sec, b.requests_per_sec
            );
            rounds.push([n, b]);
        }
        anyhow::Ok(rounds)
    }
    .await;
    stop_nginx(&mut nginx).await;
    proxy.shutdown().await;
    let rounds = rounds?;

    println!(
        "berth bench proxy: wrk -t{} -c{} -d{}s --latency, two local backends, {workers} nginx \
         worker processes / {workers} Berth worker threads, wrk + proxy + backends on {cores} cores, \
         {} rounds (nginx then Berth in each)",
        args.threads,
        args.connections,
        args.duration.as_secs_f64(),
        args.rounds,
    );
    println!(
        "{:<16} {:>11} {:>9} {:>9} {:>9} {:>15} {:>12} {:>14}",
        "proxy", "req/s", "p50", "p90", "p99", "cpu/req usr+sys", "non-2xx/3xx", "socket errors"
    );
    let row = |name: &str, r: &WrkResult| {
        let cpu = r.cpu_per_request.map_or("-".into(), |c| {
            let us = |d: Duration| d.as_secs_f64() * 1e6;
            format!("{:.1}+{:.1}us", us(c.user), us(c.system))
        });
        println!(
            "{:<16} {:>11.1} {:>9} {:>9} {:>9} {:>15} {:>12} {:>14}",
            name,
            r.requests_per_sec,
            ms(r.p50),
            ms(r.p90),
            ms(r.p99),
            cpu,
            r.non_2xx_3xx,
            r.socket_errors
        );
    };
    if rounds.len() > 1 {
        for (i, [n, b]) in rounds.iter().enumerate() {
            row(&format!("nginx #{}", i + 1), n);
            row(&format!("berth #{}", i + 1), b);
        }
    }
    let nginx = WrkResult::median(rounds.iter().map(|[n, _]| n));
    let berth = WrkResult::median(rounds.iter().map(|[_, b]| b));
    let label = |name: &str| {
        if rounds.len() > 1 {
            format!("{name} median")
        } else {
            name.to_string()
        }
    };
    row(&label("nginx"), &nginx);
    row(&label("berth"), &berth);
    let ratio = |b: f64, n: f64| {
        if n > 0.0 {
            format!("{:.2}x", b / n)
        } else {
            "-".into()
        }
    };
    let secs = |d: Duration| d.as_secs_f64();
    let cpu = match (berth.cpu_per_request, nginx.cpu_per_request) {
        (Some(b), Some(n)) => ratio(secs(b.user + b.system), secs(n.user + n.system)),
        _ => "-".into(),
    };
    println!(
        "{:<16} {:>11} {:>9} {:>9} {:>9} {:>15}",
        "berth/nginx",
        ratio(berth.requests_per_sec, nginx.requests_per_sec),
        ratio(secs(berth.p50), secs(nginx.p50)),
        ratio(secs(berth.p90), secs(nginx.p90)),
        ratio(secs(berth.p99), secs(nginx.p99)),
        cpu,
    );
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.2}ms", d.as_secs_f64() * 1000.0)
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

/// The one route Berth's proxy gets: both backends, checked every 5 s, healthy after one pass.
fn route(port: u16, backends: [SocketAddr; 2]) -> Route {
    Route {
        cluster: "bench".into(),
        service_name: "bench".into(),
        service_arn: "arn:berth:bench:service/bench".into(),
        listener_port: i32::from(port),
        health_check: Some(TargetHealthCheck {
            path: "/".into(),
            interval_seconds: Some(5),
            timeout_seconds: Some(2),
            healthy_threshold: Some(1),
            unhealthy_threshold: Some(2),
            matcher: "200-399".into(),
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

async fn start_endpoints(route: Route) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let service = EndpointsServer::new(FixedTable(RoutingTable {
        routes: vec![route],
    }));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    Ok(addr)
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
