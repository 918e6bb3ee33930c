//! Tasks on the real Docker engine through `berth dev`: a dynamic port answering over HTTP,
//! exit codes, essential and non-essential exits, dependsOn, health, stop, logs, placement
//! failures, and adoption after SIGKILL. Every container is labelled with a per-test cluster and
//! removed even when the test fails.

mod common;

use common::task_env::TaskEnv;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

type Env = TaskEnv;

fn env(prefix: &str) -> Env {
    env_with(prefix, &[])
}

fn env_with(prefix: &str, extra: &[&str]) -> Env {
    let mut flags = DEV_FLAGS.to_vec();
    flags.extend_from_slice(extra);
    TaskEnv::start(prefix, &flags)
}

const DEV_FLAGS: &[&str] = &[
    "--heartbeat",
    "500ms",
    "--heartbeat-timeout",
    "3s",
    "--stop-timeout",
    "5s",
];

fn demo(family: &str, container: Value) -> Value {
    let mut c = json!({"name": "web", "image": "berth-demo:latest", "memory": 64,
        "portMappings": [{"containerPort": 80, "hostPort": 0}]});
    c.as_object_mut()
        .unwrap()
        .extend(container.as_object().unwrap().clone());
    json!({"family": family, "containerDefinitions": [c]})
}

fn host_port(task: &Value, container: usize) -> u16 {
    task["containers"][container]["networkBindings"][0]["hostPort"]
        .as_u64()
        .unwrap() as u16
}

#[test]
fn a_dynamic_port_task_runs_within_10_s_and_answers_over_http() {
    let e = env("http");
    let td = e.register(demo(
        "web",
        json!({"environment": [{"name": "MESSAGE", "value": "hi there"}]}),
    ));
    let started = std::time::Instant::now();
    let arn = e.run_one(&td);
    let t = e.wait_status(&arn, "RUNNING", Duration::from_secs(10));
    eprintln!("RUNNING after {:?}", started.elapsed());
    assert!(t["containerInstanceArn"]
        .as_str()
        .unwrap()
        .contains(":container-instance/"));
    assert!(t["startedAt"].is_string());
    let port = host_port(&t, 0);
    assert_eq!(
        t["containers"][0]["networkBindings"][0]["containerPort"],
        80
    );
    let (status, body) = wait_for(Duration::from_secs(10), "the demo server to answer", || {
        http_get(port, "/")
    });
    assert_eq!(status, 200);
    let id = arn.rsplit('/').next().unwrap();
    assert!(body.contains(id), "{body}");
    assert!(body.contains("message=hi there"), "{body}");
    // The node shows the task's reservation.
    let nodes = berth(&e.dev.grpc, &["node", "list", "-o", "json"]).json();
    let node = &nodes["containerInstances"][0];
    assert_eq!(node["agentConnected"], true);
    assert_eq!(node["runningTasksCount"], 1);
}

#[test]
fn an_essential_container_exit_stops_the_task_with_its_exit_code() {
    let e = env("exit");
    let td = e.register(demo(
        "exits",
        json!({"command": ["demo", "exit", "42"], "portMappings": []}),
    ));
    let arn = e.run_one(&td);
    let t = e.wait_status(&arn, "STOPPED", Duration::from_secs(20));
    assert_eq!(t["containers"][0]["exitCode"], 42);
    assert_eq!(t["stopCode"], "EssentialContainerExited");
    assert_eq!(t["stoppedReason"], "Essential container in task exited");
    assert_eq!(t["desiredStatus"], "STOPPED");
    let stopped = berth(
        &e.dev.grpc,
        &[
            "task",
            "list",
            "--cluster",
            &e.cluster,
            "--desired-status",
            "STOPPED",
            "-o",
            "json",
        ],
    )
    .json();
    assert_eq!(stopped["tasks"].as_array().unwrap().len(), 1);
}

#[test]
fn a_non_essential_exit_leaves_the_task_running_with_its_exit_code() {
    let e = env("sidecar");
    let def = json!({"family": "side", "containerDefinitions": [
        {"name": "web", "image": "berth-demo:latest", "memory": 64},
        {"name": "job", "image": "berth-demo:latest", "essential": false, "command": ["demo", "exit", "3"]}
    ]});
    let td = e.register(def);
    let arn = e.run_one(&td);
    let t = wait_for(
        Duration::from_secs(20),
        "the non-essential exit to be reported",
        || {
            let t = e.describe(&arn);
            (t["containers"][1]["exitCode"] == 3).then_some(t)
        },
    );
    assert_eq!(t["lastStatus"], "RUNNING");
    assert_eq!(t["containers"][1]["lastStatus"], "STOPPED");
    assert_eq!(t["containers"][0]["lastStatus"], "RUNNING");
    // Still running a while later.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(e.describe(&arn)["lastStatus"], "RUNNING");
}

