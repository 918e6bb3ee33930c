//! Placement, decided purely: a snapshot of nodes and a task's demand in, a node or a reason out.
//! No IO, no clock, no global RNG (`random` draws from the request's seed). Over many nodes a
//! plan places through `Placer`, which ranks a bounded sample of feasible nodes (`sample`).
//! The snapshot may be stale: the control plane's applier re-checks each node at commit, and
//! the commit compares the node's claims, so no other plan (in this process or on another
//! server) can double-book what this one saw free. Feasibility lives in `feasible`, ranking in
//! `rank`, the `memberOf` query language in `query`.

mod feasible;
pub mod providers;
mod query;
mod rank;
mod sample;
#[cfg(test)]
mod tests;

pub use feasible::{host_path_allowed, parse_constraint, parse_constraint_at, Constraint};
pub use query::Query;
pub use rank::{parse_strategy, Resource, SpreadField, Strategy};
pub use sample::{AttributeValues, Placer, CANDIDATES, FULL_SCAN_MAX};

use rank::{Ranker, Ties};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// What a node has left, as the planner sees it.
#[derive(Debug, Clone)]
pub struct NodeSnapshot {
    /// Shared, as the fields below: a plan clones ten thousand snapshots, and a clone is then
    /// a few reference counts, never an allocation.
    pub id: Arc<str>,
    pub name: Arc<str>,
    pub connected: bool,
    pub active: bool,
    pub cpu_free: i64,
    pub memory_free: i64,
    /// (hostPort, protocol) already taken on the node (shared until a plan takes one: ten
    /// thousand snapshots are cloned for every plan that places).
    pub ports_used: Arc<HashSet<(i32, String)>>,
    pub tasks: usize,
    /// Node attributes, including the built-ins `ecs.instance-id` and `berth.node-name`.
    pub attributes: Arc<HashMap<String, String>>,
    /// Tasks of the service being placed that already run here.
    pub service_tasks: usize,
    /// Host paths the node's agent lets tasks bind-mount (`berth agent --allow-host-path`).
    pub allowed_host_paths: Arc<Vec<String>>,
}

/// What one task needs.
#[derive(Debug, Clone, Default)]
pub struct Demand {
    pub cpu: i64,
    pub memory: i64,
    /// Static (hostPort, protocol) pairs; dynamic ports need nothing up front.
    pub ports: Vec<(i32, String)>,
    /// Host paths the task bind-mounts (`volumes[].host.sourcePath`).
    pub host_paths: Vec<String>,
    /// The shared Docker volumes the task mounts: node-local data the task must follow.
    pub volumes: Vec<VolumeNeed>,
}

/// A `shared`-scope Docker volume a task mounts, and where its data is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeNeed {
    pub name: String,
    /// `dockerVolumeConfiguration.autoprovision`: an empty volume may be made elsewhere.
    pub autoprovision: bool,
    /// The node that holds the volume (set by `locate_volumes`); None until a task has made it.
    pub home: Option<String>,
    /// That node's name, for the reason a task waits.
    pub home_name: String,
    /// That node is disconnected or no longer registered.
    pub home_lost: bool,
}

impl Demand {
    /// After a task of this demand was placed on `node`: its shared volumes that had no live
    /// home are made there, so the plan's next task of them follows.
    pub fn placed_on(&mut self, node: &NodeSnapshot) {
        for v in &mut self.volumes {
            if v.home.is_none() || v.home_lost {
                v.home = Some(node.id.to_string());
                v.home_name = node.name.to_string();
                v.home_lost = false;
            }
        }
    }
}

/// Says where each shared volume of `d` lives, from the volumes' recorded homes (volume name →
/// node id) and the nodes as they are: a home whose node is disconnected or gone is lost.
pub fn locate_volumes(d: &mut Demand, homes: &HashMap<String, String>, nodes: &[NodeSnapshot]) {
    for v in &mut d.volumes {
        v.home = homes.get(&v.name).cloned();
        let node = v
            .home
            .as_ref()
            .and_then(|h| nodes.iter().find(|n| *n.id == **h));
        v.home_name = match (node, &v.home) {
            (Some(n), _) => n.name.to_string(),
            (None, Some(h)) => h.clone(),
            (None, None) => String::new(),
        };
        v.home_lost = v.home.is_some() && !node.is_some_and(|n| n.connected);
    }
}

