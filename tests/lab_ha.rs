//! Fault tests of three `berth server`s on a three-member etcd (`berth lab up --ha`): the leader
//! killed mid-deployment under load, acknowledged writes across a leader's death, the leader cut
//! off from etcd, and etcd members lost. Each prints what it measured and ends on the lab's
//! invariants (running = desiredCount, one container per task, none started twice).

mod common;

use common::lab::{docker, Lab};
use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The servers as `berth server list -o json` shows them, asked through `servers`.
fn replicas(servers: &str) -> Option<Vec<Value>> {
    let r = berth(servers, &["server", "list", "-o", "json"]);
    r.ok.then(|| r.json()["servers"].as_array().cloned())?
}

/// The leader's id and its container (`NET-cp-N`, from its advertised URL).
fn leader(servers: &str) -> Option<(String, String)> {
    let list = replicas(servers)?;
    let leaders: Vec<&Value> = list.iter().filter(|s| s["leader"] == true).collect();
    if leaders.len() != 1 {
        return None;
    }
    let url = leaders[0]["grpc"].as_str()?;
    let host = url.trim_start_matches("https://").split(':').next()?;
    Some((leaders[0]["id"].as_str()?.to_string(), host.to_string()))
}

/// The servers' host URLs other than the one in `container`.
fn others(lab: &Lab, container: &str) -> String {
    let n: usize = container
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap();
    lab.server
        .split(',')
        .enumerate()
        .filter(|(i, _)| i + 1 != n)
        .map(|(_, u)| u)
        .collect::<Vec<_>>()
        .join(",")
}

/// Waits for a leader other than `old`; how long it took from `since`.
fn new_leader(servers: &str, old: &str, since: Instant) -> (String, Duration) {
    let id = wait_for(Duration::from_secs(20), "a new leader", || {
        leader(servers)
            .filter(|(id, _)| id != old)
            .map(|(id, _)| id)
    });
    (id, since.elapsed())
}

/// Clients each sending a request every 10 ms through the proxy: (when, answered 200).
fn load(port: u16, seconds: u64) -> Vec<std::thread::JoinHandle<Vec<(Duration, bool)>>> {
    let start = Instant::now();
    (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut log = Vec::new();
                while start.elapsed() < Duration::from_secs(seconds) {
                    let ok = matches!(http_get(port, "/"), Some((200, _)));
                    log.push((start.elapsed(), ok));
                    std::thread::sleep(Duration::from_millis(10));
                }
                log
            })
        })
        .collect()
}

#[test]
fn the_leader_killed_mid_deployment_under_load_fails_no_request() {
    let lab = Lab::up_ha("hakill");
    let list = replicas(&lab.server).expect("server list");
    assert_eq!(list.len(), 3, "{list:?}");
    let (first, container) = leader(&lab.server).expect("exactly one leader");
    let v1 = lab.register("v1");
    lab.service(&v1, 3);
    let v2 = lab.register("v2");
    let clients = load(lab.listener, 40);
    std::thread::sleep(Duration::from_secs(2));
    lab.ok(&["service", "update", "web", "--taskdef", &v2]);
    wait_for(Duration::from_secs(30), "the deployment under way", || {
        lab.running().iter().any(|t| t.2 == v2).then_some(())
    });
    let killed = Instant::now();
    docker(&["kill", "--signal", "KILL", &container]).expect("kill the leader");
    let rest = others(&lab, &container);
    let (second, took) = new_leader(&rest, &first, killed);
    eprintln!("measured: leader {first} killed -9 mid-deployment; {second} leads {took:.1?} later");
    assert!(
        took <= Duration::from_secs(5),
        "a new leader after {took:?}"
    );
    lab.wait_running(
        Duration::from_secs(90),
        "3 tasks of the new revision",
        |r| r.len() == 3 && r.iter().all(|t| t.2 == v2),
    );
    let log: Vec<(Duration, bool)> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    let failed = log.iter().filter(|r| !r.1).count();
    eprintln!(
        "measured: {} requests through the proxy, {failed} failed",
        log.len()
    );
    assert!(log.len() > 1000, "the load ran: {} requests", log.len());
    assert_eq!(failed, 0, "requests failed while the leader died");
    lab.assert_invariants(3, &[&v1, &v2]);
}

