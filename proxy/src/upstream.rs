//! Berth's own HTTP/1.1 client to targets, for every request whose body is already in hand (none,
//! or a small buffered one) and that is not an upgrade: the request head and body leave in one
//! write on a keep-alive connection from this worker thread's idle list, and only what framing
//! needs is read from the response head. Streamed request bodies and upgrades go through hyper's
//! client instead. Idle connections belong to one worker thread (a thread-local list, nginx's
//! `keepalive` per worker), so taking one needs no lock and a request never leaves its thread.

use crate::framing::{Framing, ResponseBody};
use crate::headers::{is_hop_by_hop, X_FORWARDED_FOR, X_FORWARDED_PORT, X_FORWARDED_PROTO};
use crate::target::Target;
use bytes::BytesMut;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, EXPECT, HOST};
use hyper::http::request::Parts;
use hyper::http::uri::Authority;
use hyper::{Method, Response, StatusCode, Version};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::mem::MaybeUninit;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// How long an idle upstream connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per target on one worker thread.
const MAX_IDLE: usize = 64;
/// The largest response head accepted, and the most header fields.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;

/// One keep-alive connection to a target.
pub(crate) struct UpConn {
    pub stream: TcpStream,
    /// Bytes read and not yet consumed.
    pub buf: BytesMut,
    /// The request being written; kept to reuse its allocation.
    out: Vec<u8>,
    /// The target's id, once the connection may be kept for it.
    target: Option<u64>,
}

impl UpConn {
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
            out: Vec::with_capacity(1024),
            target: None,
        }
    }

    /// An idle connection the target has not closed: no bytes, no end of stream waiting. Costs no
    /// syscall unless the reactor saw the socket become readable.
    fn is_open(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

struct Idle {
    conn: UpConn,
    since: Instant,
}

thread_local! {
    /// This worker thread's idle connections, per target; most recently used at the back.
    static IDLE: RefCell<Vec<(u64, VecDeque<Idle>)>> = const { RefCell::new(Vec::new()) };
}

/// An idle connection to the target `id` that is still open, if this thread has one.
fn checkout(id: u64) -> Option<UpConn> {
    IDLE.with_borrow_mut(|idle| {
        let list = &mut idle.iter_mut().find(|(t, _)| *t == id)?.1;
        let now = Instant::now();
        while let Some(entry) = list.pop_back() {
            if now.duration_since(entry.since) < IDLE_TIMEOUT && entry.conn.is_open() {
                return Some(entry.conn);
            }
        }
        None
    })
}

/// Keeps a connection whose last response ended cleanly for the next request to its target.
pub(crate) fn release(conn: UpConn) {
    let Some(id) = conn.target else {
        return;
    };
    IDLE.with_borrow_mut(|idle| {
        let now = Instant::now();
        let list = match idle.iter().position(|(t, _)| *t == id) {
            Some(i) => &mut idle[i].1,
            None => {
                idle.push((id, VecDeque::new()));
                &mut idle.last_mut().expect("just pushed").1
            }
        };
        while list
            .front()
            .is_some_and(|e| now.duration_since(e.since) >= IDLE_TIMEOUT)
        {
            list.pop_front();
        }
        if list.len() < MAX_IDLE {
            list.push_back(Idle { conn, since: now });
        }
    });
}

/// Closes this thread's connections idle for longer than the idle timeout, and forgets targets
/// with none left; run periodically on each worker.
pub(crate) fn sweep() {
    IDLE.with_borrow_mut(|idle| {
        let now = Instant::now();
        for (_, list) in idle.iter_mut() {
            list.retain(|e| now.duration_since(e.since) < IDLE_TIMEOUT);
        }
        idle.retain(|(_, list)| !list.is_empty());
    });
}

/// Why an exchange with a target failed.
#[derive(Debug)]
pub(crate) enum ExchangeError {
    /// No connection could be made: the target is down.
    Connect(io::Error),
    /// The target closed or reset the connection before any response byte.
    Closed(io::Error),
    /// The response was malformed or cut short.
    Failed(io::Error),
}

/// What the target learns about the client, as `X-Forwarded-For` and `X-Forwarded-Port`.
pub(crate) struct Forwarded<'a> {
    pub client_ip: &'a [u8],
    pub port: &'a [u8],
}

