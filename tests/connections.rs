//! Connection hygiene and reach of the HTTP port, against real `berth server` and `berth dev`
//! processes: slow and idle clients are closed on time and the excess shed while the API keeps
//! answering, dev stays on loopback and refuses other Host names, and a server's HTTP port is
//! TLS with the cluster CA.

mod common;

use common::*;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Whether the server has closed `s` (EOF or reset), without blocking.
fn closed(mut s: &TcpStream) -> bool {
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

/// GET /healthz on a new connection: how long until the whole answer was in.
fn healthz_latency(addr: &str) -> Duration {
    let start = Instant::now();
    let (status, body) = http_get_addr(addr, "/healthz").expect("healthz answers");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    start.elapsed()
}

fn http_get_addr(addr: &str, path: &str) -> Option<(u16, String)> {
    common::http::get_addr(addr, path)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn fd_limit(pid: u32) -> usize {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .expect("Max open files")
}

#[test]
fn slow_header_connections_are_closed_at_the_header_timeout_while_the_api_answers_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with(
        "server",
        &dir.path().join("data"),
        &["--insecure", "--no-proxy", "--http-header-timeout", "2s"],
    );
    let addr = server.http.clone();
    // Each with the instant its first header byte went.
    let mut slow: Vec<(TcpStream, Instant)> = (0..200)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).expect("connect");
            s.write_all(b"G").unwrap();
            s.set_nonblocking(true).unwrap();
            (s, Instant::now())
        })
        .collect();
    let started = Instant::now();
    let header = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: 1234567890\r\n";
    let (closed_at, latencies) = std::thread::scope(|scope| {
        let api = scope.spawn(|| {
            let mut worst = Vec::new();
            while started.elapsed() < Duration::from_millis(2500) {
                worst.push(healthz_latency(&addr));
                std::thread::sleep(Duration::from_millis(100));
            }
            worst
        });
        // One more header byte a second on each, until the server closes it.
        let mut closed_at: Vec<Option<Duration>> = vec![None; slow.len()];
        let mut sent = 1;
        let deadline = started + Duration::from_secs(6);
        while closed_at.iter().any(Option::is_none) && Instant::now() < deadline {
            let due = started.elapsed().as_secs() as usize + 1;
            for (i, (s, first_byte)) in slow.iter_mut().enumerate() {
                if closed_at[i].is_none() {
                    if closed(s) {
                        closed_at[i] = Some(first_byte.elapsed());
                    } else if due > sent {
                        let _ = s.write_all(&header.as_bytes()[sent..sent + 1]);
                    }
                }
            }
            sent = sent.max(due);
            std::thread::sleep(Duration::from_millis(50));
        }
        (closed_at, api.join().unwrap())
    });
    let open = closed_at.iter().filter(|c| c.is_none()).count();
    assert_eq!(
        open, 0,
        "{open} of 200 slow connections still open after 6 s"
    );
    let first = closed_at.iter().flatten().min().unwrap();
    let last = closed_at.iter().flatten().max().unwrap();
    assert!(
        *first >= Duration::from_millis(1500) && *last <= Duration::from_millis(3500),
        "closed between {first:?} and {last:?} after their first byte, for a 2 s header timeout"
    );
    let worst = latencies.iter().max().unwrap();
    assert!(latencies.len() >= 10, "{latencies:?}");
    // Held up by the slow clients, the API would wait out their 2 s header timeout; on a busy
    // machine one answer may still take a scheduler's hiccup (one took 258 ms in CI).
    let mut sorted = latencies.clone();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    assert!(
        median < Duration::from_millis(100) && *worst < Duration::from_secs(1),
        "the API took {median:?} (median), {worst:?} (worst) meanwhile: {latencies:?}"
    );
    eprintln!(
        "slow headers closed {first:?}-{last:?} after their first byte; API worst {worst:?} of {}",
        latencies.len()
    );
}

