//! How services are shown: the describe view, a deployment followed to its end, and events.

use super::service_args::EventsArgs;
use crate::client::connect;
use crate::output::{or_dash, Format, Table};
use berth_core::plan::shift::percent;
use berth_proto::v1::services_client::ServicesClient;
use berth_proto::v1::*;
use std::collections::HashSet;
use std::time::{Duration, Instant};

fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// Prints the primary deployment converging and new events, until it completes (Ok) or fails.
pub async fn follow_deployment(
    channel: crate::client::Conn,
    start: &Service,
    cluster: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let mut client = ServicesClient::new(channel);
    let Some(dep) = start.deployments.first().cloned() else {
        anyhow::bail!("service {} has no deployment", start.service_name);
    };
    let seen_at_start: HashSet<String> = start.events.iter().map(|e| e.id.clone()).collect();
    let mut seen = seen_at_start;
    let mut last_line = String::new();
    let deadline = Instant::now() + timeout;
    eprintln!(
        "waiting for deployment {} ({}) of service {}",
        dep.id,
        short(&dep.task_definition),
        start.service_name
    );
    loop {
        let svc = client
            .describe_service(DescribeServiceRequest {
                cluster: cluster.into(),
                service: start.service_name.clone(),
            })
            .await?
            .into_inner()
            .service
            .unwrap_or_default();
        for e in svc.events.iter().rev() {
            if seen.insert(e.id.clone()) {
                eprintln!("  {}  {}", e.created_at, e.message);
            }
        }
        let Some(d) = svc.deployments.iter().find(|d| d.id == dep.id) else {
            // Drained away: a later deployment replaced it.
            anyhow::bail!("deployment {} was replaced before it completed", dep.id);
        };
        let line = format!(
            "deployment {}: {} pending, {} running, {} healthy of {} desired, {} failed — {}",
            short(&d.id),
            d.pending_count,
            d.running_count,
            d.healthy_count,
            d.desired_count,
            d.failed_tasks,
            d.rollout_state
        );
        if line != last_line {
            eprintln!("{line}");
            last_line = line;
        }
        match d.rollout_state.as_str() {
            "COMPLETED" => {
                crate::outln!(
                    "service {}: deployment {} completed: {} running",
                    svc.service_name,
                    d.id,
                    d.running_count
                );
                return Ok(());
            }
            "FAILED" => anyhow::bail!("deployment {} failed: {}", d.id, d.rollout_state_reason),
            _ => {}
        }
        if Instant::now() > deadline {
            anyhow::bail!("deployment {} did not finish within {:?}", d.id, timeout);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// "spread(instanceId), binpack(memory); distinctInstance": strategies, then constraints.
fn placement(s: &Service) -> String {
    let strategies: Vec<String> = s
        .placement_strategy
        .iter()
        .map(|p| match p.field.as_str() {
            "" => p.r#type.clone(),
            f => format!("{}({f})", p.r#type),
        })
        .collect();
    let constraints: Vec<String> = s
        .placement_constraints
        .iter()
        .map(|c| match c.expression.as_str() {
            "" => c.r#type.clone(),
            e => format!("{}({e})", c.r#type),
        })
        .collect();
    [strategies.join(", "), constraints.join(", ")]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn describe(s: &Service) {
    crate::outln!("Service          {}", s.service_name);
    crate::outln!("ARN              {}", s.service_arn);
    crate::outln!("Status           {}", s.status);
    crate::outln!("Task definition  {}", short(&s.task_definition));
    crate::outln!("Scheduling       {}", s.scheduling_strategy);
    if !s.stack.is_empty() {
        crate::outln!("Stack            {}", s.stack);
    }
    crate::outln!(
        "Tasks            {} desired, {} running, {} pending",
        s.desired_count,
        s.running_count,
        s.pending_count
    );
    if let Some(dc) = &s.deployment_configuration {
        crate::outln!(
            "Deployment       min {}% / max {}%{}",
            dc.minimum_healthy_percent.unwrap_or(0),
            dc.maximum_percent.unwrap_or(0),
            dc.deployment_circuit_breaker
                .as_ref()
                .filter(|c| c.enable)
                .map_or(String::new(), |c| format!(
                    ", circuit breaker{}",
                    if c.rollback { " with rollback" } else { "" }
                ))
        );
        if let Some(line) = strategy_line(dc) {
            crate::outln!("Strategy         {line}");
        }
    }
    for lb in s
        .load_balancers
        .iter()
        .filter(|l| !l.target_group_arn.is_empty())
    {
        crate::outln!(
            "Target group     {} -> {}:{}",
            lb.target_group_arn
                .rsplit('/')
                .nth(1)
                .unwrap_or(&lb.target_group_arn),
            lb.container_name,
            lb.container_port
        );
    }
    for lb in s
        .load_balancers
        .iter()
        .filter(|l| l.target_group_arn.is_empty())
    {
        crate::outln!(
            "Load balancer    :{} -> {}:{}",
            lb.listener_port,
            lb.container_name,
            lb.container_port
        );
    }
    if !s.placement_strategy.is_empty() || !s.placement_constraints.is_empty() {
        crate::outln!("Placement        {}", placement(s));
    }
    describe_scaling(s);
    describe_connect(s);
    for f in &s.placement_failures {
        crate::outln!("Cannot place     {} ({})", f.reason, f.detail);
    }
    crate::outln!();
    deployments_table(s).print();
    if !s.events.is_empty() {
        crate::outln!();
        let mut t = Table::new(&["TIME", "EVENT"]);
        for e in s.events.iter().take(10) {
            t.row(vec![e.created_at.clone(), e.message.clone()]);
        }
        t.print();
    }
}

/// Service Connect: the namespace and the aliases the service answers.
fn describe_connect(s: &Service) {
    let Some(sc) = s.service_connect.as_ref().filter(|c| c.enabled) else {
        return;
    };
    let aliases: Vec<String> = s
        .service_connect
        .iter()
        .flat_map(|c| &c.aliases)
        .map(|a| {
            let proto = if a.app_protocol.is_empty() {
                "tcp"
            } else {
                &a.app_protocol
            };
            format!(
                "{}:{} ({proto}) -> {}:{}",
                a.dns_name, a.port, a.container_name, a.container_port
            )
        })
        .collect();
    crate::outln!(
        "Service Connect  namespace {}; {}",
        sc.namespace,
        if aliases.is_empty() {
            "calls others (no alias of its own)".to_string()
        } else {
            format!("aliases {}", aliases.join(", "))
        }
    );
}

/// Who calls the service through its aliases, with rates over the last minute.
pub fn describe_callers(callers: &[berth_proto::v1::ConnectCallerRate]) {
    if callers.is_empty() {
        return;
    }
    crate::outln!();
    let mut t = Table::new(&["CALLER", "REQ/S", "ERR/S", "REQUESTS", "ERRORS"]);
    for c in callers {
        t.row(vec![
            c.caller.clone(),
            format!("{:.1}", c.requests_per_second),
            format!("{:.1}", c.errors_per_second),
            c.requests_total.to_string(),
            c.errors_total.to_string(),
        ]);
    }
    t.print();
}

/// The deployments, with each one's stage, traffic share and measured figures when the service
/// shifts traffic.
fn deployments_table(s: &Service) -> Table {
    let shifting = s
        .deployment_configuration
        .as_ref()
        .is_some_and(|d| !matches!(d.strategy.as_str(), "" | "ROLLING"));
    let mut headers = vec![
        "DEPLOYMENT",
        "STATUS",
        "TASK DEFINITION",
        "DESIRED",
        "RUNNING",
        "PENDING",
        "FAILED",
        "ROLLOUT",
    ];
    if shifting {
        headers.extend(["STAGE", "TRAFFIC", "REQUESTS", "5XX", "P99"]);
    }
    let mut t = Table::new(&headers);
    // The figures the primary deployment's shift is judged by: its own, and the previous one's.
    let figures: Vec<(String, RevisionFigures)> = s
        .deployments
        .first()
        .map(|d| {
            let mut v = Vec::new();
            if let Some(f) = d.figures {
                v.push((d.id.clone(), f));
            }
            if let (Some(f), Some(prev)) = (d.previous_figures, s.deployments.get(1)) {
                v.push((prev.id.clone(), f));
            }
            v
        })
        .unwrap_or_default();
    for d in &s.deployments {
        let mut row = vec![
            d.id.clone(),
            d.status.clone(),
            short(&d.task_definition).to_string(),
            d.desired_count.to_string(),
            d.running_count.to_string(),
            d.pending_count.to_string(),
            d.failed_tasks.to_string(),
            or_dash(&d.rollout_state),
        ];
        if shifting {
            let f = figures.iter().find(|(id, _)| *id == d.id).map(|(_, f)| f);
            row.extend([
                or_dash(&d.lifecycle_stage),
                percent(d.traffic_percent),
                f.map_or("-".into(), |f| f.requests.to_string()),
                f.map_or("-".into(), |f| {
                    percent(f.errors_5xx as f64 * 100.0 / f.requests.max(1) as f64)
                }),
                f.map_or("-".into(), |f| format!("{} ms", f.p99_ms)),
            ]);
        }
        t.row(row);
    }
    t
}

/// "CANARY 10% for 30s, then bake 1m; roll back on 5xx > 5%, p99 > 2x; test header x-canary".
fn strategy_line(dc: &DeploymentConfiguration) -> Option<String> {
    let secs = |s: Option<i32>, m: i32| {
        let d = std::time::Duration::from_secs(s.unwrap_or(m * 60).max(0) as u64);
        humantime::format_duration(d).to_string()
    };
    let mut line = match dc.strategy.as_str() {
        "" | "ROLLING" => return None,
        "CANARY" => {
            let c = dc.canary_configuration.unwrap_or_default();
            format!(
                "CANARY {} for {}",
                percent(c.canary_percent),
                secs(c.canary_bake_time_seconds, c.canary_bake_time_in_minutes)
            )
        }
        "LINEAR" => {
            let l = dc.linear_configuration.unwrap_or_default();
            format!(
                "LINEAR {} every {}",
                percent(l.step_percent),
                secs(l.step_bake_time_seconds, l.step_bake_time_in_minutes)
            )
        }
        other => other.to_string(),
    };
    line += &format!(
        ", then bake {}",
        secs(dc.bake_time_seconds, dc.bake_time_in_minutes)
    );
    if let Some(r) = dc.traffic_rollback {
        let mut on = Vec::new();
        if r.error_percent > 0.0 {
            on.push(format!("5xx > {}", percent(r.error_percent)));
        }
        if r.p99_ratio > 0.0 {
            on.push(format!("p99 > {}x", r.p99_ratio));
        }
        if !on.is_empty() {
            line += &format!("; roll back on {}", on.join(", "));
        }
    }
    if !dc.test_traffic_header.is_empty() {
        line += &format!("; test header {}", dc.test_traffic_header);
    }
    Some(line)
}

/// The auto scaling line(s) of `service describe`, when the service has a policy.
pub fn describe_scaling(s: &Service) {
    let Some(p) = &s.scaling_policy else {
        return;
    };
    let target = match (p.target_cpu_percent, p.target_requests_per_task) {
        (Some(c), _) => format!("CPU {c}%"),
        (_, Some(r)) => format!("{r} requests/s per task"),
        _ => "-".into(),
    };
    let cooldown = |v: i32, default: i32| if v > 0 { v } else { default };
    crate::outln!(
        "Auto scaling     {}-{} tasks, target {target}, cooldown out {}s / in {}s",
        p.min_capacity,
        p.max_capacity,
        cooldown(p.scale_out_cooldown_seconds, 30),
        cooldown(p.scale_in_cooldown_seconds, 120),
    );
    if let Some(v) = p.last_metric_value {
        let unit = if p.target_cpu_percent.is_some() {
            "CPU percent points"
        } else {
            "requests/s"
        };
        crate::outln!(
            "Scaling metric   {v} {unit} in total at {}",
            p.last_evaluated_at
        );
    }
}

pub async fn events(args: EventsArgs, server: &str, fmt: Format) -> anyhow::Result<()> {
    let mut client = ServicesClient::new(connect(server).await?);
    let mut seen = HashSet::new();
    loop {
        let services = match &args.service {
            Some(s) => vec![client
                .describe_service(DescribeServiceRequest {
                    cluster: args.cluster.clone(),
                    service: s.clone(),
                })
                .await?
                .into_inner()
                .service
                .unwrap_or_default()],
            None => {
                client
                    .list_services(ListServicesRequest {
                        cluster: args.cluster.clone(),
                    })
                    .await?
                    .into_inner()
                    .services
            }
        };
        let mut events: Vec<ServiceEvent> = services
            .into_iter()
            .flat_map(|s| s.events)
            .filter(|e| seen.insert(e.id.clone()))
            .collect();
        events.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        for e in &events {
            match fmt {
                Format::Json => crate::outln!("{}", serde_json::to_string(e)?),
                Format::Table => crate::outln!("{}  {}", e.created_at, e.message),
            }
        }
        if !args.follow {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
