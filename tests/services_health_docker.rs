//! More services end to end on three agents: DAEMON scheduling, replacement of a task that
//! fails its health checks, the crash-loop backoff, and placement failures in ECS's words.

mod common;

use common::cluster::*;
use common::*;
use std::collections::HashSet;
use std::time::{Duration, Instant};

#[test]
fn a_daemon_service_runs_one_task_per_node_and_leaves_a_draining_one() {
    let c = cluster("daemon");
    let td = c.register("daemon", "v1", None);
    c.ok(&[
        "service",
        "create",
        "--cluster",
        &c.name,
        "--name",
        "daemon",
        "--taskdef",
        &td,
        "--scheduling",
        "DAEMON",
        "--wait",
        "--timeout",
        "60s",
    ]);
    let tasks = c.running_tasks("daemon");
    let nodes: HashSet<String> = tasks.iter().map(node_of).collect();
    assert_eq!(
        (tasks.len(), nodes.len()),
        (3, 3),
        "one task on each of the 3 nodes"
    );
    assert_eq!(c.service("daemon")["desiredCount"], 3);
    let n3 = c.ok(&["node", "drain", "n3", "-o", "json"]).json()["containerInstance"]
        ["ec2InstanceId"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for(
        Duration::from_secs(20),
        "the draining node to lose its daemon task",
        || {
            let t = c.running_tasks("daemon");
            (t.len() == 2 && t.iter().all(|t| node_of(t) != n3)).then_some(())
        },
    );
    c.ok(&["node", "activate", "n3"]);
    wait_for(
        Duration::from_secs(20),
        "the reactivated node to get one again",
        || (c.running_tasks("daemon").len() == 3).then_some(()),
    );
}

#[test]
fn an_unhealthy_task_is_replaced_and_a_crash_loop_backs_off() {
    let c = cluster("health");
    let def = r#"{"family": "checked", "containerDefinitions": [{"name": "web", "image": "berth-demo:latest",
        "memory": 32, "portMappings": [{"containerPort": 80}],
        "healthCheck": {"command": ["CMD", "/berth", "demo", "check", "http://127.0.0.1:80/health"],
                        "interval": 5, "timeout": 2, "retries": 1}}]}"#;
    let path = c.dir.path().join("checked.json");
    std::fs::write(&path, def).unwrap();
    c.ok(&["taskdef", "register", "-f", path.to_str().unwrap()]);
    c.ok(&[
        "service",
        "create",
        "--cluster",
        &c.name,
        "--name",
        "checked",
        "--taskdef",
        "checked",
        "--desired",
        "1",
        "--wait",
        "--timeout",
        "60s",
    ]);
    let task = c.running_tasks("checked").remove(0);
    let arn = task["taskArn"].as_str().unwrap().to_string();
    let port = task["containers"][0]["networkBindings"][0]["hostPort"]
        .as_u64()
        .unwrap() as u16;
    // Make the demo server fail its own health check from now on.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(
        &mut s,
        b"POST /admin/fail-health HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    let started = Instant::now();
    wait_for(
        Duration::from_secs(30),
        "the unhealthy task to be replaced",
        || {
            let t = c.running_tasks("checked");
            (t.len() == 1 && t[0]["taskArn"] != arn.as_str() && t[0]["healthStatus"] == "HEALTHY")
                .then_some(())
        },
    );
    eprintln!(
        "measured: unhealthy task replaced by a healthy one after {:?}",
        started.elapsed()
    );
    let old = c.ok(&["task", "describe", &arn, "-o", "json"]).json();
    assert_eq!(
        old["task"]["stoppedReason"],
        "Task failed container health checks"
    );
    assert!(c
        .events("checked")
        .iter()
        .any(|e| e.ends_with("failed container health checks.")));

    // A revision that never starts: retried with backoff, and said so.
    let crash = c.register("crash", "x", Some(r#"["demo", "exit", "3"]"#));
    c.ok(&[
        "service",
        "create",
        "--cluster",
        &c.name,
        "--name",
        "crash",
        "--taskdef",
        &crash,
        "--desired",
        "1",
    ]);
    wait_for(Duration::from_secs(40), "the backoff event", || {
        c.events("crash")
            .iter()
            .any(|e| e == "(service crash) is unable to consistently start tasks successfully.")
            .then_some(())
    });
}

#[test]
fn a_task_no_node_can_hold_is_reported_in_ecs_words() {
    let c = cluster("noplace");
    let def = r#"{"family": "huge", "containerDefinitions": [{"name": "web", "image": "berth-demo:latest", "memory": 4000000}]}"#;
    let path = c.dir.path().join("huge.json");
    std::fs::write(&path, def).unwrap();
    c.ok(&["taskdef", "register", "-f", path.to_str().unwrap()]);
    c.ok(&[
        "service",
        "create",
        "--cluster",
        &c.name,
        "--name",
        "huge",
        "--taskdef",
        "huge",
        "--desired",
        "1",
    ]);
    let msg = wait_for(Duration::from_secs(20), "the placement event", || {
        c.events("huge")
            .into_iter()
            .find(|e| e.contains("was unable to place a task"))
    });
    assert!(
        msg.starts_with("(service huge) was unable to place a task because no container instance met all of its requirements. The closest matching container-instance has insufficient memory available"),
        "{msg}"
    );
    let svc = c.service("huge");
    assert_eq!(svc["placementFailures"][0]["reason"], "RESOURCE:MEMORY");
    let out = c
        .ok(&["events", "--cluster", &c.name, "--service", "huge"])
        .stdout;
    assert!(out.contains("was unable to place a task"), "{out}");
}
