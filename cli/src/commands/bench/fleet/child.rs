//! The control plane under test runs as a child process (this binary, re-run with a hidden
//! flag): its resident set is then its own, not the simulated agents', and it can be watched
//! from outside as an operator would. The child serves until its stdin closes, so it never
//! outlives the bench, even one that was killed.

use anyhow::{bail, Context};
use berth_control_plane::server;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The line the child prints once it serves: `serving URL`.
const READY: &str = "serving ";

/// A running control plane child.
pub struct ControlPlane {
    pub url: String,
    pub pid: u32,
    child: Option<Child>,
}

impl ControlPlane {
    /// Starts the child on `dir` (gRPC on `port`, 0: any) and waits (bounded) for its URL.
    pub fn start(dir: &Path, port: u16) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding this binary")?;
        let mut child = Command::new(exe)
            .args(["bench", "fleet", "--serve-port", &port.to_string()])
            .arg("--serve-control-plane")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the control plane process")?;
        let pid = child.id();
        let stdout = child.stdout.take().context("the child's stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix(READY) {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let mut cp = ControlPlane {
            url: String::new(),
            pid,
            child: Some(child),
        };
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => cp.url = url,
            Err(_) => bail!("the control plane process did not start serving within 60 s"),
        }
        Ok(cp)
    }

    /// Closes the child's stdin (it shuts down and exits), waiting up to 10 s before killing
    /// it — its own PID only.
    pub fn shutdown(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        drop(child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The child's side: the real control plane on `dir` (the embedded store, gRPC on 127.0.0.1:0) with the
/// bench's timings, until stdin closes.
pub async fn serve(dir: PathBuf, port: u16) -> anyhow::Result<()> {
    let local = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let grpc = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut config = server::Config::new(dir, grpc, local);
    config.controller.lost_node_timeout = super::LOST_NODE_TIMEOUT;
    config.controller.min_healthy_time = super::MIN_HEALTHY_TIME;
    let cp = server::spawn(config)
        .await
        .context("starting the control plane")?;
    println!("{READY}{}", cp.local_url());
    // stdin closing (the bench finished, failed or died) is the signal to stop.
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    })
    .await?;
    cp.shutdown().await;
    Ok(())
}
