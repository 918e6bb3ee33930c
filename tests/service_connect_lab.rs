//! Service Connect across the nodes of a `berth lab` (three agent hosts): `web` runs on agent-1
//! behind the lab's load balancer and calls `http://api:8080/` for every request it serves;
//! `api` (two tasks, on agent-2 and agent-3 by placement constraint) offers that alias. wrk runs
//! against web through its load balancer while api is redeployed, rolling, then CANARY: no
//! request fails, and each new api task is reached within 2 s of turning healthy (the time its
//! task id first appears in web's answers, less the time `berth task list` first shows it
//! HEALTHY; both polled every 100 ms or so, printed).

mod common;

use common::aws::{aws_ok, Creds};
use common::lab::Lab;
use common::wrk::Wrk;
use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn task_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// The api task id in web's answer (after "upstream: task=…/ID").
fn upstream_task(body: &str) -> Option<String> {
    let rest = body.split("upstream: task=").nth(1)?;
    Some(task_id(rest.split_whitespace().next()?).to_string())
}

/// A container check lenient enough that a loaded 2-core machine (three lab nodes, wrk, the
/// deployments) does not fail a serving task, which would stop it with calls in flight.
fn health_check() -> Value {
    json!({"command": ["CMD", "/berth", "demo", "check", "--timeout", "5",
                       "http://127.0.0.1:80/health"],
           "interval": 5, "timeout": 6, "retries": 3, "startPeriod": 0})
}

fn register(lab: &Lab, c: &Creds, def: Value) -> String {
    let file = lab
        .dir()
        .join(format!("{}.json", def["family"].as_str().unwrap()));
    std::fs::write(&file, def.to_string()).unwrap();
    let out = aws_ok(
        lab.http.trim_start_matches("http://"),
        c,
        &[
            "register-task-definition",
            "--cli-input-json",
            &format!("file://{}", file.display()),
        ],
    );
    out["taskDefinition"]["taskDefinitionArn"]
        .as_str()
        .unwrap()
        .to_string()
}

fn api_def(message: &str) -> Value {
    json!({"family": "api", "containerDefinitions": [
        {"name": "api", "image": "berth-demo:latest", "memory": 32, "stopTimeout": 5,
         "environment": [{"name": "MESSAGE", "value": message}],
         "healthCheck": health_check(),
         "portMappings": [{"containerPort": 80, "name": "api", "appProtocol": "http"}]}]})
}

/// When each api task was first seen HEALTHY, and first named in web's answers.
#[derive(Default)]
struct Seen {
    healthy: BTreeMap<String, Instant>,
    reached: BTreeMap<String, Instant>,
}

