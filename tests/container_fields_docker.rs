//! The whole container on real Docker through `berth dev`: ECS's extended container fields
//! reach the engine and act inside the container, awsvpc tasks share one localhost, bridge tasks
//! reach linked containers by alias, task-level memory is a hard limit. Images are built offline
//! (the demo image, and a busybox shell image); every container is labelled with a per-test
//! cluster and removed even when the test fails.

mod common;

use common::shell::shell_image;
use common::task_env::{inspect_container, TaskEnv};
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

type Env = TaskEnv;

fn env(prefix: &str) -> Env {
    env_with(prefix, &[])
}

fn env_with(prefix: &str, extra: &[&str]) -> Env {
    let mut flags = vec!["--heartbeat", "500ms", "--stop-timeout", "2s"];
    flags.extend_from_slice(extra);
    TaskEnv::start(prefix, &flags)
}

fn inspect(task: &str, container: &str) -> Value {
    inspect_container(task, container)
}

/// A shell loop that fetches `url_host:port/` over plain HTTP with busybox's nc and prints each
/// answer's status line and body (busybox's static wget cannot resolve names in a bare image).
fn fetch_loop(host: &str, port: u16) -> Value {
    json!(["/bin/busybox", "sh", "-c", format!(
        "while true; do (printf 'GET / HTTP/1.0\\r\\nHost: {host}\\r\\n\\r\\n'; sleep 1) | busybox nc -w 2 {host} {port}; echo; sleep 1; done"
    )])
}

#[test]
fn the_fields_reach_docker_and_act_inside_the_container() {
    let e = env("fields");
    let td = e.register(json!({"family": "fields", "containerDefinitions": [{
        "name": "box", "image": shell_image(), "memory": 32,
        "command": ["/bin/busybox", "sh", "-c",
            "echo nofile=$(ulimit -n); if echo x > /probe; then echo root-writable; else echo root-read-only; fi; echo x > /scratch/ok && echo tmpfs-writable; sleep 600"],
        "ulimits": [{"name": "nofile", "softLimit": 4096, "hardLimit": 8192}],
        "linuxParameters": {"initProcessEnabled": true, "capabilities": {"drop": ["ALL"]},
            "tmpfs": [{"containerPath": "/scratch", "size": 16, "mountOptions": ["noexec"]}]},
        "readonlyRootFilesystem": true,
        "extraHosts": [{"hostname": "db.internal", "ipAddress": "10.9.8.7"}],
        "dnsSearchDomains": ["svc.example"],
        "hostname": "box-one",
        "logConfiguration": {"logDriver": "json-file", "options": {"max-size": "1m", "max-file": "2"}}
    }]}));
    let arn = e.run_one(&td);
    e.wait_status(&arn, "RUNNING", Duration::from_secs(20));
    let c = inspect(&arn, "box");
    let hc = &c["HostConfig"];
    assert_eq!(
        hc["Ulimits"],
        json!([{"Name": "nofile", "Soft": 4096, "Hard": 8192}]),
        "{hc:#}"
    );
    assert_eq!(hc["Init"], true);
    assert_eq!(hc["ReadonlyRootfs"], true);
    assert_eq!(hc["Tmpfs"], json!({"/scratch": "size=16m,noexec"}));
    assert_eq!(hc["ExtraHosts"], json!(["db.internal:10.9.8.7"]));
    assert_eq!(hc["DnsSearch"], json!(["svc.example"]));
    assert_eq!(hc["CapDrop"], json!(["ALL"]));
    assert_eq!(hc["LogConfig"]["Type"], "json-file");
    assert_eq!(hc["LogConfig"]["Config"]["max-size"], "1m");
    assert_eq!(c["Config"]["Hostname"], "box-one");
    let out = wait_for(Duration::from_secs(10), "the container's report", || {
        let l = e.logs(&arn, "box");
        l.contains("tmpfs-writable").then_some(l)
    });
    assert!(out.contains("nofile=4096"), "{out}");
    assert!(out.contains("root-read-only"), "{out}");
    assert!(!out.contains("root-writable"), "{out}");
    // The definition reads back with every field, in ECS's names.
    let r = berth(&e.dev.grpc, &["taskdef", "describe", &td, "-o", "json"]);
    assert!(r.ok, "{}", r.stderr);
    let c = &r.json()["taskDefinition"]["containerDefinitions"][0];
    assert_eq!(c["ulimits"][0]["softLimit"], 4096, "{c:#}");
    assert_eq!(c["linuxParameters"]["initProcessEnabled"], true);
    assert_eq!(c["logConfiguration"]["options"]["max-size"], "1m");
}

