//! How many tasks the service wants, and the band a deployment moves within: never more than
//! maximumPercent of desired in total, never fewer healthy than minimumHealthyPercent.

use super::judge::Judgement;
use super::ServicePlan;
use super::ServiceView;
use crate::scheduler::{self, NodeSnapshot, PlacementRequest};
use crate::status::{rollout, service_status, RolloutState, ServiceStatus};
use berth_proto::v1::Service;

pub(super) struct Bounds {
    pub daemon: bool,
    pub desired: i64,
    /// Tasks (live and stopping) the service may hold at once.
    pub max_total: i64,
    /// Healthy tasks it must keep while replacing.
    pub min_healthy: i64,
    /// Live and stopping tasks now.
    pub total: i64,
    /// Launching is allowed: the rollout has not failed and no backoff is pending.
    pub may_launch: bool,
    /// A traffic shift is under way: the old revision's tasks stay (beside a full new set) until
    /// its bake is over.
    pub hold_old: bool,
}

impl Bounds {
    pub fn of(view: &ServiceView, p: &ServicePlan, j: &Judgement, now: i64) -> Self {
        let svc = &p.service;
        let daemon = svc.scheduling_strategy == "DAEMON";
        let dc = svc.deployment_configuration.clone().unwrap_or_default();
        let min_pct = i64::from(
            dc.minimum_healthy_percent
                .unwrap_or(if daemon { 0 } else { 100 }),
        );
        let max_pct = i64::from(dc.maximum_percent.unwrap_or(if daemon { 100 } else { 200 }));
        let desired = if service_status(svc) == ServiceStatus::Draining {
            0
        } else if daemon {
            daemon_nodes(view, svc).count() as i64
        } else {
            i64::from(svc.desired_count.max(0))
        };
        let hold_old = !daemon && super::shift::holds_old(svc);
        let max_total = if hold_old {
            desired + j.old().count() as i64 + j.stopping as i64
        } else {
            desired * max_pct / 100
        };
        Self {
            daemon,
            desired,
            hold_old,
            max_total,
            min_healthy: (desired * min_pct + 99) / 100,
            total: (j.live.len() + j.stopping) as i64,
            may_launch: rollout(&svc.deployments[0]) != RolloutState::Failed
                && now >= p.memory.next_launch_ms
                && super::shift::scale_up_allowed(svc),
        }
    }
}

/// The nodes a DAEMON service covers: ACTIVE, connected, and meeting its constraints.
pub(super) fn daemon_nodes<'a>(
    view: &'a ServiceView,
    svc: &Service,
) -> impl Iterator<Item = &'a NodeSnapshot> + 'a {
    let constraints: Vec<_> = svc
        .placement_constraints
        .iter()
        .filter_map(|c| scheduler::parse_constraint(&c.r#type, &c.expression).ok())
        .collect();
    view.nodes
        .iter()
        .filter(|n| n.active && n.connected)
        .filter(move |n| {
            // Resources aside (a daemon waits for room), does the node qualify?
            let mut probe = NodeSnapshot {
                service_tasks: 0,
                ..(*n).clone()
            };
            let req = PlacementRequest {
                demand: &scheduler::Demand::default(),
                strategies: &[],
                constraints: &constraints,
                seed: 0,
            };
            scheduler::place(std::slice::from_mut(&mut probe), &req).is_ok()
        })
}
