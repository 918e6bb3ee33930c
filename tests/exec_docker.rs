//! `berth exec` and `berth logs --follow` on the real Docker engine through `berth dev`: a
//! command's output and exit status, stdin, a read-only token refused (under `--secure`, where
//! the agent dials back with its certificate), the task's exec events, clear errors for what
//! cannot be exec'd, an interactive shell driven through tmux, and live logs across a task's
//! containers that show a new line within 1 s and end when the task stops. Every container is
//! labelled with a per-test cluster and removed even when the test fails.

mod common;

use common::shell::shell_image;
use common::*;
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

struct Env {
    dev: ServerProcess,
    cluster: String,
    _cleanup: ContainerCleanup,
    dir: tempfile::TempDir,
}

fn env(prefix: &str, extra: &[&str]) -> Env {
    let image = shell_image();
    let dir = tempfile::tempdir().unwrap();
    let cluster = unique_cluster(prefix);
    let cleanup = ContainerCleanup {
        cluster: cluster.clone(),
    };
    let mut flags = vec!["--heartbeat", "500ms", "--stop-timeout", "2s"];
    flags.extend_from_slice(extra);
    let dev = ServerProcess::start_with("dev", &dir.path().join("data"), &flags);
    let e = Env {
        dev,
        cluster,
        _cleanup: cleanup,
        dir,
    };
    e.ok(&["cluster", "create", &e.cluster]);
    // Two containers that say a line now and then and stop at once on SIGTERM.
    let beat = |what: &str, every: &str| {
        format!("trap 'exit 0' TERM; echo {what} started; while true; do sleep {every}; done")
    };
    let def = json!({"family": "shell", "containerDefinitions": [
        {"name": "app", "image": image, "memory": 32, "command": ["sh", "-c", beat("app", "0.2")]},
        {"name": "side", "image": image, "memory": 16, "essential": false,
         "command": ["sh", "-c", beat("side", "0.2")]}]});
    let path = e.dir.path().join("shell.json");
    std::fs::write(&path, def.to_string()).unwrap();
    e.ok(&["taskdef", "register", "-f", path.to_str().unwrap()]);
    e
}

impl Env {
    fn cli(&self, args: &[&str]) -> Run {
        berth(&self.dev.grpc, args)
    }

    fn ok(&self, args: &[&str]) -> Run {
        let r = self.cli(args);
        assert!(r.ok, "berth {args:?} failed: {}", r.stderr);
        r
    }

    /// Runs the shell task and waits until both its containers run; its id.
    fn running_task(&self) -> String {
        let r = self.ok(&[
            "task",
            "run",
            "--cluster",
            &self.cluster,
            "--taskdef",
            "shell",
            "-o",
            "json",
        ]);
        let arn = r.json()["tasks"][0]["taskArn"]
            .as_str()
            .unwrap()
            .to_string();
        let id = arn.rsplit('/').next().unwrap().to_string();
        wait_for(Duration::from_secs(60), "the task to run", || {
            let t = self.describe(&id);
            let running = t["task"]["lastStatus"] == "RUNNING"
                && t["task"]["containers"]
                    .as_array()
                    .is_some_and(|c| c.iter().all(|c| c["lastStatus"] == "RUNNING"));
            running.then_some(())
        });
        id
    }

    fn describe(&self, id: &str) -> serde_json::Value {
        self.ok(&[
            "task",
            "describe",
            id,
            "--cluster",
            &self.cluster,
            "-o",
            "json",
        ])
        .json()
    }

