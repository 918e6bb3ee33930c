//! The whole container through the ECS API alone (`aws ecs`), on real Docker under `berth dev`:
//! register-task-definition takes ECS's extended container fields and describe-task-definition
//! gives them back; awslogs output stays readable through `berth logs`; run-task overrides
//! (container cpu, memory, memoryReservation; task cpu and memory) reach the container and show
//! under `overrides` in describe-tasks; a bad override is refused naming its place.

mod common;

use common::aws::*;
use common::shell::shell_image;
use common::task_env::inspect_container;
use common::*;
use serde_json::json;
use std::process::Command;
use std::time::Duration;

#[test]
fn the_whole_container_through_aws_ecs_with_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = unique_cluster("ecs-whole");
    let _cleanup = ContainerCleanup {
        cluster: cluster.clone(),
    };
    let dev = ServerProcess::start_with("dev", dir.path(), FAST);
    let http = dev.http.as_str();
    let c = Creds::default();
    let ecs = |args: &[&str]| aws_ok(http, &c, args);
    let cl = cluster.as_str();
    ecs(&["create-cluster", "--cluster-name", cl]);
    let file = dir.path().join("whole.json");
    std::fs::write(
        &file,
        json!({
            "family": "whole", "networkMode": "bridge", "pidMode": "task", "ipcMode": "task",
            "containerDefinitions": [{
                "name": "box", "image": shell_image(), "memory": 64, "cpu": 64,
                "command": ["/bin/busybox", "sh", "-c", "echo hello-awslogs; sleep 600"],
                "ulimits": [{"name": "nofile", "softLimit": 4096, "hardLimit": 8192}],
                "linuxParameters": {"initProcessEnabled": true, "sharedMemorySize": 32,
                    "capabilities": {"add": ["NET_ADMIN"], "drop": ["MKNOD"]}},
                "systemControls": [{"namespace": "net.core.somaxconn", "value": "512"}],
                "logConfiguration": {"logDriver": "awslogs",
                    "options": {"awslogs-group": "/ecs/whole", "awslogs-region": "us-east-1"}},
                "restartPolicy": {"enabled": true, "ignoredExitCodes": [0], "restartAttemptPeriod": 60},
                "interactive": true, "pseudoTerminal": false
            }]
        })
        .to_string(),
    )
    .unwrap();
    let input = format!("file://{}", file.display());
    ecs(&["register-task-definition", "--cli-input-json", &input]);
    let d = ecs(&["describe-task-definition", "--task-definition", "whole"]);
    let td = &d["taskDefinition"];
    assert_eq!(td["pidMode"], "task", "{td:#}");
    assert_eq!(td["ipcMode"], "task");
    let cd = &td["containerDefinitions"][0];
    assert_eq!(cd["ulimits"][0]["hardLimit"], 8192, "{cd:#}");
    assert_eq!(cd["linuxParameters"]["sharedMemorySize"], 32);
    assert_eq!(cd["logConfiguration"]["logDriver"], "awslogs");
    assert_eq!(cd["restartPolicy"]["restartAttemptPeriod"], 60);
    assert_eq!(cd["systemControls"][0]["value"], "512");
    // What the definition does not set is absent, as in ECS.
    for unset in [
        "links",
        "hostname",
        "extraHosts",
        "privileged",
        "readonlyRootFilesystem",
    ] {
        assert!(cd.get(unset).is_none(), "{unset}: {cd:#}");
    }

    // A bad override is refused where the request set it, and nothing runs.
    let bad =
        json!({"containerOverrides": [{"name": "box", "memory": 32, "memoryReservation": 48}]});
    let r = aws(
        http,
        &c,
        &[
            "run-task",
            "--cluster",
            cl,
            "--task-definition",
            "whole",
            "--overrides",
            &bad.to_string(),
        ],
    );
    assert!(!r.ok);
    assert!(
        r.stderr
            .contains("overrides.containerOverrides[0].memoryReservation"),
        "{}",
        r.stderr
    );

    let overrides = json!({"cpu": "512", "memory": "256",
        "containerOverrides": [{"name": "box", "cpu": 100, "memory": 128, "memoryReservation": 96}]});
    let run = ecs(&[
        "run-task",
        "--cluster",
        cl,
        "--task-definition",
        "whole",
        "--overrides",
        &overrides.to_string(),
    ]);
    assert_eq!(run["failures"], json!([]), "{run}");
    let task = run["tasks"][0]["taskArn"].as_str().unwrap().to_string();
    ecs(&["wait", "tasks-running", "--cluster", cl, "--tasks", &task]);
    let t = &ecs(&["describe-tasks", "--cluster", cl, "--tasks", &task])["tasks"][0];
    assert_eq!(t["overrides"]["cpu"], "512", "{t:#}");
    assert_eq!(t["overrides"]["memory"], "256");
    assert_eq!(t["overrides"]["containerOverrides"][0]["memory"], 128);
    assert_eq!(t["memory"], "256");
    assert_eq!(t["cpu"], "512");
    let hc = inspect_container(&task, "box")["HostConfig"].clone();
    assert_eq!(hc["Memory"], 128 * 1024 * 1024, "{hc:#}");
    assert_eq!(hc["MemoryReservation"], 96 * 1024 * 1024);
    assert_eq!(hc["CpuShares"], 100);
    assert_eq!(hc["ShmSize"], 32 * 1024 * 1024);
    assert_eq!(hc["CapAdd"], json!(["NET_ADMIN"]));
    assert_eq!(hc["Sysctls"]["net.core.somaxconn"], "512");
    assert_eq!(hc["IpcMode"], "shareable");
    // awslogs stays on Berth's own log path.
    assert_eq!(hc["LogConfig"]["Type"], "json-file");
    let id = task.rsplit('/').next().unwrap();
    let logs = wait_for(
        Duration::from_secs(10),
        "the awslogs container's output",
        || {
            let r = berth(&dev.grpc, &["logs", id, "--cluster", cl]);
            (r.ok && r.stdout.contains("hello-awslogs")).then_some(r.stdout)
        },
    );
    assert!(logs.contains("hello-awslogs"));
}

