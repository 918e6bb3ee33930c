//! What the task metadata endpoint reads from Docker: a container's inspect and stats in the
//! engine's own JSON, and the host's address on a network.

use super::docker::DockerRuntime;
use bollard::query_parameters::{InspectContainerOptions, StatsOptionsBuilder};
use futures_util::StreamExt;
use std::net::Ipv4Addr;

impl DockerRuntime {
    pub(super) async fn inspect_raw(&self, id: &str) -> Option<serde_json::Value> {
        let c = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .ok()?;
        serde_json::to_value(c).ok()
    }

    pub(super) async fn stats_raw(&self, id: &str) -> Option<serde_json::Value> {
        let opts = StatsOptionsBuilder::new()
            .stream(false)
            .one_shot(true)
            .build();
        let s = self.docker.stats(id, Some(opts)).next().await?.ok()?;
        serde_json::to_value(s).ok()
    }

    /// The network's gateway, or the first address of its IPv4 subnet (Docker's default
    /// gateway, which the engine does not always report).
    pub(super) async fn gateway_of(&self, network: &str) -> Option<String> {
        let name = if network.is_empty() {
            "bridge"
        } else {
            network
        };
        let n = self
            .docker
            .inspect_network(
                name,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
            .ok()?;
        for c in n.ipam.and_then(|i| i.config).unwrap_or_default() {
            if let Some(g) = c.gateway.filter(|g| g.parse::<Ipv4Addr>().is_ok()) {
                return Some(g);
            }
            let subnet = c.subnet.unwrap_or_default();
            if let Some(Ok(base)) = subnet.split('/').next().map(str::parse::<Ipv4Addr>) {
                return Some(Ipv4Addr::from(u32::from(base) + 1).to_string());
            }
        }
        None
    }
}
