//! The tests' one plain HTTP client: one HTTP/1.0 request per connection (so the answer ends
//! where the connection does, never chunked), its body written while the answer is read (a
//! server may refuse a body before taking all of it), every read bounded by a timeout.

use std::io::{Read, Write};
use std::time::Duration;

/// What came back: the status, the head (status line and headers) and the body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// `METHOD PATH` to `addr` (HOST:PORT) with `headers` (a `Host` among them, or `addr` is sent as
/// the host) and `body`.
pub fn exchange(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> std::io::Result<Answer> {
    let to = std::net::ToSocketAddrs::to_socket_addrs(addr)?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{addr}: no address")))?;
    let mut s = std::net::TcpStream::connect_timeout(&to, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    let mut request = format!("{method} {path} HTTP/1.0\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    let mut w = s.try_clone()?;
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&bytes);
    });
    let mut buf = Vec::new();
    let read = s.read_to_end(&mut buf);
    let _ = writer.join();
    read?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no HTTP status in {head:?}")))?;
    Ok(Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    })
}

/// A GET with this `Host` on 127.0.0.1:PORT: (status, body), or None when it does not answer.
pub fn get_host(port: u16, host: &str, path: &str) -> Option<(u16, String)> {
    let addr = format!("127.0.0.1:{port}");
    let a = exchange(
        &addr,
        "GET",
        path,
        &[("Host", host)],
        b"",
        Duration::from_secs(5),
    )
    .ok()?;
    Some((a.status, a.body))
}

/// A GET on HOST:PORT: (status, body), or None when it does not answer.
pub fn get_addr(addr: &str, path: &str) -> Option<(u16, String)> {
    let port = addr.rsplit(':').next()?.parse().ok()?;
    get_host(port, "localhost", path)
}
