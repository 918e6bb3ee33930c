//! Fault tests on a `berth lab` (control plane, three agent hosts, a proxy, each a container
//! with its own address): a host killed, a host cut off and healed, the control plane SIGKILLed
//! in the middle of a rolling deployment, the proxy restarted under load. Each ends on the
//! invariants (running = desiredCount, one container per task, no task on two nodes, nothing
//! lost) and prints what it measured.

mod common;

use common::lab::{docker, Lab};
use common::*;
use std::time::{Duration, Instant};

/// Kills an agent host: the agent's container and, as a machine's death would, its tasks.
fn kill_host(lab: &Lab, agent: &str, node: &str) -> usize {
    let tasks = lab.containers_of(node);
    docker(&["kill", &lab.container(agent)]).expect("docker kill agent");
    for c in &tasks {
        let _ = docker(&["kill", c]);
    }
    tasks.len()
}

#[test]
fn a_killed_agent_hosts_tasks_run_on_the_others_within_15_s() {
    let lab = Lab::up("kill");
    let v1 = lab.register("v1");
    lab.service(&v1, 3);
    let nodes = lab.nodes();
    let victim = nodes["agent-2"].clone();
    assert!(
        lab.running().iter().any(|t| t.1 == victim),
        "spread over zones puts a task on agent-2"
    );

    let killed = kill_host(&lab, "agent-2", &victim);
    let took = lab.wait_running(
        Duration::from_secs(15),
        "3 running tasks, none on the killed host",
        |r| r.len() == 3 && r.iter().all(|t| t.1 != victim),
    );
    eprintln!("measured: host agent-2 killed with {killed} task(s); 3 running on the others after {took:.1?} (limit 15 s)");
    lab.assert_invariants(3, &[&v1]);
    let (status, _) = http_get(lab.listener, "/").expect("the proxy answers");
    assert_eq!(status, 200);
}

#[test]
fn a_partitioned_agent_is_replaced_and_after_healing_exactly_desired_tasks_run() {
    let lab = Lab::up("part");
    let v1 = lab.register("v1");
    lab.service(&v1, 3);
    let victim = lab.nodes()["agent-3"].clone();
    let agent = lab.container("agent-3");
    // The whole host leaves the network: the agent and its tasks.
    let cut: Vec<String> = lab.containers_of(&victim);
    let started = Instant::now();
    for c in std::iter::once(&agent).chain(&cut) {
        docker(&["network", "disconnect", &lab.network, c]).expect("disconnect");
    }
    let replaced = lab.wait_running(
        Duration::from_secs(30),
        "the cut-off host's tasks replaced",
        |r| r.len() == 3 && r.iter().all(|t| t.1 != victim),
    );
    eprintln!(
        "measured: partitioned agent-3 ({} task(s)); replaced on the others after {replaced:.1?}",
        cut.len()
    );
    // The stale tasks still run on the cut-off host: four or more containers for 3 tasks.
    assert!(
        !lab.containers_of(&victim).is_empty(),
        "the partitioned host keeps its containers while cut off"
    );

    let healing = Instant::now();
    for c in std::iter::once(&agent).chain(&cut) {
        docker(&["network", "connect", &lab.network, c]).expect("connect");
    }
    wait_for(
        Duration::from_secs(30),
        "the healed host to stop its stale tasks",
        || {
            let nodes = lab.nodes();
            let back = berth(&lab.server, &["node", "list", "-o", "json"]).json()
                ["containerInstances"]
                .as_array()
                .map(|ns| {
                    ns.iter()
                        .any(|n| n["name"] == "agent-3" && n["agentConnected"] == true)
                })
                .unwrap_or(false);
            (back
                && nodes.contains_key("agent-3")
                && lab.containers_of(&victim).is_empty()
                && lab.task_containers().len() == 3)
                .then_some(())
        },
    );
    eprintln!(
        "measured: healed after {:.1?} cut off; stale tasks stopped {:.1?} after healing",
        healing - started,
        healing.elapsed()
    );
    lab.assert_invariants(3, &[&v1]);
}