/// A Docker network for one test, removed when dropped.
struct Network(String);

impl Drop for Network {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["network", "rm", &self.0])
            .output();
    }
}

#[test]
fn an_awsvpc_task_on_a_task_network_shows_its_own_address_as_ecs_does() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = unique_cluster("ecs-eni");
    let net = Network(format!("berth-test-{cluster}"));
    let made = Command::new("docker")
        .args(["network", "create", &net.0])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let _cleanup = ContainerCleanup {
        cluster: cluster.clone(),
    };
    let mut flags = FAST.to_vec();
    flags.extend_from_slice(&["--task-network", &net.0]);
    let dev = ServerProcess::start_with("dev", dir.path(), &flags);
    let http = dev.http.as_str();
    let c = Creds::default();
    let ecs = |args: &[&str]| aws_ok(http, &c, args);
    let cl = cluster.as_str();
    ecs(&["create-cluster", "--cluster-name", cl]);
    let def = json!({"family": "eni", "networkMode": "awsvpc", "containerDefinitions": [
        {"name": "app", "image": "berth-demo:latest", "memory": 64,
         "environment": [{"name": "MESSAGE", "value": "own address"}],
         "portMappings": [{"containerPort": 80}]},
        {"name": "side", "image": shell_image(), "memory": 16, "essential": false,
         "command": ["/bin/busybox", "sleep", "600"]}
    ]});
    let file = dir.path().join("eni.json");
    std::fs::write(&file, def.to_string()).unwrap();
    ecs(&[
        "register-task-definition",
        "--cli-input-json",
        &format!("file://{}", file.display()),
    ]);
    let run = ecs(&["run-task", "--cluster", cl, "--task-definition", "eni"]);
    let task = run["tasks"][0]["taskArn"].as_str().unwrap().to_string();
    ecs(&["wait", "tasks-running", "--cluster", cl, "--tasks", &task]);
    let t = wait_for(Duration::from_secs(10), "the task's address", || {
        let t = ecs(&["describe-tasks", "--cluster", cl, "--tasks", &task])["tasks"][0].clone();
        (t["attachments"].as_array().is_some_and(|a| !a.is_empty())).then_some(t)
    });
    let a = &t["attachments"][0];
    assert_eq!(a["type"], "ElasticNetworkInterface", "{t:#}");
    assert_eq!(a["status"], "ATTACHED");
    let ip = a["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "privateIPv4Address")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_string();
    for c in t["containers"].as_array().unwrap() {
        assert_eq!(c["networkInterfaces"][0]["privateIpv4Address"], ip, "{t:#}");
        assert_eq!(c["networkInterfaces"][0]["attachmentId"], a["id"]);
    }
    // The task answers at that address, on its container port.
    let (status, body) = wait_for(
        Duration::from_secs(10),
        "the task's address to answer",
        || {
            let addr = format!("{ip}:80");
            let a = common::http::exchange(&addr, "GET", "/", &[], b"", Duration::from_secs(3));
            a.ok().map(|a| (a.status, a.body))
        },
    );
    assert_eq!(status, 200);
    assert!(body.contains("own address"), "{body}");
}