/// Polls `berth task list` (HEALTHY) and web through the load balancer (whom it reached) until
/// `stop`.
fn observe(
    lab: &Lab,
    seen: &Arc<Mutex<Seen>>,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    let (server, port) = (lab.server.clone(), lab.listener);
    let (s1, stop1) = (seen.clone(), stop.clone());
    let health = std::thread::spawn(move || {
        while !stop1.load(Ordering::Relaxed) {
            let out = berth(&server, &["task", "list", "--service", "api", "-o", "json"]);
            let now = Instant::now();
            if out.ok {
                for t in out.json()["tasks"].as_array().cloned().unwrap_or_default() {
                    if t["healthStatus"] == "HEALTHY" && t["desiredStatus"] == "RUNNING" {
                        let id = task_id(t["taskArn"].as_str().unwrap_or_default()).to_string();
                        s1.lock().unwrap().healthy.entry(id).or_insert(now);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let (s2, stop2) = (seen.clone(), stop.clone());
    let replies = std::thread::spawn(move || {
        while !stop2.load(Ordering::Relaxed) {
            if let Some((200, body)) = http_get(port, "/") {
                if let Some(id) = upstream_task(&body) {
                    s2.lock()
                        .unwrap()
                        .reached
                        .entry(id)
                        .or_insert_with(Instant::now);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    vec![health, replies]
}

/// api's deployments as `berth service describe` shows them: done when one is left, COMPLETED.
fn api_settled(lab: &Lab) -> bool {
    let out = berth(&lab.server, &["service", "describe", "api", "-o", "json"]);
    if !out.ok {
        return false;
    }
    let d = out.json()["service"]["deployments"].clone();
    let live: Vec<&Value> = d
        .as_array()
        .map(|a| a.iter().filter(|d| d["status"] != "INACTIVE").collect())
        .unwrap_or_default();
    live.len() == 1 && live[0]["rolloutState"] == "COMPLETED"
}

#[test]
fn web_calls_api_across_nodes_and_api_deployments_fail_no_call() {
    let lab = Lab::up("sc");
    let key = lab.ok(&["token", "create", "--aws", "-o", "json"]).json();
    let c = Creds {
        key_id: key["accessKeyId"].as_str().unwrap().to_string(),
        secret: key["secretAccessKey"].as_str().unwrap().to_string(),
        region: "us-east-1".into(),
    };
    // The lab reports its HTTP port as a URL; the aws helpers take the address.
    let http = lab.http.trim_start_matches("http://");
    let ecs = |args: &[&str]| aws_ok(http, &c, args);

    // api: two tasks off agent-1 (zone-1), one per other zone, offering api:8080.
    register(&lab, &c, api_def("api-v1"));
    let connect = json!({"enabled": true, "namespace": "internal", "services": [
        {"portName": "api", "clientAliases": [{"port": 8080, "dnsName": "api"}]}]});
    ecs(&[
        "create-service",
        "--cluster",
        "default",
        "--service-name",
        "api",
        "--task-definition",
        "api",
        "--desired-count",
        "2",
        "--placement-constraints",
        "type=memberOf,expression=attribute:zone != zone-1",
        "--placement-strategy",
        "type=spread,field=attribute:zone",
        "--deployment-configuration",
        "minimumHealthyPercent=100,maximumPercent=200",
        "--service-connect-configuration",
        &connect.to_string(),
    ]);

    // web: on agent-1, behind the lab's listener 8080, calling api for every page.
    let web = register(
        &lab,
        &c,
        json!({"family": "web", "containerDefinitions": [
            {"name": "web", "image": "berth-demo:latest", "memory": 32, "stopTimeout": 5,
             "environment": [{"name": "UPSTREAM", "value": "http://api:8080/"}],
             "healthCheck": health_check(),
             "portMappings": [{"containerPort": 80, "hostPort": 0}]}]}),
    );
    let mut args = vec![
        "service",
        "create",
        "--name",
        "web",
        "--taskdef",
        task_id(&web),
        "--desired",
        "1",
        "--constraint",
        "memberOf:attribute:zone == zone-1",
        "--lb-port",
        "8080",
        "--drain-timeout",
        "5",
    ];
    args.extend_from_slice(&FAST_LB_CHECKS);
    lab.ok(&args);
    ecs(&[
        "update-service",
        "--cluster",
        "default",
        "--service",
        "web",
        "--service-connect-configuration",
        &json!({"enabled": true, "namespace": "internal"}).to_string(),
    ]);
    wait_for(
        Duration::from_secs(120),
        "web answering with api's answer",
        || {
            let ok = (0..10).all(|_| {
                http_get(lab.listener, "/").is_some_and(|(s, b)| {
                    s == 200 && b.contains("message=api-v1") && upstream_task(&b).is_some()
                })
            });
            ok.then_some(())
        },
    );
    let before: BTreeSet<String> = {
        let out = lab
            .ok(&["task", "list", "--service", "api", "-o", "json"])
            .json();
        out["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| task_id(t["taskArn"].as_str().unwrap()).to_string())
            .collect()
    };

    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let observers = observe(&lab, &seen, &stop);
    let wrk = Wrk::start(lab.listener, 4, 240);
    std::thread::sleep(Duration::from_secs(2));

    // Rolling: a new revision.
    register(&lab, &c, api_def("api-v2"));
    let started = Instant::now();
    ecs(&[
        "update-service",
        "--cluster",
        "default",
        "--service",
        "api",
        "--task-definition",
        "api",
    ]);
    wait_for(Duration::from_secs(120), "the rolling deployment", || {
        (started.elapsed() > Duration::from_secs(3) && api_settled(&lab)).then_some(())
    });
    let rolling = started.elapsed();

    // CANARY: half the calls to the new revision, then all.
    register(&lab, &c, api_def("api-v3"));
    let started = Instant::now();
    ecs(&[
        "update-service",
        "--cluster",
        "default",
        "--service",
        "api",
        "--task-definition",
        "api",
        "--deployment-configuration",
        "strategy=CANARY,minimumHealthyPercent=100,maximumPercent=200,bakeTimeInMinutes=0,canaryConfiguration={canaryPercent=50,canaryBakeTimeInMinutes=0}",
    ]);
    wait_for(Duration::from_secs(180), "the canary deployment", || {
        (started.elapsed() > Duration::from_secs(3) && api_settled(&lab)).then_some(())
    });
    let canary = started.elapsed();
    wait_for(Duration::from_secs(10), "web on api-v3", || {
        http_get(lab.listener, "/")
            .is_some_and(|(s, b)| s == 200 && b.contains("message=api-v3"))
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    for o in observers {
        let _ = o.join();
    }
    let (requests, non_2xx, socket, report) = wrk.finish();
    let seen = seen.lock().unwrap();
    let mut lags = Vec::new();
    for (id, healthy) in seen.healthy.iter().filter(|(id, _)| !before.contains(*id)) {
        let reached = seen.reached.get(id).copied();
        let lag = reached.map(|r| r.saturating_duration_since(*healthy));
        println!("api task {id}: reached {lag:?} after it showed HEALTHY");
        lags.push((id.clone(), lag));
    }
    eprintln!(
        "measured: web -> api:8080 across lab nodes: rolling {rolling:.1?}, canary {canary:.1?}; wrk {requests} requests, {non_2xx} non-2xx, {socket} socket errors; new api tasks reached after HEALTHY: {lags:?}"
    );
    let services = lab.ok(&["service", "describe", "api"]).stdout;
    println!("{services}");
    assert_eq!((non_2xx, socket), (0, 0), "no request failed: {report}");
    assert_eq!(
        lags.len(),
        4,
        "four new api tasks (two a deployment): {lags:?}"
    );
    for (id, lag) in &lags {
        let lag = lag.unwrap_or_else(|| panic!("api task {id} never reached"));
        assert!(
            lag <= Duration::from_secs(2),
            "api task {id} reached {lag:?} after HEALTHY"
        );
    }
    assert!(services.contains("api:8080"), "{services}");
    assert!(services.contains("web"), "web calls api: {services}");
}
