//! Shared helpers for the integration tests: a `berth dev` process that is always killed, and
//! running the `berth` CLI against it.

#![allow(dead_code)]

pub mod aws;
pub mod cluster;
pub mod ecs_tasks;
pub mod edge;
pub mod etcd;
pub mod hardening;
pub mod http;
pub mod lab;
pub mod redis;
pub mod setup;
pub mod shell;
pub mod store;
pub mod task_env;
pub mod wrk;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// A `berth dev` (or `berth server`) child process on ephemeral ports. Killed on drop, so a
/// failing test never leaves it behind.
pub struct ServerProcess {
    child: Child,
    pub grpc: String,
    pub http: String,
    /// Every line it wrote to stderr so far.
    pub output: Arc<Mutex<Vec<String>>>,
}

/// The admin token and CA of each TLS server a test started, by URL: `berth()` against that URL
/// uses them, so tests not about trust read the same against `berth server` as against `dev`.
static CREDENTIALS: Mutex<Vec<(String, String, PathBuf)>> = Mutex::new(Vec::new());

/// `berth()` against `url` will present this admin token and verify the server with `ca`.
pub fn remember_credentials(url: &str, token: &str, ca: PathBuf) {
    CREDENTIALS.lock().unwrap_or_else(|p| p.into_inner()).push((
        url.to_string(),
        token.trim().to_string(),
        ca,
    ));
}

/// HTTP ports (`ADDR`) that speak TLS, and the CA their certificate is from.
static HTTPS: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());

pub fn remember_https(addr: &str, ca: PathBuf) {
    HTTPS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((addr.to_string(), ca));
}

/// `https://ADDR` and its CA for a TLS HTTP port, else `http://ADDR`.
pub fn http_url(addr: &str) -> (String, Option<PathBuf>) {
    let all = HTTPS.lock().unwrap_or_else(|p| p.into_inner());
    match all.iter().rev().find(|(a, _)| a == addr) {
        Some((_, ca)) => (format!("https://{addr}"), Some(ca.clone())),
        None => (format!("http://{addr}"), None),
    }
}

fn credentials_for(url: &str) -> Option<(String, PathBuf)> {
    let all = CREDENTIALS.lock().unwrap_or_else(|p| p.into_inner());
    // Several servers (a comma-separated list) share one CA and token: any one in common will do.
    let overlaps = |u: &str| u.split(',').any(|a| url.split(',').any(|b| a == b));
    all.iter()
        .rev()
        .find(|(u, _, _)| overlaps(u))
        .map(|(_, t, c)| (t.clone(), c.clone()))
}

/// Reads a process's stderr lines into `sink` (echoed with `prefix`), sending each on the channel.
pub fn capture(
    stderr: impl std::io::Read + Send + 'static,
    prefix: &'static str,
    sink: Arc<Mutex<Vec<String>>>,
) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[{prefix}] {line}");
            sink.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(line.clone());
            let _ = tx.send(line);
        }
    });
    rx
}

impl ServerProcess {
    pub fn start(mode: &str, data: &Path) -> Self {
        Self::start_with(mode, data, &[])
    }