    fn events(&self, id: &str) -> Vec<String> {
        self.describe(id)["events"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["message"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn exec(&self, id: &str, more: &[&str]) -> Run {
        let mut args = vec!["exec", id, "--cluster", &self.cluster];
        args.extend_from_slice(more);
        self.cli(&args)
    }
}

#[test]
fn exec_prints_output_returns_the_exit_status_refuses_a_read_only_token_and_records_events() {
    let e = env("exec", &["--secure"]);
    let id = e.running_task();

    // The container's own hostname (Docker's is the container id's first 12 characters).
    let r = e.exec(&id, &["--", "cat", "/etc/hostname"]);
    assert!(r.ok, "{}", r.stderr);
    let runtime_id = e.describe(&id)["task"]["containers"][0]["runtimeId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(r.stdout.trim(), &runtime_id[..12], "{r:?}", r = r.stdout);

    // Its exit status is berth's; stdout and stderr stay apart.
    let r = e.exec(&id, &["--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("out\n", "err\n"));
    // Another container by name.
    let r = e.exec(&id, &["--container", "side", "--", "cat", "/etc/hostname"]);
    assert!(r.ok && r.stdout.trim() != &runtime_id[..12], "{}", r.stderr);

    // -i: stdin reaches the command, and its end ends the command's stdin.
    let mut child = berth_child(
        &e,
        &["exec", "-i", &id, "--cluster", &e.cluster, "--", "cat"],
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through stdin\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through stdin\n");

    read_only_is_refused(&e, &id);
    // Every exec is an event on the task: who, what, how it ended.
    let events = e.events(&id);
    assert_eq!(events.len(), 5, "{events:#?}");
    assert!(
        events[0].starts_with("exec by token ")
            && events[0]
                .contains("(admin) from 127.0.0.1 in container app: cat /etc/hostname: exited 0"),
        "{events:#?}"
    );
    assert!(
        events[1].ends_with("sh -c 'echo out; echo err >&2; exit 3': exited 3"),
        "{events:#?}"
    );
    assert!(
        events[2].contains("in container side: cat /etc/hostname"),
        "{events:#?}"
    );
    assert!(
        !events.iter().any(|m| m.contains("/tmp/ro'")),
        "{events:#?}"
    );
    let shown = e
        .ok(&["task", "describe", &id, "--cluster", &e.cluster])
        .stdout;
    assert!(
        shown.contains("EVENTS") && shown.contains("exited 3"),
        "{shown}"
    );

    refusals(&e, &id);
}

/// A read-only token is refused before anything runs; it may still read.
fn read_only_is_refused(e: &Env, id: &str) {
    let made = e.ok(&["token", "create", "--read-only"]);
    let read_only = made.stdout.lines().last().unwrap().trim().to_string();
    let ca = e.dir.path().join("data/ca.crt");
    let ro = [
        ("BERTH_TOKEN", read_only.as_str()),
        ("BERTH_CA", ca.to_str().unwrap()),
    ];
    let args = [
        "exec",
        id,
        "--cluster",
        &e.cluster,
        "--",
        "sh",
        "-c",
        "echo ran > /tmp/ro",
    ];
    let r = berth_with(&e.dev.grpc, &ro, &args);
    assert!(!r.ok, "a read-only token must not exec: {}", r.stdout);
    assert!(
        r.stderr.contains("ExecTask") && r.stderr.contains("read-write token"),
        "{}",
        r.stderr
    );
    let r = e.exec(id, &["--", "cat", "/tmp/ro"]);
    assert_eq!(
        r.code,
        Some(1),
        "the refused command never ran: {}",
        r.stdout
    );
    // Reading is still allowed with it.
    assert!(berth_with(&e.dev.grpc, &ro, &["logs", id, "--cluster", &e.cluster]).ok);
}

/// What cannot be exec'd says why, and runs nothing.
fn refusals(e: &Env, id: &str) {
    let r = e.exec(id, &["--container", "nope", "--", "true"]);
    assert!(
        !r.ok
            && r.stderr
                .contains("container: \"nope\" is not a container of this task; it has app, side"),
        "{}",
        r.stderr
    );
    let r = e.exec("0123456789abcdef0123456789abcdef", &["--", "true"]);
    assert!(
        !r.ok && r.stderr.contains("TaskNotFoundException"),
        "{}",
        r.stderr
    );
    let r = e.exec(id, &["--", "no-such-command"]);
    assert_eq!(r.code, Some(126), "{}", r.stderr);
    assert!(
        r.stdout.contains("executable file not found"),
        "{}",
        r.stdout
    );
    e.ok(&["task", "stop", id, "--cluster", &e.cluster]);
    wait_for(Duration::from_secs(30), "the task to stop", || {
        (e.describe(id)["task"]["lastStatus"] == "STOPPED").then_some(())
    });
    let r = e.exec(id, &["--", "true"]);
    assert!(
        !r.ok && r.stderr.contains("is STOPPED") && r.stderr.contains("needs a RUNNING task"),
        "{}",
        r.stderr
    );
}

/// `berth` with these args, stdin and stdout piped, with the test server's credentials.
fn berth_child(e: &Env, args: &[&str]) -> Child {
    let mut cmd = Command::new(BERTH);
    cmd.arg("--server").arg(&e.dev.grpc).args(args);
    let data = e.dir.path().join("data");
    if let Ok(token) = std::fs::read_to_string(data.join("admin.token")) {
        cmd.env("BERTH_TOKEN", token.trim())
            .env("BERTH_CA", data.join("ca.crt"));
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth")
}

/// A tmux server of this test's own (its socket named for the test), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        common::setup::tools();
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux is not installed (apt-get install tmux)");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "t"])
    }

    /// Waits until a line of the pane is exactly `line` (trailing spaces aside).
    fn wait_line(&self, line: &str) -> String {
        wait_for(
            Duration::from_secs(20),
            &format!("{line:?} on the terminal"),
            || {
                let s = self.screen();
                s.lines().any(|l| l.trim_end() == line).then_some(s)
            },
        )
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

#[test]
fn exec_it_runs_an_interactive_shell_under_tmux() {
    let e = env("exec-it", &[]);
    let id = e.running_task();
    let tmux = Tmux {
        socket: format!("berth-exec-test-{}", std::process::id()),
    };
    // After berth exits: its status, and whether the terminal is back in canonical mode.
    let script = format!(
        "{BERTH} --server {} exec -it {id} --cluster {} -- sh; echo EXIT=$?; stty -a | grep -o -- '-*icanon'; sleep 60",
        e.dev.grpc, e.cluster
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "100",
        "-y",
        "30",
        &script,
    ]);
    tmux.wait_line("/ #");
    tmux.run(&["send-keys", "-t", "t", "echo hi", "Enter"]);
    tmux.wait_line("hi");
    // The remote terminal has this window's size, and follows it.
    tmux.run(&["send-keys", "-t", "t", "stty size", "Enter"]);
    tmux.wait_line("30 100");
    tmux.run(&["resize-window", "-t", "t", "-x", "120", "-y", "40"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        tmux.run(&["send-keys", "-t", "t", "stty size", "Enter"]);
        std::thread::sleep(Duration::from_millis(300));
        if tmux.screen().lines().any(|l| l.trim_end() == "40 120") {
            break;
        }
        assert!(Instant::now() < deadline, "no resize: {}", tmux.screen());
    }
    tmux.run(&["send-keys", "-t", "t", "exit 3", "Enter"]);
    tmux.wait_line("EXIT=3");
    // `stty -a` after berth: canonical mode is back (a raw terminal would say -icanon).
    let screen = wait_for(Duration::from_secs(20), "stty's verdict", || {
        let s = tmux.screen();
        s.lines()
            .any(|l| l.trim_end().ends_with("icanon"))
            .then_some(s)
    });
    assert!(
        screen.lines().any(|l| l.trim_end() == "icanon"),
        "the terminal is restored: {screen}"
    );
    let events = e.events(&id);
    assert!(
        events
            .iter()
            .any(|m| m.ends_with("in container app: sh: exited 3")),
        "{events:#?}"
    );
}

#[test]
fn logs_follow_shows_a_new_line_within_a_second_across_containers_and_ends_when_the_task_stops() {
    let e = env("logs", &[]);
    let id = e.running_task();
    let mut follow = Follow(
        Command::new(BERTH)
            .args([
                "--server",
                &e.dev.grpc,
                "logs",
                &id,
                "--cluster",
                &e.cluster,
                "--follow",
                "--timestamps",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn berth logs"),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = follow.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send((std::time::SystemTime::now(), line));
        }
    });
    // What was written before the command started comes first, each line under its container,
    // with the time Docker took it: `app | 2026-12-01T12:00:00.123456789Z app started`.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(seen.contains(&("app".to_string(), "app started".to_string()))
        && seen.contains(&("side".to_string(), "side started".to_string())))
    {
        let (_, line) = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the earlier lines");
        let (c, _, text) = split_line(&line);
        seen.push((c, text));
    }
    // A line written now, in each container, shows within a second of the container writing
    // it (by Docker's timestamp of the line, on this host's clock).
    for c in ["app", "side"] {
        let mark = format!("mark-{c}-{}", std::process::id());
        let name = format!("berth-{id}-{c}");
        let wrote = Command::new("docker")
            .args([
                "exec",
                &name,
                "sh",
                "-c",
                &format!("echo {mark} > /proc/1/fd/1"),
            ])
            .status()
            .unwrap();
        assert!(wrote.success());
        loop {
            let (at, line) = rx
                .recv_timeout(Duration::from_secs(5))
                .unwrap_or_else(|_| panic!("{c} | {mark} never came"));
            let (from, written_ms, text) = split_line(&line);
            if from == c && text == mark {
                let shown_ms = at.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
                let late = shown_ms - written_ms;
                eprintln!("{line}: shown {late} ms after the container wrote it");
                assert!(late < 1_000, "{line} took {late} ms");
                break;
            }
        }
    }
    // --since and --timestamps on the same logs.
    let r = e.ok(&[
        "logs",
        &id,
        "--cluster",
        &e.cluster,
        "--container",
        "app",
        "-t",
        "--since",
        "1h",
    ]);
    let first = r.stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("20") && first.contains("Z app started"),
        "{}",
        r.stdout
    );
    let r = e.cli(&["logs", &id, "--cluster", &e.cluster, "--since", "yesterday"]);
    assert!(
        !r.ok && r.stderr.contains("since: \"yesterday\""),
        "{}",
        r.stderr
    );

    // The stream ends once the task has stopped.
    e.ok(&["task", "stop", &id, "--cluster", &e.cluster]);
    let ended = wait_exit(&mut follow.0, Duration::from_secs(30));
    let (status, _) = ended.unwrap_or_else(|| {
        let last = e.describe(&id)["task"]["lastStatus"].clone();
        panic!("berth logs --follow still runs after the stop (the task is {last})")
    });
    assert!(status.success(), "{status}");
    wait_for(Duration::from_secs(10), "the task to be STOPPED", || {
        (e.describe(&id)["task"]["lastStatus"] == "STOPPED").then_some(())
    });
}

/// `C | TIMESTAMP TEXT` → (C, the timestamp in ms since the epoch, TEXT).
fn split_line(line: &str) -> (String, i64, String) {
    let (c, rest) = line
        .split_once(" | ")
        .unwrap_or_else(|| panic!("no container: {line}"));
    let (ts, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let ms = berth_proto::time::parse_rfc3339(ts).unwrap_or_else(|| panic!("no time: {line}"));
    (c.to_string(), ms, text.to_string())
}

/// The `berth logs --follow` child, killed on drop if the test fails before it ends.
struct Follow(Child);

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
