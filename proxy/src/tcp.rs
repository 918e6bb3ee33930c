//! TCP listeners (a network load balancer's, whose routes say `protocol: TCP`): each accepted
//! connection goes to one available target of the port's rule (round robin or fewest open
//! connections, by weight across a traffic shift's revisions), and bytes are relayed both ways
//! until either side closes. A connect failure ejects the target and tries another once. With
//! `proxy_protocol_v2` the target first gets a PROXY protocol v2 header naming the client.
//!
//! While the port has no available target its listening socket is CLOSED, so clients get
//! ECONNREFUSED at once (NLB's behaviour is to refuse, not to accept and hang up); it is bound
//! again within `POLL` of a target turning healthy. A connection that was accepted but finds no
//! target (the last one failed between the check and the accept) is reset (RST, linger 0), never
//! closed cleanly, so the client does not mistake it for an empty answer.

use crate::counters::ListenerStats;
use crate::table::Service;
use crate::target::TargetGuard;
use crate::Shared;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// How often a listener looks at its targets' availability to close or reopen its socket.
const POLL: Duration = Duration::from_millis(50);

/// A TCP listener port and its task (which binds and closes the socket as targets come and go).
pub(crate) struct Listener {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Listener {
    /// Starts serving `port`; the socket is bound once the port has an available target.
    pub fn open(shared: &Arc<Shared>, port: u16) -> Self {
        let stats = Arc::new(ListenerStats::default());
        if let Ok(mut listeners) = shared.listeners.lock() {
            listeners.insert(port, stats.clone());
        }
        // Taken now, before the router closes the inherited sockets no listener claimed.
        let addr = SocketAddr::new(shared.config.bind_ip, port);
        let inherited = shared
            .inherited
            .as_ref()
            .and_then(|i| i.take_listener(addr));
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(shared.clone(), port, inherited, stats, stop_rx));
        Self { stop, task }
    }

    /// Stops accepting; open connections may finish within the shutdown grace.
    pub fn close(self, shared: &Shared, port: u16) -> JoinHandle<()> {
        if let Ok(mut listeners) = shared.listeners.lock() {
            listeners.remove(&port);
        }
        unpublish(shared, port);
        let _ = self.stop.send(true);
        tracing::info!("closing TCP listener port {port}");
        self.task
    }
}

/// The port's rule: the route a connection takes (TCP routes have no conditions).
fn service_of(shared: &Shared, port: u16) -> Option<Arc<Service>> {
    let headers = http::HeaderMap::new();
    let facts = crate::rules::Facts {
        headers: &headers,
        method: &http::Method::GET,
        query: "",
        client: std::net::IpAddr::from([0, 0, 0, 0]),
    };
    shared.snapshot.load().route(port, "", "", &facts).cloned()
}

/// Whether any route of the port has a target that may take a new connection.
fn available(shared: &Shared, port: u16) -> bool {
    shared
        .snapshot
        .load()
        .services()
        .any(|s| s.port == port && s.targets.targets.iter().any(|t| t.is_available()))
}

/// Binds `port` (using the socket inherited from a previous proxy process, if any) and offers a
/// copy for the next handoff.
fn bind(
    shared: &Shared,
    port: u16,
    inherited: Option<std::net::TcpListener>,
) -> std::io::Result<TcpListener> {
    let addr = SocketAddr::new(shared.config.bind_ip, port);
    let socket = match inherited {
        Some(socket) => {
            socket.set_nonblocking(true)?;
            socket
        }
        None => crate::listener::bind_shared(addr)?,
    };
    let copy = socket.as_fd().try_clone_to_owned()?;
    if let Ok(mut sockets) = shared.sockets.lock() {
        sockets.insert(port, copy.into());
    }
    TcpListener::from_std(socket)
}

/// Drops the handoff copy: the socket must really close when the listener lets it go.
fn unpublish(shared: &Shared, port: u16) {
    if let Ok(mut sockets) = shared.sockets.lock() {
        sockets.remove(&port);
    }
}

async fn run(
    shared: Arc<Shared>,
    port: u16,
    mut inherited: Option<std::net::TcpListener>,
    stats: Arc<ListenerStats>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let mut ticks = tokio::time::interval(POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned = false;
    'bound: loop {
        // No available target: no socket, so connects are refused by the kernel.
        while !available(&shared, port) {
            inherited = None;
            tokio::select! {
                _ = crate::stopped(&mut stop) => break 'bound,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                _ = ticks.tick() => {}
            }
        }
        let socket = match bind(&shared, port, inherited.take()) {
            Ok(socket) => {
                warned = false;
                tracing::info!("TCP listener port {port}: listening");
                socket
            }
            Err(e) => {
                if !warned {
                    tracing::warn!("TCP listener port {port}: cannot bind: {e}; retrying");
                    warned = true;
                }
                tokio::select! {
                    _ = crate::stopped(&mut stop) => break 'bound,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue 'bound,
                }
            }
        };
        loop {
            tokio::select! {
                biased;
                _ = crate::stopped(&mut stop) => break 'bound,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                _ = ticks.tick() => {
                    if !available(&shared, port) {
                        unpublish(&shared, port);
                        drop(socket);
                        tracing::info!("TCP listener port {port}: no healthy target, refusing connections");
                        continue 'bound;
                    }
                }
                accepted = socket.accept() => match accepted {
                    Ok((stream, peer)) => {
                        if stats.active.load(Relaxed) >= shared.config.max_connections as i64 {
                            reset(stream);
                            stats.shed.fetch_add(1, Relaxed);
                            continue;
                        }
                        stats.active.fetch_add(1, Relaxed);
                        stats.accepted.fetch_add(1, Relaxed);
                        let Ok(stream) = stream.into_std() else {
                            stats.active.fetch_sub(1, Relaxed);
                            continue;
                        };
                        let worker = shared.workers.next();
                        let conn = relay(shared.clone(), port, stream, peer, stats.clone());
                        connections.spawn_on(conn, &worker.handle);
                    }
                    Err(e) => {
                        tracing::warn!("TCP listener port {port}: accept failed: {e}");
                        tokio::time::sleep(POLL).await;
                    }
                },
            }
        }
    }
    unpublish(&shared, port);
    let grace = shared.config.shutdown_grace;
    if tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        connections.abort_all();
    }
}

