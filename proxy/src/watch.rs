//! The control plane link: keeps one `WatchEndpoints` stream open, reconnecting with backoff, and
//! hands each routing table to the router. While the control plane is away nothing changes: the
//! last table keeps serving and health checks keep running.

use crate::router::Router;
use crate::Config;
use berth_proto::v1::endpoints_client::EndpointsClient;
use berth_proto::v1::WatchEndpointsRequest;
use berth_trust::backoff::Backoff;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// How often listener ports that could not be bound are tried again.
const REBIND_EVERY: Duration = Duration::from_secs(2);

pub(crate) async fn run(
    mut router: Router,
    mut client: EndpointsClient<crate::failover::Failover>,
    config: Config,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(FIRST_BACKOFF, config.reconnect_max);
    // Say that the control plane is unreachable once per outage, not on every retry.
    let mut warned = false;
    let mut rebind = tokio::time::interval(REBIND_EVERY);
    rebind.set_missed_tick_behavior(MissedTickBehavior::Delay);
    'outer: loop {
        let request = WatchEndpointsRequest {
            proxy_id: config.proxy_id.clone(),
            discovery_only: false,
            service_connect: config.service_connect,
        };
        let opened = tokio::select! {
            opened = client.watch_endpoints(request) => opened,
            _ = crate::stopped(&mut stop) => break 'outer,
        };
        match opened {
            Ok(response) => {
                let mut stream = response.into_inner();
                let mut first = true;
                loop {
                    tokio::select! {
                        message = stream.message() => match message {
                            Ok(Some(table)) => {
                                if first || warned {
                                    tracing::info!(routes = table.routes.len(), "routing table from {}", config.server);
                                }
                                router.apply(table, first).await;
                                first = false;
                                warned = false;
                                backoff.reset();
                            }
                            Ok(None) => {
                                tracing::warn!("the control plane ended the endpoints stream; serving the last table");
                                break;
                            }
                            Err(status) => {
                                tracing::warn!("endpoints stream lost ({}); serving the last table", status.message());
                                warned = true;
                                break;
                            }
                        },
                        _ = rebind.tick(), if router.missing_listeners() => router.retry_listeners().await,
                        _ = crate::stopped(&mut stop) => break 'outer,
                    }
                }
            }
            Err(status) => {
                if warned {
                    tracing::debug!(
                        "cannot watch endpoints at {}: {}",
                        config.server,
                        status.message()
                    );
                } else {
                    tracing::warn!(
                        "cannot watch endpoints at {}: {}; serving the last table and retrying",
                        config.server,
                        status.message()
                    );
                    warned = true;
                }
            }
        }
        let pause = tokio::time::sleep(backoff.next_wait());
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = &mut pause => break,
                _ = rebind.tick(), if router.missing_listeners() => router.retry_listeners().await,
                _ = crate::stopped(&mut stop) => break 'outer,
            }
        }
    }
    router.shutdown().await;
}
