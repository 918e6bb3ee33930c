//! Which tasks to stop, and why: tasks an older deployment left that are not healthy, unhealthy
//! tasks once their replacements are in (or no room is left), DAEMON tasks on draining nodes,
//! the surplus over desired, and healthy old tasks one by one as long as minimumHealthyPercent
//! still holds. A task under scale-in protection (`protected_until_ms` after `now`) is stopped
//! neither by scale-in nor by a deployment until its protection ends; health still replaces it.

use super::bounds::Bounds;
use super::judge::Judgement;
use super::{ServicePlan, Stop};
use crate::status::{service_status, ServiceStatus};
use berth_proto::v1::Task;

pub(super) fn stops(
    p: &mut ServicePlan,
    j: &Judgement,
    b: &Bounds,
    launched: i64,
    cap: usize,
    now: i64,
) {
    let free = |t: &&Task| !is_protected(t, now);
    let primary = j.primary_id.clone();
    let name = p.service.service_name.clone();
    let replaced = || format!("Deployment {primary} replaced this task");
    // Deregistrations share the pass's budget; what does not fit waits for the next pass.
    let mut out = Stops {
        limit: cap.saturating_sub(p.deregister.len()),
        ..Default::default()
    };

    for t in j.old().filter(|t| !j.is_healthy(t)).filter(free) {
        out.add(t, replaced());
    }
    unhealthy(&mut out, j, b, launched, &name);
    if b.daemon {
        for t in j
            .live
            .iter()
            .filter(|t| j.draining.contains(t.task_arn.as_str()))
        {
            out.add(t, "Node is draining".into());
        }
    }
    let mut healthy_now = j.healthy.len() as i64;
    if !b.daemon {
        let reason = if service_status(&p.service) == ServiceStatus::Draining {
            "Service deleted"
        } else {
            "Scaling activity initiated by the service (desired count lowered)"
        };
        for t in surplus(j, b, launched, now) {
            if j.is_healthy(t) {
                healthy_now -= 1;
            }
            out.add(t, reason.to_string());
        }
    }
    // Healthy tasks that must go (older deployment, draining node), never below min healthy.
    let mut replaceable: Vec<&Task> = j
        .old()
        .filter(|t| j.is_healthy(t) && !b.hold_old)
        .filter(free)
        .collect();
    if !b.daemon {
        replaceable.extend(
            j.primary()
                .filter(|t| j.draining.contains(t.task_arn.as_str()) && j.is_healthy(t))
                .filter(free),
        );
    }
    for t in replaceable {
        if out.has(t) {
            continue;
        }
        if healthy_now - 1 < b.min_healthy {
            break;
        }
        healthy_now -= 1;
        let reason = if j.draining.contains(t.task_arn.as_str()) {
            "Node is draining".to_string()
        } else {
            replaced()
        };
        out.add(t, reason);
    }
    p.stops = out.list;
}

/// Unhealthy tasks go once enough healthy primary tasks replace them, or once there is no room
/// to start a replacement beside them.
fn unhealthy(out: &mut Stops, j: &Judgement, b: &Bounds, launched: i64, name: &str) {
    let healthy_good_new = j.good_new().iter().filter(|t| j.is_healthy(t)).count() as i64;
    if !(healthy_good_new >= b.desired || b.total + launched >= b.max_total) {
        return;
    }
    for t in j
        .live
        .iter()
        .filter(|t| j.unhealthy.contains(t.task_arn.as_str()))
    {
        let reason = match j.lb_unhealthy.get(t.task_arn.as_str()) {
            Some(why) => {
                format!("Task failed ELB health checks in (target-group {name}) due to ({why})")
            }
            None => "Task failed container health checks".to_string(),
        };
        out.add(t, reason);
    }
}

/// Under scale-in protection at `now` (UpdateTaskProtection, or the task's own call to the
/// agent's endpoint).
pub fn is_protected(t: &Task, now: i64) -> bool {
    t.protected_until_ms > now
}

/// Primary tasks over desired: pending before running, newest first; protected ones stay (the
/// service runs over desired until their protection ends).
fn surplus<'a>(j: &Judgement<'a>, b: &Bounds, launched: i64, now: i64) -> Vec<&'a Task> {
    let mut extra = j.good_new();
    let n = extra.len() as i64 + launched - b.desired;
    if n <= 0 {
        return Vec::new();
    }
    extra.retain(|t| !is_protected(t, now));
    extra.sort_by(|a, c| {
        (j.is_healthy(a), std::cmp::Reverse(&a.created_at))
            .cmp(&(j.is_healthy(c), std::cmp::Reverse(&c.created_at)))
    });
    extra.truncate(n as usize);
    extra
}

/// The stops of a pass, each task once, in the order decided.
#[derive(Default)]
struct Stops {
    list: Vec<Stop>,
    seen: std::collections::HashSet<String>,
    limit: usize,
}

impl Stops {
    fn has(&self, t: &Task) -> bool {
        self.seen.contains(&t.task_arn)
    }

    fn add(&mut self, t: &Task, reason: String) {
        if self.list.len() < self.limit && self.seen.insert(t.task_arn.clone()) {
            self.list.push(Stop {
                task_arn: t.task_arn.clone(),
                reason,
            });
        }
    }
}
