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

const NGINX: &str = "/usr/sbin/nginx";

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Berth's proxy vs nginx over the same two local backends, loaded by wrk.
    Proxy(BenchProxyArgs),
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
}

pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Proxy(args) => bench_proxy(args).await,
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
    // nginx first, alone with the backends.
    let nginx_port = free_port().await?;
    let mut nginx = start_nginx(dir, workers, nginx_port, backends).await?;
    let nginx_result = measure(wrk, args, nginx_port).await;
    stop_nginx(&mut nginx).await;
    let nginx_result = nginx_result.context("loading nginx")?;

    // Then Berth's proxy, fed by a control plane stand-in, with as many worker threads as nginx
    // had worker processes.
    let berth_port = free_port().await?;
    let endpoints = start_endpoints(route(berth_port, backends)).await?;
    let mut config = berth_proxy::Config::new(
        format!("http://{endpoints}"),
        [127, 0, 0, 1].into(),
        "bench",
    );
    config.workers = workers;
    let proxy = berth_proxy::spawn(config).await?;
    let berth_result = async {
        wait_until_serving(berth_port, "Berth's proxy").await?;
        measure(wrk, args, berth_port).await
    }
    .await;
    proxy.shutdown().await;
    let berth_result = berth_result.context("loading Berth's proxy")?;

    println!(
        "berth bench proxy: wrk -t{} -c{} -d{}s --latency, two local backends, {workers} nginx \
         worker processes / {workers} Berth worker threads, wrk + proxy + backends on {cores} cores",
        args.threads,
        args.connections,
        args.duration.as_secs_f64(),
    );
    println!(
        "{:<12} {:>11} {:>9} {:>9} {:>9} {:>12} {:>14}",
        "proxy", "req/s", "p50", "p90", "p99", "non-2xx/3xx", "socket errors"
    );
    for (name, r) in [("nginx", &nginx_result), ("berth", &berth_result)] {
        println!(
            "{:<12} {:>11.1} {:>9} {:>9} {:>9} {:>12} {:>14}",
            name,
            r.requests_per_sec,
            ms(r.p50),
            ms(r.p90),
            ms(r.p99),
            r.non_2xx_3xx,
            r.socket_errors
        );
    }
    let ratio = |b: f64, n: f64| {
        if n > 0.0 {
            format!("{:.2}x", b / n)
        } else {
            "-".into()
        }
    };
    println!(
        "{:<12} {:>11} {:>9} {:>9} {:>9}",
        "berth/nginx",
        ratio(berth_result.requests_per_sec, nginx_result.requests_per_sec),
        ratio(
            berth_result.p50.as_secs_f64(),
            nginx_result.p50.as_secs_f64()
        ),
        ratio(
            berth_result.p90.as_secs_f64(),
            nginx_result.p90.as_secs_f64()
        ),
        ratio(
            berth_result.p99.as_secs_f64(),
            nginx_result.p99.as_secs_f64()
        ),
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

async fn start_nginx(
    dir: &Path,
    workers: usize,
    port: u16,
    backends: [SocketAddr; 2],
) -> anyhow::Result<tokio::process::Child> {
    let d = dir.display();
    let config = format!(
        r#"worker_processes {workers};
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy_temp;
    fastcgi_temp_path {d}/fastcgi_temp;
    uwsgi_temp_path {d}/uwsgi_temp;
    scgi_temp_path {d}/scgi_temp;
    upstream backends {{
        server {a};
        server {b};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # The same forwarding headers Berth's proxy adds.
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Port $server_port;
        }}
    }}
}}
"#,
        a = backends[0],
        b = backends[1],
    );
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, config).with_context(|| format!("writing {}", conf.display()))?;
    let mut child = tokio::process::Command::new(NGINX)
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&conf)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {NGINX}"))?;
    if let Err(e) = wait_until_serving(port, "nginx").await {
        stop_nginx(&mut child).await;
        let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
        bail!("{e}\nnginx's error log:\n{log}");
    }
    Ok(child)
}