/// Why a task could not be placed, in ECS's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// AGENT, VOLUME, HOST_PATH, RESOURCE:CPU, RESOURCE:MEMORY, RESOURCE:PORTS,
    /// DISTINCT_INSTANCE or MEMBER_OF.
    pub reason: &'static str,
    pub detail: String,
}

/// One task to place, and how.
#[derive(Debug, Clone, Copy)]
pub struct PlacementRequest<'a> {
    pub demand: &'a Demand,
    /// Applied in order: the first is the primary key, each next one breaks the previous ties.
    pub strategies: &'a [Strategy],
    /// All must hold.
    pub constraints: &'a [Constraint],
    /// Feeds the `random` strategy; callers vary it between plans.
    pub seed: u64,
}

/// Places one task: the feasible node the strategies rank first, ties broken by fewest tasks of
/// the service, then fewest tasks, then node id. On success the node is charged in the
/// snapshot (resources, ports, one more task and service task), so the next call in the same
/// plan sees it. When no node fits, the reason is that of the node that came closest.
pub fn place(nodes: &mut [NodeSnapshot], req: &PlacementRequest) -> Result<String, Rejection> {
    place_with(nodes, req, Ties::Service)
}

/// Places one task with no strategy or constraint: the feasible node with the fewest tasks,
/// then the most memory free. Charges the snapshot like `place`.
pub fn place_one(nodes: &mut [NodeSnapshot], d: &Demand) -> Result<String, Rejection> {
    let req = PlacementRequest {
        demand: d,
        strategies: &[],
        constraints: &[],
        seed: 0,
    };
    place_with(nodes, &req, Ties::Legacy)
}

fn place_with(
    nodes: &mut [NodeSnapshot],
    req: &PlacementRequest,
    ties: Ties,
) -> Result<String, Rejection> {
    let i = choose(nodes, req, ties)?;
    let n = &mut nodes[i];
    n.cpu_free -= req.demand.cpu;
    n.memory_free -= req.demand.memory;
    if !req.demand.ports.is_empty() {
        Arc::make_mut(&mut n.ports_used).extend(req.demand.ports.iter().cloned());
    }
    n.tasks += 1;
    n.service_tasks += 1;
    Ok(n.id.to_string())
}

/// The index of the node to place on, or why there is none.
fn choose(nodes: &[NodeSnapshot], req: &PlacementRequest, ties: Ties) -> Result<usize, Rejection> {
    let ranker = Ranker::new(nodes, req.strategies, req.seed, ties);
    let mut best: Option<usize> = None;
    let (mut best_key, mut key) = (Vec::new(), Vec::new());
    let mut closest: Option<(usize, feasible::Unfit)> = None;
    for (i, n) in nodes.iter().enumerate() {
        match feasible::check(n, req.demand, req.constraints) {
            Ok(()) => {
                ranker.key(n, &mut key);
                let better = best.is_none_or(|b| {
                    ranker.cmp((&key, n), (&best_key, &nodes[b])) == std::cmp::Ordering::Less
                });
                if better {
                    best = Some(i);
                    std::mem::swap(&mut key, &mut best_key);
                }
            }
            Err(u) => {
                if closest.as_ref().is_none_or(|(_, c)| u.stage > c.stage) {
                    closest = Some((i, u));
                }
            }
        }
    }
    if let Some(i) = best {
        return Ok(i);
    }
    Err(match closest {
        Some((i, u)) => Rejection {
            reason: u.why.reason(),
            detail: u.why.detail(&nodes[i]),
        },
        None => Rejection {
            reason: "AGENT",
            detail: "no node is registered; start one with `berth agent` (berth dev runs one)"
                .into(),
        },
    })
}
