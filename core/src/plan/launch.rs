//! Which tasks to start, and where: a REPLICA service fills up to desired within maximumPercent;
//! a DAEMON service covers each qualifying node that has no task of it. Placement is the pure
//! scheduler's, on the view's node snapshots; the applier re-checks every node before commit.

use super::bounds::{daemon_nodes, Bounds};
use super::judge::Judgement;
use super::{Launch, ServicePlan, ServiceView};
use crate::scheduler::{self, NodeSnapshot, PlacementRequest};
use crate::status::{service_status, ServiceStatus};
use crate::{arn, capacity};
use berth_proto::v1::{Service, TaskDefinition};

/// At most this many launches in one pass, so one commit stays small; the next pass goes on.
pub const MAX_LAUNCHES_PER_PASS: usize = 1_000;

/// Fills `p.launches` (and `p.rejections`); returns how many were placed.
pub(super) fn launches(
    view: &ServiceView,
    p: &mut ServicePlan,
    j: &Judgement,
    b: &Bounds,
    now: i64,
) -> usize {
    let svc = &p.service;
    if service_status(svc) != ServiceStatus::Active || !b.may_launch {
        return 0;
    }
    let primary = &svc.deployments[0];
    let Some(td) = view.definitions.get(&primary.task_definition) else {
        return 0;
    };
    let Some(targets) = targets(view, svc, j, b) else {
        p.needs_all_nodes = true;
        return 0;
    };
    let (mut demand, strategies, constraints) = placement_rules(view, svc, td, b.daemon);
    let mut nodes = snapshot_with_service_tasks(view, j);
    let load_balanced = drains_before_stopping(svc);
    let deployment_id = primary.id.clone();
    let td_arn = primary.task_definition.clone();
    let mut placer = scheduler::Placer::with_values(
        &nodes,
        &strategies,
        &constraints,
        now as u64,
        &view.spread_values,
    );
    let pools = if b.daemon {
        Pools::default()
    } else {
        Pools::of(view, svc, j, targets.len(), &constraints)
    };
    let mut launches = Vec::new();
    for (i, target) in targets.into_iter().enumerate() {
        let (pool, pool_constraints) = match pools.of_launch(i) {
            Some(Ok(p)) => (p.0.clone(), Some(&p.1)),
            Some(Err(r)) => {
                p.rejections.push(r);
                break;
            }
            None => (String::new(), None),
        };
        let req = PlacementRequest {
            demand: &demand,
            strategies: &strategies,
            constraints: pool_constraints.map_or(&constraints[..], |c| &c[..]),
            seed: now as u64 ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        };
        let placed = match &target {
            Some(id) => match nodes.iter_mut().find(|n| *n.id == **id) {
                Some(n) => scheduler::place(std::slice::from_mut(n), &req),
                None => continue,
            },
            // A pool's tasks are placed on a full scan of its nodes (pools are small).
            None if pool_constraints.is_some() => scheduler::place(&mut nodes, &req),
            None => placer.place(&mut nodes, &demand, req.seed),
        };
        // Only a shared volume's first task needs its node found (a scan of every node for
        // every launch was a tenth of a converging control plane's CPU at 10,000 nodes).
        let homeless = demand
            .volumes
            .iter()
            .any(|v| v.home.is_none() || v.home_lost);
        if let (Ok(id), true) = (&placed, homeless) {
            if let Some(n) = nodes.iter().find(|n| *n.id == **id) {
                demand.placed_on(n);
            }
        }
        match placed {
            Ok(node_id) => launches.push(Launch {
                node_id,
                deployment_id: deployment_id.clone(),
                task_definition_arn: td_arn.clone(),
                cpu: demand.cpu,
                memory: demand.memory,
                ports: demand.ports.clone(),
                volumes: demand.volumes.clone(),
                load_balanced,
                capacity_provider: pool,
            }),
            // A DAEMON node without room waits for it; it does not block the others.
            Err(_) if b.daemon => {}
            Err(r) => {
                let mut r = crate::powers::explain(td, r);
                if !pool.is_empty() {
                    r.detail = format!("capacity provider {pool}: {}", r.detail);
                }
                p.rejections.push(r);
                break;
            }
        }
    }
    let n = launches.len();
    p.launches = launches;
    n
}

