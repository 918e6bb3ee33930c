//! gRPC handlers: one per RPC, each validate → store → reply. Plain structs holding `State`.
//! The agent and endpoint streams are here too (`agent_stream`, `endpoint_stream`).

pub mod agent_stream;
pub mod auth_layer;
mod clusters;
mod credentials;
pub mod endpoint_stream;
mod load_balancers;
mod nodes;
mod operator;
pub mod secrets;
mod servers;
mod services;
mod stacks;
mod task_protection;
mod taskdefs;
mod tasks;

pub use crate::transport::grpc::agent_stream::{AgentSessionsApi, SessionTimings};
pub use crate::transport::grpc::endpoint_stream::EndpointsApi;
pub use clusters::ClustersApi;
pub use credentials::{CertificatesApi, TokensApi};
pub use load_balancers::LoadBalancersApi;
pub use nodes::NodesApi;
pub use operator::OperatorApi;
pub use servers::ServersApi;
pub use services::{NodeAdminApi, ServicesApi};
pub use stacks::StacksApi;
pub use taskdefs::TaskDefinitionsApi;
pub use tasks::TasksApi;

use crate::state::error::Error;
use crate::state::State;
use std::pin::Pin;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tonic::Status;

/// Runs a store-touching closure off the async workers (log syncs block) and maps its error.
pub(crate) async fn blocking<T, F>(state: &State, f: F) -> Result<T, tonic::Status>
where
    T: Send + 'static,
    F: FnOnce(&State) -> Result<T, Error> + Send + 'static,
{
    let state = state.clone();
    crate::foreground::blocking(move || f(&state))
        .await
        .map_err(|e| tonic::Status::internal(format!("handler failed: {e}")))?
        .map_err(tonic::Status::from)
}

/// A server stream fed from `rx` that ends, with UNAVAILABLE, as soon as the control plane starts
/// shutting down (or its `ControlPlane` is dropped). Graceful shutdown waits for every open
/// stream, and agents and proxies never close theirs: without this the process outlives SIGTERM.
/// They reconnect with backoff to the next start. Dropping `rx` here also closes it for every
/// sender, so the task feeding it sees `closed()` and ends too.
pub(crate) fn until_shutdown<T: Send + 'static>(
    rx: mpsc::Receiver<Result<T, Status>>,
    stop: watch::Receiver<bool>,
) -> Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>> {
    Box::pin(futures_util::stream::unfold(
        Some((rx, stop)),
        |open| async move {
            let (mut rx, mut stop) = open?;
            tokio::select! {
                biased;
                _ = crate::live::shutting_down(&mut stop) => Some((
                    Err(Status::unavailable("the control plane is shutting down; reconnect")),
                    None,
                )),
                m = rx.recv() => m.map(|m| (m, Some((rx, stop)))),
            }
        },
    ))
}
