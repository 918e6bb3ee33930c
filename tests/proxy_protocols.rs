//! The proxy's client-facing protocols over real sockets: HTTP/2 (prior knowledge) from clients
//! reaching HTTP/1.1 targets, HEAD responses, which carry a length but no body, on a keep-alive
//! connection, and the cap on a listener port's connections. Same harness as `proxy.rs`.

mod proxy_harness;

use http_body_util::{BodyExt, Empty};
use hyper::Version;
use hyper_util::rt::TokioExecutor;
use proxy_harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_reach_http1_targets_with_forwarding_headers() {
    let a = Backend::start("a").await;
    let port = free_port().await;
    let cp = ControlPlane::start(vec![route("web", port, vec![a.target(1)], 1)]).await;
    let proxy = start_proxy(&cp).await;
    wait_healthy(&cp, &[1]).await;

    let exchange = async {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let mut answers = Vec::new();
        for path in ["/headers", "/"] {
            let request = Request::get(format!("http://web.example:{port}{path}"))
                .body(Empty::<Bytes>::new())
                .unwrap();
            let response = sender.send_request(request).await.unwrap();
            assert_eq!(response.version(), Version::HTTP_2);
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            answers.push((status, String::from_utf8_lossy(&body).into_owned()));
        }
        answers
    };
    let answers = tokio::time::timeout(WAIT, exchange).await.expect("answers");
    // HTTP/2 carries the host in the request's authority; the target gets it as `Host`.
    let expected = format!(
        "host: web.example:{port}\nx-forwarded-for: 127.0.0.1\nx-forwarded-proto: http\n\
         x-forwarded-port: {port}\n"
    );
    assert_eq!(answers, [(200, expected), (200, "a\n".to_string())]);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_answer_has_no_body_and_the_connection_carries_on() {
    let a = Backend::start("a").await;
    let port = free_port().await;
    let cp = ControlPlane::start(vec![route("web", port, vec![a.target(1)], 1)]).await;
    let proxy = start_proxy(&cp).await;
    wait_healthy(&cp, &[1]).await;

    let raw = "HEAD / HTTP/1.1\r\nHost: web\r\n\r\nGET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n";
    for _ in 0..3 {
        let exchange = async {
            let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            s.write_all(raw.as_bytes()).await.unwrap();
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.unwrap();
            String::from_utf8_lossy(&buf).into_owned()
        };
        let text = tokio::time::timeout(WAIT, exchange).await.expect("answers");
        assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{text}");
        assert_eq!(text.matches("content-length: 2\r\n").count(), 2, "{text}");
        let (head_answer, get_answer) = text.split_at(text.rfind("HTTP/1.1 200 OK").unwrap());
        assert!(
            head_answer.ends_with("\r\n\r\n"),
            "no body after HEAD: {text}"
        );
        assert!(
            get_answer.ends_with("\r\n\r\na\n"),
            "the GET's body: {text}"
        );
    }
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_port_sheds_connections_over_its_cap_and_serves_again_once_they_go() {
    let a = Backend::start("a").await;
    let port = free_port().await;
    let cp = ControlPlane::start(vec![route("web", port, vec![a.target(1)], 1)]).await;
    let proxy = start_proxy_with(&cp, |c| c.max_connections = 50).await;
    wait_healthy(&cp, &[1]).await;

    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    // The shed ones are closed at once; the 50 held stay open.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut held = 0;
    for s in &idle {
        let mut byte = [0u8; 1];
        match s.try_read(&mut byte) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => held += 1,
            Ok(0) | Err(_) => {}
            Ok(_) => panic!("an idle connection got bytes"),
        }
    }
    assert_eq!(held, 50, "{held} of 200 held, for a cap of 50");
    let metrics = proxy.telemetry().metrics_text();
    assert!(
        metrics.contains(&format!(
            "berth_proxy_shed_connections_total{{listener_port=\"{port}\"}} 150"
        )),
        "{metrics}"
    );
    drop(idle);
    let mut status = 0;
    for _ in 0..50 {
        status = get(port, "web", "/").await.0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status, 200,
        "the port serves once the idle connections are gone"
    );
    proxy.shutdown().await;
}
