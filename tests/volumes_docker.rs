//! Task volumes on the real Docker engine through `berth dev`: Redis (Debian's `redis-server`,
//! imported offline as an image) as a service of one on a shared Docker volume with
//! `appendonly yes` keeps a key across `berth task stop` and its replacement, which lands on the
//! same node; `berth volume list` shows the volume in use; a bind mount outside the node's
//! `--allow-host-path` is refused at placement naming the flag, and one inside it reaches the
//! host directory.
//! Every container and volume a test makes carries its cluster's name and is removed even when
//! the test fails.

mod common;

use common::redis::redis_image;
use common::shell::shell_image;
use common::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

static SERIAL: Mutex<()> = Mutex::new(());

/// Removes the Docker volumes labelled with the test's cluster when dropped.
struct VolumeCleanup(String);

impl Drop for VolumeCleanup {
    fn drop(&mut self) {
        let out = Command::new("docker")
            .args(["volume", "ls", "-q", "--filter"])
            .arg(format!("label=berth.test={}", self.0))
            .output();
        if let Ok(out) = out {
            for v in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("docker")
                    .args(["volume", "rm", "-f", v])
                    .output();
            }
        }
    }
}

struct Env {
    dev: ServerProcess,
    cluster: String,
    dir: tempfile::TempDir,
    allowed: PathBuf,
    // Dropped in this order: the dev (so nothing recreates), containers, then volumes.
    _containers: ContainerCleanup,
    _volumes: VolumeCleanup,
    _serial: std::sync::MutexGuard<'static, ()>,
}

fn env(prefix: &str) -> Env {
    let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let cluster = unique_cluster(prefix);
    let allowed = dir.path().join("allowed");
    std::fs::create_dir_all(&allowed).unwrap();
    let mut flags: Vec<&str> = FAST.to_vec();
    flags.extend(["--allow-host-path", allowed.to_str().unwrap()]);
    let dev = ServerProcess::start_with("dev", &dir.path().join("data"), &flags);
    let e = Env {
        dev,
        cluster: cluster.clone(),
        dir,
        allowed,
        _containers: ContainerCleanup {
            cluster: cluster.clone(),
        },
        _volumes: VolumeCleanup(cluster),
        _serial: serial,
    };
    e.ok(&["cluster", "create", &e.cluster]);
    e
}

impl Env {
    fn cli(&self, args: &[&str]) -> Run {
        berth(&self.dev.grpc, args)
    }

    fn ok(&self, args: &[&str]) -> Run {
        let r = self.cli(args);
        assert!(r.ok, "berth {args:?}: {}{}", r.stdout, r.stderr);
        r
    }

    fn register(&self, def: Value) -> String {
        let path = self
            .dir
            .path()
            .join(format!("{}.json", def["family"].as_str().unwrap()));
        std::fs::write(&path, def.to_string()).unwrap();
        register_file(&self.dev.grpc, &path)
    }

    fn tasks(&self, desired: &str) -> Vec<Value> {
        let r = self.ok(&[
            "task",
            "list",
            "--cluster",
            &self.cluster,
            "--desired-status",
            desired,
            "-o",
            "json",
        ]);
        r.json()["tasks"].as_array().cloned().unwrap_or_default()
    }

    fn running(&self) -> Vec<Value> {
        self.tasks("RUNNING")
            .into_iter()
            .filter(|t| t["lastStatus"] == "RUNNING")
            .collect()
    }

    fn redis_cli(&self, task: &str, args: &[&str]) -> Run {
        let mut a = vec!["exec", task, "--cluster", &self.cluster, "--", "redis-cli"];
        a.extend_from_slice(args);
        self.cli(&a)
    }
}

