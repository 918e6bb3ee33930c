//! Restarting `berth proxy` under load: a second process started on the same data directory takes
//! over the listening sockets of the running one, which drains and exits, while wrk keeps four
//! connections busy through it all. Real processes (two `berth proxy`, wrk), real HTTP backends on
//! loopback, and the stand-in control plane of the proxy tests. Every process is ended by its own
//! PID when the test ends, passed or not.

mod proxy_harness;
#[path = "common/setup.rs"]
mod setup;

use proxy_harness::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// `berth proxy` on loopback with its handoff socket in `data` and `/metrics` on `http_port`.
fn proxy_command(server: &str, data: &Path, http_port: u16) -> Command {
    let mut command = Command::new(BERTH);
    command
        .args(["--server", server, "proxy", "--bind", "127.0.0.1"])
        .args(["--http", &format!("127.0.0.1:{http_port}")])
        .arg("--data")
        .arg(data)
        .env("BERTH_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    command
}

/// A `berth proxy` child process; SIGKILLed (this PID alone) on drop unless it has exited.
struct ProxyProcess {
    name: &'static str,
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl ProxyProcess {
    /// Starts `berth proxy` with `DATA` (where the handoff socket lives) and waits for its
    /// `berth proxy: ready` line.
    fn start(name: &'static str, server: &str, data: &Path, http_port: u16) -> Self {
        let mut child = proxy_command(server, data, http_port)
            .args(["--id", name, "--drain-timeout", "5s"])
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn berth proxy");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{name}] {line}");
                sink.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let mut proxy = Self {
            name,
            child,
            lines,
            log,
        };
        proxy.wait_line("berth proxy: ready", WAIT);
        proxy
    }

    fn wait_line(&mut self, wanted: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(wanted) => return,
                Ok(_) => {}
                Err(_) => panic!("{}: no {wanted:?} line within {limit:?}", self.name),
            }
        }
    }

    fn logged(&self, text: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(text))
    }

    /// Polls until the process exits, at most `limit`: its exit status.
    fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Child::kill signals this one PID.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What wrk reported: requests done, non-2xx/3xx answers, socket errors (connect, read, write,
/// timeout).
fn wrk_figures(out: &str) -> (u64, u64, u64) {
    let mut requests = None;
    let (mut non_2xx, mut socket_errors) = (0, 0);
    for line in out.lines().map(str::trim) {
        if let Some((n, _)) = line.split_once(" requests in ") {
            requests = n.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = v.trim().parse().expect("Non-2xx count");
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            socket_errors = v
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        }
    }
    (
        requests.unwrap_or_else(|| panic!("no request count in wrk's output:\n{out}")),
        non_2xx,
        socket_errors,
    )
}

/// The `berth_proxy_requests_total` 2xx count a proxy's `/metrics` shows for the route.
async fn answered_2xx(http_port: u16, port: u16) -> u64 {
    let (status, text) = get(http_port, "localhost", "/metrics").await;
    assert_eq!(status, 200, "{text}");
    count_2xx(&text, port)
}

fn count_2xx(metrics: &str, port: u16) -> u64 {
    let series = format!(
        "berth_proxy_requests_total{{cluster=\"test\",service=\"web\",listener_port=\"{port}\",code=\"2xx\"}} "
    );
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |n| n.trim().parse().expect("a count"))
}

/// How the test restarts the proxy.
#[derive(Clone, Copy, PartialEq)]
enum Restart {
    /// A second `berth proxy` started by hand on the same data directory.
    SecondProcess,
    /// SIGHUP to the running one, which starts its successor (as `systemctl reload` does).
    Hangup,
}

/// A process this test did not spawn itself (the successor a SIGHUP starts): SIGKILLed by its
/// PID, and only it, on drop.
struct PidGuard(u32);

