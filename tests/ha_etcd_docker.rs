//! Three `berth server`s on one etcd: exactly one leads, any of them takes writes, agents and
//! clients fail over between them, and when the leader is killed (`kill -9`) another takes over
//! within 5 s and keeps the service at its desired count, with no task started twice.

mod common;

use common::cluster::AgentProcess;
use common::etcd::Etcd;
use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

fn list(servers: &str) -> Option<Vec<Value>> {
    let r = berth(servers, &["server", "list", "-o", "json"]);
    if !r.ok {
        return None;
    }
    r.json()["servers"].as_array().cloned()
}

fn leader_of(servers: &[Value]) -> Vec<String> {
    servers
        .iter()
        .filter(|s| s["leader"] == true)
        .filter_map(|s| s["id"].as_str().map(String::from))
        .collect()
}

#[test]
fn three_servers_on_etcd_elect_one_leader_and_survive_its_loss() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let cluster = unique_cluster("ha");
    let _cleanup = ContainerCleanup {
        cluster: cluster.clone(),
    };
    let flags = |_: usize| {
        vec![
            "--insecure".to_string(),
            "--no-proxy".to_string(),
            "--etcd".to_string(),
            etcd.url.clone(),
            "--leader-ttl".to_string(),
            "3s".to_string(),
            "--heartbeat".to_string(),
            "500ms".to_string(),
            "--resync".to_string(),
            "500ms".to_string(),
            "--lost-node-timeout".to_string(),
            "30s".to_string(),
        ]
    };
    let mut servers: Vec<ServerProcess> = (0..3)
        .map(|i| {
            let f = flags(i);
            let f: Vec<&str> = f.iter().map(String::as_str).collect();
            ServerProcess::start_with("server", &dir.path().join(format!("s{i}")), &f)
        })
        .collect();
    let all = servers
        .iter()
        .map(|s| s.grpc.clone())
        .collect::<Vec<_>>()
        .join(",");

    // Exactly one leader, the same whichever server is asked.
    let first = wait_for(Duration::from_secs(15), "one leader", || {
        let l = leader_of(&list(&all)?);
        (l.len() == 1).then(|| l[0].clone())
    });
    for s in &servers {
        let seen = list(&s.grpc).expect("server list");
        assert_eq!(seen.len(), 3, "every server knows all three: {seen:?}");
        assert_eq!(leader_of(&seen), vec![first.clone()]);
    }

    // Writes through any replica land in the one store.
    assert!(berth(&servers[1].grpc, &["cluster", "create", &cluster]).ok);
    let def = dir.path().join("web.json");
    std::fs::write(
        &def,
        r#"{"family": "haweb", "containerDefinitions": [{"name": "web",
            "image": "berth-demo:latest", "memory": 32,
            "portMappings": [{"containerPort": 80}]}]}"#,
    )
    .unwrap();
    assert!(
        berth(
            &servers[2].grpc,
            &["taskdef", "register", "-f", def.to_str().unwrap()]
        )
        .ok
    );
    let _agent = AgentProcess::start_with(&all, "ha1", &dir.path().join("agent"), &[]);
    let created = berth(
        &servers[0].grpc,
        &[
            "service",
            "create",
            "--cluster",
            &cluster,
            "--name",
            "web",
            "--taskdef",
            "haweb",
            "--desired",
            "2",
        ],
    );
    assert!(created.ok, "{}", created.stderr);
    let running = |url: &str| -> Option<Vec<String>> {
        let r = berth(url, &["task", "list", "--cluster", &cluster, "-o", "json"]);
        let tasks = r.ok.then(|| r.json())?;
        Some(
            tasks["tasks"]
                .as_array()?
                .iter()
                .filter(|t| t["lastStatus"] == "RUNNING")
                .filter_map(|t| t["taskArn"].as_str().map(String::from))
                .collect(),
        )
    };
    wait_for(Duration::from_secs(60), "2 tasks RUNNING", || {
        running(&all).filter(|r| r.len() == 2)
    });

    // kill -9 the leader: another takes over within 5 s.
    let leader_at = servers
        .iter()
        .position(|s| {
            list(&s.grpc)
                .and_then(|l| {
                    l.iter()
                        .find(|x| x["leader"] == true)
                        .map(|x| x["grpc"] == Value::String(s.grpc.clone()))
                })
                .unwrap_or(false)
        })
        .expect("the leader is one of the three");
    let killed_at = Instant::now();
    servers[leader_at].kill9();
    let rest = servers
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leader_at)
        .map(|(_, s)| s.grpc.clone())
        .collect::<Vec<_>>()
        .join(",");
    let second = wait_for(Duration::from_secs(10), "a new leader", || {
        let l = leader_of(&list(&rest)?);
        (l.len() == 1 && l[0] != first).then(|| l[0].clone())
    });
    let took = killed_at.elapsed();
    eprintln!("new leader {second} {took:?} after kill -9 of {first}");
    assert!(took <= Duration::from_secs(5), "a new leader took {took:?}");

    // The new leader acts: a stopped task is replaced, and the service stays at 2, each task
    // started once.
    let before = running(&rest).expect("tasks");
    assert!(berth(&rest, &["task", "stop", "--cluster", &cluster, &before[0]]).ok);
    let after = wait_for(Duration::from_secs(60), "a replacement RUNNING", || {
        running(&rest).filter(|r| r.len() == 2 && !r.contains(&before[0]))
    });
    eprintln!("replaced {} with {:?}", before[0], after);
    let containers = wait_for(
        Duration::from_secs(30),
        "exactly 2 running containers",
        || {
            let n = running_containers(&cluster);
            (n == 2).then_some(n)
        },
    );
    assert_eq!(containers, 2, "no task started twice");
    assert!(
        berth(
            &rest,
            &["service", "delete", "--cluster", &cluster, "web", "--force"]
        )
        .ok
    );
}

fn running_containers(cluster: &str) -> usize {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=berth.cluster={cluster}"),
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .count()
}