#[test]
fn an_awsvpc_task_shares_localhost_and_publishes_its_ports_once() {
    let e = env("awsvpc");
    let td = e.register(
        json!({"family": "pod", "networkMode": "awsvpc", "containerDefinitions": [
            {"name": "app", "image": "berth-demo:latest", "memory": 64,
             "environment": [{"name": "MESSAGE", "value": "shared localhost"}],
             "portMappings": [{"containerPort": 80}]},
            {"name": "sidecar", "image": shell_image(), "memory": 16, "essential": false,
             "command": fetch_loop("localhost", 80)}
        ]}),
    );
    let arn = e.run_one(&td);
    let t = e.wait_status(&arn, "RUNNING", Duration::from_secs(20));
    let logs = wait_for(
        Duration::from_secs(20),
        "the sidecar to reach the app",
        || {
            let l = e.logs(&arn, "sidecar");
            l.contains("message=shared localhost").then_some(l)
        },
    );
    assert!(logs.contains("200 OK"), "{logs}");
    // One network namespace: the sidecar joined the app's, and only the app publishes.
    let side = inspect(&arn, "sidecar");
    let app = inspect(&arn, "app");
    let app_id = app["Id"].as_str().unwrap();
    assert_eq!(
        side["HostConfig"]["NetworkMode"],
        format!("container:{app_id}"),
        "{:#}",
        side["HostConfig"]
    );
    let published = app["NetworkSettings"]["Ports"]["80/tcp"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!published.is_empty(), "{:#}", app["NetworkSettings"]);
    // The task's port answers from the host, and describe-tasks shows it on the app.
    let port = t["containers"][0]["networkBindings"][0]["hostPort"]
        .as_u64()
        .expect("the app's binding") as u16;
    let (status, body) = wait_for(Duration::from_secs(10), "the published port", || {
        http_get(port, "/")
    });
    assert_eq!(status, 200);
    assert!(body.contains("shared localhost"), "{body}");
    let side_bindings = t["containers"][1]["networkBindings"].as_array();
    assert!(side_bindings.is_none_or(|b| b.is_empty()), "{t:#}");
}

#[test]
fn a_bridge_task_reaches_a_linked_container_by_its_alias() {
    let e = env("links");
    let td = e.register(
        json!({"family": "linked", "networkMode": "bridge", "containerDefinitions": [
            {"name": "sidecar", "image": shell_image(), "memory": 16, "essential": false,
             "links": ["app:backend"], "command": fetch_loop("backend", 80)},
            {"name": "app", "image": "berth-demo:latest", "memory": 64,
             "environment": [{"name": "MESSAGE", "value": "linked by name"}]}
        ]}),
    );
    let arn = e.run_one(&td);
    e.wait_status(&arn, "RUNNING", Duration::from_secs(20));
    let logs = wait_for(
        Duration::from_secs(20),
        "the sidecar to reach backend",
        || {
            let l = e.logs(&arn, "sidecar");
            l.contains("message=linked by name").then_some(l)
        },
    );
    assert!(logs.contains("200 OK"), "{logs}");
    let side = inspect(&arn, "sidecar");
    let id = arn.rsplit('/').next().unwrap();
    assert_eq!(
        side["HostConfig"]["Links"],
        json!([format!("/berth-{id}-app:/berth-{id}-sidecar/backend")])
    );
}