#[test]
fn a_flood_of_idle_connections_is_shed_above_the_cap_and_the_process_keeps_its_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with(
        "server",
        &dir.path().join("data"),
        &["--insecure", "--no-proxy", "--http-max-connections", "200"],
    );
    let pid = server.pid();
    let baseline = open_fds(pid);
    let started = Instant::now();
    let addr: std::net::SocketAddr = server.http.parse().unwrap();
    // Five clients of a thousand connections each, at once.
    let flood: Vec<TcpStream> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..5)
            .map(|_| {
                scope.spawn(move || {
                    (0..1000)
                        .filter_map(|_| {
                            let s =
                                TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
                            s.set_nonblocking(true).unwrap();
                            Some(s)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    });
    let connected = flood.len();
    std::thread::sleep(Duration::from_millis(500));
    let held_fds = open_fds(pid);
    let limit = fd_limit(pid);
    let still_open = flood.iter().filter(|s| !closed(s)).count();
    eprintln!(
        "{connected} connected in {:?}; server fds {baseline} → {held_fds} (limit {limit}); {still_open} held",
        started.elapsed()
    );
    assert!(connected >= 4000, "only {connected} of 5000 connected");
    assert!(
        held_fds <= baseline + 200 + 20,
        "the server holds {held_fds} descriptors"
    );
    assert!(held_fds < limit, "{held_fds} descriptors of {limit}");
    assert_eq!(still_open, 200, "{still_open} held, for a cap of 200");

    // Once the flood goes, the API answers again and the descriptors are back.
    drop(flood);
    let latency = wait_for(Duration::from_secs(10), "the API to answer again", || {
        let addr = server.http.clone();
        http_get_addr(&addr, "/healthz").map(|_| healthz_latency(&addr))
    });
    assert!(latency < Duration::from_millis(100), "{latency:?}");
    let fds = wait_for(
        Duration::from_secs(10),
        "the descriptors to be closed",
        || Some(open_fds(pid)).filter(|n| *n <= baseline + 5),
    );
    eprintln!("after the flood: {fds} descriptors, healthz in {latency:?}");
}

#[test]
fn idle_keep_alive_connections_are_closed_at_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with(
        "server",
        &dir.path().join("data"),
        &["--insecure", "--no-proxy", "--http-idle-timeout", "1s"],
    );
    // Ten that never send, and one that asks once and keeps the connection.
    let mut idle: Vec<TcpStream> = (0..10)
        .map(|_| TcpStream::connect(&server.http).unwrap())
        .collect();
    let mut kept = TcpStream::connect(&server.http).unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = [0u8; 512];
    kept.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = kept.read(&mut answer).unwrap();
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    let started = Instant::now();
    idle.push(kept);
    for s in &idle {
        s.set_nonblocking(true).unwrap();
    }
    let all = wait_for(
        Duration::from_secs(5),
        "idle connections to be closed",
        || idle.iter().all(closed).then(|| started.elapsed()),
    );
    assert!(all <= Duration::from_millis(2500), "closed after {all:?}");
}

/// Runs `berth ARGS` that must exit on its own within 30 s.
fn exits(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(BERTH)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("berth {args:?} did not exit within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn dev_refuses_to_serve_beyond_loopback_without_secure() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    for (flag, value) in [
        ("--http", "0.0.0.0:0"),
        ("--listen", "0.0.0.0:0"),
        ("--proxy-bind", "0.0.0.0"),
    ] {
        let mut args = vec!["dev", "--data", data, "--listen", "127.0.0.1:0"];
        args.extend(["--http", "127.0.0.1:0"]);
        let at = args.iter().position(|a| *a == flag);
        match at {
            Some(i) => args[i + 1] = value,
            None => args.extend([flag, value]),
        }
        let (code, err) = exits(&args);
        assert_eq!(code, Some(1), "{flag} {value}: {err}");
        assert!(
            err.contains(&format!("{flag} 0.0.0.0")) && err.contains("--secure"),
            "{flag}: {err}"
        );
    }
    assert!(
        !dir.path().join("data/store").exists(),
        "a refused start changes nothing"
    );
}

/// One request with this Host header: the status.
fn status_with_host(addr: &str, host: &str) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = r#"{"clusterName":"reb"}"#;
    write!(
        s,
        "POST /api/v1/Clusters/CreateCluster HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    buf.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn dev_answers_only_loopback_host_names_and_keeps_its_agent_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let dev =
        ServerProcess::start_with("dev", &data, &["--no-proxy", "--allow-host", "devbox.lan"]);
    let http = dev.http.as_str();
    assert_eq!(status_with_host(http, "evil.example.com"), 403);
    assert_eq!(
        status_with_host(
            http,
            &format!("evil.example.com:{}", http.rsplit(':').next().unwrap())
        ),
        403
    );
    let r = berth(&dev.grpc, &["cluster", "list"]);
    assert!(
        !r.stdout.contains("reb"),
        "a refused request changed nothing: {}",
        r.stdout
    );
    assert_eq!(status_with_host(http, http), 200);
    assert_ne!(status_with_host(http, "devbox.lan:80"), 403);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let agent = std::fs::metadata(data.join("agent")).unwrap();
        assert_eq!(agent.permissions().mode() & 0o777, 0o700);
    }
}

fn curl(args: &[&str]) -> (bool, String) {
    common::setup::tools();
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_servers_http_port_is_tls_with_the_cluster_ca_and_plaintext_is_told_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServerProcess::start_with(
        "server",
        &data,
        &["--no-proxy", "--http-header-timeout", "1s"],
    );
    let ca = data.join("ca.crt");
    let https = format!("https://{}/api/v1", server.http);
    let (ok, out) = curl(&["--cacert", ca.to_str().unwrap(), &https]);
    assert!(
        ok && out.contains("/api/v1/Clusters/CreateCluster"),
        "{out}"
    );
    // Without the CA the server is not trusted; in plaintext the port says what to do.
    let (ok, out) = curl(&[&https]);
    assert!(!ok, "{out}");
    let (ok, out) = curl(&[
        "-w",
        " %{http_code}",
        &format!("http://{}/api/v1", server.http),
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("this port speaks TLS: use https://") && out.ends_with(" 400"),
        "{out}"
    );

    // A client that never finishes its handshake (silent, or one byte of a ClientHello) is
    // closed at the header timeout.
    let started = Instant::now();
    let silent = TcpStream::connect(&server.http).unwrap();
    let mut stalled = TcpStream::connect(&server.http).unwrap();
    stalled.write_all(&[0x16]).unwrap();
    for s in [&silent, &stalled] {
        s.set_nonblocking(true).unwrap();
    }
    let both = wait_for(
        Duration::from_secs(5),
        "stalled handshakes to be closed",
        || (closed(&silent) && closed(&stalled)).then(|| started.elapsed()),
    );
    assert!(both >= Duration::from_millis(800), "closed after {both:?}");

    // The gRPC port, likewise: a plaintext client is told it speaks TLS, and the fix.
    let plain = server.grpc.replace("https://", "http://");
    let admin = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let r = berth_with(
        &plain,
        &[("BERTH_TOKEN", admin.trim())],
        &["service", "list"],
    );
    assert!(!r.ok, "{}", r.stdout);
    assert!(
        r.stderr.contains("speaks TLS")
            && r.stderr.contains("--server https://")
            && r.stderr.contains("--ca"),
        "{}",
        r.stderr
    );
}

#[test]
fn the_grpc_port_sheds_connections_over_its_cap_and_serves_once_they_go() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with(
        "server",
        &dir.path().join("data"),
        &["--insecure", "--no-proxy", "--grpc-max-connections", "20"],
    );
    let addr = server.grpc.trim_start_matches("http://").to_string();
    let flood: Vec<TcpStream> = (0..100)
        .map(|_| {
            let s = TcpStream::connect(&addr).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let held = flood.iter().filter(|s| !closed(s)).count();
    assert_eq!(held, 20, "{held} of 100 held, for a cap of 20");
    drop(flood);
    let r = wait_for(
        Duration::from_secs(10),
        "the gRPC port to serve again",
        || Some(berth(&server.grpc, &["cluster", "list"])).filter(|r| r.ok),
    );
    assert!(r.stdout.contains("default"), "{}", r.stdout);
}