#[test]
fn redis_on_a_shared_volume_keeps_its_data_across_a_replaced_task() {
    let image = redis_image();
    let e = env("redis-vol");
    let volume = format!("{}-data", e.cluster);
    let td = e.register(json!({
        "family": "redis",
        "containerDefinitions": [{
            "name": "redis", "image": image, "memory": 128, "stopTimeout": 10,
            "command": ["redis-server", "--dir", "/data", "--appendonly", "yes",
                        "--save", "", "--protected-mode", "no"],
            "mountPoints": [{"sourceVolume": volume, "containerPath": "/data"}]
        }],
        "volumes": [{"name": volume, "dockerVolumeConfiguration": {
            "scope": "shared", "autoprovision": true, "driver": "local",
            "labels": {"berth.test": e.cluster}}}]
    }));
    e.ok(&[
        "service",
        "create",
        "--cluster",
        &e.cluster,
        "--name",
        "redis",
        "--taskdef",
        &td,
        "--desired",
        "1",
        "--wait",
        "--timeout",
        "60s",
    ]);
    let first = wait_for(Duration::from_secs(30), "redis RUNNING", || {
        e.running().into_iter().next()
    });
    let first_arn = first["taskArn"].as_str().unwrap().to_string();
    let set = wait_for(Duration::from_secs(20), "redis answers SET", || {
        let r = e.redis_cli(&first_arn, &["SET", "greeting", "kept across tasks"]);
        (r.ok && r.stdout.trim() == "OK").then_some(r)
    });
    assert_eq!(set.stdout.trim(), "OK");

    // The volume shows in use by the task, shared, on its node.
    let list = e
        .ok(&["volume", "list", "--cluster", &e.cluster, "-o", "json"])
        .json();
    let vols = list["volumes"].as_array().cloned().unwrap_or_default();
    let v = vols
        .iter()
        .find(|v| v["name"] == volume.as_str())
        .unwrap_or_else(|| panic!("{volume} not listed: {list:#}"));
    assert_eq!(v["scope"], "shared", "{list:#}");
    assert_eq!(v["taskArns"], json!([first_arn]), "{list:#}");
    assert_eq!(v["containerInstanceArn"], first["containerInstanceArn"]);
    let table = e.ok(&["volume", "list", "--cluster", &e.cluster]).stdout;
    assert!(
        table.contains(&volume) && table.contains("shared"),
        "{table}"
    );
    let refused = e.cli(&["volume", "delete", &volume, "--cluster", &e.cluster]);
    assert!(
        !refused.ok && refused.stderr.contains("in use"),
        "{}",
        refused.stderr
    );

    e.ok(&["task", "stop", &first_arn, "--cluster", &e.cluster]);
    let second = wait_for(Duration::from_secs(60), "a replacement RUNNING", || {
        e.running()
            .into_iter()
            .find(|t| t["taskArn"] != first_arn.as_str())
    });
    assert_eq!(
        second["containerInstanceArn"], first["containerInstanceArn"],
        "the replacement runs on the node that holds the volume"
    );
    let second_arn = second["taskArn"].as_str().unwrap().to_string();
    let got = wait_for(Duration::from_secs(20), "redis answers GET", || {
        let r = e.redis_cli(&second_arn, &["GET", "greeting"]);
        (r.ok && !r.stdout.trim().is_empty() && !r.stdout.contains("LOADING")).then_some(r)
    });
    assert_eq!(got.stdout.trim(), "kept across tasks", "{}", got.stderr);
    e.ok(&[
        "service",
        "delete",
        "--cluster",
        &e.cluster,
        "redis",
        "--force",
    ]);
}

