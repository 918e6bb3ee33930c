//! The counts a service and each of its deployments show after the pass: running, pending
//! (launches included), healthy, desired.

use super::bounds::Bounds;
use super::judge::Judgement;
use super::ServicePlan;
use berth_proto::v1::Task;
use std::collections::HashSet;

/// Live tasks that this pass does not stop.
pub(super) fn remaining<'a>(p: &ServicePlan, j: &Judgement<'a>) -> Vec<&'a Task> {
    let stopped: HashSet<&str> = p.stops.iter().map(|s| s.task_arn.as_str()).collect();
    j.live
        .iter()
        .copied()
        .filter(|t| !stopped.contains(t.task_arn.as_str()))
        .collect()
}

pub(super) fn count(p: &mut ServicePlan, j: &Judgement, b: &Bounds, remaining: &[&Task]) {
    let launched = p.launches.len() as i32;
    for dep in p.service.deployments.iter_mut() {
        let is_primary = dep.id == j.primary_id;
        let mine: Vec<&&Task> = remaining
            .iter()
            .filter(|t| t.started_by == dep.id)
            .collect();
        let running = mine.iter().filter(|t| t.last_status == "RUNNING").count() as i32;
        dep.running_count = running;
        dep.healthy_count = mine.iter().filter(|t| j.is_healthy(t)).count() as i32;
        dep.pending_count = mine.len() as i32 - running + if is_primary { launched } else { 0 };
        dep.desired_count = if is_primary { b.desired as i32 } else { 0 };
    }
    let svc = &mut p.service;
    svc.running_count = remaining
        .iter()
        .filter(|t| t.last_status == "RUNNING")
        .count() as i32;
    svc.pending_count = (remaining.len() as i32 - svc.running_count) + launched;
    if b.daemon {
        svc.desired_count = b.desired as i32;
    }
}
