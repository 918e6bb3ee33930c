//! A `berth lab` for the fault tests: control plane, three agent hosts and a proxy, each a
//! container with its own address on a private network. Dropping it removes everything it
//! started (`berth lab down`), even when the test failed.

#![allow(dead_code)]

use super::*;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

/// Labs run one at a time: they are heavy and their tests measure time.
static SERIAL: Mutex<()> = Mutex::new(());

pub struct Lab {
    pub name: String,
    pub network: String,
    pub server: String,
    /// The control plane's HTTP address (console, API, the AWS APIs).
    pub http: String,
    /// The proxy's listener 8080 on this host.
    pub listener: u16,
    _dir: tempfile::TempDir,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Lab {
    pub fn up(name: &str) -> Self {
        Self::up_with(name, &[])
    }

    /// Three etcd members and three servers (`berth lab up --ha`).
    pub fn up_ha(name: &str) -> Self {
        Self::up_with(name, &["--ha"])
    }

    pub fn up_with(name: &str, extra: &[&str]) -> Self {
        super::setup::tools();
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let name = format!("{name}-{}", std::process::id());
        let dir = tempfile::tempdir().expect("tempdir");
        // A lab left by a killed run of this same name would make `up` refuse.
        down(&name);
        let mut args = vec![
            "lab",
            "up",
            "--name",
            &name,
            "--dir",
            dir.path().to_str().unwrap(),
            "--no-demo",
            "-o",
            "json",
        ];
        args.extend_from_slice(extra);
        let run = berth("http://127.0.0.1:1", &args);
        let lab_name = name.clone();
        let guard = scopeguard(move || down(&lab_name));
        assert!(run.ok, "lab up failed:\n{}\n{}", run.stdout, run.stderr);
        let info = run.json();
        std::mem::forget(guard);
        let listener = info["listeners"][0]["address"]
            .as_str()
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .expect("a listener");
        let server = info["server"].as_str().unwrap().to_string();
        let token = std::fs::read_to_string(info["adminTokenFile"].as_str().unwrap())
            .expect("the lab's admin token");
        remember_credentials(&server, &token, info["ca"].as_str().unwrap().into());
        Lab {
            name,
            network: info["network"].as_str().unwrap().to_string(),
            server,
            http: info["http"].as_str().unwrap_or_default().to_string(),
            listener,
            _dir: dir,
            _serial: serial,
        }
    }

    /// A scratch directory that lives as long as the lab.
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub fn container(&self, role_or_agent: &str) -> String {
        format!("{}-{role_or_agent}", self.network)
    }

    pub fn ok(&self, args: &[&str]) -> Run {
        let run = berth(&self.server, args);
        assert!(
            run.ok,
            "berth {args:?} failed:\n{}\n{}",
            run.stdout, run.stderr
        );
        run
    }

    /// Registers the demo web task definition with MESSAGE=`message`: "web:REV".
    pub fn register(&self, message: &str) -> String {
        let mut def: Value =
            serde_json::from_str(include_str!("../../deploy/examples/web.json")).unwrap();
        def["containerDefinitions"][0]["environment"][0]["value"] = message.into();
        let file = self._dir.path().join(format!("web-{message}.json"));
        std::fs::write(&file, def.to_string()).unwrap();
        let out = self
            .ok(&[
                "taskdef",
                "register",
                "--file",
                file.to_str().unwrap(),
                "-o",
                "json",
            ])
            .json();
        let rev = out["taskDefinition"]["revision"].as_i64().unwrap();
        format!("web:{rev}")
    }

    /// A service of `desired` spread over the zones, behind listener 8080, checked every second.
    pub fn service(&self, taskdef: &str, desired: u32) {
        let desired = desired.to_string();
        let mut args = vec![
            "service",
            "create",
            "--name",
            "web",
            "--taskdef",
            taskdef,
            "--desired",
            &desired,
            "--strategy",
            "spread:attribute:zone",
            "--lb-port",
            "8080",
            "--drain-timeout",
            "5",
            "--wait",
            "--timeout",
            "120s",
        ];
        args.extend_from_slice(&FAST_LB_CHECKS);
        self.ok(&args);
    }

    /// Node name → node id.
    pub fn nodes(&self) -> HashMap<String, String> {
        let out = self.ok(&["node", "list", "-o", "json"]).json();
        out["containerInstances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                let arn = n["containerInstanceArn"].as_str().unwrap();
                (
                    n["name"].as_str().unwrap().to_string(),
                    arn.rsplit('/').next().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// The service's tasks the control plane counts as running: (task id, node id, revision).
    pub fn running(&self) -> Vec<(String, String, String)> {
        let out = berth(
            &self.server,
            &["task", "list", "--service", "web", "-o", "json"],
        );
        if !out.ok {
            return Vec::new();
        }
        out.json()["tasks"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|t| t["lastStatus"] == "RUNNING" && t["desiredStatus"] == "RUNNING")
            .map(|t| {
                let id = t["taskArn"].as_str().unwrap().rsplit('/').next().unwrap();
                let node = t["containerInstanceArn"].as_str().unwrap_or_default();
                let td = t["taskDefinitionArn"].as_str().unwrap_or_default();
                (
                    id.to_string(),
                    node.rsplit('/').next().unwrap().to_string(),
                    td.rsplit('/').next().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// Running task containers on the lab network: (task id, node id).
    pub fn task_containers(&self) -> Vec<(String, String)> {
        let out = Command::new("docker")
            .args([
                "ps",
                "--filter",
                &format!("network={}", self.network),
                "--filter",
                "label=berth.task",
                "--format",
                "{{.Label \"berth.task\"}} {{.Label \"berth.node\"}}",
            ])
            .output()
            .expect("docker ps");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(t, n)| (t.to_string(), n.to_string()))
            .collect()
    }

    /// Running task containers of one node.
    pub fn containers_of(&self, node_id: &str) -> Vec<String> {
        containers_with_label(&format!("berth.node={node_id}"))
            .into_iter()
            .filter(|id| {
                docker(&["inspect", "-f", "{{.State.Running}}", id])
                    .map(|o| o.trim() == "true")
                    .unwrap_or(false)
            })
            .collect()
    }

    /// The invariants every fault test ends on: the running tasks equal desiredCount, exactly
    /// one running container per task and no task on two nodes, every definition and the
    /// service still there.
    pub fn assert_invariants(&self, desired: usize, revisions: &[&str]) {
        // Tasks on their way out (draining, then SIGTERM) may still hold a container: the
        // invariants are about the settled cluster.
        // The listing the wait saw is the one checked: a listing call that fails (a server
        // between leaders, just after a partition heals) reads as no tasks, not as lost ones.
        let settle = Instant::now();
        let running = wait_for(Duration::from_secs(40), "the cluster to settle", || {
            let running = self.running();
            (running.len() == desired && self.task_containers().len() == desired).then_some(running)
        });
        eprintln!(
            "measured: settled {:.1?} after the check began",
            settle.elapsed()
        );
        let containers = self.task_containers();
        assert_eq!(
            containers.len(),
            desired,
            "task containers on the lab network: {containers:?} (tasks {running:?})"
        );
        let mut seen = HashSet::new();
        for (task, node) in &containers {
            assert!(
                seen.insert(task.clone()),
                "task {task} runs twice: {containers:?}"
            );
            let t = running.iter().find(|r| &r.0 == task);
            let t = t.unwrap_or_else(|| panic!("container of task {task} is not a running task"));
            assert_eq!(&t.1, node, "task {task} runs on another node than recorded");
        }
        let svc = self
            .ok(&["service", "describe", "web", "-o", "json"])
            .json();
        assert_eq!(svc["service"]["desiredCount"], desired as i64, "{svc}");
        for rev in revisions {
            self.ok(&["taskdef", "describe", rev]);
        }
    }

    /// Waits until `running()` satisfies `f`; returns how long it took.
    pub fn wait_running(
        &self,
        limit: Duration,
        what: &str,
        f: impl Fn(&[(String, String, String)]) -> bool,
    ) -> Duration {
        let start = Instant::now();
        wait_for(limit, what, || f(&self.running()).then_some(()));
        start.elapsed()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        down(&self.name);
    }
}

fn down(name: &str) {
    let _ = Command::new(BERTH)
        .args(["lab", "down", "--name", name])
        .output();
}

/// `docker ARGS…`: its stdout when it succeeded.
pub fn docker(args: &[&str]) -> Option<String> {
    let out = Command::new("docker").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `f` on drop unless forgotten.
struct Guard<F: FnMut()>(F);

impl<F: FnMut()> Drop for Guard<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

fn scopeguard<F: FnMut()>(f: F) -> Guard<F> {
    Guard(f)
}
