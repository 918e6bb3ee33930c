//! `berth.v1.Endpoints`: the routing table streamed to proxies, and their target health.

use super::{blocking, until_shutdown};
use crate::endpoints;
use crate::proxies::Proxies;
use crate::state::State;
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
        let proxy_id = req.into_inner().proxy_id;
        if proxy_id.trim().is_empty() {
            return Err(Status::invalid_argument(
                "proxyId: is required (any id stable for the proxy process)",
            ));
        }
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let (state, proxies) = (self.state.clone(), self.proxies.clone());
        proxies.watch_started(&proxy_id);
        tracing::info!(proxy = %proxy_id, "proxy watching endpoints");
        tokio::spawn(async move {
            let mut changes = state.store().subscribe();
            let mut last: Option<Vec<u8>> = None;
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                match blocking(&state, endpoints::routing_table).await {
                    Ok(table) => {
                        let bytes = table.encode_to_vec();
                        if last.as_ref() != Some(&bytes) {
                            if tx.send(Ok(table)).await.is_err() {
                                break;
                            }
                            last = Some(bytes);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot compute the routing table"),
                }
                let closed = loop {
                    tokio::select! {
                        _ = tick.tick() => break false,
                        _ = tx.closed() => break true,
                        c = changes.recv() => match c {
                            Ok(keys) if keys.iter().any(|k| k.starts_with("task/") || k.starts_with("service/") || k.starts_with("node/")) => {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                                while changes.try_recv().is_ok() {}
                                break false;
                            }
                            Ok(_) => {}
                            Err(RecvError::Lagged(_)) => break false,
                            Err(RecvError::Closed) => break true,
                        }
                    }
                };
                if closed {
                    break;
                }
            }
            proxies.watch_ended(&proxy_id);
            tracing::info!(proxy = %proxy_id, "proxy stopped watching");
        });
        // Ending the stream closes `rx`, so the loop above sees `tx.closed()` and ends too.
        Ok(Response::new(until_shutdown(rx, self.stop.clone())))
    }

    async fn report_target_health(
        &self,
        req: Request<TargetHealthReport>,
    ) -> Result<Response<TargetHealthAck>, Status> {
        let r = req.into_inner();
        self.proxies
            .record_requests(&r.proxy_id, r.service_requests, crate::time::now_millis());
        self.proxies.report(&r.proxy_id, r.targets);
        Ok(Response::new(TargetHealthAck {}))
    }
}
