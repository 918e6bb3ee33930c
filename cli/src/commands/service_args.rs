//! The arguments of `berth service …` and `berth events`, and what they turn into: placement
//! strategies and constraints, and a service's load balancer.

use super::service_shift::ShiftArgs;
use berth_proto::v1::*;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Placement {
    /// Placement strategy TYPE[:FIELD], applied in order: spread:instanceId,
    /// spread:attribute:NAME, binpack:cpu, binpack:memory, random.
    #[arg(long = "strategy")]
    pub strategies: Vec<String>,
    /// Placement constraint: distinctInstance, or 'memberOf:EXPRESSION' in ECS's cluster query language.
    #[arg(long = "constraint")]
    pub constraints: Vec<String>,
}

/// `berth service create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    #[arg(long, default_value = "default")]
    pub cluster: String,
    #[arg(long)]
    pub name: String,
    /// FAMILY or FAMILY:REVISION.
    #[arg(long)]
    pub taskdef: String,
    #[arg(long, default_value_t = 1)]
    pub desired: i32,
    #[command(flatten)]
    pub placement: Placement,
    /// minimumHealthyPercent (default 100; DAEMON 0).
    #[arg(long)]
    pub min_healthy: Option<i32>,
    /// maximumPercent (default 200; DAEMON 100).
    #[arg(long)]
    pub max_percent: Option<i32>,
    /// Fail a deployment whose tasks keep failing (and roll back unless --no-rollback).
    #[arg(long)]
    pub circuit_breaker: bool,
    /// Failed tasks that trip the breaker (default: ECS's clamp(ceil(desired/2), 10, 200)).
    #[arg(long)]
    pub circuit_breaker_threshold: Option<i32>,
    #[arg(long)]
    pub no_rollback: bool,
    /// Seconds before new tasks' health checks count (healthCheckGracePeriodSeconds).
    #[arg(long, default_value_t = 0)]
    pub grace_period: i32,
    /// REPLICA or DAEMON.
    #[arg(long, default_value = "REPLICA")]
    pub scheduling: String,
    #[command(flatten)]
    pub lb: LbArgs,
    #[command(flatten)]
    pub shift: ShiftArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `berth service update`.
#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    pub service: String,
    #[arg(long, default_value = "default")]
    pub cluster: String,
    #[arg(long)]
    pub taskdef: Option<String>,
    #[arg(long)]
    pub desired: Option<i32>,
    #[arg(long)]
    pub force_new_deployment: bool,
    #[arg(long)]
    pub min_healthy: Option<i32>,
    #[arg(long)]
    pub max_percent: Option<i32>,
    #[arg(long)]
    pub grace_period: Option<i32>,
    #[command(flatten)]
    pub shift: ShiftArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// The service's load balancer: a listener on the proxy, its rule, and the target group.
#[derive(Debug, clap::Args)]
pub struct LbArgs {
    /// Join this ELBv2 target group (name or ARN; `berth lb target-group create`) with the
    /// container of --lb-container, instead of a listener port of the service's own.
    #[arg(long)]
    pub target_group: Option<String>,
    /// Listener port on the proxy.
    #[arg(long)]
    pub lb_port: Option<i32>,
    /// The container and port requests go to, NAME:PORT.
    #[arg(long)]
    pub lb_container: Option<String>,
    /// Host-header rule (wildcards * and ?, case-insensitive; repeatable).
    #[arg(long = "lb-host")]
    pub lb_hosts: Vec<String>,
    /// Path rule (wildcards * and ?, case-sensitive; repeatable).
    #[arg(long = "lb-path")]
    pub lb_paths: Vec<String>,
    /// Rule priority on a shared listener port (lower first).
    #[arg(long, default_value_t = 0)]
    pub lb_priority: i32,
    /// round_robin or least_outstanding.
    #[arg(long, default_value = "")]
    pub lb_algorithm: String,
    /// Health check path.
    #[arg(long, default_value = "")]
    pub health_path: String,
    /// Seconds between health checks (default 5).
    #[arg(long)]
    pub health_interval: Option<i32>,
    /// Seconds before a check times out (default 2).
    #[arg(long)]
    pub health_timeout: Option<i32>,
    /// Passes before a target is healthy (default 2).
    #[arg(long)]
    pub healthy_threshold: Option<i32>,
    /// Failures before a target is unhealthy (default 2).
    #[arg(long)]
    pub unhealthy_threshold: Option<i32>,
    /// Status codes that mean healthy (default 200-399).
    #[arg(long, default_value = "")]
    pub health_codes: String,
    /// Seconds a stopping task may finish in-flight requests (default 30).
    #[arg(long)]
    pub drain_timeout: Option<i32>,
}