/// Sends one request (the client's head from `parts`, its hop-by-hop headers dropped and the
/// forwarding headers added on the way, and `body`) to `target` and reads the response head; the
/// response's hop-by-hop headers are left out. A reused connection found closed before any
/// response byte is replaced by a new one once, when the request may be repeated.
pub(crate) async fn exchange(
    target: &Target,
    connect_timeout: Duration,
    parts: &Parts,
    body: Option<&[u8]>,
    forwarded: &Forwarded<'_>,
) -> Result<Response<ResponseBody>, ExchangeError> {
    let authority = &target.authority;
    let repeatable = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    );
    if let Some(conn) = checkout(target.id) {
        match round_trip(conn, parts, body, forwarded).await {
            Err(Trip::Closed { sent, error }) if repeatable || !sent => {
                tracing::debug!(
                    "idle connection to {authority} was closed ({error}); reconnecting"
                );
            }
            Err(Trip::Closed { error, .. }) => return Err(ExchangeError::Closed(error)),
            Err(Trip::Failed(error)) => return Err(ExchangeError::Failed(error)),
            Ok(response) => return Ok(response),
        }
    }
    let stream = connect(authority, connect_timeout)
        .await
        .map_err(ExchangeError::Connect)?;
    let mut conn = UpConn::new(stream);
    conn.target = Some(target.id);
    round_trip(conn, parts, body, forwarded)
        .await
        .map_err(|e| match e {
            Trip::Closed { error, .. } => ExchangeError::Closed(error),
            Trip::Failed(error) => ExchangeError::Failed(error),
        })
}

async fn connect(authority: &Authority, timeout: Duration) -> io::Result<TcpStream> {
    let attempt = async {
        let mut last = None;
        for addr in tokio::net::lookup_host(authority.as_str()).await? {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.set_nodelay(true)?;
            socket.set_keepalive(true)?;
            match socket.connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{authority}: no address"))
        }))
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connect timed out after {timeout:?}"),
        )),
    }
}

enum Trip {
    /// Closed or reset before any response byte; `sent` when the request had been written.
    Closed {
        sent: bool,
        error: io::Error,
    },
    Failed(io::Error),
}

fn closed_kind(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset | BrokenPipe | ConnectionAborted | UnexpectedEof
    )
}

async fn round_trip(
    mut conn: UpConn,
    parts: &Parts,
    body: Option<&[u8]>,
    forwarded: &Forwarded<'_>,
) -> Result<Response<ResponseBody>, Trip> {
    write_head(&mut conn.out, parts, body, forwarded);
    if let Err(error) = conn.stream.write_all(&conn.out).await {
        return Err(if closed_kind(&error) {
            Trip::Closed { sent: false, error }
        } else {
            Trip::Failed(error)
        });
    }
    loop {
        let (head, framing) = match read_head(&mut conn, parts.method == Method::HEAD).await {
            Ok(head) => head,
            Err(error) if conn.buf.is_empty() && closed_kind(&error) => {
                return Err(Trip::Closed { sent: true, error })
            }
            Err(error) => return Err(Trip::Failed(error)),
        };
        // Interim responses (100 Continue, 103 Early Hints) precede the real one.
        if head.status.is_informational() {
            if head.status == StatusCode::SWITCHING_PROTOCOLS {
                let e = io::Error::new(io::ErrorKind::InvalidData, "unrequested protocol switch");
                return Err(Trip::Failed(e));
            }
            continue;
        }
        let mut response = Response::new(ResponseBody::new(conn, framing, head.keep_alive));
        *response.status_mut() = head.status;
        *response.version_mut() = Version::HTTP_11;
        *response.headers_mut() = head.headers;
        return Ok(response);
    }
}

