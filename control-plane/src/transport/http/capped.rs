//! The gRPC port's accepted connections, capped: past the limit a new connection is closed as
//! soon as it is accepted (shed, never queued), so a flood of handshake-less connections cannot
//! take the process's file descriptors. tonic does the rest (TLS, HTTP/2) on what this yields.

use futures_util::Stream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// An accepted connection holding one of the listener's permits until it closes.
pub struct Capped {
    inner: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl Connected for Capped {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl AsyncRead for Capped {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Capped {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// `listener`'s connections, at most `max` open at once.
pub fn incoming(
    listener: TcpListener,
    max: usize,
) -> impl Stream<Item = std::io::Result<Capped>> + Send {
    let permits = Arc::new(Semaphore::new(max.max(1)));
    let state = (listener, permits, None::<Instant>);
    futures_util::stream::unfold(state, move |(listener, permits, mut logged)| async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, most likely: let connections close first.
                    tracing::warn!("gRPC port: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            match permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    // A reply written as head then body must not wait for the client's delayed
                    // ACK (Nagle): 40 ms on every call whose reply spans two writes.
                    let _ = stream.set_nodelay(true);
                    let capped = Capped {
                        inner: stream,
                        _permit: permit,
                    };
                    return Some((Ok(capped), (listener, permits, logged)));
                }
                Err(_) => {
                    drop(stream);
                    if logged.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        logged = Some(Instant::now());
                        tracing::warn!(max, "gRPC port: connection limit reached; closing new connections (raise --grpc-max-connections)");
                    }
                }
            }
        }
    })
}
