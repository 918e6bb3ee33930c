//! A real etcd member for tests (Debian's `etcd-server`; `tests/setup/install.sh` installs it),
//! on free ports in a temp dir, ended by its own PID when dropped.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// An etcd member of its own, ended (by its own PID) when dropped.
pub struct Etcd {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Etcd {
    /// Starts a member and waits until it answers its own health check. Ports are picked free
    /// and released before etcd binds them, so a test running beside may take one first: a
    /// member that exits is started again on other ports.
    pub fn start() -> Self {
        for _ in 0..3 {
            if let Some(etcd) = Self::try_start() {
                return etcd;
            }
        }
        panic!("etcd did not start on free ports in three tries");
    }

    fn try_start() -> Option<Self> {
        super::setup::tools();
        let dir = tempfile::tempdir().expect("temp dir");
        let (client, peer) = (free_port(), free_port());
        let url = format!("http://127.0.0.1:{client}");
        let child = Command::new("etcd")
            .args([
                "--name",
                "test",
                "--data-dir",
                &dir.path().join("data").display().to_string(),
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
                "--initial-cluster",
                &format!("test=http://127.0.0.1:{peer}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd is installed (Debian's etcd-server; tests/setup/install.sh installs it)");
        let mut etcd = Self {
            child,
            url,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        // Its own /health, not just a listening port: the port may be another member's.
        while !super::http_get(client, "/health")
            .is_some_and(|(status, body)| status == 200 && body.contains("true"))
        {
            if etcd.child.try_wait().ok().flatten().is_some() {
                return None;
            }
            assert!(
                Instant::now() < deadline,
                "etcd was not healthy within 20 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(etcd)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
