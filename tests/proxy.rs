//! The load balancer over real sockets on 127.0.0.1: in-process hyper backends, Berth's proxy
//! started in-process with `berth_proxy::spawn`, and a stand-in `Endpoints` gRPC server that feeds
//! it routing tables and records the health it reports. Nothing external; every wait is bounded.

mod proxy_harness;

use proxy_harness::*;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_with_two_targets_answers_100_sequential_requests_from_both() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let port = free_port().await;
    let cp = ControlPlane::start(vec![route("web", port, vec![a.target(1), b.target(2)], 1)]).await;
    let proxy = start_proxy(&cp).await;
    wait_healthy(&cp, &[1, 2]).await;
    assert_eq!(proxy.listening_ports(), vec![port]);

    for i in 0..100 {
        let (status, body) = get(port, "web.example", "/").await;
        assert_eq!(status, 200, "request {i}: {body}");
    }
    assert_eq!(a.hits() + b.hits(), 100);
    assert!(
        a.hits() >= 40 && b.hits() >= 40,
        "round robin: a {} b {}",
        a.hits(),
        b.hits()
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_and_path_rules_send_each_request_only_to_its_service() {
    let backends = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("api").await,
        Backend::start("wild").await,
    ];
    let port = free_port().await;
    let r = |name: &str, n: usize| route(name, port, vec![backends[n].target(n)], 1);
    let cp = ControlPlane::start(vec![
        with_rule(r("wild", 3), 40, &["*.example"], &[]),
        with_rule(r("api", 2), 30, &[], &["/api/*"]),
        with_rule(r("b", 1), 20, &["b.example"], &[]),
        with_rule(r("a", 0), 10, &["a.example"], &[]),
    ])
    .await;
    let proxy = start_proxy(&cp).await;
    wait_healthy(&cp, &[0, 1, 2, 3]).await;

    let cases = [
        ("a.example", "/", "a"),
        ("A.Example:8080", "/x", "a"),
        ("a.example", "/api/users", "a"),
        ("b.example", "/", "b"),
        ("B.EXAMPLE", "/api/", "b"),
        ("other.test", "/api/users", "api"),
        ("other.test", "/API/users", ""),
        ("c.example", "/", "wild"),
        ("x.y.example", "/api/z", "api"),
        ("other.test", "/", ""),
    ];
    for (host, path, service) in cases {
        let (status, body) = get(port, host, path).await;
        if service.is_empty() {
            assert_eq!(status, 404, "{host}{path} should match no rule: {body}");
        } else {
            assert_eq!((status, body.trim()), (200, service), "{host}{path}");
        }
    }
    let hits: Vec<usize> = backends.iter().map(Backend::hits).collect();
    assert_eq!(hits, [3, 2, 2, 1], "requests per service (a, b, api, wild)");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_target_gets_traffic_only_once_healthy() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let port = free_port().await;
    let cp = ControlPlane::start(vec![route("web", port, vec![a.target(1)], 2)]).await;
    let proxy = start_proxy(&cp).await;
    wait_healthy(&cp, &[1]).await;

    b.set_health(503);
    cp.set(vec![route("web", port, vec![a.target(1), b.target(2)], 2)]);
    cp.wait_report(&task_arn(2), "INITIAL").await;
    for _ in 0..20 {
        assert_eq!(get(port, "web", "/").await.0, 200);
    }
    assert_eq!(
        b.hits(),
        0,
        "a target that never passed a check gets no request"
    );

    b.set_health(200);
    cp.wait_report(&task_arn(2), "HEALTHY").await;
    for _ in 0..20 {
        assert_eq!(get(port, "web", "/").await.0, 200);
    }
    assert!(
        b.hits() >= 8,
        "the healthy target takes its share: {}",
        b.hits()
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_failing_its_checks_leaves_rotation_and_is_reported_unhealthy() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let port = free_port().await;
    let cp = ControlPlane::start(vec![route("web", port, vec![a.target(1), b.target(2)], 1)]).await;
    let proxy = start_proxy(&cp).await;
    wait_healthy(&cp, &[1, 2]).await;

    b.set_health(500);
    let report = cp.wait_report(&task_arn(2), "UNHEALTHY").await;
    assert_eq!(
        report.reason,
        "Health checks failed with these codes: [500]"
    );
    assert_eq!(report.port, i32::from(b.addr.port()));
    assert_eq!(report.service_arn, "arn:berth:test:service/web");
    let before = b.hits();
    for _ in 0..20 {
        assert_eq!(get(port, "web", "/").await.0, 200);
    }
    assert_eq!(b.hits(), before, "an unhealthy target gets no request");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_target_unhealthy_answers_503_naming_the_service() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    a.set_health(500);
    b.set_health(500);
    let port = free_port().await;
    let cp = ControlPlane::start(vec![route("web", port, vec![a.target(1), b.target(2)], 1)]).await;
    let proxy = start_proxy(&cp).await;
    cp.wait_report(&task_arn(1), "UNHEALTHY").await;
    cp.wait_report(&task_arn(2), "UNHEALTHY").await;

    let (status, body) = get(port, "web", "/").await;
    assert_eq!(status, 503);
    assert_eq!(body, "no healthy target for service web\n");
    assert_eq!(a.hits() + b.hits(), 0, "no fail-open");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_target_finishes_its_request_then_reports_drained() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let port = free_port().await;
    let targets = |draining: Option<usize>| {
        let mut t = vec![a.target(1), b.target(2)];
        if let Some(i) = draining {
            t[i].draining = true;
        }
        t
    };
    let cp = ControlPlane::start(vec![route("web", port, targets(None), 1)]).await;
    let proxy = start_proxy(&cp).await;
    wait_healthy(&cp, &[1, 2]).await;

    let slow = tokio::spawn(get(port, "web", "/slow"));
    let busy = wait_for("the slow request to reach a backend", || {
        match (
            a.state.slow_in_flight.load(SeqCst),
            b.state.slow_in_flight.load(SeqCst),
        ) {
            (1, 0) => Some(0),
            (0, 1) => Some(1),
            _ => None,
        }
    })
    .await;
    let (draining, other) = if busy == 0 { (&a, &b) } else { (&b, &a) };
    let draining_task = task_arn(busy + 1);

    let applied = proxy.telemetry().tables_applied();
    cp.set(vec![route("web", port, targets(Some(busy)), 1)]);
    wait_for("the draining table", || {
        (proxy.telemetry().tables_applied() > applied).then_some(())
    })
    .await;
    let (draining_hits, other_hits) = (draining.hits(), other.hits());
    for _ in 0..10 {
        assert_eq!(get(port, "web", "/").await.0, 200);
    }
    assert_eq!(
        draining.hits(),
        draining_hits,
        "a draining target gets no new request"
    );
    assert_eq!(other.hits(), other_hits + 10);
    assert!(
        !cp.reported(&draining_task, "DRAINED"),
        "DRAINED while a request is still in flight"
    );

    let (status, body) = tokio::time::timeout(WAIT, slow).await.unwrap().unwrap();
    assert_eq!(status, 200, "the in-flight request completes: {body}");
    cp.wait_report(&draining_task, "DRAINED").await;
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_backend_fails_no_get() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let port = free_port().await;
    let cp = ControlPlane::start(vec![route("web", port, vec![a.target(1), b.target(2)], 1)]).await;
    let proxy = start_proxy(&cp).await;
    wait_healthy(&cp, &[1, 2]).await;
    // Pooled connections to both targets.
    for _ in 0..10 {
        assert_eq!(get(port, "web", "/").await.0, 200);
    }

    b.kill().await;
    for i in 0..50 {
        let (status, body) = get(port, "web", "/").await;
        assert_eq!(
            (status, body.as_str()),
            (200, "a\n"),
            "request {i} after the kill"
        );
    }
    let report = cp.wait_report(&task_arn(2), "UNHEALTHY").await;
    assert_eq!(report.reason, "Connection refused");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_ports_follow_the_table() {
    let a = Backend::start("a").await;
    let (first, second) = (free_port().await, free_port().await);
    let cp = ControlPlane::start(vec![route("web", first, vec![a.target(1)], 1)]).await;
    let proxy = start_proxy(&cp).await;
    wait_healthy(&cp, &[1]).await;
    assert_eq!(get(first, "web", "/").await.0, 200);

    cp.set(vec![route("web", second, vec![a.target(1)], 1)]);
    wait_for("the listener to move", || {
        (proxy.listening_ports() == vec![second]).then_some(())
    })
    .await;
    // The tasks did not move, only the listener: their health carries over, no 503 between.
    assert_eq!(get(second, "web", "/").await.0, 200, "the new port serves");
    assert!(
        TcpStream::connect(("127.0.0.1", first)).await.is_err(),
        "the old port is closed"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_reach_the_target() {
    let a = Backend::start("a").await;
    let port = free_port().await;
    let cp = ControlPlane::start(vec![route("web", port, vec![a.target(1)], 1)]).await;
    let proxy = start_proxy(&cp).await;
    wait_healthy(&cp, &[1]).await;

    let (status, body) = get(port, "web.example", "/headers").await;
    assert_eq!(status, 200);
    let expected = format!(
        "host: web.example\nx-forwarded-for: 127.0.0.1\nx-forwarded-proto: http\nx-forwarded-port: {port}\n"
    );
    assert_eq!(body, expected);

    let (_, body) = send(
        port,
        "GET /headers HTTP/1.1\r\nHost: web.example\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        body.contains("x-forwarded-for: 203.0.113.9, 127.0.0.1\n"),
        "the client's address is appended: {body}"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_requests_become_a_tunnel() {
    let a = Backend::start("a").await;
    let port = free_port().await;
    let cp = ControlPlane::start(vec![route("web", port, vec![a.target(1)], 1)]).await;
    let proxy = start_proxy(&cp).await;
    wait_healthy(&cp, &[1]).await;

    let exchange = async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(
            b"GET /ws HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
        )
        .await
        .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            assert_eq!(s.read(&mut byte).await.unwrap(), 1, "head: {head:?}");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(head.contains("upgrade: echo"), "{head}");
        for word in ["ping", "pong"] {
            s.write_all(word.as_bytes()).await.unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, word.as_bytes());
        }
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .expect("the tunnel echoes");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_table_keeps_serving_when_the_control_plane_goes_away() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let port = free_port().await;
    let mut cp =
        ControlPlane::start(vec![route("web", port, vec![a.target(1), b.target(2)], 1)]).await;
    let proxy = start_proxy(&cp).await;
    wait_healthy(&cp, &[1, 2]).await;

    cp.stop().await;
    assert!(
        TcpStream::connect(cp.addr).await.is_err(),
        "the control plane is gone"
    );
    // Long enough for the proxy to notice and retry a few times.
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut served = 0;
    while tokio::time::Instant::now() < until {
        let (status, body) = get(port, "web", "/").await;
        assert_eq!(status, 200, "{body}");
        served += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        a.hits() > 0 && b.hits() > 0,
        "both targets still in rotation"
    );
    assert!(served > 10);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_per_service_and_target() {
    let a = Backend::start("a").await;
    let port = free_port().await;
    let cp = ControlPlane::start(vec![route("web", port, vec![a.target(1)], 1)]).await;
    let proxy = start_proxy(&cp).await;
    wait_healthy(&cp, &[1]).await;
    for _ in 0..7 {
        assert_eq!(get(port, "web", "/").await.0, 200);
    }

    let text = proxy.metrics_text();
    let service = format!("cluster=\"test\",service=\"web\",listener_port=\"{port}\"");
    assert!(
        text.contains(&format!(
            "berth_proxy_requests_total{{{service},code=\"2xx\"}} 7\n"
        )),
        "{text}"
    );
    let target = format!("{service},target=\"{}\",task=\"{}\"", a.addr, task_arn(1));
    assert!(
        text.contains(&format!(
            "berth_proxy_target_requests_total{{{target},code=\"2xx\"}} 7\n"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "berth_proxy_target_response_seconds_count{{{target}}} 7\n"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "berth_proxy_target_state{{{target},state=\"HEALTHY\"}} 1\n"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "berth_proxy_active_connections{{listener_port=\"{port}\"}}"
        )),
        "{text}"
    );
    proxy.shutdown().await;
}

/// `berth proxy` as a process: ready line, routing, `/metrics` and `/healthz`, exit 0 on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berth_proxy_serves_metrics_and_drains_on_sigterm() {
    use tokio::io::AsyncBufReadExt;
    let a = Backend::start("a").await;
    let port = free_port().await;
    let cp = ControlPlane::start(vec![route("web", port, vec![a.target(1)], 1)]).await;
    // Its own data directory: the handoff socket lives there.
    let data = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["--server", &cp.url(), "proxy", "--bind", "127.0.0.1"])
        .args(["--http", "127.0.0.1:0", "--id", "cli-test", "--data"])
        .arg(data.path())
        .env("BERTH_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn berth proxy");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut metrics_addr = None;
    let ready = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            eprintln!("[berth proxy] {line}");
            if let Some((_, rest)) = line.rsplit_once("http://") {
                if let Some(addr) = rest.strip_suffix("/metrics") {
                    metrics_addr = Some(addr.to_string());
                }
            }
            if line == "berth proxy: ready" {
                return;
            }
        }
        panic!("berth proxy exited before it was ready");
    };
    tokio::time::timeout(WAIT, ready)
        .await
        .expect("berth proxy: ready");
    let metrics_port: u16 = metrics_addr
        .expect("the metrics address is printed")
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    cp.wait_report(&task_arn(1), "HEALTHY").await;
    for _ in 0..3 {
        assert_eq!(get(port, "web", "/").await.0, 200);
    }

    let (status, text) = get(metrics_port, "localhost", "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        text.contains(&format!(
            "berth_proxy_requests_total{{cluster=\"test\",service=\"web\",listener_port=\"{port}\",code=\"2xx\"}} 3"
        )),
        "{text}"
    );
    assert_eq!(
        get(metrics_port, "localhost", "/healthz").await,
        (200, "ok\n".into())
    );

    let pid = child.id().expect("running").to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("berth proxy exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
}
