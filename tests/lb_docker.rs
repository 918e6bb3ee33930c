//! The load balancer end to end, on the real Docker engine: `berth dev` (its proxy in-process)
//! or `berth server` + `berth agent` + a separate `berth proxy`. Requests go through the proxy's
//! listener to the demo containers. Load comes from `wrk` (Debian's package), as a user would
//! apply it. Each test prints what it measured.

mod common;

use common::wrk::Wrk;
use common::*;
use serde_json::Value;
use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

/// The dev and cluster of one test (see `DevEnv`), with this file's helpers.
struct Env(DevEnv);

impl std::ops::Deref for Env {
    type Target = DevEnv;
    fn deref(&self) -> &DevEnv {
        &self.0
    }
}

fn env(prefix: &str) -> Env {
    Env(DevEnv::start(prefix, &SERIAL))
}

impl Env {
    fn register(&self, family: &str, message: &str) -> String {
        register_on(&self.dev.grpc, self.dir.path(), family, message)
    }

    /// A service of `desired` behind listener `port`, fast health checks; waits for steady state.
    fn lb_service(&self, name: &str, td: &str, desired: &str, port: u16, extra: &[&str]) {
        let port = port.to_string();
        let mut args = vec![
            "service",
            "create",
            "--cluster",
            &self.cluster,
            "--name",
            name,
            "--taskdef",
            td,
            "--desired",
            desired,
            "--lb-port",
            &port,
            "--drain-timeout",
            "10",
            "--wait",
            "--timeout",
            "90s",
        ];
        args.extend_from_slice(&FAST_LB_CHECKS);
        args.extend_from_slice(extra);
        self.ok(&args);
    }
}

fn register_on(server: &str, dir: &std::path::Path, family: &str, message: &str) -> String {
    register_demo(server, dir, family, &[("MESSAGE", message)])
}

/// GET with a Host header through the proxy: (status, body).
fn get(port: u16, host: &str, path: &str) -> Option<(u16, String)> {
    common::http::get_host(port, host, path)
}