#[test]
fn task_stop_ends_stopped_with_the_reason_given() {
    let e = env("stop");
    let td = e.register(demo("stoppable", json!({})));
    let arn = e.run_one(&td);
    e.wait_status(&arn, "RUNNING", Duration::from_secs(15));
    let r = berth(
        &e.dev.grpc,
        &["task", "stop", &arn, "--reason", "maintenance window"],
    );
    assert!(r.ok, "{}", r.stderr);
    let t = e.wait_status(&arn, "STOPPED", Duration::from_secs(15));
    assert_eq!(t["stoppedReason"], "maintenance window");
    assert_eq!(t["stopCode"], "UserInitiated");
    // The demo server exits 0 on SIGTERM: it was stopped, not killed.
    assert_eq!(t["containers"][0]["exitCode"], 0);
    let id = arn.rsplit('/').next().unwrap();
    let running = std::process::Command::new("docker")
        .args(["ps", "-q", "--filter", &format!("label=berth.task={id}")])
        .output()
        .unwrap();
    assert!(running.stdout.is_empty(), "a container still runs");
}

#[test]
fn depends_on_starts_in_order_and_a_failed_dependency_fails_the_task() {
    let e = env("deps");
    let ok = json!({"family": "ordered", "containerDefinitions": [
        {"name": "web", "image": "berth-demo:latest", "memory": 64,
         "dependsOn": [{"containerName": "init", "condition": "SUCCESS"}]},
        {"name": "init", "image": "berth-demo:latest", "essential": false, "command": ["demo", "exit", "0", "--after", "1"]}
    ]});
    let td = e.register(ok);
    let arn = e.run_one(&td);
    let t = e.wait_status(&arn, "RUNNING", Duration::from_secs(20));
    assert_eq!(t["containers"][1]["exitCode"], 0, "{t}");
    assert_eq!(t["containers"][0]["lastStatus"], "RUNNING");

    let bad = json!({"family": "broken", "containerDefinitions": [
        {"name": "web", "image": "berth-demo:latest", "memory": 64,
         "dependsOn": [{"containerName": "init", "condition": "SUCCESS"}]},
        {"name": "init", "image": "berth-demo:latest", "essential": false, "command": ["demo", "exit", "1"]}
    ]});
    let td = e.register(bad);
    let arn = e.run_one(&td);
    let t = e.wait_status(&arn, "STOPPED", Duration::from_secs(20));
    assert_eq!(t["stopCode"], "TaskFailedToStart");
    assert!(
        t["stoppedReason"]
            .as_str()
            .unwrap()
            .contains("init exited with code 1"),
        "{t}"
    );
    assert_eq!(
        t["containers"][0]["lastStatus"], "STOPPED",
        "web never started: {t}"
    );
}

#[test]
fn health_checks_report_healthy_and_unhealthy() {
    let e = env("health");
    let check = json!({"command": ["CMD", "/berth", "demo", "check", "http://127.0.0.1:80/health"],
        "interval": 5, "timeout": 2, "retries": 1, "startPeriod": 0});
    let good = e.register(demo("healthy", json!({"healthCheck": check})));
    let bad = e.register(demo(
        "sick",
        json!({"healthCheck": check, "environment": [{"name": "FAIL_HEALTH", "value": "1"}]}),
    ));
    let a = e.run_one(&good);
    let b = e.run_one(&bad);
    wait_for(Duration::from_secs(30), "HEALTHY", || {
        (e.describe(&a)["healthStatus"] == "HEALTHY").then_some(())
    });
    let t = wait_for(Duration::from_secs(30), "UNHEALTHY", || {
        let t = e.describe(&b);
        (t["healthStatus"] == "UNHEALTHY").then_some(t)
    });
    assert_eq!(t["containers"][0]["healthStatus"], "UNHEALTHY");
}

#[test]
fn logs_stream_the_container_output() {
    let e = env("logs");
    let td = e.register(demo("chatty", json!({})));
    let arn = e.run_one(&td);
    let t = e.wait_status(&arn, "RUNNING", Duration::from_secs(15));
    let port = host_port(&t, 0);
    wait_for(Duration::from_secs(10), "a request", || http_get(port, "/"));
    let out = wait_for(Duration::from_secs(10), "logs", || {
        let r = berth(&e.dev.grpc, &["logs", &arn, "--tail", "50"]);
        (r.ok && r.stdout.contains("GET / 200")).then_some(r.stdout)
    });
    assert!(out.contains("berth-demo listening"), "{out}");
    let bad = berth(&e.dev.grpc, &["logs", &arn, "--container", "nope"]);
    assert!(!bad.ok);
    assert!(
        bad.stderr.contains("not a container of this task"),
        "{}",
        bad.stderr
    );
}

#[test]
fn a_task_needing_more_memory_than_any_node_has_is_a_resource_memory_failure() {
    let e = env("memory");
    let td = e.register(demo("huge", json!({"memory": 4_000_000})));
    let reply = e.run(&td);
    assert_eq!(reply["tasks"], Value::Null, "{reply}");
    assert_eq!(reply["failures"][0]["reason"], "RESOURCE:MEMORY", "{reply}");
    assert!(reply["failures"][0]["arn"]
        .as_str()
        .unwrap()
        .ends_with("huge:1"));
    // The table form says so and exits non-zero.
    let r = berth(
        &e.dev.grpc,
        &["task", "run", "--cluster", &e.cluster, "--taskdef", &td],
    );
    assert!(!r.ok);
    assert!(r.stderr.contains("RESOURCE:MEMORY"), "{}", r.stderr);
}

