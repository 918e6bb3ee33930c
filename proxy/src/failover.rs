//! One control-plane link over several servers (`--server` takes several, comma-separated): calls
//! go to the server that answered last, and a call that cannot reach it moves the link on to the
//! next, so the proxy's next reconnect lands on a live replica.

use http::{Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::transport::Channel;

/// A cloneable gRPC service over one lazy channel per server.
#[derive(Clone)]
pub struct Failover {
    channels: Arc<Vec<Channel>>,
    current: Arc<AtomicUsize>,
    /// The channel this clone polled ready, and its index.
    active: Option<(usize, Channel)>,
}

impl Failover {
    pub fn new(channels: Vec<Channel>) -> Self {
        assert!(!channels.is_empty(), "at least one server");
        Self {
            channels: Arc::new(channels),
            current: Arc::new(AtomicUsize::new(0)),
            active: None,
        }
    }
}

impl tower_service::Service<Request<Body>> for Failover {
    type Response = Response<Body>;
    type Error = tonic::transport::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let n = self.current.load(Ordering::Relaxed) % self.channels.len();
        if self.active.as_ref().map(|(i, _)| *i) != Some(n) {
            self.active = Some((n, self.channels[n].clone()));
        }
        let (_, ch) = self.active.as_mut().expect("set above");
        ch.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let (n, ch) = self.active.as_mut().expect("poll_ready comes first");
        let (n, len) = (*n, self.channels.len());
        let fut = ch.call(req);
        let current = self.current.clone();
        Box::pin(async move {
            let r = fut.await;
            if r.is_err() {
                let _ = current.compare_exchange(
                    n,
                    (n + 1) % len,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
            r
        })
    }
}
