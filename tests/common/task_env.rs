//! A `berth dev` with one cluster of its own, for tests that run tasks on the real Docker
//! engine: register a definition, run it, describe and wait on it, read its logs, inspect its
//! containers. Every container of the cluster is removed when it is dropped.

use super::*;
use serde_json::Value;

pub struct TaskEnv {
    pub dev: ServerProcess,
    pub cluster: String,
    pub _cleanup: ContainerCleanup,
    pub dir: tempfile::TempDir,
}

impl TaskEnv {
    /// `berth dev FLAGS…` with a cluster named after `prefix`.
    pub fn start(prefix: &str, flags: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cluster = unique_cluster(prefix);
        let cleanup = ContainerCleanup {
            cluster: cluster.clone(),
        };
        let dev = ServerProcess::start_with("dev", dir.path(), flags);
        let r = berth(&dev.grpc, &["cluster", "create", &cluster]);
        assert!(r.ok, "{}", r.stderr);
        Self {
            dev,
            cluster,
            _cleanup: cleanup,
            dir,
        }
    }

    /// Waits until the local node is connected, so a refusal is about the task, not `AGENT`.
    pub fn wait_node_connected(&self) {
        wait_for(Duration::from_secs(10), "the node to connect", || {
            let nodes = berth(&self.dev.grpc, &["node", "list", "-o", "json"]).json();
            (nodes["containerInstances"][0]["agentConnected"] == true).then_some(())
        });
    }

    /// Registers `def` (ECS JSON) and answers `FAMILY:REVISION`.
    pub fn register(&self, def: Value) -> String {
        let path = self
            .dir
            .path()
            .join(format!("{}.json", def["family"].as_str().unwrap()));
        std::fs::write(&path, def.to_string()).unwrap();
        register_file(&self.dev.grpc, &path)
    }

    /// `berth task run`'s reply.
    pub fn run(&self, taskdef: &str) -> Value {
        let r = berth(
            &self.dev.grpc,
            &[
                "task",
                "run",
                "--cluster",
                &self.cluster,
                "--taskdef",
                taskdef,
                "-o",
                "json",
            ],
        );
        assert!(r.ok, "{}", r.stderr);
        r.json()
    }

    /// Runs one task that must be placed; its ARN.
    pub fn run_one(&self, taskdef: &str) -> String {
        let reply = self.run(taskdef);
        assert_eq!(reply["failures"], Value::Null, "{reply}");
        reply["tasks"][0]["taskArn"].as_str().unwrap().to_string()
    }

    pub fn describe(&self, task: &str) -> Value {
        let r = berth(&self.dev.grpc, &["task", "describe", task, "-o", "json"]);
        assert!(r.ok, "{}", r.stderr);
        r.json()["task"].clone()
    }

    pub fn wait_status(&self, task: &str, status: &str, limit: Duration) -> Value {
        wait_for(limit, &format!("task {task} to be {status}"), || {
            let t = self.describe(task);
            (t["lastStatus"] == status).then_some(t)
        })
    }

    /// `berth logs` of one container of the task, as a user reads them (empty while the
    /// container does not exist yet, so callers can poll).
    pub fn logs(&self, task: &str, container: &str) -> String {
        let id = task.rsplit('/').next().unwrap();
        let r = berth(
            &self.dev.grpc,
            &[
                "logs",
                id,
                "--cluster",
                &self.cluster,
                "--container",
                container,
            ],
        );
        if r.ok {
            r.stdout
        } else {
            String::new()
        }
    }
}

/// `docker inspect` of a task's container (by the deterministic name `berth-TASKID-NAME`).
pub fn inspect_container(task: &str, container: &str) -> Value {
    let id = task.rsplit('/').next().unwrap();
    let out = Command::new("docker")
        .args(["inspect", &format!("berth-{id}-{container}")])
        .output()
        .expect("docker inspect");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout).unwrap()[0].clone()
}
