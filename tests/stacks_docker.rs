//! Stacks end to end on the real Docker engine: `berth apply -f` brings a file's task definitions
//! and services up, applying it again changes nothing, a changed image rolls out, an entry
//! removed from the file is deleted, and `berth delete -f` leaves nothing running.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn stack(cluster: &str, message: &str, services: Value) -> Value {
    json!({
        "cluster": cluster,
        "taskDefinitions": [{
            "family": format!("{cluster}-web"),
            "containerDefinitions": [{
                "name": "web",
                "image": "berth-demo:latest",
                "memory": 32,
                "portMappings": [{"containerPort": 80}],
                "environment": [{"name": "MESSAGE", "value": message}],
                "stopTimeout": 5
            }]
        }],
        "services": services
    })
}

fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string_pretty(v).unwrap()).unwrap();
    p
}

fn revisions(server: &str, family: &str) -> usize {
    let r = berth(
        server,
        &[
            "taskdef", "list", "--family", family, "--status", "ALL", "-o", "json",
        ],
    );
    assert!(r.ok, "{}", r.stderr);
    r.json()["taskDefinitions"]
        .as_array()
        .map_or(0, |a| a.len())
}

fn running(server: &str, cluster: &str, service: &str) -> Value {
    let r = berth(
        server,
        &[
            "service",
            "describe",
            service,
            "--cluster",
            cluster,
            "-o",
            "json",
        ],
    );
    assert!(r.ok, "{}", r.stderr);
    r.json()["service"].clone()
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

#[test]
fn apply_brings_a_stack_up_reapplying_changes_nothing_and_delete_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = unique_cluster("stack");
    let _cleanup = ContainerCleanup {
        cluster: cluster.clone(),
    };
    let dev = ServerProcess::start_with("dev", dir.path(), FAST);
    let s = dev.grpc.as_str();
    assert!(berth(s, &["cluster", "create", &cluster]).ok);
    let family = format!("{cluster}-web");
    let web = json!([{"name": "web", "taskDefinition": family, "desiredCount": 2}]);
    let file = write(dir.path(), "shop.json", &stack(&cluster, "v1", web.clone()));
    let f = file.to_str().unwrap();

    // First apply: one revision, a service of 2 that becomes stable.
    let r = berth(s, &["apply", "-f", f, "--wait", "--timeout", "90s"]);
    assert!(r.ok, "apply: {}", r.stderr);
    assert!(r.stdout.contains("created"), "{}", r.stdout);
    let svc = running(s, &cluster, "web");
    assert_eq!(svc["runningCount"], 2, "{svc}");
    assert_eq!(running_containers(&cluster), 2);
    assert_eq!(revisions(s, &family), 1);
    let deployment = svc["deployments"][0]["id"].clone();
    let r = berth(s, &["service", "describe", "web", "--cluster", &cluster]);
    assert!(r.stdout.contains("Stack            shop"), "{}", r.stdout);

    // Again: no new revision, no new deployment, and it says so.
    let r = berth(s, &["apply", "-f", f, "-o", "json"]);
    assert!(r.ok, "re-apply: {}", r.stderr);
    let actions: Vec<String> = r.json()["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(actions, ["unchanged", "unchanged"]);
    let r = berth(s, &["apply", "-f", f]);
    assert!(r.stdout.contains("no changes"), "{}", r.stdout);
    assert_eq!(revisions(s, &family), 1);
    assert_eq!(
        running(s, &cluster, "web")["deployments"][0]["id"],
        deployment
    );

    // The stack is remembered durably: after kill -9 and a restart the same file is still no
    // change.
    drop(dev);
    let dev = ServerProcess::start_with("dev", dir.path(), FAST);
    let s = dev.grpc.as_str();
    let r = berth(s, &["apply", "-f", f]);
    assert!(
        r.stdout.contains("no changes"),
        "after a restart: {}{}",
        r.stdout,
        r.stderr
    );
    assert_eq!(revisions(s, &family), 1);

    // A bad file names the field and changes nothing, even the good parts of it.
    let bad = write(
        dir.path(),
        "shop.json",
        &stack(
            &cluster,
            "v2",
            json!([
                {"name": "web", "taskDefinition": family, "desiredCount": 2},
                {"name": "api", "taskDefinition": family, "desiredCount": -1}
            ]),
        ),
    );
    let r = berth(s, &["apply", "-f", bad.to_str().unwrap()]);
    assert!(!r.ok);
    assert!(
        r.stderr.contains("services[1].desiredCount"),
        "{}",
        r.stderr
    );
    assert_eq!(
        revisions(s, &family),
        1,
        "a rejected file registered nothing"
    );

    // A changed container rolls out as a new revision; a second service joins.
    let two = json!([
        {"name": "web", "taskDefinition": family, "desiredCount": 2},
        {"name": "api", "taskDefinition": family, "desiredCount": 1}
    ]);
    write(dir.path(), "shop.json", &stack(&cluster, "v2", two));
    let r = berth(s, &["apply", "-f", f, "--wait", "--timeout", "90s"]);
    assert!(r.ok, "apply v2: {}", r.stderr);
    assert_eq!(revisions(s, &family), 2);
    let svc = running(s, &cluster, "web");
    assert!(
        svc["taskDefinition"].as_str().unwrap().ends_with(":2"),
        "{svc}"
    );
    assert_ne!(svc["deployments"][0]["id"], deployment);
    assert_eq!(running(s, &cluster, "api")["runningCount"], 1);

    // Removed from the file: deleted on the next apply.
    write(dir.path(), "shop.json", &stack(&cluster, "v2", web));
    let r = berth(s, &["apply", "-f", f]);
    assert!(r.ok, "{}", r.stderr);
    assert!(
        r.stdout.contains("api") && r.stdout.contains("deleting"),
        "{}",
        r.stdout
    );
    wait_for(Duration::from_secs(60), "api to be INACTIVE", || {
        (running(s, &cluster, "api")["status"] == "INACTIVE").then_some(())
    });

    // Delete: services drain first, then no service and no container is left.
    let r = berth(s, &["delete", "-f", f, "--timeout", "90s"]);
    assert!(r.ok, "delete: {}", r.stderr);
    assert!(r.stdout.contains("deregistered"), "{}", r.stdout);
    let list = berth(s, &["service", "list", "--cluster", &cluster, "-o", "json"]);
    assert!(
        list.json()["services"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "{}",
        list.stdout
    );
    wait_for(Duration::from_secs(30), "no running task container", || {
        (running_containers(&cluster) == 0).then_some(())
    });
    let r = berth(s, &["delete", "-f", f]);
    assert!(!r.ok, "the stack is gone");
}

#[test]
fn a_yaml_stack_applies_like_json() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = unique_cluster("yamlstack");
    let _cleanup = ContainerCleanup {
        cluster: cluster.clone(),
    };
    let dev = ServerProcess::start_with("dev", dir.path(), FAST);
    let s = dev.grpc.as_str();
    assert!(berth(s, &["cluster", "create", &cluster]).ok);
    let yaml = format!(
        "name: tiny\ncluster: {cluster}\ntaskDefinitions:\n  - family: {cluster}-t\n    containerDefinitions:\n      - name: web\n        image: berth-demo:latest\n        memory: 32\nservices:\n  - name: t\n    taskDefinition: {cluster}-t\n    desiredCount: 1\n"
    );
    let p = dir.path().join("stack.yml");
    std::fs::write(&p, yaml).unwrap();
    let f = p.to_str().unwrap();
    let r = berth(s, &["apply", "-f", f, "--wait", "--timeout", "60s"]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(running(s, &cluster, "t")["runningCount"], 1);
    let r = berth(s, &["apply", "-f", f]);
    assert!(r.stdout.contains("no changes"), "{}", r.stdout);
    let r = berth(s, &["delete", "-f", f, "--timeout", "60s"]);
    assert!(r.ok, "{}", r.stderr);
    assert!(r.stdout.contains("stack tiny deleted"), "{}", r.stdout);
}
