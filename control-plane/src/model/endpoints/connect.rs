//! Service Connect's routes, for the node proxies that serve the aliases: each alias of a
//! service is a load balancer to the route machinery (`berth_core::service::connect_routes`), so
//! its targets, draining and deployment weights are exactly a load balancer route's. Only tasks
//! that pass their container health checks (when they have any) are targets, so a new task takes
//! calls as soon as it is healthy; a stopping one stays, draining, until it is deregistered.

use crate::state::error::Result;
use crate::state::State;
use berth_core::service::connect_routes as sc;
use berth_proto::v1::{ConnectCaller, ContainerInstance, Route, Service, Task};
use std::collections::{BTreeSet, HashMap};

/// The routes of every alias of `svc` (none when it offers no alias).
pub(super) fn routes(
    state: &State,
    svc: &Service,
    tasks: &[Task],
    split: Option<Vec<(String, i32)>>,
    nodes: &HashMap<String, ContainerInstance>,
) -> Result<Vec<Route>> {
    let aliases = sc::aliases(svc);
    if aliases.is_empty() {
        return Ok(Vec::new());
    }
    let mut checked = HashMap::new();
    let mut serving = Vec::with_capacity(tasks.len());
    for t in tasks {
        let c =
            crate::model::discovery::derive::checked(state, &t.task_definition_arn, &mut checked)?;
        if sc::serving(t, c) {
            serving.push(t.clone());
        }
    }
    let mut out = Vec::new();
    for alias in aliases {
        let protocol = if sc::is_http(alias) { "" } else { "TCP" };
        let lb = sc::alias_lb(alias);
        out.extend(super::lb_routes(
            svc,
            &lb,
            protocol,
            split.as_deref(),
            &serving,
            nodes,
        ));
    }
    Ok(out)
}

/// The own addresses of the service's live tasks (on a task network, or awsvpc), so the proxy
/// names the caller in its figures.
pub(super) fn callers(svc: &Service, tasks: &[Task]) -> Vec<ConnectCaller> {
    let mut addresses = BTreeSet::new();
    for t in tasks.iter().filter(|t| t.last_status != "STOPPED") {
        for c in &t.containers {
            let bound = c
                .network_bindings
                .iter()
                .map(|b| b.bind_ip.as_str())
                .filter(|ip| !matches!(*ip, "" | "0.0.0.0" | "::"));
            let own = c
                .network_interfaces
                .iter()
                .map(|n| n.private_ipv4_address.as_str())
                .filter(|ip| !ip.is_empty());
            addresses.extend(bound.chain(own).map(str::to_string));
        }
    }
    addresses
        .into_iter()
        .map(|address| ConnectCaller {
            address,
            service_name: svc.service_name.clone(),
        })
        .collect()
}
