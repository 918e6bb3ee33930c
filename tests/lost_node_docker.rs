//! Lost nodes on the real Docker engine with the server's default timings (no flags): an agent
//! paused for 3 s (SIGSTOP, then SIGCONT) keeps its tasks, and a SIGKILLed agent's tasks run on
//! the other node within 10 s. Each prints what it measured.

mod common;

use common::cluster::*;
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The ARNs of the service's tasks that are not yet STOPPED, and each one's node.
fn live_tasks(c: &Cluster, service: &str) -> BTreeSet<(String, String)> {
    let r = c.ok(&[
        "task",
        "list",
        "--cluster",
        &c.name,
        "--service",
        service,
        "-o",
        "json",
    ]);
    r.json()["tasks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|t| t["lastStatus"] != "STOPPED" && t["desiredStatus"] != "STOPPED")
        .map(|t| (t["taskArn"].as_str().unwrap_or("").to_string(), node_of(t)))
        .collect()
}

fn node_id(c: &Cluster, name: &str) -> String {
    let nodes = c.ok(&["node", "list", "-o", "json"]).json();
    nodes["containerInstances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .map(|n: &Value| n["ec2InstanceId"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("node {name} listed: {nodes}"))
}

#[test]
fn with_defaults_a_paused_agent_keeps_its_tasks_and_a_killed_one_s_run_elsewhere_within_10_s() {
    // The demo image, built offline from this binary (`berth server` does not build it).
    assert!(
        berth("http://unused", &["images", "build"]).ok,
        "berth images build"
    );
    // No timing flags: what a user running `berth server` gets.
    let mut c = cluster_with("lostd", &[], 2);
    let td = c.register("lostd", "v1", None);
    c.ok(&[
        "service",
        "create",
        "--cluster",
        &c.name,
        "--name",
        "lostd",
        "--taskdef",
        &td,
        "--desired",
        "2",
        "--strategy",
        "spread:instanceId",
        "--wait",
        "--timeout",
        "60s",
    ]);
    let n2 = node_id(&c, "n2");
    let before = wait_for(Duration::from_secs(30), "a task on each node", || {
        let t = live_tasks(&c, "lostd");
        (c.running_tasks("lostd").len() == 2 && t.iter().any(|x| x.1 == n2)).then_some(t)
    });

    // A pause: the agent's connection stays open, its heartbeats stop for 3 s.
    c.agents[1].signal("STOP");
    std::thread::sleep(Duration::from_secs(3));
    c.agents[1].signal("CONT");
    // Watch past the lost-node timeout (10 s) and the session's heartbeat timeout (6 s): the
    // same two tasks, both running, the whole time.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(14) {
        let now = live_tasks(&c, "lostd");
        assert_eq!(now, before, "a 3 s pause moved tasks");
        assert_eq!(
            c.running_tasks("lostd").len(),
            2,
            "a 3 s pause stopped a task"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("measured: agent n2 paused 3 s; the same 2 tasks ran for 14 s after (none moved)");

    // A crash: the kernel closes the agent's connection at once.
    let killed = Instant::now();
    c.agents[1].kill9();
    let moved = wait_for(Duration::from_secs(30), "n2's task running on n1", || {
        let t = c.running_tasks("lostd");
        (t.len() == 2 && t.iter().all(|t| node_of(t) != n2)).then_some(killed.elapsed())
    });
    eprintln!(
        "measured: agent n2 SIGKILLed; its task running on n1 after {moved:.1?} (limit 10 s)"
    );
    assert!(
        moved <= Duration::from_secs(10),
        "the killed agent's task ran elsewhere only after {moved:?}"
    );
}