#[test]
fn no_acknowledged_registration_is_lost_when_the_leader_dies() {
    let lab = Lab::up_ha("haack");
    let (first, container) = leader(&lab.server).expect("exactly one leader");
    let file = std::env::temp_dir().join(format!("ack-{}.json", std::process::id()));
    std::fs::write(
        &file,
        r#"{"family": "ack", "containerDefinitions": [{"name": "c", "image": "berth-demo:latest", "memory": 16}]}"#,
    )
    .unwrap();
    let file = file.to_str().unwrap().to_string();
    let started = Instant::now();
    let (mut acked, mut refused) = (Vec::new(), 0);
    let mut killed_at = None;
    while started.elapsed() < Duration::from_secs(20) {
        if killed_at.is_none() && started.elapsed() > Duration::from_secs(5) {
            docker(&["kill", "--signal", "KILL", &container]).expect("kill the leader");
            killed_at = Some(Instant::now());
        }
        let r = berth(
            &lab.server,
            &["taskdef", "register", "-f", &file, "-o", "json"],
        );
        if r.ok {
            acked.push(r.json()["taskDefinition"]["revision"].as_i64().unwrap());
        } else {
            refused += 1;
        }
    }
    let rest = others(&lab, &container);
    let (second, took) = new_leader(&rest, &first, killed_at.unwrap());
    let listed = berth(&rest, &["taskdef", "list", "--family", "ack", "-o", "json"]).json();
    let mut revisions: Vec<i64> = listed["taskDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["revision"].as_i64())
        .collect();
    revisions.sort();
    eprintln!(
        "measured: {} registrations acknowledged, {refused} refused; leader {first} killed, {second} leads after {took:.1?}; {} revisions stored",
        acked.len(),
        revisions.len()
    );
    for a in &acked {
        assert!(revisions.contains(a), "acknowledged revision {a} is lost");
    }
    let expected: Vec<i64> = (1..=revisions.len() as i64).collect();
    assert_eq!(revisions, expected, "revisions have no gaps or duplicates");
    let mut unique = acked.clone();
    unique.dedup();
    assert_eq!(unique.len(), acked.len(), "no revision acknowledged twice");
}

#[test]
fn a_leader_cut_off_from_etcd_stops_leading_and_rejoins_as_a_follower() {
    let lab = Lab::up_ha("hapart");
    let v1 = lab.register("v1");
    lab.service(&v1, 3);
    let (first, container) = leader(&lab.server).expect("exactly one leader");
    let cut = Instant::now();
    docker(&["network", "disconnect", &lab.network, &container]).expect("disconnect");
    let rest = others(&lab, &container);
    let (second, took) = new_leader(&rest, &first, cut);
    eprintln!("measured: leader {first} cut off; {second} leads {took:.1?} later");
    // Within its lease (3 s, stepping down at 2 s) the old leader stops acting: its commits are
    // fenced at once, and it says so as soon as it misses its renewals (every call it makes
    // while leading is bounded by a third of the lease), without waiting for a pass in flight.
    wait_for(
        Duration::from_secs(20),
        "the cut-off leader to step down",
        || {
            let log = docker(&["logs", &container]).unwrap_or_default();
            let err = std::process::Command::new("docker")
                .args(["logs", &container])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                .unwrap_or_default();
            (log + &err).contains("no longer leading").then_some(())
        },
    );
    // The new leader acts: a stopped task is replaced. (A list may fail while the client still
    // tries the cut-off server first: retried until it answers.)
    let before = wait_for(Duration::from_secs(30), "the three tasks listed", || {
        let r = lab.running();
        (r.len() == 3).then_some(r)
    });
    berth(&rest, &["task", "stop", &before[0].0]);
    lab.wait_running(Duration::from_secs(60), "a replacement", |r| {
        r.len() == 3 && r.iter().all(|t| t.0 != before[0].0)
    });
    docker(&["network", "connect", &lab.network, &container]).expect("reconnect");
    let healed = wait_for(Duration::from_secs(30), "three servers, one leader", || {
        let list = replicas(&lab.server)?;
        let leaders: Vec<&Value> = list.iter().filter(|s| s["leader"] == true).collect();
        (list.len() == 3 && leaders.len() == 1 && leaders[0]["id"] == second.as_str())
            .then_some(list)
    });
    eprintln!(
        "measured: healed; {} servers, {second} still leads",
        healed.len()
    );
    lab.assert_invariants(3, &[&v1]);
}

#[test]
fn writes_survive_one_etcd_member_and_fail_clearly_without_a_quorum() {
    let lab = Lab::up_ha("haetcd");
    let v1 = lab.register("v1");
    let etcd = |i: u8| format!("{}-etcd-{i}", lab.network);
    docker(&["kill", "--signal", "KILL", &etcd(3)]).expect("kill etcd-3");
    let v2 = wait_for(
        Duration::from_secs(20),
        "a write with one member down",
        || {
            let r = berth(
                &lab.server,
                &["taskdef", "register", "-f", &def_file(&lab), "-o", "json"],
            );
            r.ok.then(|| r.json()["taskDefinition"]["revision"].as_i64())?
        },
    );
    eprintln!("measured: etcd-3 killed; registration still acknowledged (revision {v2})");
    docker(&["kill", "--signal", "KILL", &etcd(2)]).expect("kill etcd-2");
    let refused = wait_for(
        Duration::from_secs(30),
        "writes refused without a quorum",
        || {
            let r = berth(&lab.server, &["taskdef", "register", "-f", &def_file(&lab)]);
            (!r.ok).then_some(r.stderr)
        },
    );
    eprintln!(
        "measured: two of three members down; a write is refused: {}",
        refused.trim()
    );
    assert!(
        refused.contains("etcd"),
        "the error names the store: {refused}"
    );
    let read = berth(&lab.server, &["taskdef", "describe", &v1]);
    assert!(
        read.ok,
        "reads of the last state still answer: {}",
        read.stderr
    );
    for i in [2u8, 3] {
        docker(&["start", &etcd(i)]).expect("restart etcd");
    }
    let after = wait_for(Duration::from_secs(60), "writes again", || {
        let r = berth(
            &lab.server,
            &["taskdef", "register", "-f", &def_file(&lab), "-o", "json"],
        );
        r.ok.then(|| r.json()["taskDefinition"]["revision"].as_i64())?
    });
    // Right after the quorum returns a read may still fail once (seen in CI: empty stdout);
    // what is asserted is what the list holds once it answers.
    let listed = wait_for(Duration::from_secs(30), "the list to answer", || {
        let r = berth(
            &lab.server,
            &["taskdef", "list", "--family", "web", "-o", "json"],
        );
        r.ok.then(|| r.json())
    });
    let mut revisions: Vec<i64> = listed["taskDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["revision"].as_i64())
        .collect();
    revisions.sort();
    eprintln!("measured: members back; revision {after} registered; revisions {revisions:?}");
    assert_eq!(
        revisions,
        (1..=after).collect::<Vec<_>>(),
        "nothing lost or doubled"
    );
}

fn def_file(lab: &Lab) -> String {
    let file = std::env::temp_dir().join(format!("{}-web.json", lab.name));
    if !file.exists() {
        std::fs::write(&file, include_str!("../deploy/examples/web.json")).unwrap();
    }
    file.display().to_string()
}
