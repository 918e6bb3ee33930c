//! Rollout policies: failed tasks per deployment, ECS's deployment circuit breaker (and the
//! rollback to the last completed deployment), and the retry backoff for tasks that keep
//! failing to start.

use super::judge::failed;
use super::progress::short;
use super::{Event, ServicePlan, ServiceView};
use crate::status::{end_rollout, rollout, DeploymentStatus, RolloutState, TaskState};
use crate::time;
use berth_proto::v1::*;

/// Failed tasks per deployment: counted from the tasks themselves, every pass.
pub(super) fn count_failures(svc: &mut Service, tasks: &[Task]) {
    for dep in svc.deployments.iter_mut() {
        dep.failed_tasks = tasks
            .iter()
            .filter(|t| t.started_by == dep.id && failed(t))
            .count() as i32;
    }
}

/// ECS's circuit breaker: enough failed tasks in the primary deployment fail it, and with
/// rollback the service returns to the last completed deployment's task definition, as a new
/// deployment with the id the view reserved.
pub(super) fn circuit_breaker(p: &mut ServicePlan, fresh_id: &str, now: i64) {
    let svc = &mut p.service;
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
    let first = &mut svc.deployments[0];
    if rollout(first) != RolloutState::InProgress || first.failed_tasks < threshold {
        return;
    }
    end_rollout(first, RolloutState::Failed);
    first.rollout_state_reason = format!(
        "ECS deployment circuit breaker: {} tasks failed to start.",
        first.failed_tasks
    );
    first.updated_at = time::rfc3339(now);
    let failed_id = first.id.clone();
    p.events.push(Event::Message(format!(
        "(service {name}) (deployment {failed_id}) deployment failed: tasks failed to start."
    )));
    if !cb.rollback {
        return;
    }
    let why = format!("deployment {failed_id} failed");
    if let Some(msg) = roll_back(svc, fresh_id, &why, now) {
        p.events.push(Event::Message(msg));
    }
}

/// Returns the service to its last completed deployment, after the primary one failed: with a
/// traffic shift under way, to the old tasks that still run (all traffic back on them); else as
/// a new deployment `fresh_id` of that deployment's task definition. Its event, or None when
/// there is nothing to go back to.
pub fn roll_back(svc: &mut Service, fresh_id: &str, why: &str, now: i64) -> Option<String> {
    if super::shift::mid_shift(svc) {
        return super::shift::roll_back(svc, why, now);
    }
    let failed_id = svc.deployments.first()?.id.clone();
    let target = svc
        .deployments
        .iter()
        .skip(1)
        .find(|d| rollout(d) == RolloutState::Completed)
        .cloned()?;
    let first = &mut svc.deployments[0];
    if rollout(first) == RolloutState::InProgress {
        end_rollout(first, RolloutState::Failed);
        first.rollout_state_reason = format!("Rolled back: {why}.");
        first.updated_at = time::rfc3339(now);
    }
    first.status = DeploymentStatus::Active.to_string();
    let at = time::rfc3339(now);
    let back = Deployment {
        id: fresh_id.to_string(),
        status: DeploymentStatus::Primary.to_string(),
        task_definition: target.task_definition.clone(),
        desired_count: svc.desired_count,
        created_at: at.clone(),
        updated_at: at,
        rollout_state: RolloutState::InProgress.to_string(),
        rollout_state_reason: format!(
            "Rolling back to deployment {} after deployment {failed_id} failed.",
            target.id
        ),
        ..Default::default()
    };
    svc.task_definition = target.task_definition.clone();
    svc.deployments.insert(0, back);
    Some(format!(
        "(service {}) rolling back to deployment {} as deployment {fresh_id} (task definition {}).",
        svc.service_name,
        target.id,
        short(&target.task_definition)
    ))
}

/// Tasks that keep failing to start are retried with a growing delay (1 s doubling to 30 s,
/// from the third failure in a row); a task that runs long enough, or a new deployment, resets it.
pub(super) fn backoff(p: &mut ServicePlan, view: &ServiceView, now: i64) {
    let dep = &p.service.deployments[0];
    let mem = &mut p.memory;
    if mem.failures_seen.0 != dep.id {
        *mem = super::ServiceMemory {
            steady: mem.steady,
            last_placement_event_ms: mem.last_placement_event_ms,
            scaling_evaluated_ms: mem.scaling_evaluated_ms,
            failures_seen: (dep.id.clone(), dep.failed_tasks),
            ..Default::default()
        };
        return;
    }
    let stable = time::rfc3339(now - view.config.min_healthy_time_ms);
    if view.tasks.iter().any(|t| {
        t.started_by == dep.id
            && t.is_running()
            && !t.started_at.is_empty()
            && t.started_at.as_str() <= stable.as_str()
    }) {
        mem.consecutive_failures = 0;
    }
    if dep.failed_tasks <= mem.failures_seen.1 {
        return;
    }
    mem.consecutive_failures += (dep.failed_tasks - mem.failures_seen.1) as u32;
    mem.failures_seen.1 = dep.failed_tasks;
    if mem.consecutive_failures >= 3 {
        let delay = (1000i64 << (mem.consecutive_failures - 3).min(5)).min(30_000);
        mem.next_launch_ms = now + delay;
        if mem.consecutive_failures == 3 {
            let name = &p.service.service_name;
            p.events.push(Event::Message(format!(
                "(service {name}) is unable to consistently start tasks successfully."
            )));
        }
    }
}

/// ECS's circuit breaker threshold: clamp(ceil(0.5 × desired), 10, 200), unless set.
pub fn breaker_threshold(svc: &Service) -> i32 {
    let set = svc
        .deployment_configuration
        .as_ref()
        .and_then(|d| d.deployment_circuit_breaker.as_ref())
        .map_or(0, |c| c.threshold);
    if set > 0 {
        set
    } else {
        // ceil(desired / 2) without overflowing at i32::MAX.
        (svc.desired_count / 2 + svc.desired_count % 2).clamp(10, 200)
    }
}
