//! The service planner, decided purely: `plan(view, now) -> ServicePlan`. A view is an immutable
//! snapshot (the service, its deployments and tasks, their definitions, the nodes, the load
//! balancer's target health, what the controller remembers); the plan says which tasks to
//! launch where, which to stop and why, the service's new deployments and counts, and the events
//! to record. No IO, no clock (`now` is given), no ids minted here (the applier mints task ids;
//! a rollback takes `view.fresh_deployment_id`). In the manner of Nomad's `reconcile.go`, each
//! decision is a small piece named for what it decides.

mod bounds;
mod counts;
pub mod drain;
mod judge;
pub mod launch;
pub mod pause;
mod progress;
pub mod rollout;
pub mod shift;
pub mod stop;
pub mod tasksets;
#[cfg(test)]
mod tests;

use crate::scheduler::{Demand, NodeSnapshot, Rejection, VolumeNeed};
use crate::status::{service_status, ServiceStatus};
use berth_proto::v1::{RevisionFigures, Service, Task, TaskDefinition};
use std::collections::HashMap;

pub use judge::failed;
pub use progress::short;

/// What the controller remembers of a service between passes (lost on restart, harmlessly:
/// a new leader starts with no backoff and says "steady state" once more).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ServiceMemory {
    /// The primary deployment whose failures were counted, and how many were seen.
    pub failures_seen: (String, i32),
    pub consecutive_failures: u32,
    /// Launches wait until then after repeated failures.
    pub next_launch_ms: i64,
    pub steady: bool,
    pub last_placement_event_ms: i64,
    /// When auto scaling last evaluated the service's policy.
    pub scaling_evaluated_ms: i64,
}

/// Timings the planner judges by.
#[derive(Debug, Clone, Copy)]
pub struct PlanConfig {
    /// A task counts as healthy only after running (and passing its checks) this long.
    pub min_healthy_time_ms: i64,
    /// How long a load-balanced task that never passed a check may take to start serving.
    pub lb_startup_ms: i64,
}

impl Default for PlanConfig {
    fn default() -> Self {
        Self {
            min_healthy_time_ms: 5_000,
            lb_startup_ms: 15_000,
        }
    }
}

/// A target's health as the watching proxies see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetView {
    /// HEALTHY, UNHEALTHY, or another state proxies report (INITIAL, DRAINING).
    pub state: String,
    pub reason: String,
    /// Some proxy has seen it healthy at least once.
    pub ever_healthy: bool,
}

/// Everything one planning pass may look at.
#[derive(Debug, Clone, Default)]
pub struct ServiceView {
    pub service: Service,
    /// The service's tasks, stopped ones included, without their containers or overrides (the
    /// planner judges by status, health and times; see `TaskHeader`).
    pub tasks: Vec<Task>,
    /// Task definitions by ARN: the primary deployment's and those of the tasks.
    pub definitions: HashMap<String, TaskDefinition>,
    /// Node snapshots: every node when `all_nodes`, else at least those the tasks run on.
    pub nodes: Vec<NodeSnapshot>,
    pub all_nodes: bool,
    /// Every value each attribute the service spreads over takes on `nodes`, where the caller
    /// knows it; the others are looked up on every node.
    pub spread_values: crate::scheduler::AttributeValues,
    /// Some proxy watches the routing table, so target health decides for load-balanced tasks.
    pub lb_watched: bool,
    /// Target health by task ARN.
    pub targets: HashMap<String, TargetView>,
    /// Stopping tasks every watching proxy has finished draining.
    pub drained: std::collections::HashSet<String>,
    pub memory: ServiceMemory,
    pub config: PlanConfig,
    /// The id a deployment created by this pass (a rollback) takes.
    pub fresh_deployment_id: String,
    /// The most operations (and compares) one pass may commit; None: no limit (the embedded store).
    pub op_budget: Option<usize>,
    /// What the proxies measured of each deployment during a traffic shift, by deployment id.
    pub revisions: HashMap<String, RevisionFigures>,
    /// The node each shared volume of the definitions lives on (volume name → node id), as
    /// placement recorded it: a task follows its data.
    pub volume_homes: HashMap<String, String>,
    /// The selector (a memberOf expression) of each capacity provider the service's strategy
    /// names, by provider name; a name missing here has no provider any more.
    pub capacity_providers: HashMap<String, String>,
}

/// Operations a pass keeps for the service record and its own compares.
const RESERVED_OPS: usize = 8;

impl ServiceView {
    /// How many tasks this pass may launch: three ops each, two compares a node.
    pub(crate) fn launch_cap(&self) -> usize {
        let by_budget = self
            .op_budget
            .map_or(usize::MAX, |b| b.saturating_sub(RESERVED_OPS) / 3);
        launch::MAX_LAUNCHES_PER_PASS.min(by_budget)
    }

