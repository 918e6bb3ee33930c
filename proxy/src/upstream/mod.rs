//! Berth's own HTTP/1.1 client to targets, for every request whose body is already in hand (none,
//! or a small buffered one) and that is not an upgrade: the request head and body leave in one
//! write on a keep-alive connection from this worker thread's idle list, and only what framing
//! needs is read from the response head. Streamed request bodies and upgrades go through hyper's
//! client instead. Idle connections belong to one worker thread (a thread-local list, nginx's
//! `keepalive` per worker), so taking one needs no lock and a request never leaves its thread.

mod framing;
mod pool;
mod wire;

pub(crate) use framing::ResponseBody;
pub(crate) use pool::{sweep, UpConn};

use crate::target::Target;
use framing::Framing;
use hyper::http::request::Parts;
use hyper::http::uri::Authority;
use hyper::{Method, Response, StatusCode, Version};
use pool::checkout;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Sleep;
use wire::{invalid, parse_head, write_head, Head};

/// The largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// Why an exchange with a target failed.
#[derive(Debug)]
pub(crate) enum ExchangeError {
    /// No connection could be made: the target is down.
    Connect(io::Error),
    /// The target closed or reset the connection before any response byte. `retryable` when
    /// another target may get the request: it may be repeated, or none of it was sent.
    Closed { error: io::Error, retryable: bool },
    /// The response was malformed or cut short.
    Failed(io::Error),
    /// No response head within the upstream timeout.
    TimedOut,
}

pub(crate) use crate::headers::Forwarded;

/// Sends one request (the client's head from `parts`, its hop-by-hop headers dropped and the
/// forwarding headers added on the way, and `body`) to `target` and reads the response head; the
/// response's hop-by-hop headers are left out. A reused connection found closed before any
/// response byte is replaced by a new one once, when the request may be repeated.
pub(crate) async fn exchange(
    target: &Target,
    timeouts: Timeouts,
    parts: &Parts,
    body: Option<&[u8]>,
    forwarded: &Forwarded<'_>,
) -> Result<Response<ResponseBody>, ExchangeError> {
    let authority = &target.authority;
    // One clock read serves the deadline and the idle connections' ages.
    let started = Instant::now();
    let deadline = tokio::time::Instant::from_std(started + timeouts.upstream);
    let repeatable = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    );
    if let Some(mut conn) = checkout(target.id, started) {
        conn.used = started;
        match round_trip(conn, parts, body, forwarded, deadline).await {
            Err(Trip::Closed { sent, error }) if repeatable || !sent => {
                tracing::debug!(
                    "idle connection to {authority} was closed ({error}); reconnecting"
                );
            }
            Err(Trip::Closed { error, .. }) => {
                return Err(ExchangeError::Closed {
                    error,
                    retryable: false,
                })
            }
            Err(Trip::Failed(error)) => return Err(ExchangeError::Failed(error)),
            Err(Trip::TimedOut) => return Err(ExchangeError::TimedOut),
            Ok(response) => return Ok(response),
        }
    }
    let stream = connect(authority, timeouts.connect)
        .await
        .map_err(ExchangeError::Connect)?;
    let mut conn = UpConn::new(stream);
    conn.target = Some(target.id);
    conn.used = started;
    round_trip(conn, parts, body, forwarded, deadline)
        .await
        .map_err(|e| match e {
            Trip::Closed { error, sent } => ExchangeError::Closed {
                error,
                retryable: repeatable || !sent,
            },
            Trip::Failed(error) => ExchangeError::Failed(error),
            Trip::TimedOut => ExchangeError::TimedOut,
        })
}

/// How long a connect may take, and how long the target may take to start answering.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub connect: Duration,
    pub upstream: Duration,
}

/// Ready once `deadline` has passed.
fn poll_timer(
    timer: &mut Option<Pin<Box<Sleep>>>,
    cx: &mut Context<'_>,
    deadline: tokio::time::Instant,
) -> Poll<()> {
    let sleep = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
    loop {
        if sleep.is_elapsed() || sleep.deadline() > deadline {
            sleep.as_mut().reset(deadline);
        }
        ready!(sleep.as_mut().poll(cx));
        if tokio::time::Instant::now() >= deadline {
            return Poll::Ready(());
        }
        // It fired for an earlier request's deadline: re-armed on the next turn.
    }
}

