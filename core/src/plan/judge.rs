//! Which of a service's tasks are live, stopping, healthy, unhealthy, or on a node that is
//! going away — judged once per pass, so every later piece asks the same question the same way.

use super::ServiceView;
use crate::arn;
use crate::status::{HealthStatus, TaskState, TaskStatus};
use crate::time;
use berth_proto::v1::{Service, Task};
use std::collections::{HashMap, HashSet};

/// A stopped task that counts against its deployment: it failed to start, its essential
/// container exited, or it failed its health checks.
pub fn failed(t: &Task) -> bool {
    t.is_stopped()
        && (matches!(
            t.stop_code.as_str(),
            "TaskFailedToStart" | "EssentialContainerExited"
        ) || t
            .stopped_reason
            .starts_with("Task failed container health checks")
            || t.stopped_reason
                .starts_with("Task failed ELB health checks"))
}

/// The pass's verdict on each task.
pub(super) struct Judgement<'a> {
    pub primary_id: String,
    /// Not stopped and meant to run.
    pub live: Vec<&'a Task>,
    /// Asked to stop, not stopped yet: they still take room under maximumPercent.
    pub stopping: usize,
    pub healthy: HashSet<&'a str>,
    pub unhealthy: HashSet<&'a str>,
    /// Why the load balancer finds a task unhealthy, when it does.
    pub lb_unhealthy: HashMap<&'a str, &'a str>,
    /// On a node that is draining or gone.
    pub draining: HashSet<&'a str>,
}

impl<'a> Judgement<'a> {
    pub fn of(view: &'a ServiceView, svc: &Service, now: i64) -> Self {
        let c = Cutoffs::new(view, svc, now);
        let lb_judged = !svc.load_balancers.is_empty() && view.lb_watched;
        let target = |t: &Task| lb_judged.then(|| view.targets.get(&t.task_arn)).flatten();
        // By node id: a pass that sees every node would otherwise format ten thousand ARNs.
        let active_nodes: HashSet<&str> = view
            .nodes
            .iter()
            .filter(|n| n.active)
            .map(|n| &*n.id)
            .collect();
        let mut j = Judgement {
            primary_id: svc.deployments[0].id.clone(),
            live: Vec::new(),
            stopping: 0,
            healthy: HashSet::new(),
            unhealthy: HashSet::new(),
            lb_unhealthy: HashMap::new(),
            draining: HashSet::new(),
        };
        for t in &view.tasks {
            if t.is_stopping() {
                j.stopping += 1;
            }
            if !t.is_live() {
                continue;
            }
            j.live.push(t);
            let arn = t.task_arn.as_str();
            if !active_nodes.contains(arn::last_segment(&t.container_instance_arn)) {
                j.draining.insert(arn);
            }
            let lb = target(t);
            let lb_bad = lb.filter(|h| h.state == "UNHEALTHY");
            // Past the grace period, a failing container check or a target the proxies find
            // unhealthy (once it has served, or its startup allowance is over) is unhealthy.
            let bad = t.is_running()
                && t.started_at.as_str() <= c.grace.as_str()
                && (t.health() == HealthStatus::Unhealthy
                    || lb_bad.is_some_and(|h| {
                        h.ever_healthy || t.started_at.as_str() <= c.startup.as_str()
                    }));
            if bad {
                j.unhealthy.insert(arn);
                if let Some(h) = lb_bad {
                    j.lb_unhealthy.insert(arn, h.reason.as_str());
                }
                continue;
            }
            let has_checks = view
                .definitions
                .get(&t.task_definition_arn)
                .is_some_and(|td| {
                    td.container_definitions
                        .iter()
                        .any(|c| c.essential.unwrap_or(true) && c.health_check.is_some())
                });
            let good = t.last() == TaskStatus::Running
                && !t.started_at.is_empty()
                && t.started_at.as_str() <= c.stable.as_str()
                && (!has_checks || t.health() == HealthStatus::Healthy)
                && (!lb_judged || lb.is_some_and(|h| h.state == "HEALTHY"));
            if good {
                j.healthy.insert(arn);
            }
        }
        j
    }

    pub fn is_primary(&self, t: &Task) -> bool {
        t.started_by == self.primary_id
    }

    /// Live tasks of the primary deployment.
    pub fn primary(&self) -> impl Iterator<Item = &'a Task> + '_ {
        self.live.iter().copied().filter(|t| self.is_primary(t))
    }

    /// Live tasks of older deployments.
    pub fn old(&self) -> impl Iterator<Item = &'a Task> + '_ {
        self.live.iter().copied().filter(|t| !self.is_primary(t))
    }

    /// Primary tasks that are neither unhealthy nor on a draining node: they count toward desired.
    pub fn good_new(&self) -> Vec<&'a Task> {
        self.primary()
            .filter(|t| {
                !self.unhealthy.contains(t.task_arn.as_str())
                    && !self.draining.contains(t.task_arn.as_str())
            })
            .collect()
    }

    pub fn is_healthy(&self, t: &Task) -> bool {
        self.healthy.contains(t.task_arn.as_str())
    }
}

/// The instants a task's start is compared with (RFC 3339 strings compare in time order).
struct Cutoffs {
    /// Started before this: running long enough to count as healthy.
    stable: String,
    /// Started before this: past the health check grace period.
    grace: String,
    /// Started before this: past the grace period and the load balancer's startup allowance.
    startup: String,
}

impl Cutoffs {
    fn new(view: &ServiceView, svc: &Service, now: i64) -> Self {
        let grace_ms = i64::from(svc.health_check_grace_period_seconds) * 1000;
        Self {
            stable: time::rfc3339(now - view.config.min_healthy_time_ms),
            grace: time::rfc3339(now - grace_ms),
            startup: time::rfc3339(now - grace_ms - view.config.lb_startup_ms),
        }
    }
}
