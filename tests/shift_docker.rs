//! Traffic-shifting deployments end to end, on the real Docker engine: `berth dev` (its proxy
//! in-process) shifts a service's listener traffic from the old revision to the new one by
//! weight, under `wrk` load. What the proxies counted of each revision is read back from
//! `service describe`, as a user would read it. Each test prints what it measured.

mod common;

use common::wrk::Wrk;
use common::*;
use serde_json::Value;
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
    /// A demo revision saying `message`, answering 500 to `error_percent` of its pages.
    fn register(&self, message: &str, error_percent: u32) -> String {
        let errors = error_percent.to_string();
        register_demo(
            &self.dev.grpc,
            self.dir.path(),
            "shift",
            &[("MESSAGE", message), ("ERROR_PERCENT", &errors)],
        )
    }

    /// A service of 2 behind `port` with fast checks and `shift` flags; waits for steady state.
    fn service(&self, td: &str, port: u16, shift: &[&str]) {
        let port = port.to_string();
        let mut args = vec![
            "service",
            "create",
            "--cluster",
            &self.cluster,
            "--name",
            "shift",
            "--taskdef",
            td,
            "--desired",
            "2",
            "--lb-port",
            &port,
            "--drain-timeout",
            "5",
            "--wait",
            "--timeout",
            "90s",
        ];
        args.extend_from_slice(&FAST_LB_CHECKS);
        args.extend_from_slice(shift);
        self.ok(&args);
    }

    fn describe(&self) -> Value {
        self.ok(&[
            "service",
            "describe",
            "shift",
            "--cluster",
            &self.cluster,
            "-o",
            "json",
        ])
        .json()["service"]
            .clone()
    }

    fn update(&self, td: &str) {
        self.ok(&[
            "service",
            "update",
            "shift",
            "--cluster",
            &self.cluster,
            "--taskdef",
            td,
        ]);
    }

    /// Waits (60 s at most) until the deployment in progress has completed alone; the service.
    fn wait_completed(&self) -> Value {
        wait_for(
            Duration::from_secs(60),
            "the deployment to complete",
            || {
                let svc = self.describe();
                let d = svc["deployments"].as_array()?.clone();
                (d.len() == 1 && d[0]["rolloutState"] == "COMPLETED").then_some(svc)
            },
        )
    }

    /// Waits (30 s at most) until exactly the service's 2 tasks run, all of revision `td`.
    fn wait_only(&self, td: &str) {
        wait_for(
            Duration::from_secs(30),
            "only the tasks of one revision",
            || {
                let r = self.running();
                (r.len() == 2 && r.iter().all(|t| *t == td)).then_some(())
            },
        );
    }

    /// Running tasks' task definitions (family:revision).
    fn running(&self) -> Vec<String> {
        let t = self
            .ok(&[
                "task",
                "list",
                "--cluster",
                &self.cluster,
                "--service",
                "shift",
                "-o",
                "json",
            ])
            .json();
        t["tasks"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|t| t["lastStatus"] == "RUNNING" && t["desiredStatus"] == "RUNNING")
            .map(|t| {
                let td = t["taskDefinitionArn"].as_str().unwrap_or_default();
                td.rsplit('/').next().unwrap_or_default().to_string()
            })
            .collect()
    }
}