/// `io`'s output, or `None` once `deadline` passes.
async fn before<F: Future>(
    timer: &mut Option<Pin<Box<Sleep>>>,
    deadline: tokio::time::Instant,
    io: F,
) -> Option<F::Output> {
    let mut io = std::pin::pin!(io);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = io.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        ready!(poll_timer(timer, cx, deadline));
        Poll::Ready(None)
    })
    .await
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
    TimedOut,
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
    deadline: tokio::time::Instant,
) -> Result<Response<ResponseBody>, Trip> {
    write_head(&mut conn.out, parts, body, forwarded);
    let UpConn {
        stream, out, timer, ..
    } = &mut conn;
    match before(timer, deadline, stream.write_all(out)).await {
        None => return Err(Trip::TimedOut),
        Some(Err(error)) if closed_kind(&error) => return Err(Trip::Closed { sent: false, error }),
        Some(Err(error)) => return Err(Trip::Failed(error)),
        Some(Ok(())) => {}
    }
    loop {
        let head = read_head(&mut conn, parts.method == Method::HEAD, deadline).await;
        let (head, framing) = match head {
            Ok(Some(head)) => head,
            Ok(None) => return Err(Trip::TimedOut),
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

/// The response head, or `None` if it has not come by `deadline`.
async fn read_head(
    conn: &mut UpConn,
    head_request: bool,
    deadline: tokio::time::Instant,
) -> io::Result<Option<(Head, Framing)>> {
    loop {
        if !conn.buf.is_empty() {
            if let Some((len, head, framing)) = parse_head(&conn.buf, head_request)? {
                let _ = conn.buf.split_to(len);
                return Ok(Some((head, framing)));
            }
            if conn.buf.len() > MAX_HEAD {
                return Err(invalid("response head too large"));
            }
        }
        conn.buf.reserve(16 * 1024);
        let UpConn {
            stream, buf, timer, ..
        } = conn;
        let Some(read) = before(timer, deadline, stream.read_buf(buf)).await else {
            return Ok(None);
        };
        if read? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the target closed the connection before the response",
            ));
        }
    }
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
        let target = Target::new("svc", &proto, reporter, crate::target::Health::Initial).unwrap();
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

    pub(super) const FORWARDED: Forwarded<'static> = Forwarded {
        client_ip: b"10.0.0.9",
        port: b"8080",
        proto: b"http",
        xff: crate::rules::Xff::Append,
    };

    async fn get(target: &Target) -> Vec<u8> {
        let p = parts(Method::GET, "/", &[("host", "t")]);
        let timeouts = Timeouts {
            connect: Duration::from_secs(2),
            upstream: Duration::from_secs(5),
        };
        let response = exchange(target, timeouts, &p, None, &FORWARDED)
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

    #[tokio::test]
    async fn a_target_slower_than_the_upstream_timeout_times_out() {
        let (target, _) = target(usize::MAX).await;
        assert_eq!(get(&target).await, b"ok");
        // A silent target, reached through the same worker-thread idle list.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let (reporter, _reports) = crate::report::channel();
        let proto = berth_proto::v1::Target {
            task_arn: "slow".into(),
            address: addr.ip().to_string(),
            port: i32::from(addr.port()),
            draining: false,
        };
        let slow = Target::new("svc", &proto, reporter, crate::target::Health::Initial).unwrap();
        let _held = tokio::spawn(async move {
            let (s, _) = silent.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(s);
        });
        let timeouts = Timeouts {
            connect: Duration::from_secs(2),
            upstream: Duration::from_millis(200),
        };
        let p = parts(Method::GET, "/", &[("host", "t")]);
        let started = Instant::now();
        let result = exchange(&slow, timeouts, &p, None, &FORWARDED).await;
        assert!(matches!(result, Err(ExchangeError::TimedOut)));
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(200) && waited < Duration::from_secs(2));
    }

    fn parts(method: Method, uri: &str, headers: &[(&str, &str)]) -> Parts {
        wire::tests::parts(method, uri, headers)
    }
}
