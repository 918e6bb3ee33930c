//! The proxy test harness: real HTTP backends on loopback, a stand-in control plane serving
//! the `Endpoints` stream, and small clients. The one fake is the control plane, by design.

#![allow(dead_code, unused_imports)]

pub use berth_proto::v1::endpoints_server::{Endpoints, EndpointsServer};
pub use berth_proto::v1::{
    Route, RoutingTable, Target, TargetHealth, TargetHealthAck, TargetHealthCheck,
    TargetHealthReport, WatchEndpointsRequest,
};
pub use http_body_util::Full;
pub use hyper::body::{Bytes, Incoming};
pub use hyper::service::service_fn;
pub use hyper::{Request, Response, StatusCode};
pub use hyper_util::rt::TokioIo;
pub use std::convert::Infallible;
pub use std::net::SocketAddr;
pub use std::pin::Pin;
pub use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering::SeqCst};
pub use std::sync::{Arc, Mutex};
pub use std::time::Duration;
pub use tokio::io::{AsyncReadExt, AsyncWriteExt};
pub use tokio::net::{TcpListener, TcpStream};
pub use tokio::sync::{oneshot, watch};
pub use tokio::task::{JoinHandle, JoinSet};
pub use tokio_stream::{Stream, StreamExt};

pub const WAIT: Duration = Duration::from_secs(15);

// ---- backends -------------------------------------------------------------------------------

/// What a backend does and has seen; tests flip its health and count its requests.
pub struct BackendState {
    pub name: String,
    /// What `/health` answers.
    pub health: AtomicU16,
    /// Requests other than `/health`.
    pub hits: AtomicUsize,
    /// `/slow` requests being served.
    pub slow_in_flight: AtomicUsize,
    /// Connections that carried a request other than `/health`.
    pub connections: AtomicUsize,
}

/// An HTTP/1.1 backend: `/` names it, `/health` answers the test's status, `/slow` takes 2 s,
/// `/headers` echoes the forwarding headers, `/ws` upgrades to an echo tunnel.
pub struct Backend {
    pub addr: SocketAddr,
    pub state: Arc<BackendState>,
    pub task: JoinHandle<()>,
}

impl Backend {
    pub async fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(BackendState {
            name: name.to_string(),
            health: AtomicU16::new(200),
            hits: AtomicUsize::new(0),
            slow_in_flight: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
        });
        let shared = state.clone();
        // Connections live in the accept task's JoinSet: aborting the task closes them all.
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = shared.clone();
                connections.spawn(async move {
                    let used = Arc::new(AtomicBool::new(false));
                    let service = service_fn(move |req: Request<Incoming>| {
                        if req.uri().path() != "/health" && !used.swap(true, SeqCst) {
                            state.connections.fetch_add(1, SeqCst);
                        }
                        respond(state.clone(), req)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Self { addr, state, task }
    }

    pub fn hits(&self) -> usize {
        self.state.hits.load(SeqCst)
    }

    pub fn set_health(&self, status: u16) {
        self.state.health.store(status, SeqCst);
    }

    /// Like a killed process: the listener and every open connection close at once.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    pub fn target(&self, n: usize) -> Target {
        Target {
            task_arn: task_arn(n),
            address: self.addr.ip().to_string(),
            port: i32::from(self.addr.port()),
            draining: false,
        }
    }
}

pub fn task_arn(n: usize) -> String {
    format!("arn:berth:test:task/t{n}")
}

pub async fn respond(
    state: Arc<BackendState>,
    mut req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let text = |status: u16, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = StatusCode::from_u16(status).unwrap();
        Ok(r)
    };
    if req.uri().path() == "/health" {
        return text(state.health.load(SeqCst), "health\n".into());
    }
    state.hits.fetch_add(1, SeqCst);
    match req.uri().path() {
        "/slow" => {
            state.slow_in_flight.fetch_add(1, SeqCst);
            tokio::time::sleep(Duration::from_secs(2)).await;
            state.slow_in_flight.fetch_sub(1, SeqCst);
            text(200, format!("{} slow\n", state.name))
        }
        "/headers" => {
            let mut body = String::new();
            for name in [
                "host",
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-forwarded-port",
            ] {
                let value = req.headers().get(name).and_then(|v| v.to_str().ok());
                body.push_str(&format!("{name}: {}\n", value.unwrap_or("-")));
            }
            text(200, body)
        }
        "/ws" => {
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(upgraded) = upgrade.await {
                    let mut io = TokioIo::new(upgraded);
                    let mut buf = [0u8; 64];
                    while let Ok(n) = io.read(&mut buf).await {
                        if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            });
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            r.headers_mut().insert("upgrade", "echo".parse().unwrap());
            r.headers_mut()
                .insert("connection", "upgrade".parse().unwrap());
            Ok(r)
        }
        _ => text(200, format!("{}\n", state.name)),
    }
}

// ---- the control plane stand-in ---------------------------------------------------------------

type TableStream = Pin<Box<dyn Stream<Item = Result<RoutingTable, tonic::Status>> + Send>>;

pub struct FakeEndpoints {
    pub tables: watch::Receiver<RoutingTable>,
    pub reports: Arc<Mutex<Vec<TargetHealth>>>,
}

#[tonic::async_trait]
impl Endpoints for FakeEndpoints {
    type WatchEndpointsStream = TableStream;

    async fn watch_endpoints(
        &self,
        _request: tonic::Request<WatchEndpointsRequest>,
    ) -> Result<tonic::Response<TableStream>, tonic::Status> {
        let stream = tokio_stream::wrappers::WatchStream::new(self.tables.clone()).map(Ok);
        Ok(tonic::Response::new(Box::pin(stream)))
    }

