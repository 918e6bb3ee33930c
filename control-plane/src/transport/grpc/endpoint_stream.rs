//! `berth.v1.Endpoints`: the routing table streamed to proxies, and their target health.

use crate::live::proxies::Proxies;
use crate::model::endpoints;
use crate::state::State;
use crate::transport::grpc::until_shutdown;
use berth_proto::v1::endpoints_server::Endpoints;
use berth_proto::v1::*;
use prost::Message;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

pub struct EndpointsApi {
    pub state: State,
    pub proxies: Arc<Proxies>,
    /// Turns true when the control plane shuts down: every watch then ends.
    pub stop: watch::Receiver<bool>,
}

type TableStream = Pin<Box<dyn Stream<Item = Result<RoutingTable, Status>> + Send>>;

#[tonic::async_trait]
impl Endpoints for EndpointsApi {
    type WatchEndpointsStream = TableStream;

    async fn watch_endpoints(
        &self,
        req: Request<WatchEndpointsRequest>,
    ) -> Result<Response<Self::WatchEndpointsStream>, Status> {
        let req = req.into_inner();
        let (proxy_id, discovery_only, connect) =
            (req.proxy_id, req.discovery_only, req.service_connect);
        if proxy_id.trim().is_empty() {
            return Err(Status::invalid_argument(
                "proxyId: is required (any id stable for the proxy process)",
            ));
        }
        // One table waiting at most: each is the whole routing state, so a proxy that is behind
        // needs only the newest, and a queue of whole tables (thousands of rules each) would hold
        // memory that the allocator then keeps.
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let (state, proxies) = (self.state.clone(), self.proxies.clone());
        // A node's resolver is no proxy: its watch does not count among the proxies.
        if !discovery_only {
            proxies.watch_started(&proxy_id, connect);
        }
        tracing::info!(proxy = %proxy_id, discovery_only, service_connect = connect, "watching endpoints");
        tokio::spawn(async move {
            let mut changes = state.store().subscribe();
            let mut last: Option<Vec<u8>> = None;
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            let fresh = move || {
                if discovery_only {
                    endpoints::Routes::discovery_only()
                } else if connect {
                    endpoints::Routes::service_connect()
                } else {
                    endpoints::Routes::default()
                }
            };
            let mut routes = Some(fresh());
            // Everything at first and on each resync; then only what a change touches.
            let mut changed: Option<Vec<String>> = None;
            loop {
                let mut r = routes.take().unwrap_or_else(fresh);
                let keys = changed.take();
                let res = tokio::task::spawn_blocking({
                    let state = state.clone();
                    move || {
                        let out = match keys {
                            None => r.refresh_all(&state).map(|_| true),
                            Some(k) => r.refresh(&state, &k),
                        };
                        (out.map(|moved| moved.then(|| r.table())), r)
                    }
                })
                .await;
                match res {
                    Ok((Ok(table), r)) => {
                        routes = Some(r);
                        if let Some(table) = table {
                            let bytes = table.encode_to_vec();
                            if last.as_ref() != Some(&bytes) {
                                if tx.send(Ok(table)).await.is_err() {
                                    break;
                                }
                                last = Some(bytes);
                            }
                        }
                    }
                    Ok((Err(e), _)) => {
                        tracing::warn!(error = %e, "cannot compute the routing table")
                    }
                    Err(e) => tracing::warn!(error = %e, "routing table computation failed"),
                }
                let closed = tokio::select! {
                    _ = tick.tick() => false,
                    _ = tx.closed() => true,
                    c = changes.recv() => match c {
                        Ok(change) if change.resync => false,
                        Ok(change) => {
                            let mut keys = change.keys.clone();
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            while let Ok(more) = changes.try_recv() {
                                keys.extend(more.keys.iter().cloned());
                            }
                            changed = Some(keys);
                            false
                        }
                        Err(RecvError::Lagged(_)) => false,
                        Err(RecvError::Closed) => true,
                    }
                };
                if closed {
                    break;
                }
            }
            if !discovery_only {
                proxies.watch_ended(&proxy_id);
            }
            tracing::info!(proxy = %proxy_id, "stopped watching endpoints");
        });
        // Ending the stream closes `rx`, so the loop above sees `tx.closed()` and ends too.
        Ok(Response::new(until_shutdown(rx, self.stop.clone())))
    }

    async fn report_target_health(
        &self,
        req: Request<TargetHealthReport>,
    ) -> Result<Response<TargetHealthAck>, Status> {
        let r = req.into_inner();
        if let Some(i) = r.revisions.iter().position(|c| {
            c.latency_buckets.len() > MAX_LATENCY_BUCKETS
                || c.latency_bounds_us.len() > MAX_LATENCY_BUCKETS
        }) {
            return Err(Status::invalid_argument(format!(
                "revisions[{i}]: at most {MAX_LATENCY_BUCKETS} latency buckets and bounds; send the proxy's fixed buckets"
            )));
        }
        let now = crate::time::now_millis();
        self.proxies
            .record_requests(&r.proxy_id, r.service_requests, now);
        self.proxies.record_revisions(&r.proxy_id, r.revisions, now);
        self.proxies
            .record_connect_calls(&r.proxy_id, r.connect_calls, now);
        self.proxies.report(&r.proxy_id, r.targets);
        Ok(Response::new(TargetHealthAck {}))
    }
}

/// A revision's latency histogram has the proxy's fixed buckets (17 today).
const MAX_LATENCY_BUCKETS: usize = 64;
