//! One TCP listener per listener port: accepts on the control runtime, hands each connection to a
//! worker thread, where hyper serves it (HTTP/1.1 keep-alive, HTTP/2, upgrades) with TCP_NODELAY
//! and every request goes to `forward::handle`. Closing a listener stops accepting at once and lets
//! its connections finish their requests.

use crate::conn::{ConnState, TimeoutIo};
use crate::error::ProxyError;
use crate::forward::{self, ConnCtx};
use crate::metrics::ListenerStats;
use crate::Shared;
use hyper::header::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
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
        let socket = TcpListener::bind(addr)
            .await
            .map_err(|source| ProxyError::Bind { addr, source })?;
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
        let _ = self.stop.send(true);
        tracing::info!("closing listener port {port}");
        self.task
    }
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
                    // Leave this runtime's reactor; the worker registers the socket with its own.
                    let Ok(stream) = stream.into_std() else { continue };
                    let worker = shared.workers.next();
                    let ctx = Arc::new(ConnCtx {
                        shared: shared.clone(),
                        port,
                        port_header: port_header.clone(),
                        client_ip: HeaderValue::from_str(&peer.ip().to_canonical().to_string())
                            .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
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

/// Counts one open client connection while it lives.
struct Open(Arc<ListenerStats>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Relaxed);
    }
}

/// Runs on a worker thread.
async fn serve(ctx: Arc<ConnCtx>, stream: std::net::TcpStream, mut stop: watch::Receiver<bool>) {
    ctx.listener.accepted.fetch_add(1, Relaxed);
    ctx.listener.active.fetch_add(1, Relaxed);
    let _open = Open(ctx.listener.clone());
    let stream = match TcpStream::from_std(stream) {
        Ok(stream) => stream,
        Err(e) => {
            tracing::warn!("cannot adopt a client connection: {e}");
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let shared = ctx.shared.clone();
    let io = TokioIo::new(TimeoutIo::new(
        stream,
        ctx.conn.clone(),
        shared.config.header_read_timeout,
        shared.config.idle_timeout,
    ));
    let service = service_fn(move |req| forward::handle(ctx.clone(), req));
    let conn = shared.server.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = crate::stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!("client connection: {e}");
    }
}