#[test]
fn a_bind_mount_is_refused_outside_the_allowed_paths_and_reaches_the_host_inside_them() {
    let image = shell_image();
    let e = env("bind");
    let def = |family: &str, source: &str| {
        json!({
            "family": family,
            "containerDefinitions": [{
                "name": "app", "image": image, "memory": 16, "stopTimeout": 1,
                "command": ["sh", "-c", "echo written by the task > /mnt/out; sleep 30"],
                "mountPoints": [{"sourceVolume": "host", "containerPath": "/mnt"}]
            }],
            "volumes": [{"name": "host", "host": {"sourcePath": source}}]
        })
    };
    let outside = e.dir.path().join("not-allowed");
    std::fs::create_dir_all(&outside).unwrap();
    // Refused at placement: the node's allowed paths travelled in its agent's hello.
    let td = e.register(def("outside", outside.to_str().unwrap()));
    let refused = e.cli(&["task", "run", "--cluster", &e.cluster, "--taskdef", &td]);
    let flag = format!("--allow-host-path {}", outside.display());
    assert!(
        !refused.ok && refused.stderr.contains("HOST_PATH") && refused.stderr.contains(&flag),
        "{}",
        refused.stderr
    );
    assert!(e.tasks("RUNNING").is_empty() && e.tasks("STOPPED").is_empty());
    assert!(!outside.join("out").exists(), "nothing ran");

    let inside = e.allowed.join("app");
    let td = e.register(def("inside", inside.to_str().unwrap()));
    e.ok(&["task", "run", "--cluster", &e.cluster, "--taskdef", &td]);
    let text = wait_for(
        Duration::from_secs(30),
        "the task's file on the host",
        || std::fs::read_to_string(inside.join("out")).ok(),
    );
    assert_eq!(text.trim(), "written by the task");
}

/// Three agents on one Docker engine (so every node sees the one volume Docker holds, and only
/// placement decides): a service of a shared volume stays on the node the volume's first task
/// went to, even against `spread:instanceId`; when that node's agent is lost, the service says
/// so in an event and starts nothing on another node (the volume has no `autoprovision`).
#[test]
fn a_shared_volume_s_service_stays_on_its_node_and_waits_when_that_node_is_lost() {
    use common::cluster::cluster;
    let image = shell_image();
    // Declared first so it drops last, once the cluster's containers are gone.
    let _volumes: VolumeCleanup;
    let mut c = cluster("vol-home");
    _volumes = VolumeCleanup(c.name.clone());
    let volume = format!("{}-data", c.name);
    let made = Command::new("docker")
        .args(["volume", "create", "--label"])
        .arg(format!("berth.test={}", c.name))
        .arg(&volume)
        .output()
        .expect("docker volume create");
    assert!(made.status.success(), "{made:?}");
    let def = json!({
        "family": "keeper",
        "containerDefinitions": [{
            "name": "app", "image": image, "memory": 16, "stopTimeout": 1,
            "command": ["sh", "-c", "sleep 300"],
            "mountPoints": [{"sourceVolume": volume, "containerPath": "/data"}]
        }],
        "volumes": [{"name": volume, "dockerVolumeConfiguration": {
            "scope": "shared", "autoprovision": false, "driver": "local"}}]
    });
    let path = c.dir.path().join("keeper.json");
    std::fs::write(&path, def.to_string()).unwrap();
    let td = register_file(&c.server.grpc, &path);
    c.ok(&[
        "service",
        "create",
        "--cluster",
        &c.name,
        "--name",
        "keeper",
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
    let node_of = |t: &Value| t["containerInstanceArn"].as_str().unwrap_or("").to_string();
    let running = c.running_tasks("keeper");
    assert_eq!(running.len(), 3);
    let home = node_of(&running[0]);
    assert!(
        running.iter().all(|t| node_of(t) == home),
        "every task on the volume's node, spread notwithstanding: {running:#?}"
    );

    let nodes = c.ok(&["node", "list", "-o", "json"]).json();
    let name = nodes["containerInstances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["containerInstanceArn"] == home.as_str())
        .and_then(|n| n["name"].as_str())
        .unwrap()
        .to_string();
    let i: usize = name.trim_start_matches('n').parse().unwrap();
    c.agents[i - 1].kill9();
    let said = wait_for(Duration::from_secs(30), "the service to say why", || {
        c.events("keeper").into_iter().find(|m| {
            m.contains(&format!(
                "shared volume {volume} is on node {name}, which is lost"
            ))
        })
    });
    assert!(said.contains("autoprovision"), "{said}");
    let elsewhere: Vec<Value> = c
        .running_tasks("keeper")
        .into_iter()
        .filter(|t| node_of(t) != home)
        .collect();
    assert!(
        elsewhere.is_empty(),
        "nothing started elsewhere: {elsewhere:#?}"
    );
    c.ok(&[
        "service",
        "delete",
        "--cluster",
        &c.name,
        "keeper",
        "--force",
    ]);
}
