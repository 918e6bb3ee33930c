//! `berth service …` and `berth events`.

use super::service_args::*;
use super::service_view::{describe, follow_deployment};
use crate::client::connect;
use crate::output::{self, Format, Table};
use berth_proto::v1::services_client::ServicesClient;
use berth_proto::v1::*;
use clap::Subcommand;
use std::time::{Duration, Instant};

// Parsed once per process: the size of the Create variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Create a service that keeps --desired copies of a task definition running.
    Create(CreateArgs),
    /// Change the task definition (a new deployment, by the service's strategy), the desired
    /// count, or redeploy.
    Update(UpdateArgs),
    /// Stop the deployment in progress and go back to the last completed one (StopServiceDeployment);
    /// a traffic shift moves all traffic back to the old tasks at once.
    Rollback {
        service: String,
        #[arg(long, default_value = "default")]
        cluster: String,
        /// Stop the deployment where it is instead (ECS's ABORT).
        #[arg(long)]
        abort: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Show a service: counts, deployments, recent events.
    Describe {
        service: String,
        #[arg(long, default_value = "default")]
        cluster: String,
    },
    /// List the cluster's services.
    List {
        #[arg(long, default_value = "default")]
        cluster: String,
    },
    /// Delete a service: DRAINING, its tasks stopped, then INACTIVE.
    Delete {
        service: String,
        #[arg(long, default_value = "default")]
        cluster: String,
        /// Scale to zero and delete in one go.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Target-tracking auto scaling of the desired count (--off removes it).
    Scaling(super::scaling::ScalingArgs),
    /// Follow the deployment under way until it completes or fails.
    Wait {
        service: String,
        #[arg(long, default_value = "default")]
        cluster: String,
        #[arg(long, default_value = "10m", value_parser = super::flags::parse_duration)]
        timeout: Duration,
    },
}

/// `service describe`'s target groups: each one's targets from this service, with their health.
async fn target_groups(server: &str, svc: &Service) -> anyhow::Result<()> {
    let attached: Vec<&LoadBalancer> = svc
        .load_balancers
        .iter()
        .filter(|l| !l.target_group_arn.is_empty())
        .collect();
    if attached.is_empty() {
        return Ok(());
    }
    let mut lbs = berth_proto::v1::load_balancers_client::LoadBalancersClient::new(
        crate::client::connect(server).await?,
    );
    for lb in attached {
        let view = lbs
            .describe_target_group(TargetGroupRef {
                target_group: lb.target_group_arn.clone(),
            })
            .await?
            .into_inner();
        let mine: Vec<TargetHealthView> = view
            .targets
            .into_iter()
            .filter(|t| t.service_name == svc.service_name)
            .collect();
        let name = view.target_group.map(|t| t.name).unwrap_or_default();
        crate::outln!();
        crate::outln!(
            "Target group {name}: {} of {} healthy",
            mine.iter().filter(|t| t.state == "healthy").count(),
            mine.len()
        );
        super::lb::targets_table(&mine).print();
    }
    Ok(())
}

fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// Creates the service, then shows it (and follows its deployment with --wait).
async fn create(
    client: &mut ServicesClient<crate::client::Conn>,
    channel: crate::client::Conn,
    args: CreateArgs,
    fmt: Format,
) -> anyhow::Result<()> {
    let CreateArgs {
        cluster,
        name,
        taskdef,
        desired,
        placement,
        min_healthy,
        max_percent,
        circuit_breaker,
        circuit_breaker_threshold,
        no_rollback,
        grace_period,
        scheduling,
        lb,
        shift,
        wait,
    } = args;
    let breaker = (circuit_breaker || circuit_breaker_threshold.is_some()).then(|| {
        DeploymentCircuitBreaker {
            enable: true,
            rollback: !no_rollback,
            threshold: circuit_breaker_threshold.unwrap_or(0),
        }
    });
    let reply = client
        .create_service(CreateServiceRequest {
            cluster: cluster.clone(),
            service_name: name,
            task_definition: taskdef,
            desired_count: desired,
            scheduling_strategy: scheduling,
            deployment_configuration: Some({
                let mut dc = DeploymentConfiguration {
                    minimum_healthy_percent: min_healthy,
                    maximum_percent: max_percent,
                    deployment_circuit_breaker: breaker,
                    ..Default::default()
                };
                shift.fill(&mut dc);
                dc
            }),
            placement_strategy: strategies(&placement.strategies),
            placement_constraints: constraints(&placement.constraints),
            health_check_grace_period_seconds: grace_period,
            load_balancers: load_balancer(&lb)?,
            capacity_provider_strategy: Vec::new(),
            deployment_controller: String::new(),
            service_connect: None,
        })
        .await?
        .into_inner();
    show_then_wait(channel, reply, &cluster, fmt, &wait).await
}

/// Updates the service: a new deployment, the count, or its deployment settings.
async fn update(
    client: &mut ServicesClient<crate::client::Conn>,
    channel: crate::client::Conn,
    args: UpdateArgs,
    fmt: Format,
) -> anyhow::Result<()> {
    let UpdateArgs {
        service,
        cluster,
        taskdef,
        desired,
        force_new_deployment,
        min_healthy,
        max_percent,
        grace_period,
        shift,
        wait,
    } = args;
    let mut dc = DeploymentConfiguration {
        minimum_healthy_percent: min_healthy,
        maximum_percent: max_percent,
        ..Default::default()
    };
    let shifted = shift.fill(&mut dc);
    let dc = (min_healthy.is_some() || max_percent.is_some() || shifted).then_some(dc);
    let reply = client
        .update_service(UpdateServiceRequest {
            cluster: cluster.clone(),
            service,
            task_definition: taskdef.unwrap_or_default(),
            desired_count: desired,
            force_new_deployment,
            deployment_configuration: dc,
            health_check_grace_period_seconds: grace_period,
            ..Default::default()
        })
        .await?
        .into_inner();
    show_then_wait(channel, reply, &cluster, fmt, &wait).await
}

/// Polls a deleted service until it is INACTIVE (its tasks stopped), at most `timeout`.
async fn wait_inactive(
    client: &mut ServicesClient<crate::client::Conn>,
    cluster: &str,
    service: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let s = client
            .describe_service(DescribeServiceRequest {
                cluster: cluster.to_string(),
                service: service.to_string(),
            })
            .await?
            .into_inner()
            .service
            .unwrap_or_default();
        if s.status == "INACTIVE" {
            crate::outln!("service {service} is INACTIVE: its tasks have stopped");
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("service {service} is still {} after {timeout:?}", s.status);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `service list` for people.
fn services_table(services: &[Service]) -> Table {
    let mut t = Table::new(&[
        "SERVICE",
        "STATUS",
        "TASK DEFINITION",
        "DESIRED",
        "RUNNING",
        "PENDING",
        "ROLLOUT",
    ]);
    for s in services {
        t.row(vec![
            s.service_name.clone(),
            s.status.clone(),
            short(&s.task_definition).to_string(),
            s.desired_count.to_string(),
            s.running_count.to_string(),
            s.pending_count.to_string(),
            s.deployments
                .first()
                .map(|d| d.rollout_state.clone())
                .unwrap_or_default(),
        ]);
    }
    t
}

pub async fn run(cmd: ServiceCommand, server: &str, fmt: Format) -> anyhow::Result<()> {
    let channel = connect(server).await?;
    let mut client = ServicesClient::new(channel.clone());
    match cmd {
        ServiceCommand::Create(a) => create(&mut client, channel, a, fmt).await,
        ServiceCommand::Update(a) => update(&mut client, channel, a, fmt).await,
        ServiceCommand::Rollback {
            service,
            cluster,
            abort,
            wait,
        } => {
            let reply = client
                .stop_service_deployment(StopServiceDeploymentRequest {
                    cluster: cluster.clone(),
                    service,
                    stop_type: if abort { "ABORT" } else { "ROLLBACK" }.into(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            show_then_wait(channel, reply, &cluster, fmt, &wait).await
        }
        ServiceCommand::Describe { service, cluster } => {
            let reply = client
                .describe_service(DescribeServiceRequest { cluster, service })
                .await?
                .into_inner();
            if fmt == Format::Json {
                return output::json(&reply);
            }
            let svc = reply.service.unwrap_or_default();
            describe(&svc);
            super::service_view::describe_callers(&reply.connect_callers);
            target_groups(server, &svc).await
        }
        ServiceCommand::List { cluster } => {
            let reply = client
                .list_services(ListServicesRequest { cluster })
                .await?
                .into_inner();
            if fmt == Format::Json {
                return output::json(&reply);
            }
            services_table(&reply.services).print();
            Ok(())
        }
        ServiceCommand::Delete {
            service,
            cluster,
            force,
            wait,
        } => {
            let reply = client
                .delete_service(DeleteServiceRequest {
                    cluster: cluster.clone(),
                    service: service.clone(),
                    force,
                })
                .await?
                .into_inner();
            if fmt == Format::Json && !wait.wait {
                return output::json(&reply);
            }
            crate::outln!(
                "service {service} is {}",
                reply.service.map(|s| s.status).unwrap_or_default()
            );
            if wait.wait {
                wait_inactive(&mut client, &cluster, &service, wait.timeout).await?;
            }
            Ok(())
        }
        ServiceCommand::Scaling(a) => super::scaling::run(a, channel, fmt).await,
        ServiceCommand::Wait {
            service,
            cluster,
            timeout,
        } => {
            let reply = client
                .describe_service(DescribeServiceRequest {
                    cluster: cluster.clone(),
                    service,
                })
                .await?
                .into_inner();
            let svc = reply.service.unwrap_or_default();
            follow_deployment(channel, &svc, &cluster, timeout).await
        }
    }
}

async fn show_then_wait(
    channel: crate::client::Conn,
    reply: ServiceReply,
    cluster: &str,
    fmt: Format,
    wait: &WaitArgs,
) -> anyhow::Result<()> {
    let svc = reply.service.clone().unwrap_or_default();
    if !wait.wait {
        if fmt == Format::Json {
            return output::json(&reply);
        }
        describe(&svc);
        return Ok(());
    }
    follow_deployment(channel.clone(), &svc, cluster, wait.timeout).await?;
    if fmt == Format::Json {
        let mut client = ServicesClient::new(channel);
        let now = client
            .describe_service(DescribeServiceRequest {
                cluster: cluster.into(),
                service: svc.service_name.clone(),
            })
            .await?
            .into_inner();
        return output::json(&now);
    }
    Ok(())
}