    /// On ephemeral ports.
    pub fn start_with(mode: &str, data: &Path, extra: &[&str]) -> Self {
        let mut args = vec!["--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        Self::start_on(mode, data, &args)
    }

    /// With the caller's flags (which must include --listen).
    pub fn start_on(mode: &str, data: &Path, extra: &[&str]) -> Self {
        Self::start_logging(mode, data, extra, "warn")
    }

    /// As `start_on`, with `BERTH_LOG` set to `log`.
    pub fn start_logging(mode: &str, data: &Path, extra: &[&str], log: &str) -> Self {
        let mut child = Command::new(BERTH)
            .arg(mode)
            .arg("--data")
            .arg(data)
            .args(if extra.contains(&"--http") {
                &[][..]
            } else {
                &["--http", "127.0.0.1:0"][..]
            })
            .args(extra)
            .env("BERTH_LOG", log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn berth");
        let stderr = child.stderr.take().expect("stderr");
        let output = Arc::new(Mutex::new(Vec::new()));
        let rx = capture(stderr, "server", output.clone());
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let mut addrs = None;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("berth {mode} was not ready within 120 s");
                }
            };
            // "berth dev: control plane on 127.0.0.1:PORT (gRPC), http://127.0.0.1:PORT (...)"
            // ("(gRPC+TLS)" for `berth server`)
            if let Some(rest) = line.split("control plane on ").nth(1) {
                let grpc = rest.split_whitespace().next().unwrap().to_string();
                let scheme = if rest.contains("(gRPC+TLS)") {
                    "https"
                } else {
                    "http"
                };
                // "http://ADDR", or "https://ADDR" for a server's TLS HTTP port.
                let http = rest
                    .split("://")
                    .nth(1)
                    .and_then(|s| s.split_whitespace().next())
                    .unwrap()
                    .to_string();
                if rest.contains("https://") {
                    remember_https(&http, data.join("ca.crt"));
                }
                addrs = Some((format!("{scheme}://{grpc}"), http));
            }
            // "berth dev: ready": the local agent (if any) is up and the demo image exists.
            if line.ends_with(": ready") {
                if let Some((grpc, http)) = addrs.take() {
                    if grpc.starts_with("https://") {
                        let token = std::fs::read_to_string(data.join("admin.token"))
                            .expect("DATA/admin.token")
                            .trim()
                            .to_string();
                        CREDENTIALS.lock().unwrap_or_else(|p| p.into_inner()).push((
                            grpc.clone(),
                            token,
                            data.join("ca.crt"),
                        ));
                    }
                    return Self {
                        child,
                        grpc,
                        http,
                        output,
                    };
                }
            }
        }
    }

    /// Everything it logged so far, one string.
    pub fn log(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n")
    }

    /// SIGTERM to this one process (never its group), as systemd's stop sends it.
    pub fn sigterm(&self) {
        sigterm(self.child.id());
    }

    /// Waits at most `limit` for the process to exit: its status and how long it took.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<(std::process::ExitStatus, Duration)> {
        wait_exit(&mut self.child, limit)
    }

    /// The process id, for reading its /proc entries.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `kill -TERM PID`: one process, never a group.
pub fn sigterm(pid: u32) {
    assert!(pid > 1, "refusing to signal pid {pid}");
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {pid}: {status}");
}

/// Polls `child` every 20 ms until it exits or `limit` passes: its status and how long it took.
pub fn wait_exit(
    child: &mut Child,
    limit: Duration,
) -> Option<(std::process::ExitStatus, Duration)> {
    let started = std::time::Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some((status, started.elapsed()));
        }
        if started.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The result of one CLI run.
