//! The proxy's client-facing protocols over real sockets: HTTP/2 (prior knowledge) from clients
//! reaching HTTP/1.1 targets, and HEAD responses, which carry a length but no body, on a
//! keep-alive connection. Same harness as `proxy.rs`.

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
