//! Private registries on the real Docker engine through `berth dev`: Debian's `docker-registry`
//! on loopback with htpasswd authentication (`apt-get install docker-registry apache2-utils`).
//! An image pushed there and removed locally is pulled with the task's `repositoryCredentials`
//! (a secret made with `aws secretsmanager create-secret`) and runs, recording the digest it ran;
//! re-pushing the tag with another image makes the next task (default pull policy) run the new
//! digest; with a wrong password the task stops with CannotPullContainerError naming the
//! registry and `unauthorized`; the node's own login (`--registry-auth`, a Docker config.json
//! read at each pull) serves a definition without credentials. Containers,
//! images and the registry process are removed even when the test fails.

mod common;

use common::aws::*;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const USER: &str = "berth";
const PASSWORD: &str = "registry-pass-7f3k";

/// The registry process and the images the test tagged, gone on drop.
struct Registry {
    child: Child,
    port: u16,
    images: Vec<String>,
    docker_config: tempfile::TempDir,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for i in &self.images {
            let _ = Command::new("docker").args(["rmi", "-f", i]).output();
        }
        // A re-pushed tag leaves the image it moved from untagged in the same repository.
        let repo = format!("{}/berth-test/app", self.host());
        if let Ok(out) = Command::new("docker")
            .args(["images", "-q", &repo])
            .output()
        {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("docker").args(["rmi", "-f", id]).output();
            }
        }
    }
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn start_registry() -> Registry {
    common::setup::tools();
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = run_ok(Command::new("htpasswd").args(["-Bbn", USER, PASSWORD]));
    std::fs::write(dir.path().join("htpasswd"), htpasswd).unwrap();
    let port = free_port();
    let config = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
         http:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
        dir.path().join("storage").display(),
        dir.path().join("htpasswd").display()
    );
    std::fs::write(dir.path().join("config.yml"), config).unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(dir.path().join("config.yml"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry is not installed: apt-get install docker-registry");
    let r = Registry {
        child,
        port,
        images: Vec::new(),
        docker_config: tempfile::tempdir().unwrap(),
        _dir: dir,
    };
    wait_for(Duration::from_secs(20), "the registry listening", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let login = Command::new("docker")
        .env("DOCKER_CONFIG", r.docker_config.path())
        .args(["login", "-u", USER, "--password-stdin"])
        .arg(r.host())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(PASSWORD.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        login.status.success(),
        "docker login: {}",
        String::from_utf8_lossy(&login.stderr)
    );
    r
}

impl Registry {
    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Imports a busybox image whose /version says `version`, pushes it as `reference` and
    /// removes it locally; returns the digest the registry gave it.
    fn push(&mut self, reference: &str, version: &str) -> String {
        let root = tempfile::tempdir().unwrap();
        let bin = root.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .expect("busybox is not installed: apt-get install busybox-static");
        std::fs::copy(busybox, bin.join("busybox")).unwrap();
        for a in ["sh", "cat", "sleep"] {
            std::os::unix::fs::symlink("busybox", bin.join(a)).unwrap();
        }
        std::fs::write(root.path().join("version"), version).unwrap();
        let archive = root.path().join("root.tar");
        run_ok(
            Command::new("tar")
                .arg("-cf")
                .arg(&archive)
                .arg("-C")
                .arg(root.path())
                .args(["bin", "version"]),
        );
        self.images.push(reference.to_string());
        run_ok(
            Command::new("docker")
                .args(["import", "--change", "ENV PATH=/bin"])
                .arg(&archive)
                .arg(reference),
        );
        let out = run_ok(
            Command::new("docker")
                .env("DOCKER_CONFIG", self.docker_config.path())
                .args(["push", reference]),
        );
        let digest = out
            .split_whitespace()
            .find(|w| w.starts_with("sha256:"))
            .unwrap_or_else(|| panic!("no digest in docker push's output: {out}"))
            .to_string();
        run_ok(Command::new("docker").args(["rmi", reference]));
        digest
    }
}

/// A Docker config.json with one login.
fn write_auth(path: &Path, host: &str, password: &str) {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{password}"));
    let v = json!({"auths": {host: {"auth": auth}}});
    std::fs::write(path, v.to_string()).unwrap();
}

#[test]
fn a_private_image_is_pulled_with_repository_credentials_and_a_repushed_tag_runs_its_new_digest() {
    let mut registry = start_registry();
    let reference = format!("{}/berth-test/app:v1", registry.host());
    let first_digest = registry.push(&reference, "one");

    let dir = tempfile::tempdir().unwrap();
    // The node's own login starts wrong: the task's repositoryCredentials take its place.
    let auth: PathBuf = dir.path().join("registry-auth.json");
    write_auth(&auth, &registry.host(), "node-login-not-yet-right");
    let cluster = unique_cluster("registry");
    let _cleanup = ContainerCleanup {
        cluster: cluster.clone(),
    };
    let mut flags: Vec<&str> = FAST.to_vec();
    flags.extend(["--registry-auth", auth.to_str().unwrap()]);
    let dev = ServerProcess::start_with("dev", &dir.path().join("data"), &flags);
    let ok = |args: &[&str]| {
        let r = berth(&dev.grpc, args);
        assert!(r.ok, "berth {args:?}: {}{}", r.stdout, r.stderr);
        r
    };
    ok(&["cluster", "create", &cluster]);
    let secret = |name: &str, password: &str| -> String {
        let value = json!({"username": USER, "password": password}).to_string();
        let r = aws_for(
            "secretsmanager",
            &dev.http,
            &Creds::default(),
            &["create-secret", "--name", name, "--secret-string", &value],
        );
        assert!(r.ok, "{}", r.stderr);
        r.json()["ARN"].as_str().unwrap().to_string()
    };
    let login_arn = secret("registry-login", PASSWORD);
    secret("registry-login-wrong", "not-the-password");
    let register = |family: &str, credentials: Option<&str>| -> String {
        let mut c = json!({"name": "app", "image": reference, "memory": 16, "stopTimeout": 1,
            "command": ["sh", "-c", "sleep 60"]});
        if let Some(p) = credentials {
            c["repositoryCredentials"] = json!({"credentialsParameter": p});
        }
        let path = dir.path().join(format!("{family}.json"));
        std::fs::write(
            &path,
            json!({"family": family, "containerDefinitions": [c]}).to_string(),
        )
        .unwrap();
        register_file(&dev.grpc, &path)
    };
    let with_login = register("private", Some(&login_arn));
    let with_wrong = register("private-wrong", Some("registry-login-wrong"));
    let with_node_login = register("private-node", None);

    let run = |td: &str| -> String {
        let r = ok(&[
            "task",
            "run",
            "--cluster",
            &cluster,
            "--taskdef",
            td,
            "-o",
            "json",
        ]);
        r.json()["tasks"][0]["taskArn"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let describe = |arn: &str| -> Value {
        berth(
            &dev.grpc,
            &["task", "describe", arn, "--cluster", &cluster, "-o", "json"],
        )
        .json()["task"]
            .clone()
    };
    let settled = |arn: &str| {
        wait_for(
            Duration::from_secs(60),
            "the task RUNNING or STOPPED",
            || {
                let t = describe(arn);
                matches!(t["lastStatus"].as_str(), Some("RUNNING" | "STOPPED")).then_some(t)
            },
        )
    };
    let version = |arn: &str| {
        let r = berth(
            &dev.grpc,
            &["exec", arn, "--cluster", &cluster, "--", "cat", "/version"],
        );
        assert!(r.ok, "{}", r.stderr);
        r.stdout.trim().to_string()
    };

    let first = run(&with_login);
    let t = settled(&first);
    assert_eq!(t["lastStatus"], "RUNNING", "{t:#}");
    assert_eq!(
        t["containers"][0]["imageDigest"],
        first_digest.as_str(),
        "{t:#}"
    );
    assert_eq!(version(&first), "one");

    // The tag moves to another image: under the default policy the next task pulls it.
    let second_digest = registry.push(&reference, "two");
    assert_ne!(first_digest, second_digest);
    let second = run(&with_login);
    let t = settled(&second);
    assert_eq!(t["lastStatus"], "RUNNING", "{t:#}");
    assert_eq!(
        t["containers"][0]["imageDigest"],
        second_digest.as_str(),
        "{t:#}"
    );
    assert_eq!(version(&second), "two");

    // A wrong password, with no cached image to fall back on.
    let _ = Command::new("docker")
        .args(["rmi", "-f", &reference])
        .output();
    let third = run(&with_wrong);
    let t = settled(&third);
    assert_eq!(t["lastStatus"], "STOPPED", "{t:#}");
    let reason = t["stoppedReason"].as_str().unwrap_or("");
    assert!(
        reason.starts_with("CannotPullContainerError")
            && reason.contains(&registry.host())
            && reason.to_ascii_lowercase().contains("unauthorized"),
        "{t:#}"
    );
    assert!(!reason.contains("not-the-password"), "{reason}");

    // The node's own login, read at each pull: right now, so a definition without
    // repositoryCredentials pulls too.
    write_auth(&auth, &registry.host(), PASSWORD);
    let fourth = run(&with_node_login);
    let t = settled(&fourth);
    assert_eq!(t["lastStatus"], "RUNNING", "{t:#}");
    assert_eq!(version(&fourth), "two");
}