/// Closes with RST rather than FIN: the client sees a reset, not an empty answer.
fn reset(stream: TcpStream) {
    // A zero linger does not block on drop (tokio's warning is about non-zero ones).
    let _ = rustix::net::sockopt::set_socket_linger(&stream, Some(Duration::ZERO));
    drop(stream);
}

/// Counts one open client connection while it lives.
struct Open(Arc<ListenerStats>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Relaxed);
    }
}

/// Runs on a worker thread: picks a target, connects (one more target on a connect failure),
/// sends the PROXY header when asked, then relays until both directions are done.
async fn relay(
    shared: Arc<Shared>,
    port: u16,
    client: std::net::TcpStream,
    peer: SocketAddr,
    stats: Arc<ListenerStats>,
) {
    let _open = Open(stats);
    let Ok(mut client) = TcpStream::from_std(client) else {
        return;
    };
    let _ = client.set_nodelay(true);
    let Some(service) = service_of(&shared, port) else {
        return reset(client);
    };
    let connected = connect(&shared, &service).await;
    if let Some(calls) = &shared.calls {
        calls.record(&service.arn, peer.ip(), connected.is_none());
    }
    let Some((guard, mut upstream)) = connected else {
        return reset(client);
    };
    if service.route.proxy_protocol_v2 {
        let local = client
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::new(shared.config.bind_ip, port));
        if upstream
            .write_all(&proxy_v2_header(peer, local))
            .await
            .is_err()
        {
            return reset(client);
        }
    }
    match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        Ok(_) => {}
        Err(e) => tracing::debug!(target = %guard.authority, "TCP connection: {e}"),
    }
    drop(guard);
}

/// An available target, connected: a target that refuses or times out is ejected (the active
/// checks bring it back) and the next one is tried, twice at most.
async fn connect(shared: &Shared, service: &Service) -> Option<(TargetGuard, TcpStream)> {
    let mut failed: Option<Arc<crate::target::Target>> = None;
    for _ in 0..2 {
        let guard = service.pick(failed.as_ref())?;
        let dial = TcpStream::connect(guard.authority.as_str());
        match tokio::time::timeout(shared.config.connect_timeout, dial).await {
            Ok(Ok(upstream)) => {
                let _ = upstream.set_nodelay(true);
                return Some((guard, upstream));
            }
            Ok(Err(e)) => guard.eject(&format!("Connection failed: {e}")),
            Err(_) => guard.eject("Connection timed out"),
        }
        failed = Some(guard.target().clone());
    }
    None
}

/// The PROXY protocol v2 header for a proxied TCP connection from `client` to `local`.
pub(crate) fn proxy_v2_header(client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
    let mut out = SIGNATURE.to_vec();
    // Version 2, command PROXY.
    out.push(0x21);
    let (client_ip, local_ip) = (client.ip().to_canonical(), local.ip().to_canonical());
    match (client_ip, local_ip) {
        (std::net::IpAddr::V4(c), std::net::IpAddr::V4(l)) => {
            out.push(0x11); // TCP over IPv4
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&c.octets());
            out.extend_from_slice(&l.octets());
        }
        (c, l) => {
            let six = |ip: std::net::IpAddr| match ip {
                std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                std::net::IpAddr::V6(v6) => v6,
            };
            out.push(0x21); // TCP over IPv6
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&six(c).octets());
            out.extend_from_slice(&six(l).octets());
        }
    }
    out.extend_from_slice(&client.port().to_be_bytes());
    out.extend_from_slice(&local.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_v2_header_names_the_client_and_the_listener() {
        let h = proxy_v2_header(
            "192.0.2.7:40000".parse().unwrap(),
            "10.0.0.1:6379".parse().unwrap(),
        );
        assert_eq!(&h[..12], b"\r\n\r\n\0\r\nQUIT\n");
        assert_eq!(h[12], 0x21);
        assert_eq!(h[13], 0x11);
        assert_eq!(u16::from_be_bytes([h[14], h[15]]), 12);
        assert_eq!(&h[16..20], &[192, 0, 2, 7]);
        assert_eq!(&h[20..24], &[10, 0, 0, 1]);
        assert_eq!(u16::from_be_bytes([h[24], h[25]]), 40000);
        assert_eq!(u16::from_be_bytes([h[26], h[27]]), 6379);
        assert_eq!(h.len(), 28);
        let v6 = proxy_v2_header("[::1]:1".parse().unwrap(), "[::1]:2".parse().unwrap());
        assert_eq!((v6[13], v6.len()), (0x21, 16 + 36));
    }
}
