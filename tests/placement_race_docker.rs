//! Placement never double-books a node's memory, however many writers race for it: a node
//! registered with `--memory 1000 --memory-reserve 0` never holds more than 10 live tasks of
//! 100 MiB while 30 concurrent `berth task run`s and a service of 10 are placed on it at once.
//! Real `berth server`, real agent, real Docker; the node's tasks are sampled until they settle.

mod common;

use common::cluster::AgentProcess;
use common::*;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NODE_MIB: i64 = 1000;
const TASK_MIB: i64 = 100;
const MOST: usize = (NODE_MIB / TASK_MIB) as usize;
const RUNS: usize = 30;
const SERVICE_DESIRED: &str = "10";
/// The service is created after this many runs were started: early enough that its controller
/// places while runs still land (later, the first ten runs have filled the node before it wakes).
const SERVICE_AT: usize = 3;
/// At most this many rounds of the race (see the end of the test).
const ROUNDS: usize = 3;

/// CLI processes started together; killed if the test ends before they do.
struct Racers(Vec<(String, Child)>);

impl Drop for Racers {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One look at the node: its live (not STOPPED) tasks in the store, their memory, what the
/// control plane says is left, and the containers Docker runs for the cluster.
#[derive(Debug)]
struct Sample {
    at: Duration,
    live: usize,
    running: usize,
    live_mib: i64,
    from_service: usize,
    remaining_mib: Option<i64>,
    containers: usize,
}

fn sample(url: &str, cluster: &str, node_arn: &str, t0: Instant) -> Sample {
    let tasks = berth(url, &["task", "list", "--cluster", cluster, "-o", "json"]);
    assert!(tasks.ok, "task list: {}", tasks.stderr);
    let all = tasks.json()["tasks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let live: Vec<&Value> = all
        .iter()
        .filter(|t| t["containerInstanceArn"] == node_arn && t["lastStatus"] != "STOPPED")
        .collect();
    let nodes = berth(url, &["node", "list", "-o", "json"]).json();
    let remaining_mib = nodes["containerInstances"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["containerInstanceArn"] == node_arn))
        .and_then(|n| n["remainingResources"].as_array().cloned())
        .and_then(|r| r.into_iter().find(|x| x["name"] == "MEMORY"))
        .and_then(|m| m["integerValue"].as_i64());
    Sample {
        at: t0.elapsed(),
        live: live.len(),
        running: live.iter().filter(|t| t["lastStatus"] == "RUNNING").count(),
        live_mib: live.iter().map(|t| t["memory"].as_i64().unwrap_or(0)).sum(),
        from_service: live
            .iter()
            .filter(|t| t["group"].as_str().unwrap_or("").starts_with("service:"))
            .count(),
        remaining_mib,
        containers: running_containers(cluster),
    }
}

fn running_containers(cluster: &str) -> usize {
    let out = Command::new("docker")
        .args(["ps", "-q", "--filter"])
        .arg(format!("label=berth.cluster={cluster}"))
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .count()
}

fn spawn_cli(url: &str, args: &[&str]) -> Child {
    Command::new(BERTH)
        .args(["--server", url])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth")
}

#[test]
fn a_full_node_never_takes_more_tasks_while_task_runs_and_a_service_race_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = unique_cluster("race");
    let _cleanup = ContainerCleanup {
        cluster: cluster.clone(),
    };
    let flags = [
        "--insecure",
        "--no-proxy",
        "--heartbeat",
        "500ms",
        "--resync",
        "500ms",
    ];
    let server = ServerProcess::start_with("server", &dir.path().join("server"), &flags);
    let url = server.grpc.clone();
    let _agent = AgentProcess::start_with(
        &url,
        "m1000",
        &dir.path().join("agent"),
        &["--memory", "1000", "--memory-reserve", "0"],
    );
    let node = wait_for(Duration::from_secs(30), "the agent to register", || {
        let n = berth(&url, &["node", "list", "-o", "json"]).json();
        let n = n["containerInstances"].as_array()?.first()?.clone();
        (n["agentConnected"] == true).then_some(n)
    });
    let registered = node["registeredResources"]
        .as_array()
        .and_then(|r| r.iter().find(|x| x["name"] == "MEMORY"))
        .and_then(|m| m["integerValue"].as_i64());
    assert_eq!(
        registered,
        Some(NODE_MIB),
        "--memory 1000 --memory-reserve 0"
    );
    let node_arn = node["containerInstanceArn"].as_str().unwrap().to_string();

    assert!(berth(&url, &["cluster", "create", &cluster]).ok);
    let def = dir.path().join("race.json");
    std::fs::write(
        &def,
        format!(
            r#"{{"family": "race", "containerDefinitions": [{{"name": "web",
                "image": "berth-demo:latest", "memory": {TASK_MIB}}}]}}"#
        ),
    )
    .unwrap();
    assert!(berth(&url, &["taskdef", "register", "-f", def.to_str().unwrap()]).ok);

    // A round whose placements all went one way raced only the runs with each other; try again
    // (on an emptied node) until the service and the runs both placed, at most three rounds.
    for round in 1..=ROUNDS {
        let service = format!("race-svc-{round}");
        let (by_runs, by_service) = race(&url, &cluster, &node_arn, &service);
        eprintln!(
            "placement race, round {round}: {by_runs} placed by task runs, {by_service} by the service"
        );
        if (by_runs > 0 && by_service > 0) || round == ROUNDS {
            break;
        }
        empty_the_node(&url, &cluster, &node_arn, &service);
    }
}

