//! What a pass tells the user: ECS's events for the tasks it started and stopped, placement
//! failures, a deployment's completion and the service's steady state, and the end of a
//! deleted service's drain.

use super::bounds::Bounds;
use super::judge::Judgement;
use super::{Event, ServicePlan, ServiceView};
use crate::scheduler::Rejection;
use crate::status::{end_rollout, rollout, DeploymentStatus, RolloutState, ServiceStatus};
use crate::time;
use berth_proto::v1::{Failure, Task};

/// A placement failure is told at most this often.
const PLACEMENT_EVENT_EVERY_MS: i64 = 30_000;

/// A task's id, the last part of its ARN, as ECS's events name it.
pub fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// "has started N tasks", "has stopped N running tasks", and why a task failed its checks.
pub(super) fn task_events(p: &mut ServicePlan) {
    let name = p.service.service_name.clone();
    if !p.launches.is_empty() {
        p.events.push(Event::TasksStarted);
    }
    if p.stops.is_empty() {
        return;
    }
    let ids: Vec<String> = p
        .stops
        .iter()
        .map(|s| format!("(task {})", short(&s.task_arn)))
        .collect();
    p.events.push(Event::Message(format!(
        "(service {name}) has stopped {} running tasks: {}.",
        p.stops.len(),
        ids.join(" ")
    )));
    let port = p
        .service
        .load_balancers
        .first()
        .map_or(0, |l| l.listener_port);
    let elb = format!("Task failed ELB health checks in (target-group {name}) due to (");
    let mut more = Vec::new();
    for s in &p.stops {
        let task = short(&s.task_arn);
        if s.reason.starts_with("Task failed container health checks") {
            more.push(format!(
                "(service {name}) (task {task}) failed container health checks."
            ));
        } else if let Some(why) = s.reason.strip_prefix(&elb) {
            more.push(format!(
                "(service {name}) (task {task}) (port {port}) is unhealthy in \
                 (target-group {name}) due to ({why}."
            ));
        }
    }
    p.events.extend(more.into_iter().map(Event::Message));
}

/// Why tasks could not be placed: on the service always, as an event at most every 30 s.
pub(super) fn placement_failures(p: &mut ServicePlan, now: i64) {
    let td = p.service.deployments[0].task_definition.clone();
    p.service.placement_failures = p
        .rejections
        .iter()
        .map(|r| Failure {
            arn: td.clone(),
            reason: r.reason.to_string(),
            detail: r.detail.clone(),
        })
        .collect();
    if let Some(r) = p.rejections.first() {
        if now - p.memory.last_placement_event_ms > PLACEMENT_EVENT_EVERY_MS {
            p.memory.last_placement_event_ms = now;
            let msg = placement_message(&p.service.service_name, r);
            p.events.push(Event::Message(msg));
        }
    }
}

/// With nothing left to do and every new task healthy, the primary deployment is COMPLETED,
/// drained deployments go, and the service reaches a steady state (said once); acting again
/// leaves it.
pub(super) fn settle(
    p: &mut ServicePlan,
    j: &Judgement,
    b: &Bounds,
    remaining: &[&Task],
    status: ServiceStatus,
    now: i64,
) {
    let name = p.service.service_name.clone();
    let acted = !p.launches.is_empty() || !p.stops.is_empty();
    let old_left = remaining.iter().any(|t| !j.is_primary(t));
    let new_left: Vec<&&Task> = remaining.iter().filter(|t| j.is_primary(t)).collect();
    let all_healthy =
        new_left.len() as i64 == b.desired && new_left.iter().all(|t| j.is_healthy(t));
    if !acted && !old_left && all_healthy && status == ServiceStatus::Active {
        let first = &mut p.service.deployments[0];
        if end_rollout(first, RolloutState::Completed) {
            first.rollout_state_reason = "ECS deployment completed.".into();
            first.updated_at = time::rfc3339(now);
            let id = first.id.clone();
            p.events.push(Event::Message(format!(
                "(service {name}) (deployment {id}) deployment completed."
            )));
        }
        if rollout(&p.service.deployments[0]) == RolloutState::Completed {
            // Drained deployments go once the primary is done with them.
            p.service.deployments.truncate(1);
        }
        if !p.memory.steady {
            p.memory.steady = true;
            p.events.push(Event::Message(format!(
                "(service {name}) has reached a steady state."
            )));
        }
    } else if acted {
        p.memory.steady = false;
    }
}

/// A deleted service is INACTIVE once its tasks have stopped; its stopped tasks go with it.
pub(super) fn finish_draining(
    p: &mut ServicePlan,
    view: &ServiceView,
    j: &Judgement,
    remaining: &[&Task],
    status: ServiceStatus,
) {
    if status != ServiceStatus::Draining
        || !remaining.is_empty()
        || j.stopping > 0
        || !p.stops.is_empty()
    {
        return;
    }
    p.service.status = ServiceStatus::Inactive.to_string();
    for dep in p.service.deployments.iter_mut() {
        dep.status = DeploymentStatus::Inactive.to_string();
    }
    p.forget = view
        .tasks
        .iter()
        .filter(|t| t.last_status == "STOPPED")
        .map(|t| t.task_arn.clone())
        .collect();
}

pub(super) fn placement_message(name: &str, r: &Rejection) -> String {
    let base = format!("(service {name}) was unable to place a task because no container instance met all of its requirements.");
    let why = match r.reason {
        "RESOURCE:MEMORY" => "has insufficient memory available",
        "RESOURCE:CPU" => "has insufficient CPU units available",
        "RESOURCE:PORTS" => "is already using a port required by your task",
        "DISTINCT_INSTANCE" => {
            "encountered error \"DistinctInstance placement constraint unsatisfied.\""
        }
        "MEMBER_OF" => "encountered error \"MemberOf placement constraint unsatisfied.\"",
        _ => return format!("{base} ({})", r.detail),
    };
    format!(
        "{base} The closest matching container-instance {why} ({}).",
        r.detail
    )
}