fn task_of(body: &str) -> String {
    body.split_whitespace()
        .find_map(|w| w.strip_prefix("task="))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_service_of_2_behind_its_listener_answers_100_requests_from_both_tasks() {
    let e = env("lb100");
    let td = e.register("lbweb", "hello");
    let port = free_port();
    e.lb_service("lbweb", &td, "2", port, &[]);
    let mut tasks = HashSet::new();
    for i in 0..100 {
        let (status, body) = wait_for(Duration::from_secs(5), "an answer", || {
            get(port, "localhost", "/")
        });
        assert_eq!(status, 200, "request {i}: {body}");
        tasks.insert(task_of(&body));
    }
    assert_eq!(tasks.len(), 2, "both tasks served: {tasks:?}");
    let metrics = http_get_addr(&e.dev.http, "/metrics");
    assert!(metrics.contains("lbweb"), "per-service metrics: {metrics}");
}

fn http_get_addr(addr: &str, path: &str) -> String {
    common::http::get_addr(addr, path)
        .map(|r| r.1)
        .unwrap_or_default()
}

#[test]
fn a_deployment_and_a_task_stop_under_load_fail_no_request() {
    let e = env("lbzero");
    let v1 = e.register("zero", "v1");
    let port = free_port();
    e.lb_service("zero", &v1, "2", port, &[]);
    let v2 = e.register("zero", "v2");

    let wrk = Wrk::start(port, 4, 30);
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    e.ok(&[
        "service",
        "update",
        "zero",
        "--cluster",
        &e.cluster,
        "--taskdef",
        &v2,
        "--wait",
        "--timeout",
        "60s",
    ]);
    let deployed = started.elapsed();
    let tasks = e
        .ok(&[
            "task",
            "list",
            "--cluster",
            &e.cluster,
            "--service",
            "zero",
            "-o",
            "json",
        ])
        .json();
    let victim = tasks["tasks"][0]["taskArn"].as_str().unwrap().to_string();
    e.ok(&["task", "stop", &victim, "--reason", "under load"]);
    wait_for(
        Duration::from_secs(30),
        "the stopped task's replacement",
        || {
            let t = e
                .ok(&[
                    "task",
                    "list",
                    "--cluster",
                    &e.cluster,
                    "--service",
                    "zero",
                    "-o",
                    "json",
                ])
                .json();
            let running: Vec<&Value> = t["tasks"]
                .as_array()?
                .iter()
                .filter(|t| t["lastStatus"] == "RUNNING")
                .collect();
            // The replacement may be serving while the victim still drains
            // (DEACTIVATING, then STOPPING): wait for both.
            let victim_stopped = e.ok(&["task", "describe", &victim, "-o", "json"]).json()["task"]
                ["lastStatus"]
                == "STOPPED";
            (victim_stopped
                && running.len() == 2
                && running.iter().all(|t| t["taskArn"] != victim.as_str()))
            .then_some(())
        },
    );
    let (requests, non_2xx, socket, report) = wrk.finish();
    eprintln!("measured: deployment under load took {deployed:?}; wrk: {requests} requests, {non_2xx} non-2xx, {socket} socket errors\n{report}");
    assert!(requests > 100, "wrk ran: {report}");
    assert_eq!((non_2xx, socket), (0, 0), "{report}");
    // Every answer after the deployment comes from revision 2.
    let (_, body) = get(port, "localhost", "/").unwrap();
    assert!(body.contains("message=v2"), "{body}");
}

#[test]
fn after_docker_kill_no_request_fails_past_the_next_health_check() {
    let e = env("lbkill");
    let td = e.register("killed", "k");
    let port = free_port();
    e.lb_service("killed", &td, "2", port, &[]);
    let tasks = e
        .ok(&[
            "task",
            "list",
            "--cluster",
            &e.cluster,
            "--service",
            "killed",
            "-o",
            "json",
        ])
        .json();
    let container = tasks["tasks"][0]["containers"][0]["runtimeId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(Command::new("docker")
        .args(["kill", &container])
        .status()
        .unwrap()
        .success());
    // Interval 1 s × unhealthy threshold 2: the next checks have judged it by now.
    std::thread::sleep(Duration::from_millis(2500));
    let (requests, non_2xx, socket, report) = Wrk::start(port, 4, 5).finish();
    eprintln!("measured: after docker kill + 2.5 s: {requests} requests, {non_2xx} non-2xx, {socket} socket errors");
    assert!(requests > 50, "{report}");
    assert_eq!((non_2xx, socket), (0, 0), "{report}");
}

#[test]
fn host_and_path_rules_on_one_listener_reach_only_their_service() {
    let e = env("lbrules");
    let port = free_port();
    let a = e.register("site-a", "service-a");
    let b = e.register("site-b", "service-b");
    let api = e.register("api", "service-api");
    e.lb_service(
        "site-a",
        &a,
        "1",
        port,
        &["--lb-host", "a.example", "--lb-priority", "10"],
    );
    e.lb_service(
        "site-b",
        &b,
        "1",
        port,
        &[
            "--lb-host",
            "*.b.example",
            "--lb-host",
            "b.example",
            "--lb-priority",
            "20",
        ],
    );
    e.lb_service(
        "api",
        &api,
        "1",
        port,
        &["--lb-path", "/api/*", "--lb-priority", "1"],
    );
    let reach = |host: &str, path: &str, want: &str| {
        let (status, body) = get(port, host, path).expect("an answer");
        assert!(
            body.contains(&format!("message={want}")),
            "{host}{path} gave {status} {body:?}, not {want}"
        );
    };
    for _ in 0..10 {
        reach("a.example", "/", "service-a");
        reach("A.Example", "/x", "service-a"); // hosts are case-insensitive
        reach("b.example", "/", "service-b");
        reach("www.b.example", "/", "service-b");
        reach("a.example", "/api/users", "service-api"); // the path rule's priority 1 comes first
        reach("c.example", "/api/x", "service-api");
    }
    assert_eq!(
        get(port, "c.example", "/").unwrap().0,
        404,
        "no rule matches"
    );
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn with_the_control_plane_killed_berth_proxy_keeps_answering_from_the_same_tasks() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let cluster = unique_cluster("lbcp");
    let _cleanup = ContainerCleanup {
        cluster: cluster.clone(),
    };
    // Not a test of trust: plaintext, no tokens.
    let mut flags = vec!["--no-proxy", "--insecure"];
    flags.extend_from_slice(FAST);
    let mut server = ServerProcess::start_with("server", &dir.path().join("server"), &flags);
    let url = server.grpc.clone();
    let _agent = Proc(
        Command::new(BERTH)
            .args(["--server", &url, "agent", "--name", "solo", "--data"])
            .arg(dir.path().join("agent"))
            .env("BERTH_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let metrics = free_port().to_string();
    let _proxy = Proc(
        Command::new(BERTH)
            .args([
                "--server",
                &url,
                "proxy",
                "--bind",
                "127.0.0.1",
                "--http",
                &format!("127.0.0.1:{metrics}"),
                "--data",
            ])
            .arg(dir.path().join("proxy"))
            .env("BERTH_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(berth(&url, &["cluster", "create", &cluster]).ok);
    let td = register_on(&url, dir.path(), "edge", "edge");
    let port = free_port();
    let p = port.to_string();
    let r = berth(
        &url,
        &[
            "service",
            "create",
            "--cluster",
            &cluster,
            "--name",
            "edge",
            "--taskdef",
            &td,
            "--desired",
            "2",
            "--lb-port",
            &p,
            "--lb-container",
            "web:80",
            "--health-path",
            "/health",
            "--health-interval",
            "1",
            "--healthy-threshold",
            "1",
            "--wait",
            "--timeout",
            "90s",
        ],
    );
    assert!(r.ok, "{}", r.stderr);
    let before: HashSet<String> = (0..20)
        .filter_map(|_| {
            wait_for(Duration::from_secs(10), "the proxy", || {
                get(port, "localhost", "/")
            })
            .1
            .into()
        })
        .map(|b: String| task_of(&b))
        .collect();
    assert_eq!(before.len(), 2, "{before:?}");
    server.kill9();
    std::thread::sleep(Duration::from_secs(2));
    let mut after = HashSet::new();
    for i in 0..50 {
        let (status, body) =
            get(port, "localhost", "/").unwrap_or_else(|| panic!("request {i} failed"));
        assert_eq!(status, 200, "{body}");
        after.insert(task_of(&body));
    }
    assert_eq!(after, before, "the same tasks answer");
    eprintln!(
        "measured: 50/50 requests answered 200 by the same 2 tasks with the control plane down"
    );
}

#[test]
fn a_dev_restarted_under_load_hands_its_listeners_to_the_new_process_and_fails_no_request() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let defs = tempfile::tempdir().unwrap();
    let cluster = unique_cluster("devhandoff");
    let _cleanup = ContainerCleanup {
        cluster: cluster.clone(),
    };
    let (grpc, http) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let mut flags = vec!["--listen", &grpc, "--http", &http];
    flags.extend_from_slice(FAST);
    let mut old = ServerProcess::start_on("dev", dir.path(), &flags);
    let server = &old.grpc.clone();
    assert!(berth(server, &["cluster", "create", &cluster]).ok);
    let td = register_on(server, defs.path(), "handoff", "v1");
    let port = free_port();
    let p = port.to_string();
    let mut args = vec![
        "service",
        "create",
        "--cluster",
        &cluster,
        "--name",
        "handoff",
        "--taskdef",
        &td,
        "--desired",
        "2",
        "--lb-port",
        &p,
        "--drain-timeout",
        "10",
        "--wait",
        "--timeout",
        "90s",
    ];
    args.extend_from_slice(&FAST_LB_CHECKS);
    let r = berth(server, &args);
    assert!(r.ok, "{}", r.stderr);

    let wrk = Wrk::start(port, 4, 25);
    std::thread::sleep(Duration::from_secs(3));
    let started = Instant::now();
    let new = ServerProcess::start_on("dev", dir.path(), &flags);
    let ready = started.elapsed();
    let (status, _) = old
        .wait_exit(Duration::from_secs(30))
        .expect("the old process exits once the new one has taken over");
    assert!(status.success(), "{status:?}: {}", old.log());
    assert!(
        old.log()
            .contains("a new process took over the load balancer"),
        "{}",
        old.log()
    );
    assert!(
        new.log()
            .contains("took over the load balancer's listeners"),
        "{}",
        new.log()
    );
    // The new process runs the service on: the same tasks answer through its listener.
    let tasks = berth(
        &new.grpc,
        &[
            "service",
            "describe",
            "handoff",
            "--cluster",
            &cluster,
            "-o",
            "json",
        ],
    );
    assert!(tasks.ok, "{}", tasks.stderr);
    let (requests, non_2xx, socket, report) = wrk.finish();
    eprintln!(
        "measured: the new dev took over and was ready {ready:.1?} after it started (the old one had exited by then); wrk {requests} requests, {non_2xx} non-2xx, {socket} socket errors"
    );
    assert!(requests > 1000, "{report}");
    assert_eq!((non_2xx, socket), (0, 0), "no request failed: {report}");
    let (code, body) = wait_for(Duration::from_secs(10), "an answer", || {
        get(port, "localhost", "/")
    });
    assert_eq!(code, 200, "{body}");
}
