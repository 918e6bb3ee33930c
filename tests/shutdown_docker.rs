//! `berth dev` stops promptly on SIGTERM although agents and proxies keep streams open to it
//! (systemd sends SIGKILL after its stop timeout): the process is gone within 5 s, exits 0,
//! leaves its tasks running, and on the next start the same agents and the proxy reconnect and
//! the tasks are adopted.

mod common;

use common::cluster::AgentProcess;
use common::*;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The issue's bound: SIGTERM to gone.
const PROMPT: Duration = Duration::from_secs(5);

/// A `berth proxy` process, killed on drop.
struct ProxyProcess(Child);

impl ProxyProcess {
    /// Listening on `bind`, ready once it printed `berth proxy: ready` (it has a routing table).
    fn start(server: &str, bind: &str, data: &std::path::Path) -> Self {
        let mut child = Command::new(BERTH)
            .args(["--server", server, "proxy", "--bind", bind])
            .args(["--http", "127.0.0.1:0", "--id", "sigterm-test", "--data"])
            .arg(data)
            .env("BERTH_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn berth proxy");
        let lines = capture(
            child.stderr.take().unwrap(),
            "proxy",
            Arc::new(Mutex::new(Vec::new())),
        );
        let proxy = Self(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines.recv_timeout(left) {
                Ok(l) if l == "berth proxy: ready" => return proxy,
                Ok(_) => {}
                Err(_) => panic!("berth proxy was not ready within 30 s"),
            }
        }
    }

    fn running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `berth logs --follow` process, killed on drop.
struct Follower(Child);

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn connected_nodes(url: &str) -> Vec<String> {
    let n = berth(url, &["node", "list", "-o", "json"]).json();
    n["containerInstances"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|x| x["agentConnected"] == true)
        .map(|x| x["ec2InstanceId"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// (taskArn, runtime id of its container) of every RUNNING task in the cluster.
fn running_tasks(url: &str, cluster: &str) -> Vec<(String, String)> {
    let r = berth(url, &["task", "list", "--cluster", cluster, "-o", "json"]);
    let mut v: Vec<_> = r.json()["tasks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|t| t["lastStatus"] == "RUNNING")
        .map(|t| {
            (
                t["taskArn"].as_str().unwrap_or_default().to_string(),
                t["containers"][0]["runtimeId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn container_running(id: &str) -> bool {
    let out = Command::new("docker")
        .args(["inspect", "-f", "{{.State.Running}}", id])
        .output()
        .expect("docker inspect");
    String::from_utf8_lossy(&out.stdout).trim() == "true"
}

#[test]
fn berth_dev_exits_within_5s_of_sigterm_with_agents_and_a_proxy_connected() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = unique_cluster("sigterm");
    let _cleanup = ContainerCleanup {
        cluster: cluster.clone(),
    };
    // The same address after the restart, so the agents and the proxy find it again.
    let listen = format!("127.0.0.1:{}", free_port());
    let mut flags = vec!["--listen", listen.as_str()];
    flags.extend_from_slice(FAST);
    let data = dir.path().join("dev");
    let mut dev = ServerProcess::start_on("dev", &data, &flags);
    let url = dev.grpc.clone();
    let mut agents = ["a1", "a2"].map(|n| AgentProcess::start(&url, n, &dir.path().join(n)));
    // On 127.0.0.2, so its listener ports never meet those of dev's own proxy on 127.0.0.1.
    let mut proxy = ProxyProcess::start(&url, "127.0.0.2", &dir.path().join("proxy"));
    let nodes = wait_for(Duration::from_secs(30), "dev's node and two agents", || {
        let up = connected_nodes(&url);
        (up.len() == 3).then_some(up)
    });

    assert!(berth(&url, &["cluster", "create", &cluster]).ok);
    let def = dir.path().join("web.json");
    std::fs::write(
        &def,
        r#"{"family": "sigterm-web", "containerDefinitions": [{"name": "web",
            "image": "berth-demo:latest", "memory": 32, "portMappings": [{"containerPort": 80}]}]}"#,
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
            "sigterm-web",
            "--count",
            "3",
        ],
    );
    assert!(run.ok, "task run: {}", run.stderr);
    let before = wait_for(Duration::from_secs(30), "three RUNNING tasks", || {
        let t = running_tasks(&url, &cluster);
        (t.len() == 3 && t.iter().all(|(_, c)| !c.is_empty())).then_some(t)
    });

    // A log stream held open too, through the agent that runs the task.
    let mut follower = Follower(
        Command::new(BERTH)
            .args(["--server", &url, "logs", "--follow", &before[0].0])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn berth logs"),
    );
    let lines = capture(
        follower.0.stdout.take().unwrap(),
        "logs",
        Arc::new(Mutex::new(Vec::new())),
    );
    lines
        .recv_timeout(Duration::from_secs(15))
        .expect("the log follower prints the container's first line");

    dev.sigterm();
    let exited = dev.wait_exit(PROMPT);
    let Some((status, took)) = exited else {
        panic!(
            "berth dev still running {PROMPT:?} after SIGTERM; its log:\n{}",
            dev.log()
        );
    };
    eprintln!("berth dev exited {took:?} after SIGTERM with {status}");
    assert!(took < PROMPT);
    assert!(status.success(), "berth dev exits 0 on SIGTERM: {status}");
    // The streams ended by themselves; the drain's bound did not have to cut them.
    let log = dev.log();
    assert!(!log.contains("after the drain"), "{log}");
    assert!(
        wait_exit(&mut follower.0, PROMPT).is_some(),
        "berth logs --follow still running after the control plane stopped"
    );

    // The data plane stays up without the control plane.
    for a in &mut agents {
        assert!(a.running(), "an agent exited with the control plane");
    }
    assert!(proxy.running(), "the proxy exited with the control plane");
    for (arn, container) in &before {
        assert!(
            container_running(container),
            "task {arn}'s container stopped with the control plane"
        );
    }

    let dev = ServerProcess::start_on("dev", &data, &flags);
    assert_eq!(dev.grpc, url);
    let again = wait_for(
        Duration::from_secs(30),
        "the same three nodes to reconnect",
        || {
            let up = connected_nodes(&url);
            (up.len() == 3).then_some(up)
        },
    );
    let (mut a, mut b) = (nodes, again);
    a.sort();
    b.sort();
    assert_eq!(a, b, "the same nodes, not new ones");
    // Adopted: the same tasks, RUNNING in the same containers.
    wait_for(Duration::from_secs(20), "the tasks adopted", || {
        (running_tasks(&url, &cluster) == before).then_some(())
    });

    // The proxy is watching the new control plane: a listener created now opens on it.
    let lb_port = free_port().to_string();
    let created = berth(
        &url,
        &[
            "service",
            "create",
            "--cluster",
            &cluster,
            "--name",
            "after",
            "--taskdef",
            "sigterm-web",
            "--desired",
            "1",
            "--lb-port",
            &lb_port,
            "--lb-container",
            "web:80",
        ],
    );
    assert!(created.ok, "service create: {}", created.stderr);
    let at: SocketAddr = format!("127.0.0.2:{lb_port}").parse().unwrap();
    wait_for(
        Duration::from_secs(20),
        "the restarted control plane's routes on the proxy",
        || TcpStream::connect_timeout(&at, Duration::from_millis(500)).ok(),
    );
    drop(dev);
}
