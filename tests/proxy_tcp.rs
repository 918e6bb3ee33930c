//! The proxy's TCP listeners (network load balancers) over real sockets: a listener with no
//! healthy target refuses connections (ECONNREFUSED, not accept-and-close), connections are
//! balanced over both targets, a target that dies is skipped on the very next connection (the
//! failed connect is retried on another target), and with every target gone the port refuses
//! again. Same harness as `proxy.rs`: HTTP backends, relayed byte for byte.

mod proxy_harness;

use proxy_harness::*;

fn tcp(mut r: Route) -> Route {
    r.protocol = "TCP".into();
    if let Some(hc) = r.health_check.as_mut() {
        hc.protocol = "TCP".into();
    }
    r
}

async fn refused(port: u16) -> bool {
    matches!(
        TcpStream::connect(("127.0.0.1", port)).await,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_listeners_refuse_without_a_healthy_target_and_skip_dead_ones() {
    let port = free_port().await;
    let nowhere = Target {
        task_arn: task_arn(9),
        address: "127.0.0.1".into(),
        port: i32::from(free_port().await),
        draining: false,
    };
    let cp = ControlPlane::start(vec![tcp(route("db", port, vec![nowhere], 1))]).await;
    let proxy = start_proxy(&cp).await;
    cp.wait_report(&task_arn(9), "INITIAL").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(refused(port).await, "nothing healthy: refused");

    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    cp.set(vec![tcp(route(
        "db",
        port,
        vec![a.target(1), b.target(2)],
        1,
    ))]);
    wait_healthy(&cp, &[1, 2]).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while a.hits() == 0 || b.hits() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "connections reach both targets: a {} b {}",
            a.hits(),
            b.hits()
        );
        let _ = get(port, "any", "/").await;
    }

    // A dead target: the next connections all succeed, on the other one.
    a.kill().await;
    let before = b.hits();
    for i in 0..10 {
        let (status, body) = get(port, "any", "/").await;
        assert_eq!(status, 200, "connection {i} after a target died: {body}");
    }
    assert_eq!(b.hits(), before + 10);

    // Nothing left: refused again.
    b.kill().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !refused(port).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the listener refuses once nothing is healthy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.shutdown().await;
}