    async fn report_target_health(
        &self,
        request: tonic::Request<TargetHealthReport>,
    ) -> Result<tonic::Response<TargetHealthAck>, tonic::Status> {
        let report = request.into_inner();
        self.reports.lock().unwrap().extend(report.targets);
        Ok(tonic::Response::new(TargetHealthAck {}))
    }
}

/// Serves the tables a test sets and records every health report.
pub struct ControlPlane {
    pub addr: SocketAddr,
    pub tables: Option<watch::Sender<RoutingTable>>,
    pub reports: Arc<Mutex<Vec<TargetHealth>>>,
    pub shutdown: Option<oneshot::Sender<()>>,
    pub task: Option<JoinHandle<()>>,
}

impl ControlPlane {
    pub async fn start(routes: Vec<Route>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tables, rx) = watch::channel(RoutingTable {
            routes,
            ..Default::default()
        });
        let reports = Arc::new(Mutex::new(Vec::new()));
        let (shutdown, stopped) = oneshot::channel::<()>();
        let service = EndpointsServer::new(FakeEndpoints {
            tables: rx,
            reports: reports.clone(),
        });
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async {
                        let _ = stopped.await;
                    },
                )
                .await;
        });
        Self {
            addr,
            tables: Some(tables),
            reports,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A whole table (with HTTPS listeners, say).
    pub fn set_table(&self, table: RoutingTable) {
        if let Some(tables) = &self.tables {
            tables.send_replace(table);
        }
    }

    pub fn set(&self, routes: Vec<Route>) {
        if let Some(tables) = &self.tables {
            tables.send_replace(RoutingTable {
                routes,
                ..Default::default()
            });
        }
    }

    /// Ends the streams and stops serving: the port refuses connections afterwards.
    pub async fn stop(&mut self) {
        self.tables.take();
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                panic!("the stand-in control plane did not stop within 5 s");
            }
        }
    }

    /// The first report of `state` for the task, waiting up to `WAIT`.
    pub async fn wait_report(&self, task: &str, state: &str) -> TargetHealth {
        let what = format!("{state} reported for {task}");
        wait_for(&what, || {
            self.reports
                .lock()
                .unwrap()
                .iter()
                .find(|r| r.task_arn == task && r.state == state)
                .cloned()
        })
        .await
    }

    pub fn reported(&self, task: &str, state: &str) -> bool {
        self.reports
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.task_arn == task && r.state == state)
    }
}

// ---- routes, the proxy and clients ------------------------------------------------------------

/// A route with fast checks: every second, healthy after `healthy` passes, unhealthy after 2 fails.
pub fn route(name: &str, port: u16, targets: Vec<Target>, healthy: i32) -> Route {
    Route {
        cluster: "test".into(),
        service_name: name.into(),
        service_arn: format!("arn:berth:test:service/{name}"),
        listener_port: i32::from(port),
        health_check: Some(TargetHealthCheck {
            path: "/health".into(),
            interval_seconds: Some(1),
            timeout_seconds: Some(1),
            healthy_threshold: Some(healthy),
            unhealthy_threshold: Some(2),
            matcher: "200-399".into(),
            ..Default::default()
        }),
        drain_timeout_seconds: 30,
        algorithm: "round_robin".into(),
        targets,
        ..Default::default()
    }
}

pub fn with_rule(mut route: Route, priority: i32, hosts: &[&str], paths: &[&str]) -> Route {
    route.priority = priority;
    route.host_patterns = hosts.iter().map(|h| h.to_string()).collect();
    route.path_patterns = paths.iter().map(|p| p.to_string()).collect();
    route
}

pub async fn free_port() -> u16 {
    let probe = TcpListener::bind("127.0.0.1:0").await.unwrap();
    probe.local_addr().unwrap().port()
}

pub async fn start_proxy(control_plane: &ControlPlane) -> berth_proxy::Proxy {
    start_proxy_with(control_plane, |_| {}).await
}

/// As `start_proxy`, with `change` applied to the test's configuration first.
pub async fn start_proxy_with(
    control_plane: &ControlPlane,
    change: impl FnOnce(&mut berth_proxy::Config),
) -> berth_proxy::Proxy {
    let mut config =
        berth_proxy::Config::new(control_plane.url(), [127, 0, 0, 1].into(), "test-proxy");
    config.report_interval = Duration::from_millis(100);
    config.reconnect_max = Duration::from_millis(500);
    config.connect_timeout = Duration::from_secs(1);
    config.shutdown_grace = Duration::from_secs(3);
    change(&mut config);
    let proxy = berth_proxy::spawn(config).await.expect("the proxy starts");
    tokio::time::timeout(WAIT, proxy.first_table())
        .await
        .expect("the proxy gets its first table");
    proxy
}

/// One request on a fresh connection: (status, body). Status 0 when the exchange failed.
pub async fn send(port: u16, raw: &str) -> (u16, String) {
    let exchange = async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(raw.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
        Some((status, body))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .ok()
        .flatten()
        .unwrap_or((0, String::new()))
}

pub async fn get(port: u16, host: &str, path: &str) -> (u16, String) {
    send(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

/// Polls `f` every 50 ms until it gives `Some`; panics after `WAIT`.
pub async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {WAIT:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A route's targets all HEALTHY (as reported) and the listener answering.
pub async fn wait_healthy(cp: &ControlPlane, tasks: &[usize]) {
    for &n in tasks {
        cp.wait_report(&task_arn(n), "HEALTHY").await;
    }
}

// ---- tests ------------------------------------------------------------------------------------
