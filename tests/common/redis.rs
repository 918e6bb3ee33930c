//! `berth-test-redis:latest`, built offline: Debian's redis-server and redis-cli with the
//! libraries they load, imported with `docker import`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

const REDIS_IMAGE: &str = "berth-test-redis:latest";

/// The shared libraries `binary` loads, as `ldd` lists them (the loader included).
fn libraries(binary: &str) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(binary).output().expect("ldd");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// `berth-test-redis:latest`: Debian's redis-server and redis-cli with the libraries they load
/// (`apt-get install redis-server`), imported with `docker import`.
pub fn redis_image() -> &'static str {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|p| p.into_inner());
    if *done {
        return REDIS_IMAGE;
    }
    super::setup::tools();
    let bins = ["/usr/bin/redis-server", "/usr/bin/redis-cli"];
    for b in bins {
        assert!(
            Path::new(b).is_file(),
            "{b} is missing: apt-get install redis-server"
        );
    }
    let root = tempfile::tempdir().unwrap();
    let mut files: Vec<PathBuf> = bins.iter().map(PathBuf::from).collect();
    for b in bins {
        files.extend(libraries(b));
    }
    // Names in /etc/hosts (Service Connect's aliases) resolve through the files NSS module.
    files.extend(
        ["/lib/x86_64-linux-gnu/libnss_files.so.2"]
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.is_file()),
    );
    for f in &files {
        let dest = root.path().join(f.strip_prefix("/").unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        // Copies the file a symlink points at, under the name the binary asks for.
        std::fs::copy(f, &dest).unwrap();
    }
    std::fs::create_dir_all(root.path().join("data")).unwrap();
    std::fs::create_dir_all(root.path().join("tmp")).unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    std::fs::write(root.path().join("etc/nsswitch.conf"), "hosts: files dns\n").unwrap();
    let archive = tempfile::NamedTempFile::new().unwrap();
    assert!(Command::new("tar")
        .arg("-cf")
        .arg(archive.path())
        .arg("-C")
        .arg(root.path())
        .arg(".")
        .status()
        .unwrap()
        .success());
    let import = Command::new("docker")
        .args(["import", "--change", "ENV PATH=/usr/bin:/bin"])
        .arg(archive.path())
        .arg(REDIS_IMAGE)
        .output()
        .expect("docker import");
    assert!(
        import.status.success(),
        "docker import: {}",
        String::from_utf8_lossy(&import.stderr)
    );
    *done = true;
    REDIS_IMAGE
}