#[test]
fn a_port_two_awsvpc_containers_listen_on_is_refused_naming_both() {
    let e = env("collide");
    let path = e.dir.path().join("collide.json");
    std::fs::write(
        &path,
        json!({"family": "collide", "networkMode": "awsvpc", "containerDefinitions": [
            {"name": "app", "image": "berth-demo:latest", "portMappings": [{"containerPort": 8080}]},
            {"name": "envoy", "image": "berth-demo:latest", "portMappings": [{"containerPort": 8080}]}
        ]})
        .to_string(),
    )
    .unwrap();
    let r = berth(
        &e.dev.grpc,
        &["taskdef", "register", "-f", path.to_str().unwrap()],
    );
    assert!(!r.ok);
    assert!(
        r.stderr
            .contains("containerDefinitions[1].portMappings[0].containerPort"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("\"app\"") && r.stderr.contains("\"envoy\""),
        "{}",
        r.stderr
    );
    let list = berth(&e.dev.grpc, &["taskdef", "list", "-o", "json"]);
    assert!(!list.stdout.contains("collide"), "{}", list.stdout);
}

#[test]
fn task_memory_is_a_hard_limit_and_the_stop_reason_says_so() {
    let e = env("oom");
    // The container sets no limit of its own; the task's 64 MiB is its hard limit. Doubling a
    // shell variable reaches 200 MiB within a few seconds.
    let td = e.register(json!({"family": "hungry", "memory": "64", "containerDefinitions": [{
        "name": "eater", "image": shell_image(),
        "command": ["/bin/busybox", "sh", "-c",
            "x=0123456789abcdef; while [ ${#x} -lt 209715200 ]; do x=$x$x; done; echo survived; sleep 5"]
    }]}));
    let arn = e.run_one(&td);
    let t = e.wait_status(&arn, "STOPPED", Duration::from_secs(60));
    let c = &t["containers"][0];
    assert!(
        c["reason"]
            .as_str()
            .unwrap_or("")
            .contains("OutOfMemoryError"),
        "{t:#}"
    );
    assert!(
        t["stoppedReason"]
            .as_str()
            .unwrap_or("")
            .contains("OutOfMemory"),
        "{t:#}"
    );
    assert_eq!(c["exitCode"], 137, "{t:#}");
}

fn privileged_box(e: &Env) -> String {
    e.register(json!({"family": "priv", "containerDefinitions": [{
        "name": "box", "image": shell_image(), "memory": 16, "privileged": true,
        "command": ["/bin/busybox", "sleep", "600"]}]}))
}

#[test]
fn a_privileged_task_is_refused_on_a_node_that_does_not_allow_it() {
    let e = env("noprivs");
    let td = privileged_box(&e);
    e.wait_node_connected();
    let reply = e.run(&td);
    assert_eq!(reply["tasks"].as_array().map_or(0, Vec::len), 0, "{reply}");
    let f = &reply["failures"][0];
    assert_eq!(f["reason"], "ATTRIBUTE", "{reply}");
    let detail = f["detail"].as_str().unwrap();
    assert!(detail.contains("privileged"), "{detail}");
    assert!(
        detail.contains("containerDefinitions[0].privileged"),
        "{detail}"
    );
    assert!(detail.contains("--allow-privileged"), "{detail}");
    assert!(containers_with_label(&format!("berth.cluster={}", e.cluster)).is_empty());
}

#[test]
fn a_privileged_task_reaches_docker_privileged_on_a_node_that_allows_it() {
    let e = env_with("privs", &["--allow-privileged"]);
    let td = privileged_box(&e);
    let arn = e.run_one(&td);
    let t = wait_for(Duration::from_secs(20), "the task to start or stop", || {
        let t = e.describe(&arn);
        (t["lastStatus"] == "RUNNING" || t["lastStatus"] == "STOPPED").then_some(t)
    });
    // Placed and handed to Docker privileged. An engine that itself runs unprivileged (as in
    // some CI sandboxes) then fails to start it: that is the engine's refusal, not Berth's.
    assert_eq!(inspect(&arn, "box")["HostConfig"]["Privileged"], true);
    if t["lastStatus"] == "STOPPED" {
        let why = t["stoppedReason"].as_str().unwrap_or("");
        assert!(why.starts_with("CannotStartContainerError"), "{t:#}");
        assert!(!why.contains("--allow-privileged"), "{t:#}");
    }
}

#[test]
fn a_restart_policy_restarts_the_container_in_place_and_counts_it() {
    let e = env("restart");
    // Each run lasts past restartAttemptPeriod (ECS's minimum, 60 s), so each exit restarts.
    let td = e.register(json!({"family": "flaky", "containerDefinitions": [{
        "name": "flaky", "image": shell_image(), "memory": 16,
        "command": ["/bin/busybox", "sh", "-c", "echo run; sleep 61; exit 1"],
        "restartPolicy": {"enabled": true, "ignoredExitCodes": [0], "restartAttemptPeriod": 60}
    }]}));
    let arn = e.run_one(&td);
    let first = e.wait_status(&arn, "RUNNING", Duration::from_secs(20));
    let id = first["containers"][0]["runtimeId"].clone();
    let t = wait_for(Duration::from_secs(170), "two in-place restarts", || {
        let t = e.describe(&arn);
        assert_eq!(t["lastStatus"], "RUNNING", "the task stopped: {t:#}");
        (t["containers"][0]["restartCount"] == 2).then_some(t)
    });
    assert_eq!(
        t["containers"][0]["runtimeId"], id,
        "restarted in place: {t:#}"
    );
    assert_eq!(t["desiredStatus"], "RUNNING");
    let runs = e.logs(&arn, "flaky").matches("run").count();
    assert_eq!(runs, 3, "one first run and two restarts");
}

#[test]
fn a_container_whose_dependency_never_gets_healthy_fails_at_its_start_timeout() {
    let e = env("starttimeout");
    let td = e.register(json!({"family": "waits", "containerDefinitions": [
        {"name": "db", "image": shell_image(), "memory": 16, "essential": false,
         "command": ["/bin/busybox", "sleep", "600"],
         "healthCheck": {"command": ["CMD-SHELL", "exit 1"], "interval": 5, "retries": 10}},
        {"name": "app", "image": shell_image(), "memory": 16, "startTimeout": 3,
         "command": ["/bin/busybox", "sleep", "600"],
         "dependsOn": [{"containerName": "db", "condition": "HEALTHY"}]}
    ]}));
    let arn = e.run_one(&td);
    let t = e.wait_status(&arn, "STOPPED", Duration::from_secs(20));
    assert_eq!(t["stopCode"], "TaskFailedToStart", "{t:#}");
    let why = t["stoppedReason"].as_str().unwrap();
    assert!(why.contains("startTimeout of 3 s"), "{why}");
    assert!(why.contains("app"), "{why}");
}

#[test]
fn a_gpu_task_is_refused_when_no_node_reports_gpus() {
    if std::path::Path::new("/dev/nvidia0").exists() {
        eprintln!("this host has a GPU: the refusal is not what it would see");
        return;
    }
    let e = env("nogpu");
    let td = e.register(json!({"family": "gpu", "containerDefinitions": [{
        "name": "train", "image": shell_image(), "memory": 16,
        "resourceRequirements": [{"type": "GPU", "value": "1"}],
        "command": ["/bin/busybox", "sleep", "600"]}]}));
    e.wait_node_connected();
    let reply = e.run(&td);
    let f = &reply["failures"][0];
    assert_eq!(f["reason"], "RESOURCE:GPU", "{reply}");
    let detail = f["detail"].as_str().unwrap();
    assert!(
        detail.contains("containerDefinitions[0].resourceRequirements"),
        "{detail}"
    );
}
