//! Berth's own logs as an operator collects them: `berth dev 2>dev.log` writes no ANSI escape
//! (colour is for terminals only), and `--log-format json` writes one JSON object a line, with
//! `BERTH_LOG` filtering as `RUST_LOG` does. `berth dev` runs on the real Docker engine and its
//! demo task answers before the log is read.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `berth dev` whose stderr goes to a file; ended (one PID) on drop.
struct Dev {
    child: Child,
    log: PathBuf,
    grpc: String,
}

impl Dev {
    fn start(dir: &Path, env: &[(&str, &str)], extra: &[&str]) -> Self {
        let log = dir.join("dev.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(BERTH)
            .args([
                "dev",
                "--listen",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
                "--no-proxy",
            ])
            .arg("--data")
            .arg(dir.join("data"))
            .args(extra)
            .env_remove("BERTH_LOG")
            .env_remove("RUST_LOG")
            .env_remove("BERTH_LOG_FORMAT")
            .env_remove("NO_COLOR")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn berth dev");
        let mut dev = Self {
            child,
            log,
            grpc: String::new(),
        };
        dev.grpc = wait_for(Duration::from_secs(120), "berth dev to be ready", || {
            let text = dev.text();
            let addr = text
                .split("control plane on ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .to_string();
            text.contains("berth dev: ready")
                .then(|| format!("http://{addr}"))
        });
        dev
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// SIGTERM to this one process; the bytes it wrote to stderr, once it has exited.
    fn stop(mut self) -> Vec<u8> {
        sigterm(self.child.id());
        let exited = wait_exit(&mut self.child, Duration::from_secs(15));
        assert!(
            exited.is_some(),
            "berth dev did not exit within 15 s of SIGTERM"
        );
        std::fs::read(&self.log).unwrap()
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs the demo web server as a task on `dev` and waits until it answers over HTTP.
fn demo_answers(dev: &Dev, dir: &Path, cluster: &str) {
    assert!(berth(&dev.grpc, &["cluster", "create", cluster]).ok);
    let def = json!({"family": cluster, "containerDefinitions": [{"name": "web",
        "image": "berth-demo:latest", "memory": 64,
        "environment": [{"name": "MESSAGE", "value": "logs under test"}],
        "portMappings": [{"containerPort": 80, "hostPort": 0}]}]});
    let file = dir.join("web.json");
    std::fs::write(&file, def.to_string()).unwrap();
    let r = berth(
        &dev.grpc,
        &["taskdef", "register", "-f", file.to_str().unwrap()],
    );
    assert!(r.ok, "{}", r.stderr);
    let r = berth(
        &dev.grpc,
        &[
            "task",
            "run",
            "--cluster",
            cluster,
            "--taskdef",
            cluster,
            "-o",
            "json",
        ],
    );
    assert!(r.ok, "{}", r.stderr);
    let task = r.json()["tasks"][0]["taskArn"]
        .as_str()
        .unwrap()
        .to_string();
    let port = wait_for(Duration::from_secs(60), "the demo task to run", || {
        let d = berth(&dev.grpc, &["task", "describe", &task, "-o", "json"]).json();
        let t = &d["task"];
        (t["lastStatus"] == "RUNNING")
            .then(|| t["containers"][0]["networkBindings"][0]["hostPort"].as_u64())
            .flatten()
    });
    wait_for(Duration::from_secs(20), "the demo to answer", || {
        http_get(port as u16, "/")
            .filter(|(status, body)| *status == 200 && body.contains("message=logs under test"))
    });
    let r = berth(&dev.grpc, &["task", "stop", &task]);
    assert!(r.ok, "{}", r.stderr);
}

#[test]
fn berth_dev_logging_to_a_file_writes_no_escape_byte() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = unique_cluster("logtext");
    let _cleanup = ContainerCleanup {
        cluster: cluster.clone(),
    };
    let dev = Dev::start(dir.path(), &[], &[]);
    demo_answers(&dev, dir.path(), &cluster);
    let bytes = dev.stop();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("agent connected") && text.contains("INFO"),
        "the log has its info lines: {text}"
    );
    if let Some(at) = bytes.iter().position(|b| *b == 0x1b) {
        let from = at.saturating_sub(80);
        panic!(
            "an escape byte at {at} of dev.log: {:?}",
            String::from_utf8_lossy(&bytes[from..(at + 40).min(bytes.len())])
        );
    }
}

#[test]
fn log_format_json_writes_one_object_a_line_filtered_like_rust_log() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = unique_cluster("logjson");
    let _cleanup = ContainerCleanup {
        cluster: cluster.clone(),
    };
    // The filter: everything at warn, the control plane's node sessions at info.
    let env = [("RUST_LOG", "warn,berth_control_plane::nodes=info")];
    let dev = Dev::start(dir.path(), &env, &["--log-format", "json"]);
    demo_answers(&dev, dir.path(), &cluster);
    let bytes = dev.stop();
    let text = String::from_utf8(bytes).expect("UTF-8");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("not one JSON object ({e}): {l:?}"))
        })
        .collect();
    assert!(lines.len() >= 3, "{text}");
    for l in &lines {
        for field in ["timestamp", "level", "message", "target"] {
            assert!(l[field].is_string(), "{field} in {l}");
        }
        let level = l["level"].as_str().unwrap();
        let target = l["target"].as_str().unwrap();
        assert!(
            ["WARN", "ERROR"].contains(&level)
                || target == "berth"
                || target.starts_with("berth_control_plane::nodes"),
            "the filter lets only warnings and node sessions through: {l}"
        );
    }
    let has = |message: &str| lines.iter().any(|l| l["message"] == message);
    assert!(has("berth dev: ready"), "Berth's own lines are objects too");
    assert!(has("agent connected"), "the node sessions' info lines pass");
    let connected = lines
        .iter()
        .find(|l| l["message"] == "agent connected")
        .unwrap();
    assert_eq!(
        connected["node"], "dev",
        "fields are keys of the object: {connected}"
    );
    assert!(
        !lines.iter().any(|l| l["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("berth_agent"))
            && l["level"] == "INFO"),
        "the agent's info lines are filtered out"
    );
}
