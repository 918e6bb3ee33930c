//! A full disk recovers by itself: `berth dev` with its data directory on a small tmpfs, the
//! tmpfs filled up. Writes fail saying the disk is full, the server stays up and reads answer,
//! `/healthz` and `/metrics` show the store degraded; once space is back, writes succeed
//! within 5 s without a restart, and after a restart every acknowledged write is there.

mod common;

use common::http::get_addr;
use common::store::{register, revisions, Dev};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs mounted at a new directory, unmounted on drop (after whatever used it is gone).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a tmpfs and needs root (CAP_SYS_ADMIN): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Writes zeros to `path` until the filesystem is full.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 64 << 10];
    let mut written = 0;
    loop {
        match f.write(&block) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    // The last bytes a page at a time, so not even a small record fits.
    while let Ok(n) = f.write(&block[..512]) {
        if n == 0 {
            break;
        }
        written += n as u64;
    }
    let _ = f.sync_all();
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_writes_clearly_and_recovers_without_a_restart() {
    let fs = Tmpfs::mount("24m");
    let data: PathBuf = fs.path().join("data");
    let mut acked = Vec::new();
    {
        let mut dev = Dev::start(&data, &[]);
        let channel = dev.channel().await;
        for i in 0..20 {
            let image = format!("img:{i}");
            acked.push((
                register(channel.clone(), "web", &image).await.unwrap(),
                image,
            ));
        }
        let filler = fs.path().join("filler");
        let filled = fill(&filler);

        // Writes fail, saying why.
        let mut refused = None;
        for i in 0..50 {
            match register(channel.clone(), "web", &format!("full:{i}")).await {
                Ok(r) => acked.push((r, format!("full:{i}"))),
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        let refused = refused.expect("a write fails on a full disk");
        assert!(
            refused.message().contains("disk holding the store")
                && refused.message().contains("is full"),
            "{}",
            refused.message()
        );
        // The server stays up and reads answer.
        let read = revisions(channel.clone(), "web").await;
        assert_eq!(read, acked, "reads answer with every acknowledged write");
        let (status, body) = get_addr(&dev.http, "/healthz").expect("healthz answers");
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("degraded") && body.contains("full"), "{body}");
        let (_, metrics) = get_addr(&dev.http, "/metrics").expect("metrics answer");
        assert!(metrics.contains("berth_store_degraded 1"), "{metrics}");

        // Space back: writes succeed again, without a restart.
        std::fs::remove_file(&filler).unwrap();
        let freed = Instant::now();
        let r = loop {
            match register(channel.clone(), "web", "after").await {
                Ok(r) => break r,
                Err(e) if freed.elapsed() < Duration::from_secs(5) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!(
                    "writes still fail 5 s after space came back: {}",
                    e.message()
                ),
            }
        };
        let recovered = freed.elapsed();
        acked.push((r, "after".into()));
        let (status, _) = get_addr(&dev.http, "/healthz").unwrap();
        assert_eq!(status, 200);
        eprintln!(
            "filled {} KiB; writes failed with: {}; succeeded again {recovered:?} after space came back",
            filled >> 10,
            refused.message()
        );
        assert!(recovered < Duration::from_secs(5));
        dev.stop();
    }
    let dev = Dev::start(&data, &[]);
    let after = revisions(dev.channel().await, "web").await;
    assert_eq!(after, acked, "every acknowledged write after a restart");
    drop(dev);
}
