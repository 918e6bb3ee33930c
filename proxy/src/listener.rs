//! One TCP listener per listener port: accepts on the control runtime, hands each connection to a
//! worker thread, where hyper serves it (HTTP/1.1 keep-alive, HTTP/2, upgrades) with TCP_NODELAY
//! and every request goes to `forward::handle`. Closing a listener stops accepting at once and lets
//! its connections finish their requests. A listening socket handed over by a previous proxy
//! (`handoff`) is used as it is, so connections queued in its backlog are accepted here.

use crate::conn::{ConnState, TimeoutIo};
use crate::counters::ListenerStats;
use crate::error::ProxyError;
use crate::forward::{self, ConnCtx};
use crate::Shared;
use hyper::header::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// A bound listener port and its accept task.
pub(crate) struct Listener {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Listener {
    pub async fn open(shared: &Arc<Shared>, port: u16) -> Result<Self, ProxyError> {
        let addr = SocketAddr::new(shared.config.bind_ip, port);
        let bind_error = |source| ProxyError::Bind { addr, source };
        let inherited = shared
            .inherited
            .as_ref()
            .and_then(|i| i.take_listener(addr));
        let socket = match inherited {
            Some(socket) => {
                tracing::info!("listening on {addr} (inherited from the previous proxy)");
                socket.set_nonblocking(true).map_err(bind_error)?;
                TcpListener::from_std(socket).map_err(bind_error)?
            }
            None => {
                TcpListener::from_std(bind_shared(addr).map_err(bind_error)?).map_err(bind_error)?
            }
        };
        let copy = socket.as_fd().try_clone_to_owned().map_err(bind_error)?;
        if let Ok(mut sockets) = shared.sockets.lock() {
            sockets.insert(port, copy.into());
        }
        let stats = Arc::new(ListenerStats::default());
        if let Ok(mut listeners) = shared.listeners.lock() {
            listeners.insert(port, stats.clone());
        }
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(shared.clone(), socket, port, stats, stop_rx));
        tracing::info!("listening on {addr}");
        Ok(Self { stop, task })
    }

    /// Stops accepting (the port is free at once); open connections finish their requests within
    /// the shutdown grace. The returned task ends when they have.
    pub fn close(self, shared: &Shared, port: u16) -> JoinHandle<()> {
        if let Ok(mut listeners) = shared.listeners.lock() {
            listeners.remove(&port);
        }
        if let Ok(mut sockets) = shared.sockets.lock() {
            sockets.remove(&port);
        }
        let _ = self.stop.send(true);
        tracing::info!("closing listener port {port}");
        self.task
    }
}

/// A listening socket (non-blocking) that may share its port with a socket of another address:
/// SO_REUSEADDR and SO_REUSEPORT on both let a node's Service Connect proxy listen on the task
/// network's gateway (`172.17.0.1:8080`) beside a load balancer on `0.0.0.0:8080`; the kernel
/// gives each connection to the most specific address, so tasks calling the gateway reach the
/// alias and everyone else the load balancer. Several agents of one host sharing a gateway
/// share its alias ports the same way (they follow the same control plane).
pub(crate) fn bind_shared(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

async fn accept_loop(
    shared: Arc<Shared>,
    socket: TcpListener,
    port: u16,
    stats: Arc<ListenerStats>,
    mut stop: watch::Receiver<bool>,
) {
    let port_header = HeaderValue::from(port);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = crate::stopped(&mut stop) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = socket.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Over the cap: closed at once (counted open from here, not on the worker,
                    // so a burst cannot overshoot).
                    if stats.active.load(Relaxed) >= shared.config.max_connections as i64 {
                        drop(stream);
                        stats.shed.fetch_add(1, Relaxed);
                        continue;
                    }
                    stats.active.fetch_add(1, Relaxed);
                    // Leave this runtime's reactor; the worker registers the socket with its own.
                    let Ok(stream) = stream.into_std() else {
                        stats.active.fetch_sub(1, Relaxed);
                        continue;
                    };
                    let worker = shared.workers.next();
                    let ctx = Arc::new(ConnCtx {
                        shared: shared.clone(),
                        port,
                        port_header: port_header.clone(),
                        client_ip: HeaderValue::from_str(&peer.ip().to_canonical().to_string())
                            .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
                        peer: peer.ip().to_canonical(),
                        conn: ConnState::new(),
                        listener: stats.clone(),
                        client: worker.client.clone(),
                    });
                    connections.spawn_on(serve(ctx, stream, stop.clone()), &worker.handle);
                }
                Err(e) => {
                    // Out of file descriptors, most likely: let connections close before retrying.
                    tracing::warn!("listener port {port}: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(socket);
    let grace = shared.config.shutdown_grace;
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "listener port {port}: {} connections still open after {grace:?}, closing them",
            connections.len()
        );
        connections.abort_all();
    }
}

/// The stop signal as one connection sees it. `tokio::select!` would poll the signal every time
/// the connection wakes, that is several times per request; this polls it only when the signal
/// itself has woken the task (its own waker notes that, then wakes the task).
struct StopSignal<F> {
    signal: Option<Pin<F>>,
    waker: Arc<SignalWaker>,
}

struct SignalWaker {
    woken: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for SignalWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, SeqCst);
        if let Some(task) = self.task.lock().ok().and_then(|t| t.clone()) {
            task.wake();
        }
    }
}

