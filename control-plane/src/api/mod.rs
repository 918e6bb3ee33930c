//! gRPC handlers: one per RPC, each validate → store → reply. Plain structs holding `State`.

mod agents;
mod clusters;
mod endpoints;
mod nodes;
mod services;
mod stacks;
mod taskdefs;
mod tasks;
mod trust;

pub use agents::{AgentSessionsApi, SessionTimings};
pub use clusters::ClustersApi;
pub use endpoints::EndpointsApi;
pub use nodes::NodesApi;
pub use services::{NodeAdminApi, ServicesApi};
pub use stacks::StacksApi;
pub use taskdefs::TaskDefinitionsApi;
pub use tasks::TasksApi;
pub use trust::{CertificatesApi, TokensApi};

use crate::error::Error;
use crate::state::State;

/// Runs a store-touching closure off the async workers (sled flushes block) and maps its error.
pub(crate) async fn blocking<T, F>(state: &State, f: F) -> Result<T, tonic::Status>
where
    T: Send + 'static,
    F: FnOnce(&State) -> Result<T, Error> + Send + 'static,
{
    let state = state.clone();
    tokio::task::spawn_blocking(move || f(&state))
        .await
        .map_err(|e| tonic::Status::internal(format!("handler failed: {e}")))?
        .map_err(tonic::Status::from)
}
