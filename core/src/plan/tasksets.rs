//! The planner of a service with the EXTERNAL deployment controller: a controller outside
//! (CodeDeploy, a blue/green tool) drives its task sets, and Berth only keeps each task set at
//! its computed count, ceil(desiredCount x scale%), as ECS does. No rollout, no circuit
//! breaker: the service's own deployment logic stays out of the way. A deleted (DRAINING) task
//! set's tasks stop, and it goes once none is left; a task of no task set is stopped.

use super::stop::is_protected;
use super::{Event, Launch, ServicePlan, ServiceView, Stop};
use crate::capacity;
use crate::scheduler::{self, PlacementRequest};
use crate::status::{service_status, ServiceStatus};
use berth_proto::v1::{Service, Task, TaskSet};

/// The tasks a task set keeps: ceil(desired x scale / 100), 0 once it is deleted.
pub fn computed_desired_count(svc: &Service, ts: &TaskSet) -> i32 {
    if ts.status == "DRAINING" || service_status(svc) != ServiceStatus::Active {
        return 0;
    }
    let scale = ts.scale_percent.clamp(0.0, 100.0);
    // Rounded first so 3 x 33.3333% is not 1.0000000001 tasks over.
    let exact = (f64::from(svc.desired_count) * scale / 100.0 * 1e6).round() / 1e6;
    exact.ceil() as i32
}

/// One pass over an EXTERNAL service.
pub fn plan(view: &ServiceView, now: i64) -> ServicePlan {
    let mut p = ServicePlan {
        service: view.service.clone(),
        memory: view.memory.clone(),
        ..Default::default()
    };
    let svc = &view.service;
    let live: Vec<&Task> = view
        .tasks
        .iter()
        .filter(|t| t.last_status != "STOPPED" && t.desired_status != "STOPPED")
        .collect();
    for t in live
        .iter()
        .filter(|t| !svc.task_sets.iter().any(|ts| ts.id == t.started_by))
    {
        p.stops.push(Stop {
            task_arn: t.task_arn.clone(),
            reason: "The task belongs to no task set of the service".into(),
        });
    }
    let mut nodes = view.nodes.clone();
    let strategies: Vec<_> = svc
        .placement_strategy
        .iter()
        .filter_map(|s| scheduler::parse_strategy(&s.r#type, &s.field).ok())
        .collect();
    for ts in &svc.task_sets {
        let mine: Vec<&&Task> = live.iter().filter(|t| t.started_by == ts.id).collect();
        let want = computed_desired_count(svc, ts) as usize;
        p.stops.extend(scale_in(ts, &mine, want, now));
        let n = want
            .saturating_sub(mine.len())
            .min(view.launch_cap().saturating_sub(p.launches.len()));
        if n == 0 {
            continue;
        }
        if !view.all_nodes {
            return ServicePlan {
                needs_all_nodes: true,
                service: view.service.clone(),
                memory: view.memory.clone(),
                ..Default::default()
            };
        }
        let Some(td) = view.definitions.get(&ts.task_definition) else {
            continue;
        };
        let demand = capacity::demand(td);
        let constraints: Vec<_> = svc
            .placement_constraints
            .iter()
            .filter_map(|c| scheduler::parse_constraint(&c.r#type, &c.expression).ok())
            .chain(crate::powers::constraints(td))
            .collect();
        for i in 0..n {
            let req = PlacementRequest {
                demand: &demand,
                strategies: &strategies,
                constraints: &constraints,
                seed: now as u64 ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            };
            match scheduler::place(&mut nodes, &req) {
                Ok(node_id) => p.launches.push(Launch {
                    node_id,
                    deployment_id: ts.id.clone(),
                    task_definition_arn: ts.task_definition.clone(),
                    cpu: demand.cpu,
                    memory: demand.memory,
                    ports: demand.ports.clone(),
                    volumes: demand.volumes.clone(),
                    load_balanced: false,
                    capacity_provider: String::new(),
                }),
                Err(r) => {
                    p.rejections.push(crate::powers::explain(td, r));
                    break;
                }
            }
        }
    }
    if !p.launches.is_empty() {
        p.events.push(Event::TasksStarted);
    }
    // A deleted task set goes once its last task has stopped.
    let stopping: std::collections::HashSet<&str> =
        p.stops.iter().map(|s| s.task_arn.as_str()).collect();
    p.service.task_sets.retain(|ts| {
        ts.status != "DRAINING"
            || live
                .iter()
                .any(|t| t.started_by == ts.id && !stopping.contains(t.task_arn.as_str()))
            || view
                .tasks
                .iter()
                .any(|t| t.started_by == ts.id && t.last_status != "STOPPED")
    });
    let running = live.iter().filter(|t| t.last_status == "RUNNING").count();
    p.service.running_count = running as i32;
    p.service.pending_count = (live.len() - running + p.launches.len()) as i32;
    if service_status(svc) == ServiceStatus::Draining
        && view.tasks.iter().all(|t| t.last_status == "STOPPED")
    {
        p.service.status = "INACTIVE".into();
    }
    p
}

/// The stops that bring task set `ts` down to `want` tasks: pending before running, newest
/// first; protected tasks stay.
fn scale_in(ts: &TaskSet, mine: &[&&Task], want: usize, now: i64) -> Vec<Stop> {
    if mine.len() <= want {
        return Vec::new();
    }
    let mut extra: Vec<&&Task> = mine
        .iter()
        .copied()
        .filter(|t| !is_protected(t, now))
        .collect();
    extra.sort_by(|a, b| {
        (a.last_status == "RUNNING", std::cmp::Reverse(&a.created_at))
            .cmp(&(b.last_status == "RUNNING", std::cmp::Reverse(&b.created_at)))
    });
    let reason = if ts.status == "DRAINING" {
        format!("Task set {} deleted", ts.id)
    } else {
        format!("Scaling activity initiated by task set {}", ts.id)
    };
    extra
        .into_iter()
        .take(mine.len() - want)
        .map(|t| Stop {
            task_arn: t.task_arn.clone(),
            reason: reason.clone(),
        })
        .collect()
}
