//! Connection hygiene for an HTTP listener, below whatever routes it serves: a cap on open
//! connections (the excess is closed at once, never queued), a header read timeout (from a
//! request's first byte, or the TLS handshake, to its full head), an idle keep-alive timeout
//! (no request in flight and nothing read or written), and optional TLS. A client talking
//! plaintext to a TLS port hears so, with the fix.

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;

/// The bounds every connection of one listener lives within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// From a request's first byte (or the connection's TLS handshake) to its last header.
    pub header_timeout: Duration,
    /// Keep-alive: how long a connection may sit with no request in flight and no traffic.
    pub idle_timeout: Duration,
    /// Open connections at most; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Bytes of one request body at most (the router answers 413 past it).
    pub max_body: usize,
}

impl Default for ConnLimits {
    /// nginx's: `client_header_timeout 60s`, `keepalive_timeout 75s`, 1024 connections (its
    /// `worker_connections` on 2 cores), `client_max_body_size 1m`.
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(75),
            max_connections: 1024,
            max_body: 1024 * 1024,
        }
    }
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds since the first use; never 0, so 0 can mean "not set".
fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64 + 1
}

/// One connection's clock, written by its socket (reads, writes) and its service (requests in
/// and out), read by its watchdog.
#[derive(Debug, Default)]
struct Clock {
    in_flight: AtomicU32,
    /// When the head being read now began to arrive (0: none is).
    head_since: AtomicU64,
    last_io: AtomicU64,
    /// Woken when a head begins, since that may bring the deadline forward.
    moved: Notify,
}

impl Clock {
    fn new() -> Arc<Self> {
        let c = Self::default();
        c.last_io.store(now_ms(), SeqCst);
        Arc::new(c)
    }

    fn read(&self) {
        let now = now_ms();
        self.last_io.store(now, SeqCst);
        if self.in_flight.load(SeqCst) == 0
            && self
                .head_since
                .compare_exchange(0, now, SeqCst, SeqCst)
                .is_ok()
        {
            self.moved.notify_one();
        }
    }

    /// When the connection is due to be closed, as of now.
    fn deadline(&self, limits: &ConnLimits) -> u64 {
        let ms = |d: Duration| d.as_millis() as u64;
        let head = self.head_since.load(SeqCst);
        let last = self.last_io.load(SeqCst);
        if self.in_flight.load(SeqCst) == 0 && head != 0 {
            head + ms(limits.header_timeout)
        } else {
            last + ms(limits.idle_timeout)
        }
    }

    /// Resolves once the connection has been slow or idle past its limits.
    async fn expired(&self, limits: ConnLimits) {
        loop {
            let deadline = self.deadline(&limits);
            let now = now_ms();
            if deadline <= now {
                return;
            }
            let sleep = tokio::time::sleep(Duration::from_millis(deadline - now));
            tokio::select! {
                _ = sleep => {}
                _ = self.moved.notified() => {}
            }
        }
    }
}

/// The socket, telling the clock about traffic.
struct Watched<S> {
    inner: S,
    clock: Arc<Clock>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.clock.read();
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.last_io.store(now_ms(), SeqCst);
        }
        res
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The service, telling the clock when a request is in flight.
#[derive(Clone)]
struct Counted<S> {
    inner: S,
    clock: Arc<Clock>,
}

/// One request in flight; its drop ends it, and idleness counts from then.
struct InFlight(Arc<Clock>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.last_io.store(now_ms(), SeqCst);
        self.0.in_flight.fetch_sub(1, SeqCst);
    }
}

impl<S> Service<Request<Incoming>> for Counted<S>
where
    S: Service<Request<Incoming>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        self.clock.in_flight.fetch_add(1, SeqCst);
        self.clock.head_since.store(0, SeqCst);
        let guard = InFlight(self.clock.clone());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            drop(guard);
            res
        })
    }
}

/// What a listener serves, and how.
pub struct Serving<S> {
    pub limits: ConnLimits,
    /// TLS on the port; `None` for plaintext.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Makes the service for one connection (given its peer address).
    pub service: Arc<dyn Fn(std::net::SocketAddr) -> S + Send + Sync>,
    /// Names the port in logs (`HTTP`, `metrics`).
    pub name: &'static str,
}