/// The request line and headers, then the body, in one buffer. The client's headers go as they
/// came, less hop-by-hop ones (the caller has already dropped those named in `Connection`) and the
/// forwarding headers, which are written anew: `X-Forwarded-For` appends the client to what came.
fn write_head(out: &mut Vec<u8>, parts: &Parts, body: Option<&[u8]>, forwarded: &Forwarded<'_>) {
    let field = |out: &mut Vec<u8>, name: &[u8], value: &[u8]| {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    };
    out.clear();
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(if target.is_empty() { "/" } else { target }.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut host = false;
    let mut prior_for = false;
    for (name, value) in &parts.headers {
        if is_hop_by_hop(name)
            // The whole body is in hand: nothing to wait for, and its length is known.
            || name == CONTENT_LENGTH
            || name == EXPECT
            || name == X_FORWARDED_PROTO
            || name == X_FORWARDED_PORT
        {
            continue;
        }
        if name == X_FORWARDED_FOR {
            prior_for = true;
            continue;
        }
        host |= name == HOST;
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    // HTTP/2 carries the host in the URI; an HTTP/1.1 target needs the header.
    if let (false, Some(authority)) = (host, parts.uri.authority()) {
        field(out, b"host", authority.as_str().as_bytes());
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    if prior_for {
        for value in parts.headers.get_all(&X_FORWARDED_FOR) {
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b", ");
        }
    }
    out.extend_from_slice(forwarded.client_ip);
    out.extend_from_slice(b"\r\nx-forwarded-proto: http\r\n");
    field(out, b"x-forwarded-port", forwarded.port);
    let len = body.map_or(0, <[u8]>::len);
    let bodiless = matches!(parts.method, Method::GET | Method::HEAD | Method::DELETE);
    if len > 0 || !bodiless || parts.headers.contains_key(CONTENT_LENGTH) {
        field(out, b"content-length", len.to_string().as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    if let Some(body) = body {
        out.extend_from_slice(body);
    }
}

/// What the proxy needs from a response head.
struct Head {
    status: StatusCode,
    headers: HeaderMap,
    keep_alive: bool,
}

async fn read_head(conn: &mut UpConn, head_request: bool) -> io::Result<(Head, Framing)> {
    loop {
        if !conn.buf.is_empty() {
            if let Some((len, head, framing)) = parse_head(&conn.buf, head_request)? {
                let _ = conn.buf.split_to(len);
                return Ok((head, framing));
            }
            if conn.buf.len() > MAX_HEAD {
                return Err(invalid("response head too large"));
            }
        }
        conn.buf.reserve(16 * 1024);
        if conn.stream.read_buf(&mut conn.buf).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the target closed the connection before the response",
            ));
        }
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Parses a complete response head: its length, what the proxy needs, and the body's framing.
fn parse_head(buf: &[u8], head_request: bool) -> io::Result<Option<(usize, Head, Framing)>> {
    // Uninitialised slots: zeroing a hundred of them per response costs more than the parse.
    let mut fields = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let parse = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut parsed,
        buf,
        &mut fields,
    );
    let len = match parse {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(invalid(&format!("malformed response head: {e}"))),
    };
    let status = parsed
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| invalid("bad status code"))?;
    let mut keep_alive = parsed.version == Some(1);
    let mut length: Option<u64> = None;
    let mut chunked = None;
    let mut listed = false;
    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
    for field in parsed.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| invalid("bad header name"))?;
        if name == CONTENT_LENGTH {
            let n = std::str::from_utf8(field.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| invalid("bad content-length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(invalid("conflicting content-length"));
            }
            length = Some(n);
        } else if name == hyper::header::TRANSFER_ENCODING {
            // Chunked must be the last coding; anything else is read until close.
            let last = field
                .value
                .rsplit(|b| *b == b',')
                .next()
                .unwrap_or_default();
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name == CONNECTION {
            for token in field.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if !token.is_empty() && !token.eq_ignore_ascii_case(b"keep-alive") {
                    listed = true;
                }
            }
        }
        if is_hop_by_hop(&name) {
            continue;
        }
        let value =
            HeaderValue::from_bytes(field.value).map_err(|_| invalid("bad header value"))?;
        headers.append(name, value);
    }
    if listed {
        // Headers named in `Connection` belong to this hop too.
        let connection = parsed
            .headers
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case("connection"));
        for field in connection {
            for token in field.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if let Ok(name) = HeaderName::from_bytes(token) {
                    headers.remove(name);
                }
            }
        }
    }
    let bodiless = head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = if bodiless {
        Framing::Length(0)
    } else {
        match (chunked, length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) => Framing::Close,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::Close,
        }
    };
    if chunked.is_some() {
        // The client gets the body with hyper's own framing.
        headers.remove(CONTENT_LENGTH);
    }
    let head = Head {
        status,
        headers,
        keep_alive,
    };
    Ok(Some((len, head, framing)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    use tokio::net::TcpListener;

    /// A target answering `ok` to every request; it closes each connection after `per_conn`
    /// answers without saying so, as a server with a short keep-alive timeout does. Returns its
    /// authority and how many connections it has accepted.
    async fn target(per_conn: usize) -> (Arc<Target>, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (reporter, _reports) = crate::report::channel();
        let proto = berth_proto::v1::Target {
            task_arn: "task".into(),
            address: addr.ip().to_string(),
            port: i32::from(addr.port()),
            draining: false,
        };
        let target = Target::new("svc", &proto, reporter).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                count.fetch_add(1, SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    for _ in 0..per_conn {
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            if s.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                                return;
                            }
                        }
                        buf.clear();
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        s.write_all(answer).await.unwrap();
                    }
                });
            }
        });
        (target, accepted)
    }

    const FORWARDED: Forwarded<'static> = Forwarded {
        client_ip: b"10.0.0.9",
        port: b"8080",
    };

    async fn get(target: &Target) -> Vec<u8> {
        let p = parts(Method::GET, "/", &[("host", "t")]);
        let response = exchange(target, Duration::from_secs(2), &p, None, &FORWARDED)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec()
    }

    #[tokio::test]
    async fn idle_connections_carry_the_next_requests() {
        let (target, accepted) = target(usize::MAX).await;
        for _ in 0..5 {
            assert_eq!(get(&target).await, b"ok");
        }
        assert_eq!(accepted.load(SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_target_closed_while_idle_is_replaced() {
        let (target, accepted) = target(1).await;
        for _ in 0..5 {
            assert_eq!(get(&target).await, b"ok");
        }
        assert_eq!(accepted.load(SeqCst), 5);
    }

    fn parts(method: Method, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut req = hyper::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_request_goes_out_with_its_body_and_length() {
        let mut out = Vec::new();
        let p = parts(
            Method::PUT,
            "http://front/a?b=c",
            &[
                ("host", "front"),
                ("content-length", "99"),
                ("expect", "100-continue"),
            ],
        );
        write_head(&mut out, &p, Some(b"hello"), &FORWARDED);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "PUT /a?b=c HTTP/1.1\r\nhost: front\r\nx-forwarded-for: 10.0.0.9\r\n\
             x-forwarded-proto: http\r\nx-forwarded-port: 8080\r\ncontent-length: 5\r\n\r\nhello"
        );
    }

    #[test]
    fn forwarding_headers_replace_the_clients_and_hop_by_hop_ones_stay_behind() {
        let mut out = Vec::new();
        let p = parts(
            Method::GET,
            "http://front.example/x",
            &[
                ("x-forwarded-for", "1.1.1.1"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-port", "1"),
                ("keep-alive", "timeout=5"),
                ("te", "trailers"),
                ("x-kept", "yes"),
            ],
        );
        write_head(&mut out, &p, None, &FORWARDED);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /x HTTP/1.1\r\nx-kept: yes\r\nhost: front.example\r\n\
             x-forwarded-for: 1.1.1.1, 10.0.0.9\r\nx-forwarded-proto: http\r\n\
             x-forwarded-port: 8080\r\n\r\n"
        );
    }

    #[test]
    fn response_hop_by_hop_headers_are_left_out() {
        let head = "HTTP/1.1 200 OK\r\nconnection: keep-alive, x-private\r\nx-private: 1\r\n\
                    keep-alive: timeout=5\r\ncontent-length: 0\r\nx-kept: 1\r\n\r\n";
        let (_, head, _) = parse_head(head.as_bytes(), false).unwrap().unwrap();
        let mut names: Vec<_> = head.headers.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-length", "x-kept"]);
        assert!(head.keep_alive);
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let framing = |head: &str, head_request: bool| {
            parse_head(head.as_bytes(), head_request)
                .unwrap()
                .map(|(_, h, f)| (f, h.keep_alive))
        };
        let ok = "HTTP/1.1 200 OK\r\n";
        assert_eq!(
            framing(&format!("{ok}content-length: 12\r\n\r\n"), false),
            Some((Framing::Length(12), true))
        );
        assert_eq!(
            framing(&format!("{ok}content-length: 12\r\n\r\n"), true),
            Some((Framing::Length(0), true))
        );
        assert_eq!(
            framing(
                &format!("{ok}transfer-encoding: gzip, chunked\r\n\r\n"),
                false
            ),
            Some((Framing::Chunked, true))
        );
        assert_eq!(
            framing(&format!("{ok}connection: close\r\n\r\n"), false),
            Some((Framing::Close, false))
        );
        assert_eq!(
            framing("HTTP/1.0 204 No Content\r\n\r\n", false),
            Some((Framing::Length(0), false))
        );
        assert_eq!(framing(ok, false), None, "the head is not complete yet");
        assert!(parse_head(
            format!("{ok}content-length: 1\r\ncontent-length: 2\r\n\r\n").as_bytes(),
            false
        )
        .is_err());
    }
}