impl Drop for PidGuard {
    fn drop(&mut self) {
        if self.0 > 1 && Path::new(&format!("/proc/{}", self.0)).exists() {
            let _ = Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
}

/// wrk with 4 connections for 20 s through the proxy, one restart in the middle: no request may
/// fail (non-2xx or socket error), and the new process serves afterwards.
/// An HTTPS listener on `port` for the routes of `cp`, with a self-signed certificate for `web`.
fn tls_table(routes: Vec<berth_proto::v1::Route>, port: u16) -> berth_proto::v1::RoutingTable {
    let c = rcgen::generate_simple_self_signed(vec!["web".to_string()]).unwrap();
    berth_proto::v1::RoutingTable {
        routes,
        tls_listeners: vec![berth_proto::v1::TlsListener {
            port: i32::from(port),
            ssl_policy: "ELBSecurityPolicy-TLS13-1-2-2021-06".into(),
            certificates: vec![berth_proto::v1::TlsCertificate {
                arn: "test".into(),
                chain_pem: c.cert.pem(),
                key_pem: c.signing_key.serialize_pem(),
                names: vec!["web".into()],
            }],
        }],
        ..Default::default()
    }
}

/// `GET /` with Host `web`: its status, over TLS (not verified: a test certificate) or not.
async fn status(port: u16, tls: bool) -> u16 {
    if !tls {
        return get(port, "web", "/").await.0;
    }
    let out = tokio::process::Command::new("curl")
        .args([
            "-sk",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .args(["--resolve", &format!("web:{port}:127.0.0.1")])
        .arg(format!("https://web:{port}/"))
        .output()
        .await
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

async fn restart_under_load(how: Restart) {
    restart_under_load_over(how, false).await
}

async fn restart_under_load_over(how: Restart, tls: bool) {
    setup::tools();
    let wrk = ["/usr/bin/wrk", "/usr/local/bin/wrk"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("wrk is installed (apt-get install -y wrk)");
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let port = free_port().await;
    let routes = vec![route("web", port, vec![a.target(1), b.target(2)], 1)];
    let cp = ControlPlane::start(routes.clone()).await;
    if tls {
        cp.set_table(tls_table(routes, port));
    }
    let data = tempfile::tempdir().unwrap();
    let http_port = free_port().await;

    let mut old = ProxyProcess::start("old", &cp.url(), data.path(), http_port);
    wait_healthy(&cp, &[1, 2]).await;
    let up = tokio::time::timeout(WAIT, async {
        while status(port, tls).await != 200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    up.await.expect("the old proxy answers 200");

    // 4 connections for 20 s; the restart happens in the middle.
    let load = tokio::process::Command::new(wrk)
        .args(["-t2", "-c4", "-d20s", "--latency"])
        .arg(format!(
            "{}://127.0.0.1:{port}/",
            if tls { "https" } else { "http" }
        ))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let load = tokio::spawn(load);
    tokio::time::sleep(Duration::from_secs(9)).await;
    let before = answered_2xx(http_port, port).await;
    assert!(before > 0, "wrk's requests reach the old proxy");

    let restart = Instant::now();
    let old_pid = old.child.id();
    let took_over = format!("took over from pid {old_pid}");
    let (_new, _successor) = match how {
        Restart::SecondProcess => {
            let new = ProxyProcess::start("new", &cp.url(), data.path(), http_port);
            assert!(
                new.logged(&took_over),
                "the new process took over the old one"
            );
            (Some(new), None)
        }
        Restart::Hangup => {
            let hup = Command::new("kill")
                .args(["-HUP", &old_pid.to_string()])
                .status()
                .unwrap();
            assert!(hup.success());
            // The successor writes to the same stderr as the old process.
            old.wait_line("SIGHUP: started pid", WAIT);
            let line = old
                .log
                .lock()
                .unwrap()
                .iter()
                .rev()
                .find(|l| l.contains("SIGHUP: started pid"))
                .cloned()
                .unwrap();
            let pid: u32 = line
                .split("started pid ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|p| p.parse().ok())
                .expect("the successor's pid");
            let guard = PidGuard(pid);
            old.wait_line(&took_over, WAIT);
            (None, Some(guard))
        }
    };
    let exit = tokio::task::block_in_place(|| old.wait_exit(Duration::from_secs(10)))
        .expect("the old proxy exits after the takeover");
    assert!(exit.success(), "the old proxy exits 0: {exit}");
    assert!(old.logged("a new process took over the listeners; draining"));
    eprintln!(
        "measured: the old proxy had handed over, drained and exited {:.2?} after the restart began",
        restart.elapsed()
    );

    let out = tokio::time::timeout(Duration::from_secs(40), load)
        .await
        .expect("wrk ends")
        .unwrap()
        .expect("wrk runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(out.status.success(), "wrk: {}", out.status);
    let (requests, non_2xx, socket_errors) = wrk_figures(&stdout);
    eprintln!(
        "measured: {requests} requests over 20 s with one restart: {non_2xx} non-2xx, {socket_errors} socket errors"
    );
    assert_eq!(
        (non_2xx, socket_errors),
        (0, 0),
        "no request fails across the restart"
    );
    assert!(requests > 1000, "wrk kept the proxies busy: {requests}");

    // The new process answered wrk's requests after the old one left (its own count, from 0).
    let after = answered_2xx(http_port, port).await;
    assert!(
        after > 100,
        "the new proxy answered the requests after the takeover: {after}"
    );
    assert_eq!(status(port, tls).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_listener_is_handed_over_under_wrk_load_and_no_request_fails() {
    restart_under_load_over(Restart::SecondProcess, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_proxy_process_takes_over_under_wrk_load_and_no_request_fails() {
    restart_under_load(Restart::SecondProcess).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_starts_a_successor_that_takes_over_under_wrk_load_and_no_request_fails() {
    restart_under_load(Restart::Hangup).await;
}

/// Without a routing table the new process is not serving, so the old one must go on: it keeps
/// accepting until the successor is ready, and stays when the successor gives up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_proxy_keeps_serving_when_the_new_one_never_gets_its_table() {
    let a = Backend::start("a").await;
    let port = free_port().await;
    let mut cp = ControlPlane::start(vec![route("web", port, vec![a.target(1)], 1)]).await;
    let data = tempfile::tempdir().unwrap();
    let http_port = free_port().await;
    let mut old = ProxyProcess::start("old", &cp.url(), data.path(), http_port);
    wait_healthy(&cp, &[1]).await;
    assert_eq!(get(port, "web", "/").await.0, 200);
    cp.stop().await;

    // The successor gets the sockets, then waits for a control plane that is gone.
    let mut child = proxy_command(&cp.url(), data.path(), http_port)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the successor");
    let guard = scopeguard(&mut child);
    for _ in 0..20 {
        assert_eq!(get(port, "web", "/").await.0, 200, "the old proxy answers");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(guard);
    for _ in 0..10 {
        assert_eq!(get(port, "web", "/").await.0, 200, "and goes on after");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(old.wait_exit(Duration::from_millis(10)).is_none());
}

/// Kills (this one PID) and reaps the child when dropped.
fn scopeguard(child: &mut Child) -> impl Drop + '_ {
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    Kill(child)
}

/// In-process, the library's side: the successor opens its listener on the very socket of the
/// old proxy, and its targets keep the health the old one saw — with a healthy threshold of 5
/// checks a second apart, a fresh proxy would answer 503 for 4 s, the successor answers at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_successor_serves_on_the_same_socket_with_the_targets_health_at_once() {
    let a = Backend::start("a").await;
    let port = free_port().await;
    let cp = ControlPlane::start(vec![route("web", port, vec![a.target(1)], 5)]).await;
    let old = start_proxy(&cp).await;
    cp.wait_report(&task_arn(1), "HEALTHY").await;
    assert_eq!(get(port, "web", "/").await.0, 200);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("handoff.sock");
    old.offer_handoff(&socket, Vec::new())
        .expect("handoff socket");

    let takeover = berth_proxy::handoff::take_over(&socket)
        .await
        .expect("handoff")
        .expect("a proxy answers on the socket");
    let inherited = takeover.inherited();
    assert_eq!(inherited.from_pid(), std::process::id());
    assert_eq!(
        inherited.addresses(),
        vec![SocketAddr::from(([127, 0, 0, 1], port))]
    );
    let mut config = berth_proxy::Config::new(cp.url(), [127, 0, 0, 1].into(), "successor");
    config.shutdown_grace = Duration::from_secs(3);
    let new = berth_proxy::spawn_inheriting(config, Some(inherited))
        .await
        .unwrap();
    tokio::time::timeout(WAIT, new.first_table())
        .await
        .expect("the successor gets its table");
    takeover.finish().await.expect("ready sent");
    tokio::time::timeout(WAIT, old.handed_over())
        .await
        .expect("the old proxy learns it was taken over");
    tokio::time::timeout(WAIT, old.shutdown())
        .await
        .expect("the old proxy stops accepting and drains");

    for _ in 0..20 {
        assert_eq!(
            get(port, "web", "/").await,
            (200, "a\n".into()),
            "the successor answers on the port, the target healthy from the start"
        );
    }
    assert_eq!(
        count_2xx(&new.metrics_text(), port),
        20,
        "the successor answered them"
    );
    new.shutdown().await;
}
