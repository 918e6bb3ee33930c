//! One client connection's timeouts, enforced on its socket: how long a request's headers may take
//! once they have started to arrive, and how long the connection may sit idle between requests (or,
//! once upgraded or on HTTP/2, without traffic). hyper's own header timer allocates per request and
//! runs through the idle time too, so the socket wrapper does both with one timer per connection,
//! re-armed only when a deadline moves earlier. While the listener drains, an idle HTTP/1.1
//! connection is closed after `DRAIN_IDLE` rather than the idle timeout, and busy ones carry
//! `Connection: close` on their next response, so a client never sends into a closing socket.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// While draining, how long a keep-alive connection may sit idle. Closing a connection the very
/// moment it goes idle would race the client's next request (which would then meet a reset); a
/// client that has sent nothing for this long is not about to.
pub(crate) const DRAIN_IDLE: Duration = Duration::from_secs(1);

/// A clock in milliseconds since the first use, so instants fit in an atomic.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

/// What requests tell the socket wrapper: whether one is being served, how many have started,
/// and when the connection last went idle. Written by request handlers (possibly on other tasks,
/// under HTTP/2), read by the wrapper.
#[derive(Debug)]
pub(crate) struct ConnState {
    busy: AtomicU32,
    requests: AtomicU64,
    idle_since_ms: AtomicU64,
    upgraded: AtomicBool,
    /// The listener is draining: answer with `Connection: close`, close when idle.
    draining: AtomicBool,
    /// The client spoke HTTP/2 (a GOAWAY drains it gracefully).
    http2: AtomicBool,
}

impl ConnState {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            busy: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(now_ms()),
            upgraded: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            http2: AtomicBool::new(false),
        })
    }

    /// The listener stopped accepting: this connection ends after its current request, or once
    /// idle for `DRAIN_IDLE`.
    pub fn drain(&self) {
        self.draining.store(true, SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Relaxed)
    }

    pub fn is_http2(&self) -> bool {
        self.http2.load(SeqCst)
    }

    /// A request has been read: the connection is busy until the guard (moved into the response
    /// body) is dropped.
    pub fn enter(self: &Arc<Self>) -> ConnGuard {
        self.requests.fetch_add(1, SeqCst);
        self.busy.fetch_add(1, SeqCst);
        ConnGuard(self.clone())
    }

    /// The connection now carries a tunnel (WebSocket …): only the idle timeout applies.
    pub fn set_upgraded(&self) {
        self.upgraded.store(true, SeqCst);
    }
}

/// One request being served on a connection.
pub(crate) struct ConnGuard(Arc<ConnState>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        // Idle-since first: whoever sees `busy` reach 0 must see the right time.
        self.0.idle_since_ms.store(now_ms(), SeqCst);
        self.0.busy.fetch_sub(1, SeqCst);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Nothing read yet.
    Unknown,
    Http1,
    /// HTTP/2: frames (pings, settings) arrive between requests, so only idleness counts.
    Http2,
}

/// A client socket with the header and idle timeouts; the read side fails with `TimedOut` once
/// one passes, and hyper closes the connection.
pub(crate) struct TimeoutIo<S> {
    inner: S,
    state: Arc<ConnState>,
    header_timeout: Duration,
    idle_timeout: Duration,
    mode: Mode,
    /// When the current request's first bytes came, and the request count then.
    head_started: Option<(Instant, u64)>,
    /// Last bytes either way, for HTTP/2 and upgraded connections.
    last_traffic: Instant,
    sleep: Pin<Box<Sleep>>,
    /// The task the timer will wake, as of its last poll: while it is armed for the same
    /// deadline and task, polling it again (twice per request) would change nothing.
    armed_for: Option<Waker>,
}

impl<S> TimeoutIo<S> {
    pub fn new(
        inner: S,
        state: Arc<ConnState>,
        header_timeout: Duration,
        idle_timeout: Duration,
    ) -> Self {
        let now = Instant::now();
        Self {
            inner,
            state,
            header_timeout,
            idle_timeout,
            mode: Mode::Unknown,
            head_started: None,
            last_traffic: now,
            sleep: Box::pin(tokio::time::sleep_until((now + idle_timeout).into())),
            armed_for: None,
        }
    }

    fn traffic_only(&self) -> bool {
        self.mode == Mode::Http2 || self.state.upgraded.load(SeqCst)
    }

    fn on_bytes(&mut self, bytes: &[u8]) {
        const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";
        if self.mode == Mode::Unknown {
            let n = bytes.len().min(H2_PREFACE.len());
            self.mode = if bytes[..n] == H2_PREFACE[..n] {
                Mode::Http2
            } else {
                Mode::Http1
            };
            self.state.http2.store(self.mode == Mode::Http2, SeqCst);
        }
        if self.traffic_only() {
            self.last_traffic = Instant::now();
        } else if self.head_started.is_none() && self.state.busy.load(SeqCst) == 0 {
            self.head_started = Some((Instant::now(), self.state.requests.load(SeqCst)));
        }
    }