/// What each launch of the service is placed by: the task's demand (its shared volumes located,
/// or dropped for a DAEMON, whose every node keeps its own copy), the service's strategies, and
/// its constraints with those of the powers the definition needs (privileged, devices,
/// security options, GPUs: only nodes that grant them, as RunTask places).
fn placement_rules(
    view: &ServiceView,
    svc: &Service,
    td: &TaskDefinition,
    daemon: bool,
) -> (
    scheduler::Demand,
    Vec<scheduler::Strategy>,
    Vec<scheduler::Constraint>,
) {
    let mut demand = capacity::demand(td);
    if daemon {
        demand.volumes.clear();
    } else {
        scheduler::locate_volumes(&mut demand, &view.volume_homes, &view.nodes);
    }
    let strategies = svc
        .placement_strategy
        .iter()
        .filter_map(|s| scheduler::parse_strategy(&s.r#type, &s.field).ok())
        .collect();
    let constraints = svc
        .placement_constraints
        .iter()
        .filter_map(|c| scheduler::parse_constraint(&c.r#type, &c.expression).ok())
        .chain(crate::powers::constraints(td))
        .collect();
    (demand, strategies, constraints)
}

/// Whether the service's tasks drain before they stop: behind a load balancer, or reached
/// through Service Connect aliases (whose routes drain a stopping task as a load balancer does,
/// as `service::connect_routes::routed` says).
fn drains_before_stopping(svc: &Service) -> bool {
    !svc.load_balancers.is_empty()
        || svc
            .service_connect
            .as_ref()
            .is_some_and(|c| c.enabled && !c.aliases.is_empty())
}

/// One entry a launch: the node a DAEMON service's launch goes to, or None where placement
/// chooses (REPLICA). None when a REPLICA service would launch but the view holds only the nodes
/// its tasks are on: the pass must read every node first.
fn targets(
    view: &ServiceView,
    svc: &Service,
    j: &Judgement,
    b: &Bounds,
) -> Option<Vec<Option<String>>> {
    if b.daemon {
        // Each qualifying node without a live task of the service (an old one goes first).
        return Some(
            daemon_nodes(view, svc)
                .filter(|n| {
                    let node_arn = arn::container_instance(&n.id);
                    !j.live.iter().any(|t| t.container_instance_arn == node_arn)
                })
                .map(|n| Some(n.id.to_string()))
                .take(view.launch_cap())
                .collect(),
        );
    }
    let want = b.desired - j.good_new().len() as i64;
    let room = b.max_total - b.total;
    let n = want.min(room).clamp(0, view.launch_cap() as i64) as usize;
    (n == 0 || view.all_nodes).then(|| vec![None; n])
}

/// The view's nodes, each knowing how many of this service's live tasks it holds (for spread
/// and distinctInstance).
fn snapshot_with_service_tasks(view: &ServiceView, j: &Judgement) -> Vec<NodeSnapshot> {
    // Counted once per task, not once per node and task.
    let mut per_node: std::collections::HashMap<&str, usize> = Default::default();
    for t in &j.live {
        *per_node
            .entry(arn::last_segment(&t.container_instance_arn))
            .or_default() += 1;
    }
    let mut nodes = view.nodes.clone();
    for n in nodes.iter_mut() {
        n.service_tasks = per_node.get(&*n.id).copied().unwrap_or(0);
    }
    nodes
}

/// The capacity provider of each launch of a pass, and the constraints that keep it on the
/// provider's nodes (the service's own, plus the provider's selector).
#[derive(Default)]
struct Pools {
    /// Per launch: an index into `providers`.
    order: Vec<usize>,
    providers: Vec<Result<(String, Vec<scheduler::Constraint>), crate::scheduler::Rejection>>,
}

impl Pools {
    fn of(
        view: &ServiceView,
        svc: &berth_proto::v1::Service,
        j: &Judgement,
        n: usize,
        base: &[scheduler::Constraint],
    ) -> Self {
        let strategy = &svc.capacity_provider_strategy;
        if strategy.is_empty() {
            return Self::default();
        }
        let live: Vec<usize> = strategy
            .iter()
            .map(|it| {
                j.live
                    .iter()
                    .filter(|t| t.capacity_provider_name == it.capacity_provider)
                    .count()
            })
            .collect();
        let providers = strategy
            .iter()
            .map(|it| {
                let name = &it.capacity_provider;
                let missing = |detail: String| crate::scheduler::Rejection {
                    reason: "CAPACITY_PROVIDER",
                    detail,
                };
                let Some(selector) = view.capacity_providers.get(name) else {
                    return Err(missing(format!(
                        "capacity provider {name} does not exist; create it or change the service's capacityProviderStrategy"
                    )));
                };
                let c = scheduler::parse_constraint("memberOf", selector).map_err(|e| {
                    missing(format!("capacity provider {name}: selector {selector:?}: {e}"))
                })?;
                Ok((name.clone(), base.iter().cloned().chain([c]).collect()))
            })
            .collect();
        Self {
            order: scheduler::providers::assign(strategy, &live, n),
            providers,
        }
    }

    #[allow(clippy::type_complexity)]
    fn of_launch(
        &self,
        i: usize,
    ) -> Option<Result<&(String, Vec<scheduler::Constraint>), crate::scheduler::Rejection>> {
        let k = *self.order.get(i)?;
        Some(self.providers.get(k)?.as_ref().map_err(Clone::clone))
    }
}
