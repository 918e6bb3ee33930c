//! Makes sure the tools the integration tests drive are installed: the first helper in a test
//! process that needs one (wrk, etcd, Chromium, tmux, busybox, curl, the aws CLI, …) runs
//! `tests/setup/install.sh`, so `cargo test --workspace` sets a fresh machine up by itself, as
//! `.ci/run` does. The script is the one list of what to install.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

static CHECKED: OnceLock<()> = OnceLock::new();

/// Installs what is missing, once per test process. Without root it only says what is missing
/// and how to install it; the test that needs it then fails naming the tool.
pub fn tools() {
    CHECKED.get_or_init(|| {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/setup/install.sh");
        let ok = |args: &[&str]| {
            Command::new("sh")
                .arg(&script)
                .args(args)
                .status()
                .is_ok_and(|s| s.success())
        };
        if ok(&["--check"]) {
            return;
        }
        if !rustix::process::geteuid().is_root() {
            eprintln!(
                "the tests need the tools above: run `sudo {}` to install them",
                script.display()
            );
            return;
        }
        if !ok(&[]) {
            eprintln!(
                "{} failed: the tests that need what it installs will fail",
                script.display()
            );
        }
    });
}
