//! What a reconcile pass tells the user: ECS's events for the tasks it started and stopped, and
//! a deployment's completion and the service's steady state.

use super::ServiceMemory;
use crate::services::push_event;
use crate::time;
use berth_proto::v1::{Service, Task};

/// A task's id, the last part of its ARN, as ECS's events name it.
pub(super) fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// "has started N tasks", "has stopped N running tasks", and why a task failed its checks.
pub(super) fn task_events(
    svc: &mut Service,
    name: &str,
    started: &[String],
    stopped: &[(Task, String)],
) {
    if !started.is_empty() {
        push_event(
            svc,
            format!(
                "(service {name}) has started {} tasks: {}.",
                started.len(),
                started
                    .iter()
                    .map(|t| format!("(task {t})"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        );
    }
    if !stopped.is_empty() {
        push_event(
            svc,
            format!(
                "(service {name}) has stopped {} running tasks: {}.",
                stopped.len(),
                stopped
                    .iter()
                    .map(|(t, _)| format!("(task {})", short(&t.task_arn)))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        );
        for (t, reason) in stopped {
            if reason.starts_with("Task failed container health checks") {
                push_event(
                    svc,
                    format!(
                        "(service {name}) (task {}) failed container health checks.",
                        short(&t.task_arn)
                    ),
                );
            } else if let Some(why) = reason.strip_prefix(&format!(
                "Task failed ELB health checks in (target-group {name}) due to ("
            )) {
                let port = svc.load_balancers.first().map_or(0, |l| l.listener_port);
                let task = short(&t.task_arn);
                push_event(
                    svc,
                    format!(
                        "(service {name}) (task {task}) (port {port}) is unhealthy in \
                         (target-group {name}) due to ({why}."
                    ),
                );
            }
        }
    }
}

/// With nothing left to do and every new task healthy, the primary deployment is COMPLETED,
/// drained deployments go, and the service reaches a steady state (said once); acting again
/// leaves it.
pub(super) fn settle(
    svc: &mut Service,
    mem: &mut ServiceMemory,
    name: &str,
    acted: bool,
    settled: bool,
) {
    if settled {
        let p = &mut svc.deployments[0];
        if p.rollout_state == "IN_PROGRESS" {
            p.rollout_state = "COMPLETED".into();
            p.rollout_state_reason = "ECS deployment completed.".into();
            p.updated_at = time::now();
            let id = p.id.clone();
            push_event(
                svc,
                format!("(service {name}) (deployment {id}) deployment completed."),
            );
        }
        if svc.deployments[0].rollout_state == "COMPLETED" {
            // Drained deployments go once the primary is done with them.
            svc.deployments.truncate(1);
        }
        if !mem.steady {
            mem.steady = true;
            push_event(svc, format!("(service {name}) has reached a steady state."));
        }
    } else if acted {
        mem.steady = false;
    }
}
