//! `berth lb …`: application load balancers over the built-in proxy (the ELBv2 model): load
//! balancers, their listeners and rules, and target groups that services join with
//! `berth service create --target-group NAME`.

use crate::client::connect;
use crate::output::{self, Format, Table};
use berth_proto::v1::load_balancers_client::LoadBalancersClient;
use berth_proto::v1::*;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum LbCommand {
    /// Create a load balancer; `berth lb listener create` gives it a port people open.
    Create {
        name: String,
        /// internet-facing (default) or internal.
        #[arg(long, default_value = "")]
        scheme: String,
    },
    /// List load balancers with their addresses.
    List,
    /// Show a load balancer (name or ARN): its address, listeners and rules.
    Describe { name: String },
    /// Delete a load balancer with its listeners and rules.
    Delete { name: String },
    /// Listeners: a port on the proxies and where its requests go.
    #[command(subcommand)]
    Listener(ListenerCommand),
    /// Listener rules: host and path conditions forwarding to target groups by weight.
    #[command(subcommand)]
    Rule(RuleCommand),
    /// Target groups: health check settings; services' tasks join them.
    #[command(subcommand, name = "target-group")]
    TargetGroup(TargetGroupCommand),
}

#[derive(Debug, Subcommand)]
pub enum ListenerCommand {
    /// Listen on PORT and forward to target groups (NAME or NAME=WEIGHT, repeatable).
    Create {
        #[arg(long)]
        lb: String,
        #[arg(long)]
        port: i32,
        #[arg(long = "forward", required = true)]
        forward: Vec<String>,
    },
    /// Delete a listener (by ARN) and its rules.
    Delete { arn: String },
}

#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    /// A rule on a listener: requests matching its hosts and paths go to its target groups.
    Create {
        #[arg(long)]
        listener: String,
        #[arg(long)]
        priority: i32,
        /// Host-header pattern (wildcards * and ?; repeatable).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Path pattern (wildcards * and ?; repeatable).
        #[arg(long = "path")]
        paths: Vec<String>,
        /// Target group NAME or NAME=WEIGHT (repeatable).
        #[arg(long = "forward", required = true)]
        forward: Vec<String>,
    },
    /// Delete a rule by ARN.
    Delete { arn: String },
}

#[derive(Debug, Subcommand)]
pub enum TargetGroupCommand {
    /// Create a target group.
    Create {
        name: String,
        /// The port its targets serve (informational: each task registers its bound port).
        #[arg(long, default_value_t = 80)]
        port: i32,
        #[arg(long, default_value = "")]
        health_path: String,
        #[arg(long)]
        health_interval: Option<i32>,
        #[arg(long)]
        health_timeout: Option<i32>,
        #[arg(long)]
        healthy_threshold: Option<i32>,
        #[arg(long)]
        unhealthy_threshold: Option<i32>,
        #[arg(long, default_value = "")]
        health_codes: String,
        /// Seconds a stopping task may finish in-flight requests (default 30).
        #[arg(long)]
        deregistration_delay: Option<i32>,
    },
    /// List target groups.
    List,
    /// Show a target group with its targets' health.
    Describe { name: String },
    /// Delete a target group no listener, rule or service uses.
    Delete { name: String },
}

/// `NAME` or `NAME=WEIGHT`.
fn weights(list: &[String]) -> anyhow::Result<Vec<ElbTargetWeight>> {
    list.iter()
        .map(|f| {
            let (name, weight) = match f.rsplit_once('=') {
                Some((n, w)) => (
                    n,
                    w.parse().map_err(|_| {
                        anyhow::anyhow!("--forward {f:?}: {w:?} is not a weight (0-999)")
                    })?,
                ),
                None => (f.as_str(), 1),
            };
            Ok(ElbTargetWeight {
                target_group_arn: name.to_string(),
                weight,
            })
        })
        .collect()
}