/// Accepts until `stopped` turns true, then lets open requests finish (within the idle
/// timeout) and returns.
pub async fn serve<S, B>(
    listener: TcpListener,
    serving: Serving<S>,
    mut stopped: watch::Receiver<bool>,
) where
    S: Service<Request<Incoming>, Response = Response<B>> + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let serving = Arc::new(serving);
    let permits = Arc::new(Semaphore::new(serving.limits.max_connections));
    let (stop_conns, conns_stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut last_shed_log: Option<Instant> = None;
    loop {
        tokio::select! {
            biased;
            _ = until_stopped(&mut stopped) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors, most likely: let connections close first.
                        tracing::warn!(port = serving.name, "accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    // Shed: closed now, so a flood costs one descriptor for an instant each.
                    drop(stream);
                    if last_shed_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        last_shed_log = Some(Instant::now());
                        tracing::warn!(port = serving.name, max = serving.limits.max_connections, "connection limit reached; closing new connections (raise --http-max-connections)");
                    }
                    continue;
                };
                let serving = serving.clone();
                let stop = conns_stopped.clone();
                connections.spawn(async move {
                    connection(stream, peer, &serving, stop).await;
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    let _ = stop_conns.send(true);
    let grace = serving.limits.idle_timeout;
    if tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        connections.abort_all();
    }
}

/// What a plaintext HTTP client gets from a TLS port: nginx's 400, with the fix.
fn plain_to_tls() -> Vec<u8> {
    let body = r#"{"code":"InvalidArgument","message":"this port speaks TLS: use https:// and verify the server with the cluster CA (curl --cacert DATA/ca.crt, berth --ca DATA/ca.crt)"}"#;
    format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn connection<S, B>(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    serving: &Serving<S>,
    mut stop: watch::Receiver<bool>,
) where
    S: Service<Request<Incoming>, Response = Response<B>>,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let _ = stream.set_nodelay(true);
    let limits = serving.limits;
    let clock = Clock::new();
    let service = Counted {
        inner: (serving.service)(peer),
        clock: clock.clone(),
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // The clock does it, also for the TLS handshake, and separately from idleness.
        .header_read_timeout(None)
        .keep_alive(true);
    let Some(acceptor) = &serving.tls else {
        let io = TokioIo::new(Watched {
            inner: stream,
            clock: clock.clone(),
        });
        let conn = builder.serve_connection(io, service);
        drive(conn, &clock, limits, &mut stop).await;
        return;
    };
    let mut stream = stream;
    // A TLS record starts with 0x16 (handshake); anything else is a plaintext client.
    let mut first = [0u8; 1];
    let looked = tokio::time::timeout(limits.header_timeout, stream.peek(&mut first)).await;
    match looked {
        Ok(Ok(1)) if first[0] == 0x16 => {}
        Ok(Ok(1)) => {
            // Answer, then linger a moment reading what it sent (nginx's lingering close): a
            // socket closed with unread bytes resets, and the client could lose the answer.
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                stream.write_all(&plain_to_tls()).await?;
                stream.shutdown().await?;
                let mut sink = [0u8; 4096];
                let mut left: usize = 64 * 1024;
                while left > 0 {
                    match stream.read(&mut sink).await? {
                        0 => break,
                        n => left = left.saturating_sub(n),
                    }
                }
                Ok::<_, std::io::Error>(())
            })
            .await;
            return;
        }
        _ => return,
    }
    let tls = match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(port = serving.name, %peer, "TLS handshake failed: {e}");
            return;
        }
        Err(_) => return,
    };
    let io = TokioIo::new(Watched {
        inner: tls,
        clock: clock.clone(),
    });
    let conn = builder.serve_connection(io, service);
    drive(conn, &clock, limits, &mut stop).await;
}

/// Serves one connection until it ends, its clock runs out (it is dropped, closing the
/// socket), or the listener stops (open requests finish, then it closes).
async fn drive<C>(conn: C, clock: &Clock, limits: ConnLimits, stop: &mut watch::Receiver<bool>)
where
    C: Future<Output = hyper::Result<()>> + GracefulShutdown,
{
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("HTTP connection: {e}");
            }
            return;
        }
        _ = clock.expired(limits) => return,
        _ = until_stopped(stop) => {}
    }
    conn.as_mut().shutdown_gracefully();
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = clock.expired(limits) => {}
    }
}

/// Resolves once `rx` turns true (the watch guard never lives across an await).
async fn until_stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await.map(|_| ());
}

/// hyper's HTTP/1 connection, whatever its IO.
trait GracefulShutdown {
    fn shutdown_gracefully(self: Pin<&mut Self>);
}

impl<I, S, B> GracefulShutdown for hyper::server::conn::http1::Connection<I, S>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn shutdown_gracefully(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}
