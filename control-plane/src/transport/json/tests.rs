//! The HTTP transport over a real socket: the check sees the caller's `Authorization` as gRPC
//! metadata, its refusal is a 401 with the JSON error body, and only JSON is taken.

use super::*;
use crate::store::LogStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn list_clusters(
    addr: std::net::SocketAddr,
    content_type: &str,
    auth: Option<&str>,
) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let req = format!(
        "POST /api/v1/Clusters/ListClusters HTTP/1.0\r\nHost: x\r\n{auth}\
         Content-Type: {content_type}\r\nContent-Length: 2\r\n\r\n{{}}"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    let status = buf.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, buf.split_once("\r\n\r\n").unwrap().1.to_string())
}

#[tokio::test]
async fn the_check_sees_the_bearer_token_and_refuses_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = State::new(Arc::new(LogStore::open(dir.path()).unwrap()));
    let check: Check = Arc::new(|req: tonic::Request<()>| {
        match req.metadata().get("authorization").map(|v| v.to_str()) {
            Some(Ok("Bearer s3cret")) => Ok(req),
            _ => Err(tonic::Status::unauthenticated("a bearer token is required")),
        }
    });
    let app = router_with(
        state,
        Sessions::new(),
        crate::live::proxies::Proxies::new(),
        check,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (status, body) = list_clusters(addr, "application/json", None).await;
    assert_eq!(status, 401, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], "Unauthenticated");
    assert_eq!(v["message"], "a bearer token is required");

    let json = "application/json; charset=utf-8";
    let (status, body) = list_clusters(addr, json, Some("Bearer s3cret")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("{\"clusters\":["), "{body}");

    // What a form on another site could send without asking first is refused.
    let (status, body) = list_clusters(addr, "text/plain", Some("Bearer s3cret")).await;
    assert_eq!(status, 415, "{body}");
    assert!(body.contains("Content-Type: application/json"), "{body}");
}