/// SIGQUIT (graceful) to the master process we started, which takes its workers with it.
async fn stop_nginx(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = tokio::process::Command::new("kill")
            .args(["-QUIT", &pid.to_string()])
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

/// What wrk reports for one run.
#[derive(Debug, Default, PartialEq)]
struct WrkResult {
    requests_per_sec: f64,
    p50: Duration,
    p90: Duration,
    p99: Duration,
    non_2xx_3xx: u64,
    socket_errors: u64,
}

async fn measure(wrk: &Path, args: &BenchProxyArgs, port: u16) -> anyhow::Result<WrkResult> {
    if !args.warmup.is_zero() {
        run_wrk(wrk, args, args.warmup, port).await?;
    }
    run_wrk(wrk, args, args.duration, port).await
}

async fn run_wrk(
    wrk: &Path,
    args: &BenchProxyArgs,
    duration: Duration,
    port: u16,
) -> anyhow::Result<WrkResult> {
    let secs = duration.as_secs().max(1);
    let out = tokio::process::Command::new(wrk)
        .arg(format!("-t{}", args.threads))
        .arg(format!("-c{}", args.connections))
        .arg(format!("-d{secs}s"))
        .arg("--latency")
        .arg(format!("http://127.0.0.1:{port}/"))
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .context("running wrk")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "wrk failed ({}): {}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_wrk(&stdout).with_context(|| format!("unexpected wrk output:\n{stdout}"))
}

fn parse_wrk(out: &str) -> anyhow::Result<WrkResult> {
    let mut r = WrkResult::default();
    let mut seen_rps = false;
    for line in out.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            r.requests_per_sec = v.trim().parse().context("Requests/sec")?;
            seen_rps = true;
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            r.non_2xx_3xx = v.trim().parse().context("Non-2xx or 3xx responses")?;
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            r.socket_errors = v
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        } else if let Some((pct, value)) = line.split_once('%') {
            let slot = match pct.trim() {
                "50" => &mut r.p50,
                "90" => &mut r.p90,
                "99" => &mut r.p99,
                _ => continue,
            };
            *slot = parse_latency(value.trim())
                .with_context(|| format!("latency {:?}", value.trim()))?;
        }
    }
    if !seen_rps {
        bail!("no Requests/sec line");
    }
    Ok(r)
}

/// wrk's latency format: `850.00us`, `1.10ms`, `1.02s`, `2.00m`.
fn parse_latency(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().ok()?;
    let nanos_per_unit = match unit {
        "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => return None,
    };
    let nanos = (n * nanos_per_unit).round();
    (nanos >= 0.0 && nanos < u64::MAX as f64).then(|| Duration::from_nanos(nanos as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running 10s test @ http://127.0.0.1:8080/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.23ms  456.78us  12.34ms   78.90%
    Req/Sec    25.67k     1.23k   28.90k    70.00%
  Latency Distribution
     50%  850.00us
     75%    1.40ms
     90%    1.80ms
     99%    3.20ms
  511234 requests in 10.00s, 60.12MB read
  Non-2xx or 3xx responses: 12
  Socket errors: connect 0, read 3, write 0, timeout 1
Requests/sec:  51100.12
Transfer/sec:      6.01MB
";

    #[test]
    fn wrk_output_parses() {
        let r = parse_wrk(SAMPLE).unwrap();
        assert_eq!(r.requests_per_sec, 51100.12);
        assert_eq!(r.p50, Duration::from_micros(850));
        assert_eq!(r.p90, Duration::from_micros(1800));
        assert_eq!(r.p99, Duration::from_micros(3200));
        assert_eq!(r.non_2xx_3xx, 12);
        assert_eq!(r.socket_errors, 4);
    }

    #[test]
    fn output_without_a_rate_is_an_error() {
        assert!(parse_wrk("unable to connect to 127.0.0.1:1 Connection refused").is_err());
    }
}