    /// When the connection must be closed if no more bytes come, and why.
    fn deadline(&mut self) -> Option<(Instant, &'static str)> {
        if self.state.busy.load(SeqCst) > 0 {
            return None;
        }
        let idle_since = epoch() + Duration::from_millis(self.state.idle_since_ms.load(SeqCst));
        let idle_timeout = if self.state.is_draining() {
            self.idle_timeout.min(DRAIN_IDLE)
        } else {
            self.idle_timeout
        };
        if self.traffic_only() {
            let last = idle_since.max(self.last_traffic);
            return Some((last + idle_timeout, "idle timeout"));
        }
        if let Some((started, seen)) = self.head_started {
            if self.state.requests.load(SeqCst) == seen {
                return Some((started + self.header_timeout, "request header read timeout"));
            }
            self.head_started = None;
        }
        Some((idle_since + idle_timeout, "keep-alive idle timeout"))
    }

    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let Some((deadline, what)) = self.deadline() else {
                return Poll::Pending;
            };
            let deadline = tokio::time::Instant::from_std(deadline);
            if self.sleep.is_elapsed() || self.sleep.deadline() > deadline {
                self.sleep.as_mut().reset(deadline);
                self.armed_for = None;
            } else if self
                .armed_for
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                return Poll::Pending;
            }
            match self.sleep.as_mut().poll(cx) {
                Poll::Pending => {
                    self.armed_for = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                Poll::Ready(()) if tokio::time::Instant::now() >= deadline => {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)));
                }
                // The timer was armed for an earlier deadline that has since moved: re-arm.
                Poll::Ready(()) => {}
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TimeoutIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.on_bytes(&buf.filled()[before..]);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => this.poll_deadline(cx),
            ready => ready,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TimeoutIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if this.traffic_only() && matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.last_traffic = Instant::now();
        }
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if this.traffic_only() && matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.last_traffic = Instant::now();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn an_idle_connection_times_out() {
        let (client, server) = tokio::io::duplex(64);
        let state = ConnState::new();
        let mut io = TimeoutIo::new(
            server,
            state,
            Duration::from_secs(5),
            Duration::from_millis(100),
        );
        let mut buf = [0u8; 8];
        let started = Instant::now();
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(client);
    }

    #[tokio::test]
    async fn a_slow_request_head_times_out_sooner_than_idle() {
        let (mut client, server) = tokio::io::duplex(64);
        let state = ConnState::new();
        let mut io = TimeoutIo::new(
            server,
            state,
            Duration::from_millis(100),
            Duration::from_secs(30),
        );
        client.write_all(b"GET / HT").await.unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(io.read(&mut buf).await.unwrap(), 8);
        let err = tokio::time::timeout(Duration::from_secs(2), io.read(&mut buf))
            .await
            .expect("the header timeout fires")
            .unwrap_err();
        assert_eq!(err.to_string(), "request header read timeout");
    }

    #[tokio::test]
    async fn a_busy_connection_does_not_time_out() {
        let (mut client, server) = tokio::io::duplex(64);
        let state = ConnState::new();
        let mut io = TimeoutIo::new(
            server,
            state.clone(),
            Duration::from_millis(50),
            Duration::from_millis(50),
        );
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        assert!(io.read(&mut buf).await.unwrap() > 0);
        let guard = state.enter();
        let waited = tokio::time::timeout(Duration::from_millis(300), io.read(&mut buf)).await;
        assert!(
            waited.is_err(),
            "no timeout while a request is being served"
        );
        drop(guard);
        let err = tokio::time::timeout(Duration::from_secs(2), io.read(&mut buf))
            .await
            .expect("the idle timeout fires once the response is done")
            .unwrap_err();
        assert_eq!(err.to_string(), "keep-alive idle timeout");
    }

    #[tokio::test]
    async fn a_draining_connection_closes_after_a_short_idle_time() {
        let (client, server) = tokio::io::duplex(64);
        let state = ConnState::new();
        let mut io = TimeoutIo::new(
            server,
            state.clone(),
            Duration::from_secs(30),
            Duration::from_secs(30),
        );
        let mut buf = [0u8; 8];
        let waited = tokio::time::timeout(Duration::from_millis(200), io.read(&mut buf)).await;
        assert!(waited.is_err(), "no timeout before draining");
        state.drain();
        let started = Instant::now();
        let err = tokio::time::timeout(Duration::from_secs(5), io.read(&mut buf))
            .await
            .expect("the drain idle time applies")
            .unwrap_err();
        assert_eq!(err.to_string(), "keep-alive idle timeout");
        assert!(started.elapsed() < DRAIN_IDLE + Duration::from_millis(500));
        drop(client);
    }
}