pub struct Run {
    pub ok: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

/// Runs `berth --server SERVER ARGS…` and captures its output. Against a TLS server this test
/// started, with its admin token and CA.
pub fn berth(server: &str, args: &[&str]) -> Run {
    match credentials_for(server) {
        Some((token, ca)) => berth_with(
            server,
            &[
                ("BERTH_TOKEN", token.as_str()),
                ("BERTH_CA", ca.to_str().unwrap()),
            ],
            args,
        ),
        None => berth_with(server, &[], args),
    }
}

/// Runs `berth --server SERVER ARGS…` with exactly these `BERTH_TOKEN` / `BERTH_CA` (others unset).
pub fn berth_with(server: &str, env: &[(&str, &str)], args: &[&str]) -> Run {
    let out: Output = Command::new(BERTH)
        .arg("--server")
        .arg(server)
        .args(args)
        .env_remove("BERTH_TOKEN")
        .env_remove("BERTH_CA")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run berth");
    Run {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Polls `f` every 200 ms until it returns `Some`, or panics with `what` after `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if std::time::Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A cluster name no other test uses, so cleanup by label touches only this test's containers.
pub fn unique_cluster(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes every container labelled with the cluster when dropped, even if the test panicked.
pub struct ContainerCleanup {
    pub cluster: String,
}

impl ContainerCleanup {
    fn remove_all(&self) -> usize {
        let ids = Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("label=berth.cluster={}", self.cluster),
            ])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .arg("rm")
                .arg("-f")
                .args(&ids)
                .output();
        }
        ids.len()
    }
}

impl Drop for ContainerCleanup {
    fn drop(&mut self) {
        self.remove_all();
        // An agent killed in the middle of a create leaves Docker to finish it a moment later.
        std::thread::sleep(Duration::from_millis(500));
        self.remove_all();
    }
}

/// `docker ps -aq --filter label=KEY=VALUE`.
pub fn containers_with_label(label: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label={label}"),
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// `deploy/examples/web.json`, the demo task definition, as a path for `-f`.
pub fn web_json() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/examples/web.json")
        .display()
        .to_string()
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain GET on 127.0.0.1:PORT: (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http::get_host(port, "localhost", path)
}

/// `service create` flags for a demo service behind a listener with checks every second, so
/// tests see health changes quickly.
pub const FAST_LB_CHECKS: [&str; 12] = [
    "--lb-container",
    "web:80",
    "--health-path",
    "/health",
    "--health-interval",
    "1",
    "--health-timeout",
    "1",
    "--healthy-threshold",
    "2",
    "--unhealthy-threshold",
    "2",
];

/// `berth dev` flags for tests that watch tasks come and go: fast heartbeats, resyncs and stops.
pub const FAST: &[&str] = &[
    "--heartbeat",
    "500ms",
    "--heartbeat-timeout",
    "3s",
    "--stop-timeout",
    "5s",
    "--resync",
    "500ms",
    "--min-healthy-time",
    "1s",
];

/// A `berth dev` (fast timings) with a cluster of its own, for one Docker test: the dev is
/// killed and the cluster's containers removed when it is dropped, and it holds `serial` (the
/// test binary's Docker tests run one at a time) until then.
pub struct DevEnv {
    pub dev: ServerProcess,
    pub cluster: String,
    pub dir: tempfile::TempDir,
    _cleanup: ContainerCleanup,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl DevEnv {
    pub fn start(prefix: &str, serial: &'static Mutex<()>) -> Self {
        let serial = serial.lock().unwrap_or_else(|p| p.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let cluster = unique_cluster(prefix);
        let cleanup = ContainerCleanup {
            cluster: cluster.clone(),
        };
        let dev = ServerProcess::start_with("dev", dir.path(), FAST);
        assert!(berth(&dev.grpc, &["cluster", "create", &cluster]).ok);
        DevEnv {
            dev,
            cluster,
            dir,
            _cleanup: cleanup,
            _serial: serial,
        }
    }

    /// `berth ARGS` against the dev, which must succeed.
    pub fn ok(&self, args: &[&str]) -> Run {
        let r = berth(&self.dev.grpc, args);
        assert!(r.ok, "berth {args:?}: {}", r.stderr);
        r
    }
}

/// Registers the demo web server as `family` with `env` (MESSAGE, ERROR_PERCENT, …) on
/// `server`, from a file written in `dir`; returns FAMILY:REVISION.
pub fn register_demo(server: &str, dir: &Path, family: &str, env: &[(&str, &str)]) -> String {
    let environment: Vec<serde_json::Value> = env
        .iter()
        .map(|(k, v)| serde_json::json!({"name": k, "value": v}))
        .collect();
    let def = serde_json::json!({"family": family, "containerDefinitions": [{
        "name": "web", "image": "berth-demo:latest", "memory": 32,
        "portMappings": [{"containerPort": 80}], "stopTimeout": 5, "environment": environment}]});
    let tag: Vec<&str> = env.iter().map(|(_, v)| *v).collect();
    let path = dir.join(format!("{family}-{}.json", tag.join("-")));
    std::fs::write(&path, def.to_string()).unwrap();
    register_file(server, &path)
}

/// Registers the task definition in the JSON file at `path` on `server`; returns
/// FAMILY:REVISION.
pub fn register_file(server: &str, path: &Path) -> String {
    let r = berth(
        server,
        &[
            "taskdef",
            "register",
            "-f",
            path.to_str().unwrap(),
            "-o",
            "json",
        ],
    );
    assert!(r.ok, "{}", r.stderr);
    let td = &r.json()["taskDefinition"];
    format!("{}:{}", td["family"].as_str().unwrap(), td["revision"])
}
