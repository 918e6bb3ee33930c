//! The routing table proxies serve: derived from services' load balancers and their tasks'
//! bindings, never stored. A target is a task's node address and bound host port; a task that
//! is stopping stays in the table as draining until the control plane deregisters it.

use crate::error::Result;
use crate::state::{keys, State};
use berth_proto::v1::*;
use std::collections::HashMap;

pub const DEFAULT_DRAIN_TIMEOUT_S: i32 = 30;

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
    }
}

pub fn drain_timeout_s(lb: &LoadBalancer) -> i32 {
    lb.drain_timeout_seconds.unwrap_or(DEFAULT_DRAIN_TIMEOUT_S)
}

fn cluster_of(arn: &str) -> &str {
    arn.rsplit_once(":cluster/").map_or("", |(_, c)| c)
}

/// The whole table, in a stable order so that an unchanged table encodes identically.
pub fn routing_table(state: &State) -> Result<RoutingTable> {
    let services: Vec<Service> = state
        .scan::<Service>("service/")?
        .into_iter()
        .filter(|s| s.status != "INACTIVE" && !s.load_balancers.is_empty())
        .collect();
    if services.is_empty() {
        return Ok(RoutingTable::default());
    }
    let nodes: HashMap<String, ContainerInstance> = state
        .scan::<ContainerInstance>(keys::NODES)?
        .into_iter()
        .map(|n| (n.container_instance_arn.clone(), n))
        .collect();
    let tasks = state.scan::<Task>(keys::TASKS)?;
    let mut routes = Vec::new();
    for svc in &services {
        let cluster = cluster_of(&svc.cluster_arn);
        let group = format!("service:{}", svc.service_name);
        let mine: Vec<&Task> = tasks
            .iter()
            .filter(|t| t.group == group && cluster_of(&t.cluster_arn) == cluster)
            .filter(|t| t.last_status != "STOPPED" && t.deregistered_at.is_empty())
            .collect();
        for lb in &svc.load_balancers {
            let mut targets: Vec<Target> = mine
                .iter()
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
            routes.push(Route {
                cluster: cluster.to_string(),
                service_name: svc.service_name.clone(),
                service_arn: svc.service_arn.clone(),
                listener_port: lb.listener_port,
                host_patterns: lb.host_patterns.clone(),
                path_patterns: lb.path_patterns.clone(),
                priority: lb.priority,
                health_check: Some(health_check_with_defaults(lb.health_check.as_ref())),
                drain_timeout_seconds: drain_timeout_s(lb),
                algorithm: if lb.algorithm.is_empty() {
                    "round_robin".into()
                } else {
                    lb.algorithm.clone()
                },
                targets,
            });
        }
    }
    routes.sort_by(|a, b| {
        (a.listener_port, a.priority, &a.service_arn).cmp(&(
            b.listener_port,
            b.priority,
            &b.service_arn,
        ))
    });
    Ok(RoutingTable { routes })
}