#[test]
fn a_rolling_deployment_completes_after_the_control_plane_is_sigkilled_mid_way() {
    let lab = Lab::up("cpkill");
    let v1 = lab.register("v1");
    lab.service(&v1, 3);
    let v2 = lab.register("v2");
    lab.ok(&["service", "update", "web", "--taskdef", &v2]);
    // In the middle: the new revision has started some tasks, not all.
    wait_for(Duration::from_secs(30), "the deployment under way", || {
        let r = lab.running();
        r.iter().any(|t| t.2 == v2).then_some(())
    });
    let killed_at = Instant::now();
    docker(&["kill", "--signal", "KILL", &lab.container("cp")]).expect("kill cp");
    docker(&["start", &lab.container("cp")]).expect("start cp");
    let took = lab.wait_running(
        Duration::from_secs(90),
        "3 tasks of the new revision",
        |r| r.len() == 3 && r.iter().all(|t| t.2 == v2),
    );
    lab.ok(&["service", "wait", "web", "--timeout", "60s"]);
    let svc = lab.ok(&["service", "describe", "web", "-o", "json"]).json();
    eprintln!(
        "measured: control plane SIGKILLed mid-deployment and restarted; deployment to {v2} done {took:.1?} after the kill ({:.1?} total)",
        killed_at.elapsed()
    );
    let deployments = svc["service"]["deployments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        deployments.iter().any(|d| d["status"] == "PRIMARY"
            && d["taskDefinition"].as_str().unwrap_or("").ends_with(&v2)),
        "{svc}"
    );
    lab.assert_invariants(3, &[&v1, &v2]);
    let (_, body) = http_get(lab.listener, "/").expect("the proxy answers");
    assert!(body.contains("message=v2"), "{body}");
}

#[test]
fn clients_see_only_the_restart_window_when_the_proxy_restarts_under_load() {
    let lab = Lab::up("proxy");
    let v1 = lab.register("v1");
    lab.service(&v1, 3);
    let port = lab.listener;
    let start = Instant::now();
    // 4 clients, each a request every 10 ms for 20 s: (when, answered 200).
    let clients: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut log = Vec::new();
                while start.elapsed() < Duration::from_secs(20) {
                    let ok = matches!(http_get(port, "/"), Some((200, _)));
                    log.push((start.elapsed(), ok));
                    std::thread::sleep(Duration::from_millis(10));
                }
                log
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(5));
    let restart_began = start.elapsed();
    docker(&["restart", "-t", "2", &lab.container("proxy")]).expect("restart proxy");
    let restarted = start.elapsed();
    let log: Vec<(Duration, bool)> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    let mut failures: Vec<Duration> = log.iter().filter(|r| !r.1).map(|r| r.0).collect();
    failures.sort();
    let back = log
        .iter()
        .filter(|r| r.1 && r.0 > restarted)
        .map(|r| r.0)
        .min()
        .expect("requests answered after the restart");
    eprintln!(
        "measured: {} requests; proxy restart began at {restart_began:.1?}, container up at {restarted:.1?}, answering again at {back:.1?}: {} failed, all between {:.1?} and {:.1?}",
        log.len(),
        failures.len(),
        failures.first().copied().unwrap_or_default(),
        failures.last().copied().unwrap_or_default(),
    );
    assert!(log.len() > 500, "the load ran: {} requests", log.len());
    // The window ends a moment after the first answer: the new process's targets pass their
    // first checks one by one, so a request racing the first success may still find none.
    let settled = back + Duration::from_secs(1);
    for f in &failures {
        assert!(
            *f >= restart_began && *f <= settled,
            "a request failed at {f:?}, outside the restart window {restart_began:?}..{settled:?}"
        );
    }
    assert!(
        back - restart_began < Duration::from_secs(10),
        "the proxy answered again {:?} after the restart began",
        back - restart_began
    );
    lab.assert_invariants(3, &[&v1]);
}
