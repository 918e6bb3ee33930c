//! Auto scaling end to end on the real Docker engine: a service behind the proxy with a
//! requests-per-task target scales out under a paced load and back in once the load stops and
//! the scale-in cooldown has passed; each action is a service event naming the metric.

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FAST: &[&str] = &[
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
    "--scaling-interval",
    "2s",
];

/// One keep-alive GET: the status, or None when the connection is unusable.
fn get(conn: &mut BufReader<TcpStream>) -> Option<u16> {
    conn.get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: load\r\n\r\n")
        .ok()?;
    let mut line = String::new();
    conn.read_line(&mut line).ok()?;
    let status = line.split_whitespace().nth(1)?.parse().ok()?;
    let mut length = 0usize;
    loop {
        line.clear();
        if conn.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body).ok()?;
    Some(status)
}

/// A paced load: `threads` keep-alive connections together sending `rate` requests a second,
/// until `stop` is set or `limit` passes. Returns (answered, 2xx) counters.
struct Load {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    ok: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
    started: Instant,
}

impl Load {
    fn start(port: u16, rate: u32, threads: u32, limit: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let ok = Arc::new(AtomicU64::new(0));
        let period = Duration::from_secs_f64(f64::from(threads) / f64::from(rate));
        let started = Instant::now();
        let handles = (0..threads)
            .map(|i| {
                let (stop, answered, ok) = (stop.clone(), answered.clone(), ok.clone());
                std::thread::spawn(move || {
                    let mut next = started + period.mul_f64(f64::from(i) / f64::from(threads));
                    let mut conn: Option<BufReader<TcpStream>> = None;
                    while !stop.load(Ordering::Relaxed) && started.elapsed() < limit {
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        }
                        next += period;
                        if conn.is_none() {
                            conn = TcpStream::connect(("127.0.0.1", port)).ok().map(|s| {
                                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                                let _ = s.set_nodelay(true);
                                BufReader::new(s)
                            });
                        }
                        match conn.as_mut().and_then(get) {
                            Some(status) => {
                                answered.fetch_add(1, Ordering::Relaxed);
                                if (200..300).contains(&status) {
                                    ok.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            None => conn = None,
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            answered,
            ok,
            threads: handles,
            started,
        }
    }

    /// Stops the load; (answered, 2xx, achieved requests a second).
    fn finish(mut self) -> (u64, u64, f64) {
        self.stop.store(true, Ordering::Relaxed);
        let elapsed = self.started.elapsed().as_secs_f64();
        for t in std::mem::take(&mut self.threads) {
            let _ = t.join();
        }
        let answered = self.answered.load(Ordering::Relaxed);
        (
            answered,
            self.ok.load(Ordering::Relaxed),
            answered as f64 / elapsed,
        )
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn describe(server: &str, cluster: &str) -> Value {
    let r = berth(
        server,
        &[
            "service",
            "describe",
            "web",
            "--cluster",
            cluster,
            "-o",
            "json",
        ],
    );
    assert!(r.ok, "{}", r.stderr);
    r.json()["service"].clone()
}

fn events(svc: &Value) -> Vec<String> {
    svc["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["message"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A `berth dev` with one load-balanced service `web` of 1 task, stable.
struct Setup {
    dev: ServerProcess,
    cluster: String,
    port: u16,
    _cleanup: ContainerCleanup,
    _dir: tempfile::TempDir,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Setup {
    fn start(prefix: &str) -> Self {
        let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let cluster = unique_cluster(prefix);
        let cleanup = ContainerCleanup {
            cluster: cluster.clone(),
        };
        let dev = ServerProcess::start_with("dev", dir.path(), FAST);
        let def = dir.path().join("web.json");
        std::fs::write(
            &def,
            r#"{"family": "scale-web", "containerDefinitions": [{"name": "web", "image": "berth-demo:latest",
                "memory": 32, "portMappings": [{"containerPort": 80}], "stopTimeout": 5}]}"#,
        )
        .unwrap();
        let port = free_port();
        let setup = Setup {
            dev,
            cluster,
            port,
            _cleanup: cleanup,
            _dir: dir,
            _serial: serial,
        };
        setup.ok(&["cluster", "create", &setup.cluster]);
        setup.ok(&["taskdef", "register", "-f", def.to_str().unwrap()]);
        let port_s = port.to_string();
        setup.ok(&[
            "service",
            "create",
            "--cluster",
            &setup.cluster,
            "--name",
            "web",
            "--taskdef",
            "scale-web",
            "--desired",
            "1",
            "--lb-port",
            &port_s,
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
            "--drain-timeout",
            "5",
            "--wait",
            "--timeout",
            "90s",
        ]);
        setup
    }

    fn ok(&self, args: &[&str]) -> Run {
        let r = berth(&self.dev.grpc, args);
        assert!(r.ok, "berth {args:?}: {}", r.stderr);
        r
    }
}

#[test]
fn requests_per_task_scale_out_under_load_and_back_in_after_the_cooldown() {
    let setup = Setup::start("scale");
    let (s, cluster, port) = (setup.dev.grpc.as_str(), setup.cluster.clone(), setup.port);
    let ok = |args: &[&str]| setup.ok(args);

    // Bad ranges are refused, naming the field.
    let r = berth(
        s,
        &[
            "service",
            "scaling",
            "web",
            "--cluster",
            &cluster,
            "--min",
            "5",
            "--max",
            "2",
            "--target-requests-per-task",
            "50",
        ],
    );
    assert!(!r.ok && r.stderr.contains("maxCapacity"), "{}", r.stderr);

    let r = ok(&[
        "service",
        "scaling",
        "web",
        "--cluster",
        &cluster,
        "--min",
        "1",
        "--max",
        "4",
        "--target-requests-per-task",
        "50",
        "--scale-out-cooldown",
        "5s",
        "--scale-in-cooldown",
        "15s",
    ]);
    assert!(
        r.stdout.contains("Auto scaling     1-4 tasks"),
        "{}",
        r.stdout
    );

    // 300 requests a second: ceil(300 / 50) = 6, capped at 4.
    let load = Load::start(port, 300, 6, Duration::from_secs(90));
    let t0 = Instant::now();
    let svc = wait_for(
        Duration::from_secs(60),
        "3 running tasks under load",
        || {
            let svc = describe(s, &cluster);
            (svc["runningCount"].as_i64().unwrap_or(0) >= 3).then_some(svc)
        },
    );
    let scaled_out_after = t0.elapsed();
    let out_event = events(&svc)
        .into_iter()
        .find(|e| e.contains("scaled out"))
        .expect("a scale-out event");
    assert!(
        out_event.contains("RequestCountPerTask") && out_event.contains("desired count set to"),
        "{out_event}"
    );
    // The load keeps asking for 6; the count goes to the max (4), never above it.
    wait_for(Duration::from_secs(30), "desired count 4 (the max)", || {
        (describe(s, &cluster)["desiredCount"] == 4).then_some(())
    });
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(describe(s, &cluster)["desiredCount"], 4);
    let (answered, ok_2xx, rate) = load.finish();
    eprintln!(
        "load: {answered} requests ({ok_2xx} 2xx) at {rate:.0} req/s; 3 tasks running after {:.1} s; event: {out_event}",
        scaled_out_after.as_secs_f64()
    );
    assert!(rate > 240.0, "the load reached only {rate:.0} req/s");

    // Load gone: back to min once the scale-in cooldown (15 s after the scale-out) has passed.
    let stopped = Instant::now();
    let svc = wait_for(Duration::from_secs(90), "back to 1 task", || {
        let svc = describe(s, &cluster);
        (svc["desiredCount"] == 1 && svc["runningCount"] == 1).then_some(svc)
    });
    let scale_in = events(&svc)
        .into_iter()
        .find(|e| e.contains("scaled in"))
        .expect("a scale-in event");
    assert!(scale_in.contains("desired count set to 1"), "{scale_in}");
    let policy = &svc["scalingPolicy"];
    let out_at = policy["lastScaleOutAt"].as_str().unwrap();
    let in_at = policy["lastScaleInAt"].as_str().unwrap();
    let secs = |t: &str| berth_proto::time::parse_rfc3339(t).expect("a timestamp") as f64 / 1000.0;
    assert!(
        secs(in_at) - secs(out_at) >= 15.0,
        "scaled in {:.1} s after scaling out, inside the 15 s cooldown",
        secs(in_at) - secs(out_at)
    );
    eprintln!(
        "back to 1 task {:.1} s after the load stopped; event: {scale_in}",
        stopped.elapsed().as_secs_f64()
    );

    // describe shows the policy; --off removes it and leaves the count.
    let r = ok(&["service", "describe", "web", "--cluster", &cluster]);
    assert!(
        r.stdout
            .contains("Auto scaling     1-4 tasks, target 50 requests/s per task"),
        "{}",
        r.stdout
    );
    ok(&["service", "scaling", "web", "--cluster", &cluster, "--off"]);
    let svc = describe(s, &cluster);
    assert!(svc.get("scalingPolicy").is_none(), "{svc}");
    assert_eq!(svc["desiredCount"], 1);
}

#[test]
fn the_tasks_cpu_comes_from_docker_stats() {
    let setup = Setup::start("scalecpu");
    let (s, cluster) = (setup.dev.grpc.as_str(), setup.cluster.clone());
    // A target no load here reaches: the metric is measured, the count stays.
    setup.ok(&[
        "service",
        "scaling",
        "web",
        "--cluster",
        &cluster,
        "--min",
        "1",
        "--max",
        "2",
        "--target-cpu",
        "95",
    ]);
    let load = Load::start(setup.port, 300, 6, Duration::from_secs(30));
    let cpu = wait_for(Duration::from_secs(25), "a CPU measurement above 0", || {
        let v = describe(s, &cluster)["scalingPolicy"]["lastMetricValue"].as_f64();
        v.filter(|v| *v > 0.0)
    });
    let (_, _, rate) = load.finish();
    eprintln!(
        "CPU of the service's task under {rate:.0} req/s: {cpu}% (Docker stats via the agent)"
    );
    assert_eq!(describe(s, &cluster)["desiredCount"], 1);
}
