//! Load balancers, decided purely: the health check defaults (ALB-like), the matcher's codes,
//! and the targets a service's tasks give a load balancer.

use berth_proto::v1::{ContainerInstance, LoadBalancer, Target, TargetHealthCheck, Task};
use std::collections::HashMap;

/// ALB-like defaults, tuned for fast feedback.
pub fn health_check_with_defaults(h: Option<&TargetHealthCheck>) -> TargetHealthCheck {
    let h = h.cloned().unwrap_or_default();
    let interval = h.interval_seconds.unwrap_or(5);
    TargetHealthCheck {
        path: if h.path.is_empty() {
            "/".into()
        } else {
            h.path
        },
        interval_seconds: Some(interval),
        // A check never outlives its interval.
        timeout_seconds: Some(h.timeout_seconds.unwrap_or(2.min(interval.max(1)))),
        healthy_threshold: Some(h.healthy_threshold.unwrap_or(2)),
        unhealthy_threshold: Some(h.unhealthy_threshold.unwrap_or(2)),
        matcher: if h.matcher.is_empty() {
            "200-399".into()
        } else {
            h.matcher
        },
        protocol: h.protocol,
    }
}

/// "200-399", "200", "200,204" → the ranges, or None when malformed.
pub fn parse_matcher(m: &str) -> Option<Vec<(u16, u16)>> {
    m.split(',')
        .map(|part| {
            let part = part.trim();
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
            (200..=599).contains(&a).then_some(())?;
            (a <= b && b <= 599).then_some((a, b))
        })
        .collect()
}

/// The targets a load balancer gets from these tasks: the running tasks' bindings of its
/// container port, at their node's address (or their own).
pub fn lb_targets(
    lb: &LoadBalancer,
    tasks: &[Task],
    nodes: &HashMap<String, ContainerInstance>,
) -> Vec<Target> {
    let mut targets: Vec<Target> = tasks
        .iter()
        .filter(|t| t.last_status != "STOPPED" && t.deregistered_at.is_empty())
        .filter_map(|t| {
            let c = t.containers.iter().find(|c| c.name == lb.container_name)?;
            let b = c
                .network_bindings
                .iter()
                .find(|b| b.container_port == lb.container_port)?;
            if c.last_status != "RUNNING" {
                return None;
            }
            let node = nodes.get(&t.container_instance_arn)?;
            // A task on its own address (a task network) is reached there; a published
            // port on the node's address.
            let address = match b.bind_ip.as_str() {
                "" | "0.0.0.0" | "::" => node.address.clone(),
                own => own.to_string(),
            };
            Some(Target {
                task_arn: t.task_arn.clone(),
                address,
                port: b.host_port,
                draining: t.desired_status == "STOPPED",
            })
        })
        .collect();
    targets.sort_by(|a, b| a.task_arn.cmp(&b.task_arn));
    targets
}