pub async fn run(cmd: LbCommand, server: &str, fmt: Format) -> anyhow::Result<()> {
    let mut c = LoadBalancersClient::new(connect(server).await?);
    match cmd {
        LbCommand::Create { name, scheme } => {
            let v = c
                .create_load_balancer(CreateLoadBalancerRequest { name, scheme })
                .await?
                .into_inner();
            show_lbs(&[v], fmt)
        }
        LbCommand::List => {
            let r = c
                .list_load_balancers(ListLoadBalancersRequest {})
                .await?
                .into_inner();
            show_lbs(&r.load_balancers, fmt)
        }
        LbCommand::Describe { name } => {
            let v = c
                .describe_load_balancer(LoadBalancerRef {
                    load_balancer: name,
                })
                .await?
                .into_inner();
            describe_lb(&v, fmt)
        }
        LbCommand::Delete { name } => {
            c.delete_load_balancer(LoadBalancerRef {
                load_balancer: name.clone(),
            })
            .await?;
            deleted(&format!("load balancer {name}"), fmt)
        }
        LbCommand::Listener(l) => listener(&mut c, l, fmt).await,
        LbCommand::Rule(r) => rule(&mut c, r, fmt).await,
        LbCommand::TargetGroup(t) => target_group(&mut c, t, fmt).await,
    }
}

type Client = LoadBalancersClient<crate::client::Conn>;

async fn listener(c: &mut Client, cmd: ListenerCommand, fmt: Format) -> anyhow::Result<()> {
    match cmd {
        ListenerCommand::Create { lb, port, forward } => {
            let v = c
                .create_listener(CreateListenerRequest {
                    load_balancer: lb,
                    port,
                    forward: weights(&forward)?,
                })
                .await?
                .into_inner();
            match fmt {
                Format::Json => output::json(&v),
                Format::Table => {
                    listeners_table(std::slice::from_ref(&v)).print();
                    Ok(())
                }
            }
        }
        ListenerCommand::Delete { arn } => {
            c.delete_listener(ListenerRef {
                listener_arn: arn.clone(),
            })
            .await?;
            deleted(&format!("listener {arn}"), fmt)
        }
    }
}

async fn rule(c: &mut Client, cmd: RuleCommand, fmt: Format) -> anyhow::Result<()> {
    match cmd {
        RuleCommand::Create {
            listener,
            priority,
            hosts,
            paths,
            forward,
        } => {
            let r = c
                .create_rule(CreateRuleRequest {
                    listener_arn: listener,
                    priority,
                    host_patterns: hosts,
                    path_patterns: paths,
                    forward: weights(&forward)?,
                })
                .await?
                .into_inner();
            match fmt {
                Format::Json => output::json(&r),
                Format::Table => {
                    println!("{}", r.arn);
                    Ok(())
                }
            }
        }
        RuleCommand::Delete { arn } => {
            c.delete_rule(RuleRef {
                rule_arn: arn.clone(),
            })
            .await?;
            deleted(&format!("rule {arn}"), fmt)
        }
    }
}

async fn target_group(c: &mut Client, cmd: TargetGroupCommand, fmt: Format) -> anyhow::Result<()> {
    match cmd {
        TargetGroupCommand::Create {
            name,
            port,
            health_path,
            health_interval,
            health_timeout,
            healthy_threshold,
            unhealthy_threshold,
            health_codes,
            deregistration_delay,
        } => {
            let v = c
                .create_target_group(CreateTargetGroupRequest {
                    name,
                    port,
                    health_check: Some(TargetHealthCheck {
                        path: health_path,
                        interval_seconds: health_interval,
                        timeout_seconds: health_timeout,
                        healthy_threshold,
                        unhealthy_threshold,
                        matcher: health_codes,
                        ..Default::default()
                    }),
                    deregistration_delay_seconds: deregistration_delay,
                })
                .await?
                .into_inner();
            show_tgs(&[v], fmt)
        }
        TargetGroupCommand::List => {
            let r = c
                .list_target_groups(ListTargetGroupsRequest {})
                .await?
                .into_inner();
            show_tgs(&r.target_groups, fmt)
        }
        TargetGroupCommand::Describe { name } => {
            let v = c
                .describe_target_group(TargetGroupRef { target_group: name })
                .await?
                .into_inner();
            match fmt {
                Format::Json => output::json(&v),
                Format::Table => {
                    tgs_table(std::slice::from_ref(&v)).print();
                    println!();
                    targets_table(&v.targets).print();
                    Ok(())
                }
            }
        }
        TargetGroupCommand::Delete { name } => {
            c.delete_target_group(TargetGroupRef {
                target_group: name.clone(),
            })
            .await?;
            deleted(&format!("target group {name}"), fmt)
        }
    }
}

fn deleted(what: &str, fmt: Format) -> anyhow::Result<()> {
    match fmt {
        Format::Json => output::json(&serde_json::json!({ "deleted": what })),
        Format::Table => {
            println!("deleted {what}");
            Ok(())
        }
    }
}

