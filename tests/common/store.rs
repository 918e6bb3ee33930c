//! Helpers for the store's recovery tests: `berth dev` with extra environment (a small snapshot
//! threshold), one that must refuse to start, and task definitions registered and read back
//! over gRPC as a user's writes.

use super::{capture, wait_exit, BERTH};
use berth_proto::v1::task_definitions_client::TaskDefinitionsClient;
use berth_proto::v1::{ListTaskDefinitionsRequest, RegisterTaskDefinitionRequest};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A `berth dev` process, killed on drop.
pub struct Dev {
    child: Child,
    pub grpc: String,
    pub http: String,
    pub output: Arc<Mutex<Vec<String>>>,
}

fn command(data: &Path, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(BERTH);
    c.args([
        "dev",
        "--listen",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--data",
    ])
    .arg(data)
    .env("BERTH_LOG", "warn")
    .envs(env.iter().copied())
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    c
}

impl Dev {
    /// Starts `berth dev` on `data` and waits (at most 120 s) for it to say it is ready.
    pub fn start(data: &Path, env: &[(&str, &str)]) -> Self {
        let mut child = command(data, env).spawn().expect("spawn berth dev");
        let output = Arc::new(Mutex::new(Vec::new()));
        let rx = capture(child.stderr.take().expect("stderr"), "dev", output.clone());
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut addrs = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("berth dev was not ready within 120 s (or exited)");
            };
            if let Some(rest) = line.split("control plane on ").nth(1) {
                let grpc = rest.split_whitespace().next().unwrap().to_string();
                let http = rest.split("http://").nth(1).unwrap();
                let http = http.split_whitespace().next().unwrap().to_string();
                addrs = Some((format!("http://{grpc}"), http));
            }
            if line.ends_with(": ready") {
                let (grpc, http) = addrs.take().expect("addresses before ready");
                return Self {
                    child,
                    grpc,
                    http,
                    output,
                };
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and the exit waited for (at most 10 s).
    pub fn stop(&mut self) {
        super::sigterm(self.child.id());
        if wait_exit(&mut self.child, Duration::from_secs(10)).is_none() {
            self.kill9();
        }
    }

    pub async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Channel::from_shared(self.grpc.clone())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs `berth dev` on `data` expecting it to refuse to start: its exit code and stderr.
pub fn dev_refuses(data: &Path) -> (Option<i32>, String) {
    let mut child = command(data, &[]).spawn().expect("spawn berth dev");
    let output = Arc::new(Mutex::new(Vec::new()));
    let _rx = capture(child.stderr.take().expect("stderr"), "dev", output.clone());
    let Some((status, _)) = wait_exit(&mut child, Duration::from_secs(60)) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("berth dev started on a damaged store (still running after 60 s)");
    };
    // The reader thread may still be taking the last lines.
    std::thread::sleep(Duration::from_millis(200));
    let text = output.lock().unwrap().join("\n");
    (status.code(), text)
}

/// Registers `family` with image `image`: its revision.
pub async fn register(
    channel: tonic::transport::Channel,
    family: &str,
    image: &str,
) -> Result<i32, tonic::Status> {
    let json = format!(
        r#"{{"family":"{family}","containerDefinitions":[{{"name":"c","image":"{image}"}}]}}"#
    );
    let reply = TaskDefinitionsClient::new(channel)
        .register_task_definition(RegisterTaskDefinitionRequest {
            task_definition: None,
            task_definition_json: json,
        })
        .await?;
    Ok(reply
        .into_inner()
        .task_definition
        .unwrap_or_default()
        .revision)
}

/// Every revision of `family` with its image, oldest first.
pub async fn revisions(channel: tonic::transport::Channel, family: &str) -> Vec<(i32, String)> {
    let mut out: Vec<(i32, String)> = TaskDefinitionsClient::new(channel)
        .list_task_definitions(ListTaskDefinitionsRequest {
            family: family.into(),
            status: "ALL".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .task_definitions
        .into_iter()
        .map(|t| (t.revision, t.container_definitions[0].image.clone()))
        .collect();
    out.sort();
    out
}

/// The log segments of `data`'s store that hold anything, oldest first.
pub fn segments(data: &Path) -> Vec<std::path::PathBuf> {
    let mut segs: Vec<_> = std::fs::read_dir(data.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name().unwrap().to_string_lossy().starts_with("wal-")
                && std::fs::metadata(p).unwrap().len() > 0
        })
        .collect();
    segs.sort();
    segs
}

/// `data`'s newest snapshot file, if any.
pub fn snapshot(data: &Path) -> Option<std::path::PathBuf> {
    let mut snaps: Vec<_> = std::fs::read_dir(data.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("snapshot-") && !name.ends_with(".tmp")
        })
        .collect();
    snaps.sort();
    snaps.pop()
}

/// Flips one bit of the byte at `at`: the file's bytes after.
pub fn flip(path: &Path, at: usize) -> Vec<u8> {
    let mut raw = std::fs::read(path).unwrap();
    raw[at] ^= 0x20;
    std::fs::write(path, &raw).unwrap();
    raw
}
