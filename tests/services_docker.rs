//! Services end to end on the real Docker engine: `berth server` and three `berth agent`
//! processes sharing the engine (each manages only its own node's containers). Spread and
//! replacement, rolling updates within min-healthy / max-percent, the circuit breaker's
//! rollback, a lost agent, drain, and delete. These tests are timing-sensitive, so they run one
//! at a time; each prints what it measured.

mod common;

use common::cluster::*;
use common::*;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn spread_over_three_nodes_then_a_killed_container_is_replaced_within_5_s() {
    let c = cluster("spread");
    let td = c.register("web", "v1", None);
    c.ok(&[
        "service",
        "create",
        "--cluster",
        &c.name,
        "--name",
        "web",
        "--taskdef",
        &td,
        "--desired",
        "3",
        "--strategy",
        "spread:instanceId",
        "--wait",
        "--timeout",
        "60s",
    ]);
    let tasks = c.running_tasks("web");
    assert_eq!(tasks.len(), 3);
    let nodes: HashSet<String> = tasks.iter().map(node_of).collect();
    assert_eq!(nodes.len(), 3, "one task per node: {nodes:?}");
    wait_for(Duration::from_secs(10), "the steady-state event", || {
        c.events("web")
            .iter()
            .any(|e| e == "(service web) has reached a steady state.")
            .then_some(())
    });
    assert!(c
        .events("web")
        .iter()
        .any(|e| e.starts_with("(service web) has started 3 tasks: (task ")));

    let victim = tasks[0]["containers"][0]["runtimeId"]
        .as_str()
        .unwrap()
        .to_string();
    let victim_task = tasks[0]["taskArn"].as_str().unwrap().to_string();
    let killed = Instant::now();
    assert!(Command::new("docker")
        .args(["kill", &victim])
        .status()
        .unwrap()
        .success());
    let replaced = wait_for(
        Duration::from_secs(5),
        "a replacement RUNNING within 5 s",
        || {
            let now = c.running_tasks("web");
            (now.len() == 3 && now.iter().all(|t| t["taskArn"] != victim_task.as_str()))
                .then_some(killed.elapsed())
        },
    );
    eprintln!(
        "measured: replacement RUNNING {:?} after docker kill",
        replaced
    );
    let stopped = c
        .ok(&["task", "describe", &victim_task, "-o", "json"])
        .json();
    assert_eq!(stopped["task"]["stopCode"], "EssentialContainerExited");
}