fn show_lbs(lbs: &[LoadBalancerView], fmt: Format) -> anyhow::Result<()> {
    match fmt {
        Format::Json => output::json(&lbs),
        Format::Table => {
            let mut t = Table::new(&["NAME", "ADDRESS", "LISTENERS", "SCHEME", "ARN"]);
            for v in lbs {
                let lb = v.load_balancer.clone().unwrap_or_default();
                let ports: Vec<String> = v
                    .listeners
                    .iter()
                    .filter_map(|l| l.listener.as_ref().map(|l| l.port.to_string()))
                    .collect();
                t.row(vec![
                    lb.name,
                    v.dns_name.clone(),
                    ports.join(","),
                    lb.scheme,
                    lb.arn,
                ]);
            }
            t.print();
            Ok(())
        }
    }
}

fn describe_lb(v: &LoadBalancerView, fmt: Format) -> anyhow::Result<()> {
    if fmt == Format::Json {
        return output::json(v);
    }
    let lb = v.load_balancer.clone().unwrap_or_default();
    println!("Name:     {}", lb.name);
    println!("Address:  http://{}", v.dns_name);
    println!("ARN:      {}", lb.arn);
    println!("Scheme:   {}", lb.scheme);
    println!();
    listeners_table(&v.listeners).print();
    Ok(())
}

fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// The target groups of a rule's forward action, `name=weight`.
fn forwards(actions: &[ElbAction]) -> String {
    actions
        .iter()
        .flat_map(|a| &a.target_groups)
        .map(|t| {
            let name = t
                .target_group_arn
                .rsplit('/')
                .nth(1)
                .unwrap_or(&t.target_group_arn);
            format!("{name}={}", t.weight)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn listeners_table(listeners: &[ListenerView]) -> Table {
    let mut t = Table::new(&["PORT", "PRIORITY", "CONDITIONS", "FORWARD", "RULE"]);
    for v in listeners {
        let port = v.listener.as_ref().map_or(0, |l| l.port).to_string();
        for r in &v.rules {
            let default = r.conditions.is_empty();
            let conditions: Vec<String> = r
                .conditions
                .iter()
                .map(|c| format!("{}={}", c.field, c.values.join(",")))
                .collect();
            t.row(vec![
                port.clone(),
                if default {
                    "default".into()
                } else {
                    r.priority.to_string()
                },
                if default {
                    "*".into()
                } else {
                    conditions.join(" ")
                },
                forwards(&r.actions),
                short(&r.arn).to_string(),
            ]);
        }
    }
    t
}

fn show_tgs(tgs: &[TargetGroupView], fmt: Format) -> anyhow::Result<()> {
    match fmt {
        Format::Json => output::json(&tgs),
        Format::Table => {
            tgs_table(tgs).print();
            Ok(())
        }
    }
}

fn tgs_table(tgs: &[TargetGroupView]) -> Table {
    let mut t = Table::new(&["NAME", "HEALTH CHECK", "HEALTHY", "LOAD BALANCERS", "ARN"]);
    for v in tgs {
        let tg = v.target_group.clone().unwrap_or_default();
        let hc = tg.health_check.unwrap_or_default();
        let healthy = v.targets.iter().filter(|t| t.state == "healthy").count();
        let lbs: Vec<&str> = v
            .load_balancer_arns
            .iter()
            .map(|a| a.rsplit('/').nth(1).unwrap_or(a))
            .collect();
        t.row(vec![
            tg.name,
            format!(
                "{} every {}s",
                hc.path,
                hc.interval_seconds.unwrap_or_default()
            ),
            format!("{healthy}/{}", v.targets.len()),
            lbs.join(","),
            tg.arn,
        ]);
    }
    t
}

/// A target group's targets: which task, where, and how its health checks go.
pub fn targets_table(targets: &[TargetHealthView]) -> Table {
    let mut t = Table::new(&["SERVICE", "TASK", "TARGET", "STATE", "REASON"]);
    for x in targets {
        t.row(vec![
            x.service_name.clone(),
            short(&x.task_arn).to_string(),
            format!("{}:{}", x.address, x.port),
            x.state.clone(),
            if x.description.is_empty() {
                x.reason.clone()
            } else {
                format!("{}: {}", x.reason, x.description)
            },
        ]);
    }
    t
}
