//! `berth server` and `berth agent` as separate processes: the control plane is SIGKILLed while a
//! task runs; the task keeps running, the agent reconnects with backoff, and the restarted
//! control plane still sees it RUNNING and can stop it.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

struct Agent(std::process::Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn tasks_keep_running_through_a_control_plane_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = unique_cluster("cprestart");
    let _cleanup = ContainerCleanup {
        cluster: cluster.clone(),
    };
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let flags = [
        "--listen",
        listen.as_str(),
        "--heartbeat",
        "500ms",
        "--heartbeat-timeout",
        "3s",
    ];
    let server_dir = dir.path().join("server");
    let mut server = ServerProcess::start_on("server", &server_dir, &flags);
    let url = server.grpc.clone();
    let agent = Agent(
        Command::new(BERTH)
            .args([
                "--server",
                &url,
                "agent",
                "--name",
                "solo",
                "--stop-timeout",
                "5s",
                "--data",
            ])
            .arg(dir.path().join("agent"))
            .arg("--join-token-file")
            .arg(server_dir.join("join.token"))
            .env("BERTH_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(Duration::from_secs(20), "the agent to connect", || {
        let n = berth(&url, &["node", "list", "-o", "json"]).json();
        (n["containerInstances"][0]["agentConnected"] == true).then_some(())
    });
    assert!(berth(&url, &["cluster", "create", &cluster]).ok);
    let def = dir.path().join("web.json");
    std::fs::write(
        &def,
        r#"{"family": "cp-web", "containerDefinitions": [{"name": "web", "image": "berth-demo:latest",
            "memory": 64, "portMappings": [{"containerPort": 80}]}]}"#,
    )
    .unwrap();
    assert!(berth(&url, &["taskdef", "register", "-f", def.to_str().unwrap()]).ok);
    let run = berth(
        &url,
        &[
            "task",
            "run",
            "--cluster",
            &cluster,
            "--taskdef",
            "cp-web",
            "-o",
            "json",
        ],
    );
    let arn = run.json()["tasks"][0]["taskArn"]
        .as_str()
        .unwrap()
        .to_string();
    let running = wait_for(Duration::from_secs(15), "RUNNING", || {
        let t = berth(&url, &["task", "describe", &arn, "-o", "json"]).json();
        (t["task"]["lastStatus"] == "RUNNING").then_some(t)
    });
    let container = running["task"]["containers"][0]["runtimeId"]
        .as_str()
        .unwrap()
        .to_string();
    let host_port = running["task"]["containers"][0]["networkBindings"][0]["hostPort"]
        .as_u64()
        .unwrap() as u16;

    server.kill9();
    // While the control plane is down the task keeps serving.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(http_get(host_port, "/").map(|r| r.0), Some(200));

    let server = ServerProcess::start_on("server", &server_dir, &flags);
    assert_eq!(server.grpc, url);
    let t = wait_for(Duration::from_secs(20), "the agent to reconnect", || {
        let n = berth(&url, &["node", "list", "-o", "json"]).json();
        (n["containerInstances"][0]["agentConnected"] == true).then_some(n)
    });
    assert_eq!(
        t["containerInstances"].as_array().unwrap().len(),
        1,
        "the same node, not a new one"
    );
    let after = berth(&url, &["task", "describe", &arn, "-o", "json"]).json();
    assert_eq!(after["task"]["lastStatus"], "RUNNING");
    assert_eq!(
        after["task"]["containers"][0]["runtimeId"],
        container.as_str()
    );
    assert!(berth(&url, &["task", "stop", &arn]).ok);
    wait_for(Duration::from_secs(15), "STOPPED", || {
        let t = berth(&url, &["task", "describe", &arn, "-o", "json"]).json();
        (t["task"]["lastStatus"] == "STOPPED").then_some(())
    });
    drop(agent);
}