impl<F: std::ops::DerefMut<Target: Future<Output = ()>>> StopSignal<F> {
    fn new(signal: Pin<F>) -> Self {
        let waker = Arc::new(SignalWaker {
            woken: AtomicBool::new(true),
            task: Mutex::new(None),
        });
        Self {
            signal: Some(signal),
            waker,
        }
    }

    /// True once, when the signal fires.
    fn fired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(signal) = self.signal.as_mut() else {
            return false;
        };
        // A plain load first: the swap's barrier would cost on every wake of the connection.
        if !self.waker.woken.load(Relaxed) || !self.waker.woken.swap(false, SeqCst) {
            return false;
        }
        if let Ok(mut task) = self.waker.task.lock() {
            if !task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
                *task = Some(cx.waker().clone());
            }
        }
        let waker = Waker::from(self.waker.clone());
        if signal
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready()
        {
            self.signal = None;
            return true;
        }
        false
    }
}

/// Counts one open client connection while it lives.
struct Open(Arc<ListenerStats>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Relaxed);
    }
}

/// Runs on a worker thread.
async fn serve(mut ctx: Arc<ConnCtx>, stream: std::net::TcpStream, stop: watch::Receiver<bool>) {
    ctx.listener.accepted.fetch_add(1, Relaxed);
    let _open = Open(ctx.listener.clone());
    let mut stream = match TcpStream::from_std(stream) {
        Ok(stream) => stream,
        Err(e) => {
            tracing::warn!("cannot adopt a client connection: {e}");
            return;
        }
    };
    if ctx.shared.snapshot.load().proxy_protocol(ctx.port) {
        let timeout = ctx.shared.config.header_read_timeout;
        let header = tokio::time::timeout(timeout, crate::proxy_protocol::read_header(&mut stream));
        match header.await {
            Ok(Ok(Some(client))) => {
                if let Some(c) = Arc::get_mut(&mut ctx) {
                    c.peer = client.ip().to_canonical();
                    c.client_ip = HeaderValue::from_str(&c.peer.to_string())
                        .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
                }
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                tracing::debug!(port = ctx.port, "connection closed: {e}");
                return;
            }
            Err(_) => {
                tracing::debug!(
                    port = ctx.port,
                    "connection closed: no PROXY header in time"
                );
                return;
            }
        }
    }
    let _ = stream.set_nodelay(true);
    let acceptor = ctx.shared.tls.load().acceptor(ctx.port);
    match acceptor {
        None => serve_io(ctx, stream, stop).await,
        Some(acceptor) => {
            // The handshake counts as reading the request's headers.
            let timeout = ctx.shared.config.header_read_timeout;
            match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => serve_io(ctx, tls, stop).await,
                Ok(Err(e)) => tracing::debug!("TLS handshake: {e}"),
                Err(_) => tracing::debug!("TLS handshake took over {timeout:?}"),
            }
        }
    }
}

async fn serve_io<S>(ctx: Arc<ConnCtx>, stream: S, mut stop: watch::Receiver<bool>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let shared = ctx.shared.clone();
    let io = TokioIo::new(TimeoutIo::new(
        stream,
        ctx.conn.clone(),
        shared.config.header_read_timeout,
        shared.config.idle_timeout,
    ));
    let state = ctx.conn.clone();
    let service = service_fn(move |req| forward::handle(ctx.clone(), req));
    let conn = shared.server.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let stopping = std::pin::pin!(crate::stopped(&mut stop));
    let mut stop = StopSignal::new(stopping);
    let result = std::future::poll_fn(|cx| {
        // HTTP/2 gets a GOAWAY, which tells the client which requests were taken. HTTP/1.1 has
        // no such word: hyper's graceful shutdown would close an idle connection at once, racing
        // a request the client may be sending, so it ends after its next response or once idle
        // (`ConnState::drain`).
        if stop.fired(cx) {
            state.drain();
            if state.is_http2() {
                conn.as_mut().graceful_shutdown();
            }
        }
        conn.as_mut().poll(cx)
    })
    .await;
    if let Err(e) = result {
        tracing::debug!("client connection: {e}");
    }
}