/// Samples the running count while `update` deploys; returns the minimum seen.
fn roll(c: &Cluster, min: &str, max: &str, floor: usize) {
    let v1 = c.register("roll", "v1", None);
    c.ok(&[
        "service",
        "create",
        "--cluster",
        &c.name,
        "--name",
        "roll",
        "--taskdef",
        &v1,
        "--desired",
        "3",
        "--min-healthy",
        min,
        "--max-percent",
        max,
        "--wait",
        "--timeout",
        "60s",
    ]);
    let v2 = c.register("roll", "v2", None);
    let started = Instant::now();
    let r = c.ok(&[
        "service",
        "update",
        "roll",
        "--cluster",
        &c.name,
        "--taskdef",
        &v2,
    ]);
    assert!(r.stdout.contains("IN_PROGRESS"), "{}", r.stdout);
    let mut lowest = usize::MAX;
    let mut samples = 0;
    loop {
        let running = c.running_tasks("roll").len();
        lowest = lowest.min(running);
        samples += 1;
        let svc = c.service("roll");
        if svc["deployments"][0]["rolloutState"] == "COMPLETED" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "deployment did not complete: {svc}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("measured: min {min} / max {max}: completed in {:?}, fewest running {lowest} over {samples} samples", started.elapsed());
    assert!(
        lowest >= floor,
        "running dropped to {lowest}, below {floor}"
    );
    let tasks = c.running_tasks("roll");
    assert_eq!(tasks.len(), 3);
    for t in &tasks {
        assert!(
            t["taskDefinitionArn"].as_str().unwrap().ends_with(&v2),
            "{t}"
        );
    }
    let svc = c.service("roll");
    assert_eq!(
        svc["deployments"].as_array().unwrap().len(),
        1,
        "old deployment drained: {svc}"
    );
    assert!(c
        .events("roll")
        .iter()
        .any(|e| e.contains("deployment completed.")));
}

#[test]
fn a_rolling_update_with_min_50_max_200_keeps_2_of_3_running() {
    let c = cluster("roll50");
    roll(&c, "50", "200", 2);
}

#[test]
fn a_rolling_update_with_min_100_max_200_keeps_all_3_running() {
    let c = cluster("roll100");
    roll(&c, "100", "200", 3);
}

#[test]
fn the_circuit_breaker_fails_a_crashing_revision_and_rolls_back() {
    let c = cluster("breaker");
    let good = c.register("cb", "good", None);
    c.ok(&[
        "service",
        "create",
        "--cluster",
        &c.name,
        "--name",
        "cb",
        "--taskdef",
        &good,
        "--desired",
        "3",
        "--circuit-breaker",
        "--circuit-breaker-threshold",
        "3",
        "--wait",
        "--timeout",
        "60s",
    ]);
    let bad = c.register("cb", "bad", Some(r#"["demo", "exit", "1"]"#));
    let started = Instant::now();
    let r = c.cli(&[
        "service",
        "update",
        "cb",
        "--cluster",
        &c.name,
        "--taskdef",
        &bad,
        "--wait",
        "--timeout",
        "90s",
    ]);
    assert!(!r.ok, "update --wait must fail: {}", r.stdout);
    assert!(r.stderr.contains("failed"), "{}", r.stderr);
    eprintln!("measured: breaker tripped after {:?}", started.elapsed());
    wait_for(
        Duration::from_secs(60),
        "the rollback to complete with 3 running",
        || {
            let svc = c.service("cb");
            let done = svc["deployments"][0]["rolloutState"] == "COMPLETED"
                && svc["taskDefinition"].as_str().unwrap().ends_with(&good)
                && c.running_tasks("cb").len() == 3;
            done.then_some(())
        },
    );
    eprintln!(
        "measured: back on {good} with 3 running after {:?}",
        started.elapsed()
    );
    for t in c.running_tasks("cb") {
        assert!(t["taskDefinitionArn"].as_str().unwrap().ends_with(&good));
    }
    let events = c.events("cb");
    assert!(
        events
            .iter()
            .any(|e| e.contains("deployment failed: tasks failed to start.")),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.contains("rolling back to deployment")),
        "{events:?}"
    );
}

#[test]
fn a_killed_agent_s_tasks_move_within_30_s_and_its_return_leaves_exactly_desired() {
    let mut c = cluster("lost");
    let td = c.register("lost", "v1", None);
    c.ok(&[
        "service",
        "create",
        "--cluster",
        &c.name,
        "--name",
        "lost",
        "--taskdef",
        &td,
        "--desired",
        "3",
        "--strategy",
        "spread:instanceId",
        "--wait",
        "--timeout",
        "60s",
    ]);
    let nodes = c.ok(&["node", "list", "-o", "json"]).json();
    let n1 = nodes["containerInstances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "n1")
        .unwrap()["ec2InstanceId"]
        .as_str()
        .unwrap()
        .to_string();
    let killed = Instant::now();
    c.agents[0].kill9();
    let moved = wait_for(
        Duration::from_secs(30),
        "n1's task to run elsewhere",
        || {
            let t = c.running_tasks("lost");
            (t.len() == 3 && t.iter().all(|t| node_of(t) != n1)).then_some(killed.elapsed())
        },
    );
    eprintln!("measured: tasks of the killed agent running elsewhere after {moved:?}");
    c.agents[0] = AgentProcess::start(&c.server.grpc, "n1", &c.dir.path().join("n1"));
    wait_for(Duration::from_secs(30), "n1 to reconnect", || {
        let n = c.cli(&["node", "list", "-o", "json"]).json();
        n["containerInstances"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "n1" && x["agentConnected"] == true)
            .then_some(())
    });
    let settled = wait_for(
        Duration::from_secs(20),
        "exactly 3 task containers running",
        || (c.running_containers() == 3).then_some(killed.elapsed()),
    );
    eprintln!("measured: exactly desiredCount containers again {settled:?} after the kill");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(c.running_containers(), 3, "still exactly 3");
    assert_eq!(c.running_tasks("lost").len(), 3);
}

#[test]
fn draining_a_node_moves_its_service_tasks_and_delete_force_leaves_nothing() {
    let c = cluster("drain");
    let td = c.register("drain", "v1", None);
    c.ok(&[
        "service",
        "create",
        "--cluster",
        &c.name,
        "--name",
        "drain",
        "--taskdef",
        &td,
        "--desired",
        "3",
        "--strategy",
        "spread:instanceId",
        "--min-healthy",
        "50",
        "--wait",
        "--timeout",
        "60s",
    ]);
    let r = c.ok(&["node", "drain", "n2", "-o", "json"]);
    let n2 = r.json()["containerInstance"]["ec2InstanceId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(r.json()["containerInstance"]["status"], "DRAINING");
    wait_for(
        Duration::from_secs(30),
        "no service task on the draining node",
        || {
            let t = c.running_tasks("drain");
            (t.len() == 3 && t.iter().all(|t| node_of(t) != n2)).then_some(())
        },
    );
    let mut per_node: HashMap<String, usize> = HashMap::new();
    for t in c.running_tasks("drain") {
        *per_node.entry(node_of(&t)).or_default() += 1;
    }
    assert!(!per_node.contains_key(&n2));
    c.ok(&["node", "activate", "n2"]);

    let r = c.cli(&["service", "delete", "drain", "--cluster", &c.name]);
    assert!(
        !r.ok,
        "delete without --force while desired is 3 must be refused"
    );
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    c.ok(&[
        "service",
        "delete",
        "drain",
        "--cluster",
        &c.name,
        "--force",
        "--wait",
        "--timeout",
        "60s",
    ]);
    let svc = c.service("drain");
    assert_eq!(svc["status"], "INACTIVE");
    assert_eq!(c.running_tasks("drain").len(), 0);
    wait_for(Duration::from_secs(20), "no container left", || {
        containers_with_label(&format!("berth.cluster={}", c.name))
            .is_empty()
            .then_some(())
    });
    let list = c
        .ok(&["service", "list", "--cluster", &c.name, "-o", "json"])
        .json();
    assert_eq!(list["services"], Value::Null, "{list}");
}