#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    /// Show the deployment converging, and exit non-zero if it fails.
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this long.
    #[arg(long, default_value = "10m", value_parser = super::flags::parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    #[arg(long, default_value = "default")]
    pub cluster: String,
    #[arg(long)]
    pub service: Option<String>,
    #[arg(short, long)]
    pub follow: bool,
}

pub(super) fn strategies(list: &[String]) -> Vec<PlacementStrategy> {
    list.iter()
        .map(|s| match s.split_once(':') {
            Some((t, f)) => PlacementStrategy {
                r#type: t.into(),
                field: f.into(),
            },
            None => PlacementStrategy {
                r#type: s.clone(),
                field: String::new(),
            },
        })
        .collect()
}

pub(super) fn constraints(list: &[String]) -> Vec<PlacementConstraint> {
    list.iter()
        .map(|c| match c.split_once(':') {
            Some((t, e)) if t == "memberOf" => PlacementConstraint {
                r#type: t.into(),
                expression: e.into(),
            },
            _ => PlacementConstraint {
                r#type: c.clone(),
                expression: String::new(),
            },
        })
        .collect()
}

pub(super) fn load_balancer(lb: &LbArgs) -> anyhow::Result<Vec<LoadBalancer>> {
    if let Some(tg) = &lb.target_group {
        let Some(container) = &lb.lb_container else {
            anyhow::bail!(
                "--target-group needs --lb-container NAME:PORT (the container port that serves it)"
            );
        };
        if lb.lb_port.is_some() {
            anyhow::bail!("--target-group and --lb-port exclude each other: the target group's listeners route to the service");
        }
        let (container_name, container_port) = container_port(container)?;
        return Ok(vec![LoadBalancer {
            container_name,
            container_port,
            target_group_arn: tg.clone(),
            ..Default::default()
        }]);
    }
    let (listener_port, container) = match (lb.lb_port, &lb.lb_container) {
        (None, None) => return Ok(Vec::new()),
        (Some(p), Some(c)) => (p, c),
        _ => anyhow::bail!("--lb-port and --lb-container go together"),
    };
    let (name, container_port) = container_port(container)?;
    Ok(vec![LoadBalancer {
        container_name: name,
        container_port,
        listener_port,
        host_patterns: lb.lb_hosts.clone(),
        path_patterns: lb.lb_paths.clone(),
        priority: lb.lb_priority,
        health_check: Some(TargetHealthCheck {
            path: lb.health_path.clone(),
            interval_seconds: lb.health_interval,
            timeout_seconds: lb.health_timeout,
            healthy_threshold: lb.healthy_threshold,
            unhealthy_threshold: lb.unhealthy_threshold,
            matcher: lb.health_codes.clone(),
            ..Default::default()
        }),
        drain_timeout_seconds: lb.drain_timeout,
        algorithm: lb.lb_algorithm.clone(),
        target_group_arn: String::new(),
    }])
}

/// `--lb-container NAME:PORT`.
pub(super) fn container_port(container: &str) -> anyhow::Result<(String, i32)> {
    let (name, p) = container
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("--lb-container {container:?} must be NAME:PORT"))?;
    let port = p
        .parse()
        .map_err(|_| anyhow::anyhow!("--lb-container {container:?}: {p:?} is not a port"))?;
    Ok((name.to_string(), port))
}