#[test]
fn an_image_that_cannot_be_pulled_fails_to_start_with_dockers_error() {
    let e = env("pull");
    let td = e.register(demo(
        "unpullable",
        json!({"image": "127.0.0.1:1/berth-missing:never"}),
    ));
    let arn = e.run_one(&td);
    let t = e.wait_status(&arn, "STOPPED", Duration::from_secs(30));
    assert_eq!(t["stopCode"], "TaskFailedToStart");
    assert!(
        t["stoppedReason"]
            .as_str()
            .unwrap()
            .contains("CannotPullContainerError"),
        "{t}"
    );
}

#[test]
fn sigkill_of_dev_and_a_restart_adopts_the_running_container() {
    let mut e = env("adopt");
    let td = e.register(demo("adopted", json!({})));
    let arn = e.run_one(&td);
    let before = e.wait_status(&arn, "RUNNING", Duration::from_secs(15));
    let runtime_id = before["containers"][0]["runtimeId"]
        .as_str()
        .unwrap()
        .to_string();
    e.dev.kill9();
    let id = arn.rsplit('/').next().unwrap().to_string();
    // The container outlives the agent.
    assert_eq!(
        containers_with_label(&format!("berth.task={id}")),
        vec![runtime_id.clone()]
    );
    e.dev = ServerProcess::start_with("dev", e.dir.path(), DEV_FLAGS);
    let after = e.wait_status(&arn, "RUNNING", Duration::from_secs(15));
    // Let the restarted agent's runner settle, then check it did not start a second container.
    std::thread::sleep(Duration::from_secs(2));
    let after2 = e.describe(&arn);
    assert_eq!(after2["lastStatus"], "RUNNING");
    assert_eq!(after["containers"][0]["runtimeId"], runtime_id);
    assert_eq!(after2["containers"][0]["runtimeId"], runtime_id);
    assert_eq!(
        containers_with_label(&format!("berth.task={id}")),
        vec![runtime_id]
    );
    let port = host_port(&after2, 0);
    assert_eq!(http_get(port, "/").map(|r| r.0), Some(200));
}

#[test]
fn a_stopped_task_stays_for_the_retention_then_its_record_and_containers_go() {
    let e = env_with("retention", &["--task-retention", "3s"]);
    let td = e.register(demo("brief", json!({})));
    let arn = e.run_one(&td);
    e.wait_status(&arn, "RUNNING", Duration::from_secs(15));
    assert!(berth(&e.dev.grpc, &["task", "stop", &arn]).ok);
    e.wait_status(&arn, "STOPPED", Duration::from_secs(15));
    let id = arn.rsplit('/').next().unwrap().to_string();
    assert_eq!(
        containers_with_label(&format!("berth.task={id}")).len(),
        1,
        "kept while retained"
    );
    wait_for(
        Duration::from_secs(20),
        "the stopped task to be forgotten",
        || {
            let r = berth(&e.dev.grpc, &["task", "describe", &arn]);
            (!r.ok && r.stderr.contains("TaskNotFoundException")).then_some(())
        },
    );
    wait_for(
        Duration::from_secs(20),
        "its container to be removed",
        || {
            containers_with_label(&format!("berth.task={id}"))
                .is_empty()
                .then_some(())
        },
    );
}

#[test]
fn a_running_container_of_a_task_the_control_plane_does_not_want_is_stopped() {
    let e = env("orphan");
    let nodes = berth(&e.dev.grpc, &["node", "list", "-o", "json"]).json();
    let node = nodes["containerInstances"][0]["ec2InstanceId"]
        .as_str()
        .unwrap()
        .to_string();
    let arn = format!(
        "arn:aws:ecs:us-east-1:000000000000:task/{}/feedface",
        e.cluster
    );
    // Another test's `berth dev` may be re-tagging berth-demo:latest this very moment: retry.
    let run = || {
        std::process::Command::new("docker")
            .args(["run", "-d", "--label", &format!("berth.node={node}")])
            .args(["--label", &format!("berth.cluster={}", e.cluster)])
            .args([
                "--label",
                &format!("berth.task-arn={arn}"),
                "--label",
                "berth.task=feedface",
            ])
            .arg("berth-demo:latest")
            .output()
            .unwrap()
    };
    let out = wait_for(
        Duration::from_secs(10),
        "docker run of a stray container",
        || {
            let out = run();
            if !out.status.success() {
                eprintln!("docker run: {}", String::from_utf8_lossy(&out.stderr));
            }
            out.status.success().then_some(out)
        },
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    wait_for(
        Duration::from_secs(20),
        "the unwanted container to be stopped",
        || {
            let o = std::process::Command::new("docker")
                .args(["inspect", "-f", "{{.State.Running}}", &id])
                .output()
                .unwrap();
            (String::from_utf8_lossy(&o.stdout).trim() == "false").then_some(())
        },
    );
}