    /// How many stops and deregistrations may go with `launches` launches.
    pub(crate) fn stop_cap(&self, launches: usize) -> usize {
        self.op_budget.map_or(usize::MAX, |b| {
            b.saturating_sub(RESERVED_OPS).saturating_sub(3 * launches)
        })
    }
}

/// One task to start.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    pub node_id: String,
    pub deployment_id: String,
    pub task_definition_arn: String,
    pub cpu: i64,
    pub memory: i64,
    pub ports: Vec<(i32, String)>,
    /// The shared volumes it mounts: the applier records that they now live on `node_id`.
    pub volumes: Vec<VolumeNeed>,
    pub load_balanced: bool,
    /// The capacity provider (node pool) it was placed in; empty when none was asked for.
    pub capacity_provider: String,
}

impl Launch {
    pub fn demand(&self) -> Demand {
        Demand {
            cpu: self.cpu,
            memory: self.memory,
            ports: self.ports.clone(),
            volumes: self.volumes.clone(),
            ..Default::default()
        }
    }
}

/// One task to stop: desired STOPPED with ECS's stop code and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    pub task_arn: String,
    pub reason: String,
}

/// The service scheduler's stop code, as ECS names it.
pub const STOP_CODE: &str = "ServiceSchedulerInitiated";

/// An event of the pass, in the order they happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// "has started N tasks: …": the applier names them once it has minted their ids.
    TasksStarted,
    Message(String),
}

/// What one pass decided.
#[derive(Debug, Clone, Default)]
pub struct ServicePlan {
    pub launches: Vec<Launch>,
    pub stops: Vec<Stop>,
    pub events: Vec<Event>,
    /// The service with its new deployments, counts, status and placement failures (this
    /// pass's events are in `events`, not yet in it).
    pub service: Service,
    /// Stopped tasks whose records go (a deleted service that has finished draining).
    pub forget: Vec<String>,
    /// Stopping tasks that leave the load balancer now, and why.
    pub deregister: Vec<(String, &'static str)>,
    pub memory: ServiceMemory,
    /// Why launches could not be placed.
    pub rejections: Vec<Rejection>,
    /// The pass would launch but saw only some nodes: plan again with every node.
    pub needs_all_nodes: bool,
}

impl ServicePlan {
    /// Nothing to write: no task to start or stop, the service record unchanged.
    pub fn is_noop(&self, before: &Service) -> bool {
        self.launches.is_empty()
            && self.stops.is_empty()
            && self.events.is_empty()
            && self.forget.is_empty()
            && self.deregister.is_empty()
            && &self.service == before
    }

    fn unchanged(view: &ServiceView) -> Self {
        Self {
            service: view.service.clone(),
            memory: view.memory.clone(),
            ..Default::default()
        }
    }
}

/// One planning pass over a service.
pub fn plan(view: &ServiceView, now: i64) -> ServicePlan {
    let status = service_status(&view.service);
    if status != ServiceStatus::Inactive && view.service.deployment_controller == "EXTERNAL" {
        return tasksets::plan(view, now);
    }
    if status == ServiceStatus::Inactive || view.service.deployments.is_empty() {
        return ServicePlan::unchanged(view);
    }
    let mut p = ServicePlan::unchanged(view);
    drain::deregistrations(&mut p, view, now);
    p.deregister.truncate(view.stop_cap(0));
    rollout::count_failures(&mut p.service, &view.tasks);
    rollout::circuit_breaker(&mut p, &view.fresh_deployment_id, now);
    rollout::backoff(&mut p, view, now);

    let mut j = judge::Judgement::of(view, &p.service, now);
    if shift::advance(&mut p, view, &j, now) {
        j = judge::Judgement::of(view, &p.service, now);
    }
    let b = bounds::Bounds::of(view, &p, &j, now);
    let placed = launch::launches(view, &mut p, &j, &b, now);
    if p.needs_all_nodes {
        return ServicePlan {
            needs_all_nodes: true,
            ..ServicePlan::unchanged(view)
        };
    }
    stop::stops(&mut p, &j, &b, placed as i64, view.stop_cap(placed), now);
    let remaining = counts::remaining(&p, &j);
    counts::count(&mut p, &j, &b, &remaining);
    progress::task_events(&mut p);
    progress::placement_failures(&mut p, now);
    progress::settle(&mut p, &j, &b, &remaining, status, now);
    progress::finish_draining(&mut p, view, &j, &remaining, status);
    p
}
