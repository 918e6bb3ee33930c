//! Service Connect as the node proxies route it, decided purely: a checked configuration resolved
//! against the task definition (`resolve`), each alias as the load balancer the route machinery
//! already knows (`alias_lb`: the alias port is the listener port, its name the host), which of a
//! service's tasks may take calls (`serving`), and the alias names a task of a namespace sees.
//!
//! Going through `LoadBalancer` means Service Connect routes get everything load balancer routes
//! have: targets from the tasks' bindings, draining, and a deployment's weights during a shift.

use super::connect::{named_ports, Checked};
use crate::plan::drain::DEFAULT_DRAIN_TIMEOUT_S;
use berth_proto::v1::{
    LoadBalancer, Service, ServiceConnect, ServiceConnectAlias, TargetHealthCheck, Task,
    TaskDefinition,
};

/// How long a stopping task of a Service Connect service drains at most (ECS's Envoy drains for
/// about as long); its callers' proxies usually finish with it well before.
pub const DRAIN_TIMEOUT_S: i32 = DEFAULT_DRAIN_TIMEOUT_S;

/// A checked configuration with each alias's container and port from `td`; `namespace` is the
/// namespace's name (the caller resolves an ARN).
pub fn resolve(checked: &Checked, td: &TaskDefinition, namespace: &str) -> ServiceConnect {
    let ports = named_ports(td);
    let aliases = checked
        .aliases
        .iter()
        .filter_map(|a| {
            let p = ports.iter().find(|p| p.name == a.port_name)?;
            Some(ServiceConnectAlias {
                dns_name: a.dns_name.clone(),
                port: a.port,
                port_name: a.port_name.clone(),
                discovery_name: a.discovery_name.clone(),
                app_protocol: a.app_protocol.clone(),
                container_name: p.container.clone(),
                container_port: p.container_port,
            })
        })
        .collect();
    ServiceConnect {
        enabled: checked.enabled,
        namespace: namespace.to_string(),
        aliases,
    }
}

/// http, http2 and grpc are routed by Host; anything else is TCP.
pub fn is_http(alias: &ServiceConnectAlias) -> bool {
    matches!(alias.app_protocol.as_str(), "http" | "http2" | "grpc")
}

/// The health check a node proxy runs on a Service Connect target: a TCP connect every 2 s,
/// healthy after one pass (the control plane sends only tasks that already pass their container
/// checks, so a new task takes calls at once), unhealthy after two failures.
pub fn health_check() -> TargetHealthCheck {
    TargetHealthCheck {
        path: "/".into(),
        interval_seconds: Some(2),
        timeout_seconds: Some(1),
        healthy_threshold: Some(1),
        unhealthy_threshold: Some(2),
        matcher: "200-499".into(),
        protocol: "TCP".into(),
    }
}

/// The alias as a load balancer: listener port = alias port; an HTTP alias matches its name as
/// the Host (with or without the port), a TCP alias owns the port.
pub fn alias_lb(alias: &ServiceConnectAlias) -> LoadBalancer {
    LoadBalancer {
        container_name: alias.container_name.clone(),
        container_port: alias.container_port,
        listener_port: alias.port,
        host_patterns: if is_http(alias) {
            vec![alias.dns_name.clone()]
        } else {
            Vec::new()
        },
        path_patterns: Vec::new(),
        priority: 0,
        health_check: Some(health_check()),
        drain_timeout_seconds: Some(DRAIN_TIMEOUT_S),
        algorithm: "round_robin".into(),
        target_group_arn: String::new(),
    }
}

/// The service's aliases, when Service Connect is on and it offers some.
pub fn aliases(svc: &Service) -> &[ServiceConnectAlias] {
    match &svc.service_connect {
        Some(sc) if sc.enabled && svc.status != "INACTIVE" => &sc.aliases,
        _ => &[],
    }
}

/// Whether the service's tasks drain out of Service Connect routes before they stop (they are
/// load-balanced, as far as stopping goes).
pub fn routed(svc: &Service) -> bool {
    !aliases(svc).is_empty()
}

/// Whether a task may take calls through an alias: a stopping one stays (as a draining target)
/// until it is deregistered; otherwise it must not be unhealthy, and when its definition has a
/// container health check (`checked`), it must be HEALTHY.
pub fn serving(t: &Task, checked: bool) -> bool {
    if t.desired_status == "STOPPED" {
        return true;
    }
    let health = t.health_status.as_str();
    health != "UNHEALTHY" && (!checked || health == "HEALTHY")
}

/// The alias names a task of a service in `namespace` gets in /etc/hosts: every alias of the
/// namespace's services (`services`), sorted, once each.
pub fn hosts_of(namespace: &str, services: &[Service]) -> Vec<String> {
    let mut names: Vec<String> = services
        .iter()
        .filter(|s| {
            s.service_connect
                .as_ref()
                .is_some_and(|sc| sc.namespace == namespace)
        })
        .flat_map(|s| aliases(s).iter().map(|a| a.dns_name.clone()))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
#[path = "connect_routes_tests.rs"]
mod tests;