/// 30 `berth task run`s and the creation of a service of 10, all at once; samples the node
/// until it is full and steady, asserting at every sample that it is not over-booked. Returns
/// how many tasks the runs placed and how many the service did.
fn race(url: &str, cluster: &str, node_arn: &str, service: &str) -> (usize, usize) {
    // All at once: 30 one-off runs with the service's creation among them.
    let t0 = Instant::now();
    let mut racers = Racers(Vec::new());
    for i in 0..RUNS {
        if i == SERVICE_AT {
            let create = [
                "service",
                "create",
                "--cluster",
                cluster,
                "--name",
                service,
                "--taskdef",
                "race:1",
                "--desired",
                SERVICE_DESIRED,
            ];
            racers
                .0
                .push(("service create".into(), spawn_cli(url, &create)));
        }
        let run = [
            "task",
            "run",
            "--cluster",
            cluster,
            "--taskdef",
            "race:1",
            "-o",
            "json",
        ];
        racers
            .0
            .push((format!("task run #{i}"), spawn_cli(url, &run)));
    }

    // Sample until every CLI has returned and the node has been full and RUNNING for 3 s
    // (six service resyncs, each a chance to over-place), at most 90 s.
    let mut samples: Vec<Sample> = Vec::new();
    let mut settled_since: Option<Instant> = None;
    let mut outcomes = Vec::new();
    loop {
        let mut i = 0;
        while i < racers.0.len() {
            if let Ok(Some(_)) = racers.0[i].1.try_wait() {
                let (what, child) = racers.0.swap_remove(i);
                outcomes.push((what, child.wait_with_output().expect("racer output")));
            } else {
                i += 1;
            }
        }
        let s = sample(url, cluster, node_arn, t0);
        let over = s.live > MOST
            || s.live_mib > NODE_MIB
            || s.containers > MOST
            || s.remaining_mib.is_some_and(|m| m < 0);
        assert!(
            !over,
            "the node is over-booked: {s:?}\nall samples: {samples:#?}"
        );
        let full = s.live == MOST && s.running == MOST && s.containers == MOST;
        samples.push(s);
        if racers.0.is_empty() && full {
            let since = *settled_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_secs(3) {
                break;
            }
        } else {
            settled_since = None;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "not settled within 90 s; racers left: {}; last samples: {:#?}\nwhat the CLIs said: {:#?}",
            racers.0.len(),
            &samples[samples.len().saturating_sub(5)..],
            outcomes
                .iter()
                .map(|(what, o)| format!("{what}: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let last = samples.last().unwrap();
    assert_eq!(last.live_mib, NODE_MIB);
    assert_eq!(last.remaining_mib, Some(0));
    let created = outcomes
        .iter()
        .find(|(w, _)| w == "service create")
        .map(|(_, o)| o)
        .unwrap();
    assert!(
        created.status.success(),
        "service create: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    let placed_by_runs = outcomes
        .iter()
        .filter(|(w, o)| w.starts_with("task run") && o.status.success())
        .filter_map(|(_, o)| serde_json::from_slice::<Value>(&o.stdout).ok())
        .map(|v| v["tasks"].as_array().map_or(0, Vec::len))
        .sum::<usize>();
    assert_eq!(
        placed_by_runs + last.from_service,
        MOST,
        "every live task was placed by one run or by the service"
    );
    // A run that found no room says so (memory), rather than failing some other way.
    for (what, o) in &outcomes {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            o.status.success() || text.contains("MEMORY"),
            "{what} failed otherwise: {text}"
        );
    }
    eprintln!(
        "placement race: {} samples over {:?}; at most {} live tasks",
        samples.len(),
        last.at,
        samples.iter().map(|s| s.live).max().unwrap_or(0),
    );
    (placed_by_runs, last.from_service)
}

/// Deletes the service and stops every task of the cluster, then waits for the node to hold
/// none that is not STOPPED, so the next round starts on an empty node.
fn empty_the_node(url: &str, cluster: &str, node_arn: &str, service: &str) {
    let deleted = berth(
        url,
        &[
            "service",
            "delete",
            service,
            "--cluster",
            cluster,
            "--force",
        ],
    );
    assert!(deleted.ok, "service delete: {}", deleted.stderr);
    let tasks = berth(url, &["task", "list", "--cluster", cluster, "-o", "json"]).json();
    for t in tasks["tasks"].as_array().cloned().unwrap_or_default() {
        if t["lastStatus"] != "STOPPED"
            && t["group"]
                .as_str()
                .is_some_and(|g| g.starts_with("family:"))
        {
            let arn = t["taskArn"].as_str().unwrap();
            assert!(berth(url, &["task", "stop", arn, "--cluster", cluster]).ok);
        }
    }
    let t0 = Instant::now();
    wait_for(Duration::from_secs(30), "the node to be empty", || {
        (sample(url, cluster, node_arn, t0).live == 0).then_some(())
    });
}
