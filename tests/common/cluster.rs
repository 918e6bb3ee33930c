//! A Berth cluster for end-to-end tests: `berth server` and three `berth agent` processes
//! sharing the local Docker engine. Timing-sensitive tests take `SERIAL` (via `cluster`) so they
//! run one at a time within a test binary.

#![allow(dead_code)]

use super::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

static SERIAL: Mutex<()> = Mutex::new(());

pub struct AgentProcess {
    child: Child,
}

impl AgentProcess {
    /// An agent that has joined before (its certificate is in `data`), or of a plaintext server.
    pub fn start(server: &str, name: &str, data: &Path) -> Self {
        Self::start_joining(server, name, data, None)
    }

    /// Of a plaintext server, with more `berth agent` flags (`--memory 1000`, …).
    pub fn start_with(server: &str, name: &str, data: &Path, extra: &[&str]) -> Self {
        let child = Command::new(BERTH)
            .args(["--server", server, "agent", "--name", name])
            .args(["--stop-timeout", "2s", "--data"])
            .arg(data)
            .args(extra)
            .env("BERTH_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn agent");
        Self { child }
    }

    /// Still running (it has not exited, by itself or otherwise).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `join_token_file`: the server's DATA/join.token, presented if `data` has no certificate.
    pub fn start_joining(
        server: &str,
        name: &str,
        data: &Path,
        join_token_file: Option<&Path>,
    ) -> Self {
        let join: Vec<&std::ffi::OsStr> = join_token_file
            .map(|f| vec!["--join-token-file".as_ref(), f.as_os_str()])
            .unwrap_or_default();
        let child = Command::new(BERTH)
            .args([
                "--server",
                server,
                "agent",
                "--name",
                name,
                "--stop-timeout",
                "2s",
                "--data",
            ])
            .arg(data)
            .args(join)
            .env("BERTH_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn agent");
        Self { child }
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the agent process.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{signal} {}", self.child.id());
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub struct Cluster {
    pub server: ServerProcess,
    pub agents: Vec<AgentProcess>,
    pub name: String,
    pub dir: tempfile::TempDir,
    _cleanup: ContainerCleanup,
    _serial: std::sync::MutexGuard<'static, ()>,
}

pub const SERVER_FLAGS: &[&str] = &[
    "--heartbeat",
    "500ms",
    "--heartbeat-timeout",
    "2s",
    "--lost-node-timeout",
    "3s",
    "--resync",
    "500ms",
    "--min-healthy-time",
    "2s",
];

pub fn cluster(prefix: &str) -> Cluster {
    cluster_with(prefix, SERVER_FLAGS, 3)
}

/// A cluster of `agents` nodes (n1, n2, …) on a server started with `flags` (none: defaults).
pub fn cluster_with(prefix: &str, flags: &[&str], agents: usize) -> Cluster {
    let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let name = unique_cluster(prefix);
    let cleanup = ContainerCleanup {
        cluster: name.clone(),
    };
    let server_dir = dir.path().join("server");
    let server = ServerProcess::start_with("server", &server_dir, flags);
    let join_token = server_dir.join("join.token");
    let agents = (1..=agents)
        .map(|i| {
            AgentProcess::start_joining(
                &server.grpc,
                &format!("n{i}"),
                &dir.path().join(format!("n{i}")),
                Some(&join_token),
            )
        })
        .collect();
    let c = Cluster {
        server,
        agents,
        name,
        dir,
        _cleanup: cleanup,
        _serial: serial,
    };
    wait_for(Duration::from_secs(30), "every node connected", || {
        let n = c.cli(&["node", "list", "-o", "json"]).json();
        let up = n["containerInstances"].as_array().map_or(0, |a| {
            a.iter().filter(|x| x["agentConnected"] == true).count()
        });
        (up == c.agents.len()).then_some(())
    });
    assert!(c.cli(&["cluster", "create", &c.name]).ok);
    c
}

impl Cluster {
    pub fn cli(&self, args: &[&str]) -> Run {
        berth(&self.server.grpc, args)
    }

    pub fn ok(&self, args: &[&str]) -> Run {
        let r = self.cli(args);
        assert!(r.ok, "berth {args:?} failed: {}", r.stderr);
        r
    }

    /// Registers the demo web server with MESSAGE=`message` (or a command instead).
    pub fn register(&self, family: &str, message: &str, command: Option<&str>) -> String {
        let cmd = command.map_or(String::new(), |c| format!(r#", "command": {c}"#));
        let def = format!(
            r#"{{"family": "{family}", "containerDefinitions": [{{"name": "web", "image": "berth-demo:latest",
              "memory": 32, "portMappings": [{{"containerPort": 80}}],
              "environment": [{{"name": "MESSAGE", "value": "{message}"}}]{cmd}}}]}}"#
        );
        let path = self.dir.path().join(format!("{family}-{message}.json"));
        std::fs::write(&path, def).unwrap();
        let r = self.ok(&[
            "taskdef",
            "register",
            "-f",
            path.to_str().unwrap(),
            "-o",
            "json",
        ]);
        let td = &r.json()["taskDefinition"];
        format!("{}:{}", td["family"].as_str().unwrap(), td["revision"])
    }

    pub fn service(&self, name: &str) -> Value {
        self.ok(&[
            "service",
            "describe",
            name,
            "--cluster",
            &self.name,
            "-o",
            "json",
        ])
        .json()["service"]
            .clone()
    }

    pub fn running_tasks(&self, service: &str) -> Vec<Value> {
        let r = self.ok(&[
            "task",
            "list",
            "--cluster",
            &self.name,
            "--service",
            service,
            "-o",
            "json",
        ]);
        r.json()["tasks"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t["lastStatus"] == "RUNNING")
            .collect()
    }

    pub fn events(&self, service: &str) -> Vec<String> {
        self.service(service)["events"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    pub fn running_containers(&self) -> usize {
        let out = Command::new("docker")
            .args([
                "ps",
                "-q",
                "--filter",
                &format!("label=berth.cluster={}", self.name),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .count()
    }
}

pub fn node_of(t: &Value) -> String {
    t["containerInstanceArn"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string()
}
