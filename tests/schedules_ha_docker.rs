//! A schedule's tick across a leader change: three `berth server`s on one etcd, an
//! `aws scheduler create-schedule` of `cron(* * * * ? *)`, and the leader killed (`kill -9`)
//! one second before the minute. The next leader runs that tick once — one task, started by
//! `chronos-schedule/NAME` — and the tick after it once more, on time.

mod common;

use common::aws::*;
use common::cluster::AgentProcess;
use common::etcd::Etcd;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn sleep_until(at_ms: i64) {
    let left = at_ms - now_ms();
    if left > 0 {
        std::thread::sleep(Duration::from_millis(left as u64));
    }
}

fn leader(servers: &str) -> Option<String> {
    let r = berth(servers, &["server", "list", "-o", "json"]);
    let list = r.ok.then(|| r.json())?;
    let leaders: Vec<String> = list["servers"]
        .as_array()?
        .iter()
        .filter(|s| s["leader"] == true)
        .filter_map(|s| s["grpc"].as_str().map(String::from))
        .collect();
    (leaders.len() == 1).then(|| leaders[0].clone())
}

/// The tasks the schedule started, with their creation times (ms), oldest first.
fn scheduled(servers: &str, cluster: &str) -> Vec<(String, i64)> {
    let r = berth(
        servers,
        &["task", "list", "--cluster", cluster, "-o", "json"],
    );
    if !r.ok {
        return Vec::new();
    }
    let v: Value = r.json();
    let mut out: Vec<(String, i64)> = v["tasks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|t| t["startedBy"] == "chronos-schedule/minutely")
        .map(|t| {
            let at = t["createdAt"].as_str().unwrap_or("");
            (
                t["taskArn"].as_str().unwrap_or("").to_string(),
                berth_proto::time::parse_rfc3339(at).unwrap_or(0),
            )
        })
        .collect();
    out.sort_by_key(|t| t.1);
    out
}

#[test]
fn a_tick_runs_once_when_the_leader_dies_just_before_it() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let cluster = unique_cluster("cronha");
    let _cleanup = ContainerCleanup {
        cluster: cluster.clone(),
    };
    let flags = [
        "--insecure",
        "--no-proxy",
        "--etcd",
        etcd.url.as_str(),
        "--leader-ttl",
        "3s",
        "--heartbeat",
        "500ms",
        "--resync",
        "500ms",
        "--lost-node-timeout",
        "30s",
    ];
    let mut servers: Vec<ServerProcess> = (0..3)
        .map(|i| ServerProcess::start_with("server", &dir.path().join(format!("s{i}")), &flags))
        .collect();
    let all = servers
        .iter()
        .map(|s| s.grpc.clone())
        .collect::<Vec<_>>()
        .join(",");
    let first = wait_for(Duration::from_secs(15), "one leader", || leader(&all));
    assert!(berth(&all, &["cluster", "create", &cluster]).ok);
    let def = dir.path().join("job.json");
    std::fs::write(
        &def,
        r#"{"family": "hajob", "containerDefinitions": [{"name": "job",
            "image": "berth-demo:latest", "memory": 32, "stopTimeout": 2}]}"#,
    )
    .unwrap();
    assert!(berth(&all, &["taskdef", "register", "-f", def.to_str().unwrap()]).ok);
    let _agent = AgentProcess::start_with(&all, "cronha1", &dir.path().join("agent"), &[]);

    // The schedule goes in through a follower, well before the minute it first fires at.
    if now_ms() % 60_000 > 40_000 {
        sleep_until(now_ms() / 60_000 * 60_000 + 61_000);
    }
    let follower = servers.iter().find(|s| s.grpc != first).unwrap();
    let target = json!({
        "Arn": format!("arn:aws:ecs:us-east-1:000000000000:cluster/{cluster}"),
        "RoleArn": "arn:aws:iam::000000000000:role/scheduler",
        "EcsParameters": {"TaskDefinitionArn": "hajob:1", "TaskCount": 1}
    });
    let made = aws_for(
        "scheduler",
        &follower.http,
        &Creds::default(),
        &[
            "create-schedule",
            "--name",
            "minutely",
            "--schedule-expression",
            "cron(* * * * ? *)",
            "--flexible-time-window",
            "Mode=OFF",
            "--target",
            &target.to_string(),
        ],
    );
    assert!(made.ok, "{}{}", made.stdout, made.stderr);
    let tick = now_ms() / 60_000 * 60_000 + 60_000;

    // kill -9 the leader one second before the tick.
    sleep_until(tick - 1_000);
    let at = servers.iter().position(|s| s.grpc == first).unwrap();
    servers[at].kill9();
    let rest = servers
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != at)
        .map(|(_, s)| s.grpc.clone())
        .collect::<Vec<_>>()
        .join(",");
    let second = wait_for(Duration::from_secs(15), "a new leader", || {
        leader(&rest).filter(|l| *l != first)
    });
    eprintln!("leader {first} killed 1 s before the tick; {second} leads");

    let ran = wait_for(Duration::from_secs(30), "the tick's task", || {
        let s = scheduled(&rest, &cluster);
        (!s.is_empty()).then_some(s)
    });
    assert!(
        ran[0].1 >= tick,
        "created at the tick or after: {ran:?} (tick {tick})"
    );
    // Nothing more for that tick, however long we look, until the next one.
    sleep_until(tick + 55_000);
    let once = scheduled(&rest, &cluster);
    assert_eq!(once.len(), 1, "the tick ran exactly once: {once:?}");

    // The next tick, under the new leader, on time and once.
    let next = tick + 60_000;
    let twice = wait_for(Duration::from_secs(20), "the next tick's task", || {
        let s = scheduled(&rest, &cluster);
        (s.len() >= 2).then_some(s)
    });
    assert_eq!(twice.len(), 2, "{twice:?}");
    let late = twice[1].1 - next;
    assert!(
        (0..=5_000).contains(&late),
        "the next tick ran {late} ms late"
    );
}
