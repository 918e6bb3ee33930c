//! `berth-test-shell:latest`: a shell image for tests that need `sh`, `cat` and friends inside a
//! container (`berth exec`), imported offline from this host's statically linked busybox
//! (Debian's `busybox-static`, which `tests/setup/install.sh` installs).

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

pub const SHELL_IMAGE: &str = "berth-test-shell:latest";

/// The applets the image has on /bin, each a link to busybox.
const APPLETS: &[&str] = &[
    "sh", "cat", "echo", "sleep", "hostname", "ls", "stty", "seq",
];

/// Imports the image once per test process (a re-import of the same files is harmless).
pub fn shell_image() -> &'static str {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|p| p.into_inner());
    if *done {
        return SHELL_IMAGE;
    }
    super::setup::tools();
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("busybox is not installed: apt-get install busybox-static");
    let root = tempfile::tempdir().unwrap();
    let bin = root.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(busybox, bin.join("busybox")).unwrap();
    for a in APPLETS {
        std::os::unix::fs::symlink("busybox", bin.join(a)).unwrap();
    }
    let archive = root.path().join("root.tar");
    let tar = Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(root.path())
        .arg("bin")
        .status()
        .expect("run tar");
    assert!(tar.success(), "tar failed");
    let import = Command::new("docker")
        .args(["import", "--change", "ENV PATH=/bin"])
        .arg(&archive)
        .arg(SHELL_IMAGE)
        .output()
        .expect("run docker import");
    assert!(
        import.status.success(),
        "docker import: {}",
        String::from_utf8_lossy(&import.stderr)
    );
    *done = true;
    SHELL_IMAGE
}
