//! Rollout policies: ECS's deployment circuit breaker, the retry backoff for tasks that keep
//! failing to start, and the words of placement-failure events.

use super::service::ServiceMemory;
use crate::scheduler;
use crate::services::{breaker_threshold, new_deployment, push_event};
use crate::time;
use berth_proto::v1::*;

fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// ECS's circuit breaker: enough failed tasks in the primary deployment fail it, and with
/// rollback the service returns to the last completed deployment's task definition.
pub(super) fn circuit_breaker(svc: &mut Service) {
    let Some(cb) = svc
        .deployment_configuration
        .as_ref()
        .and_then(|d| d.deployment_circuit_breaker)
        .filter(|c| c.enable)
    else {
        return;
    };
    let threshold = breaker_threshold(svc);
    let name = svc.service_name.clone();
    let p = &mut svc.deployments[0];
    if p.rollout_state != "IN_PROGRESS" || p.failed_tasks < threshold {
        return;
    }
    p.rollout_state = "FAILED".into();
    p.rollout_state_reason = format!(
        "ECS deployment circuit breaker: {} tasks failed to start.",
        p.failed_tasks
    );
    p.updated_at = time::now();
    let failed_id = p.id.clone();
    push_event(
        svc,
        format!(
            "(service {name}) (deployment {failed_id}) deployment failed: tasks failed to start."
        ),
    );
    if !cb.rollback {
        return;
    }
    let Some(target) = svc
        .deployments
        .iter()
        .skip(1)
        .find(|d| d.rollout_state == "COMPLETED")
        .cloned()
    else {
        return;
    };
    svc.deployments[0].status = "ACTIVE".into();
    let mut back = new_deployment(
        &TaskDefinition {
            task_definition_arn: target.task_definition.clone(),
            ..Default::default()
        },
        svc.desired_count,
    );
    back.rollout_state_reason = format!(
        "Rolling back to deployment {} after deployment {failed_id} failed.",
        target.id
    );
    svc.task_definition = target.task_definition.clone();
    let back_id = back.id.clone();
    svc.deployments.insert(0, back);
    push_event(svc, format!("(service {name}) rolling back to deployment {} as deployment {back_id} (task definition {}).", target.id, short(&target.task_definition)));
}

/// Tasks that keep failing to start are retried with a growing delay; a new deployment resets it.
pub(super) fn backoff(
    svc: &mut Service,
    all: &[Task],
    now: i64,
    stable_cutoff: &str,
    mem: &mut ServiceMemory,
) {
    let p = &svc.deployments[0];
    if mem.failures_seen.0 != p.id {
        *mem = ServiceMemory {
            steady: mem.steady,
            last_placement_event_ms: mem.last_placement_event_ms,
            scaling_evaluated_ms: mem.scaling_evaluated_ms,
            ..Default::default()
        };
        mem.failures_seen = (p.id.clone(), p.failed_tasks);
        return;
    }
    if all.iter().any(|t| {
        t.started_by == p.id
            && t.last_status == "RUNNING"
            && !t.started_at.is_empty()
            && t.started_at.as_str() <= stable_cutoff
    }) {
        mem.consecutive_failures = 0;
    }
    if p.failed_tasks > mem.failures_seen.1 {
        mem.consecutive_failures += (p.failed_tasks - mem.failures_seen.1) as u32;
        mem.failures_seen.1 = p.failed_tasks;
        if mem.consecutive_failures >= 3 {
            let delay = (1000i64 << (mem.consecutive_failures - 3).min(5)).min(30_000);
            mem.next_launch_ms = now + delay;
            if mem.consecutive_failures == 3 {
                let name = svc.service_name.clone();
                push_event(
                    svc,
                    format!("(service {name}) is unable to consistently start tasks successfully."),
                );
            }
        }
    }
}

pub(super) fn placement_message(name: &str, r: &scheduler::Rejection) -> String {
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