/// A proto3 JSON uint64 (a string) or number.
fn count(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

/// The primary deployment's stage and (new, previous) requests counted by the proxies.
fn shift_state(svc: &Value) -> (String, u64, u64) {
    let d = &svc["deployments"][0];
    (
        d["lifecycleStage"].as_str().unwrap_or_default().to_string(),
        count(&d["figures"]["requests"]),
        count(&d["previousFigures"]["requests"]),
    )
}

#[test]
fn a_canary_of_10_percent_then_all_under_load_fails_no_request() {
    let e = env("canary");
    let v1 = e.register("v1", 0);
    let port = free_port();
    e.service(
        &v1,
        port,
        &[
            "--canary",
            "10%:20s",
            "--bake",
            "5s",
            "--test-header",
            "x-canary: 1",
        ],
    );
    let v2 = e.register("v2", 0);
    let wrk = Wrk::start(port, 4, 75);
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    e.update(&v2);

    // The canary stage: two readings of the proxies' counts a few seconds apart.
    let first = wait_for(Duration::from_secs(60), "the canary stage", || {
        let s = shift_state(&e.describe());
        (s.0 == "PRODUCTION_TRAFFIC_SHIFT" && s.1 > 0).then_some(s)
    });
    let canary_at = started.elapsed();
    for _ in 0..5 {
        let test = http::exchange(
            &format!("127.0.0.1:{port}"),
            "GET",
            "/",
            &[("Host", "localhost"), ("x-canary", "1")],
            b"",
            Duration::from_secs(5),
        )
        .expect("a test request");
        assert!(
            test.body.contains("message=v2"),
            "the test header reaches the new revision: {}",
            test.body
        );
    }
    std::thread::sleep(Duration::from_secs(8));
    let second = shift_state(&e.describe());
    assert_eq!(second.0, "PRODUCTION_TRAFFIC_SHIFT", "still in the canary");
    let (new, old) = (second.1 - first.1, second.2 - first.2);
    let share = new as f64 * 100.0 / (new + old).max(1) as f64;
    eprintln!("measured: canary at {canary_at:.1?}; over 8 s the proxy sent {new} requests to the canary and {old} to the old revision ({share:.1}%)");
    assert!(new + old > 200, "enough load to judge: {new} + {old}");
    assert!(
        (7.0..=13.0).contains(&share),
        "about 10% reach the canary: {share:.1}%"
    );

    let done = e.wait_completed();
    let completed = started.elapsed();
    let running = e.running();
    assert_eq!(running.len(), 2, "{running:?}");
    assert!(running.iter().all(|td| *td == v2), "{running:?} vs {v2}");
    let events: Vec<String> = done["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        events
            .iter()
            .any(|m| m.contains("10% of production traffic shifted")),
        "{events:?}"
    );
    let (requests, non_2xx, socket, report) = wrk.finish();
    eprintln!(
        "measured: canary deployment completed in {completed:.1?}; wrk: {requests} requests, {non_2xx} non-2xx, {socket} socket errors"
    );
    assert!(requests > 1000, "{report}");
    assert_eq!((non_2xx, socket), (0, 0), "no request failed: {report}");
}

#[test]
fn a_canary_answering_500_to_a_fifth_is_rolled_back_by_what_the_proxies_measure() {
    let e = env("canaryback");
    let v1 = e.register("v1", 0);
    let port = free_port();
    e.service(
        &v1,
        port,
        &[
            "--canary",
            "10%:2m",
            "--bake",
            "5s",
            "--rollback-on-5xx",
            "5%",
        ],
    );
    let bad = e.register("bad", 20);
    let wrk = Wrk::start(port, 4, 40);
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    e.update(&bad);
    let svc = wait_for(Duration::from_secs(60), "the rollback", || {
        let svc = e.describe();
        let back = svc["deployments"][0]["taskDefinition"]
            .as_str()?
            .ends_with(&format!("/{v1}"));
        let told = svc["events"].as_array()?.iter().any(|e| {
            e["message"]
                .as_str()
                .unwrap_or_default()
                .contains("rolled back")
        });
        (back && told).then_some(svc)
    });
    let rolled_back = started.elapsed();
    // The failed deployment stays listed until its tasks have stopped.
    if let Some(failed) = svc["deployments"].as_array().unwrap().get(1) {
        assert_eq!(failed["rolloutState"], "FAILED");
        let reason = failed["rolloutStateReason"].as_str().unwrap_or_default();
        assert!(reason.contains("5xx"), "{reason}");
    }
    let event = svc["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .find(|m| m.contains("rolled back"))
        .unwrap_or_default()
        .to_string();
    eprintln!("measured: rolled back {rolled_back:.1?} after the update: {event}");
    assert!(
        event.contains("answered 5xx to") && event.contains("threshold 5%"),
        "the event says why, with the measured rate: {event}"
    );
    e.wait_only(&v1);
    let (requests, non_2xx, socket, report) = wrk.finish();
    let share = non_2xx as f64 * 100.0 / requests.max(1) as f64;
    eprintln!("measured: wrk: {requests} requests, {non_2xx} answered 5xx ({share:.2}%), {socket} socket errors");
    assert!(non_2xx > 0, "the canary took some traffic: {report}");
    assert!(
        share <= 10.0,
        "no more than the canary's share of requests failed: {share:.2}%"
    );
    assert_eq!(socket, 0, "{report}");
}

#[test]
fn a_blue_green_deployment_behind_an_elbv2_target_group_moves_all_traffic_at_once_and_fails_nothing(
) {
    let e = env("bluegreen");
    let port = free_port();
    let p = port.to_string();
    e.ok(&["lb", "create", "bg"]);
    e.ok(&[
        "lb",
        "target-group",
        "create",
        "bg-web",
        "--health-path",
        "/health",
        "--health-interval",
        "1",
        "--health-timeout",
        "1",
        "--healthy-threshold",
        "2",
        "--deregistration-delay",
        "5",
    ]);
    e.ok(&[
        "lb",
        "listener",
        "create",
        "--lb",
        "bg",
        "--port",
        &p,
        "--forward",
        "bg-web",
    ]);
    let v1 = e.register("v1", 0);
    e.ok(&[
        "service",
        "create",
        "--cluster",
        &e.cluster,
        "--name",
        "shift",
        "--taskdef",
        &v1,
        "--desired",
        "2",
        "--target-group",
        "bg-web",
        "--lb-container",
        "web:80",
        "--deployment-strategy",
        "blue-green",
        "--bake",
        "8s",
        "--wait",
        "--timeout",
        "90s",
    ]);
    let v2 = e.register("v2", 0);
    let wrk = Wrk::start(port, 4, 45);
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    e.update(&v2);
    wait_for(Duration::from_secs(60), "the bake time", || {
        (shift_state(&e.describe()).0 == "BAKE_TIME").then_some(())
    });
    let switched = started.elapsed();
    // Baking: both revisions run, all production traffic is on the new one.
    assert_eq!(
        e.running().len(),
        4,
        "the old tasks stay up through the bake"
    );
    for _ in 0..20 {
        let (status, body) = http::get_host(port, "localhost", "/").expect("an answer");
        assert_eq!(status, 200);
        assert!(body.contains("message=v2"), "all traffic on v2: {body}");
    }
    e.wait_completed();
    let (requests, non_2xx, socket, report) = wrk.finish();
    eprintln!(
        "measured: blue/green through target group bg-web: traffic switched {switched:.1?} after the update; wrk {requests} requests, {non_2xx} non-2xx, {socket} socket errors"
    );
    assert!(e.running().iter().all(|td| *td == v2));
    assert_eq!((non_2xx, socket), (0, 0), "no request failed: {report}");
}

/// A webhook on 127.0.0.1: answers each POST by the stage it names (`answers`: stage → JSON),
/// IN_PROGRESS for a stage not listed; keeps every body it got.
struct Hook {
    url: String,
    got: std::sync::Arc<Mutex<Vec<Value>>>,
}

impl Hook {
    fn start(answers: &'static [(&'static str, &'static str)]) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let got = std::sync::Arc::new(Mutex::new(Vec::new()));
        let seen = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                use std::io::{BufRead, Read, Write};
                let mut r = std::io::BufReader::new(stream);
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                let _ = r.read_exact(&mut body);
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let stage = v["lifecycleStage"].as_str().unwrap_or_default().to_string();
                seen.lock().unwrap().push(v);
                let answer = answers
                    .iter()
                    .find(|(s, _)| *s == stage)
                    .map_or(r#"{"hookStatus": "IN_PROGRESS"}"#, |(_, a)| a);
                let mut s = r.into_inner();
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        Hook { url, got }
    }

    fn stages(&self) -> Vec<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|v| v["lifecycleStage"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

#[test]
fn lifecycle_hooks_are_called_at_their_stages_and_one_answering_failed_rolls_back() {
    let e = env("hooks");
    let hook = Hook::start(&[
        ("POST_SCALE_UP", r#"{"hookStatus": "SUCCEEDED"}"#),
        (
            "PRODUCTION_TRAFFIC_SHIFT",
            r#"{"hookStatus": "FAILED", "reason": "smoke test: checkout broken"}"#,
        ),
    ]);
    let v1 = e.register("v1", 0);
    let port = free_port();
    let spec = format!("{}=POST_SCALE_UP,PRODUCTION_TRAFFIC_SHIFT", hook.url);
    e.service(&v1, port, &["--canary", "50%:2m", "--hook", &spec]);
    let v2 = e.register("v2", 0);
    let started = Instant::now();
    e.update(&v2);
    let svc = wait_for(Duration::from_secs(90), "the rollback", || {
        let svc = e.describe();
        let told = svc["events"]
            .as_array()?
            .iter()
            .filter_map(|e| e["message"].as_str())
            .find(|m| m.contains("rolled back"))?
            .to_string();
        Some((svc, told))
    });
    eprintln!(
        "measured: rolled back {:.1?} after the update; the hook was asked at {:?}: {}",
        started.elapsed(),
        hook.stages(),
        svc.1
    );
    assert!(
        svc.1
            .contains("answered FAILED at PRODUCTION_TRAFFIC_SHIFT (smoke test: checkout broken)"),
        "{}",
        svc.1
    );
    assert_eq!(hook.stages(), ["POST_SCALE_UP", "PRODUCTION_TRAFFIC_SHIFT"]);
    let first = hook.got.lock().unwrap()[0].clone();
    assert!(
        first["serviceArn"]
            .as_str()
            .unwrap_or_default()
            .ends_with("/shift"),
        "the hook is told which service: {first}"
    );
    assert!(svc.0["deployments"][0]["taskDefinition"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/{v1}")));
    e.wait_only(&v1);
}
