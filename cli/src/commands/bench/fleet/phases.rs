//! The bench's phases, in order: agents connect; services are created and the fleet converges
//! under API probes; placement quality is checked; 1% of nodes vanish and their tasks are
//! replaced; one service rolls to a new revision.

use super::report::{Report, Restart, Timings};
use super::{probe, quality, Bench};
use anyhow::{bail, Context};
use berth_proto::v1::services_client::ServicesClient;
use berth_proto::v1::task_definitions_client::TaskDefinitionsClient;
use berth_proto::v1::*;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub const FAMILY: &str = "fleet";

pub async fn all(b: &mut Bench, dir: &std::path::Path) -> anyhow::Result<Report> {
    let n = b.args.nodes as i64;
    wait(b, "agents connect", || async {
        Ok(b.counters.connected.load(Ordering::Relaxed) >= n)
    })
    .await?;
    let connected_s = b.started.elapsed().as_secs_f64();
    register(b, 1).await?;
    b.phase.send_replace("creating services");
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let names: Vec<String> = (0..b.args.services).map(service_name).collect();
    let probe = probe::apart(b.cp.url.clone(), names, FAMILY.into(), stop_rx)?;
    let t0 = Instant::now();
    create_services(b).await?;
    let created_s = t0.elapsed().as_secs_f64();
    b.phase.send_replace("converging");
    let converged = converge(b, b.args.total() as i64).await;
    let converge_s = t0.elapsed().as_secs_f64();
    let _ = stop.send(true);
    let api = probe.await.context("the API probe")??;
    converged?;
    b.phase.send_replace("checking placement");
    let quality = quality::check(b).await?;
    let lost = lose_nodes(b).await?;
    let rolling = roll(b).await?;
    let (peak_rss, _) = probe::rss_mib(b.cp.pid);
    let (agents_rss, _) = probe::rss_mib(0);
    let store_bytes = probe::disk_bytes(dir);
    let restart = if b.args.restart {
        Some(restart(b, dir).await?)
    } else {
        None
    };
    Ok(Report {
        nodes: b.args.nodes,
        services: b.args.services,
        tasks_per_service: b.args.tasks_per_service,
        tasks: b.args.total(),
        converged: true,
        timings: Timings {
            agents_connected_s: connected_s,
            services_created_s: created_s,
            all_running_s: converge_s,
            placements_per_s: b.args.total() as f64 / converge_s,
            lost_nodes: lost.0,
            lost_tasks_replaced_s: lost.1,
            rolling_tasks: b.args.rolling_tasks,
            rolling_deployment_s: rolling,
        },
        api,
        peak_rss_mib: peak_rss,
        simulated_agents_rss_mib: agents_rss,
        store_bytes,
        quality,
        lost_node_timeout_s: super::LOST_NODE_TIMEOUT.as_secs_f64(),
        crash_grace_s: berth_control_plane::control::controller::ControllerConfig::default()
            .crash_grace
            .as_secs_f64(),
        min_healthy_time_s: super::MIN_HEALTHY_TIME.as_secs_f64(),
        restart,
    })
}

/// Stops the control plane (its agents' streams end; they keep retrying), starts a new one on
/// the same store and port, and times it back: serving, its first API answer, every agent back.
async fn restart(b: &mut Bench, dir: &std::path::Path) -> anyhow::Result<Restart> {
    b.phase.send_replace("restarting the control plane");
    let agents = b.counters.connected.load(Ordering::Relaxed);
    let port: u16 =
        b.cp.url
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .context("the control plane's port")?;
    b.cp.shutdown();
    wait(b, "agents see the control plane gone", || async {
        Ok(b.counters.connected.load(Ordering::Relaxed) == 0)
    })
    .await?;
    let t0 = Instant::now();
    let owned = dir.to_path_buf();
    b.cp = tokio::task::spawn_blocking(move || super::child::ControlPlane::start(&owned, port))
        .await?
        .context("restarting the control plane")?;
    b.counters
        .control_plane_pid
        .store(b.cp.pid, std::sync::atomic::Ordering::Relaxed);
    let serving_s = t0.elapsed().as_secs_f64();
    b.phase.send_replace("restart: first API call");
    let channel = tonic::transport::Channel::from_shared(b.cp.url.clone())?.connect_lazy();
    wait(b, "the restarted control plane's first answer", || {
        let mut client = ServicesClient::new(channel.clone());
        async move {
            let call = client.describe_service(DescribeServiceRequest {
                cluster: String::new(),
                service: service_name(0),
            });
            Ok(tokio::time::timeout(Duration::from_secs(1), call)
                .await
                .is_ok_and(|r| r.is_ok()))
        }
    })
    .await?;
    let first_api_call_s = t0.elapsed().as_secs_f64();
    b.phase.send_replace("restart: agents reconnect");
    wait(b, "every agent reconnected", || async {
        Ok(b.counters.connected.load(Ordering::Relaxed) >= agents)
    })
    .await?;
    let agents_reconnected_s = t0.elapsed().as_secs_f64();
    Ok(Restart {
        serving_s,
        first_api_call_s,
        agents,
        agents_reconnected_s,
        peak_rss_mib: probe::rss_mib(b.cp.pid).0,
    })
}

pub fn service_name(i: usize) -> String {
    format!("svc-{i:04}")
}

/// Polls `done` every 100 ms until it holds, or fails after the bench's timeout.
async fn wait<F, Fut>(b: &Bench, what: &str, mut done: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + b.args.timeout;
    while !done().await? {
        if Instant::now() > deadline {
            bail!("{what}: not done within {:?}", b.args.timeout);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn register(b: &Bench, image_tag: u32) -> anyhow::Result<()> {
    let td = TaskDefinition {
        family: FAMILY.into(),
        container_definitions: vec![ContainerDefinition {
            name: "app".into(),
            image: format!("sim/app:{image_tag}"),
            cpu: 16,
            memory: 32,
            ..Default::default()
        }],
        ..Default::default()
    };
    TaskDefinitionsClient::new(b.channel.clone())
        .register_task_definition(RegisterTaskDefinitionRequest {
            task_definition: Some(td),
            ..Default::default()
        })
        .await
        .context("registering the task definition")?;
    Ok(())
}

/// Four kinds of service in turn, so each placement rule is exercised at scale; a service too
/// large for distinctInstance on the nodes left after the loss spreads instead.
pub fn placement(i: usize, b: &Bench) -> (Vec<PlacementStrategy>, Vec<PlacementConstraint>) {
    let s = |t: &str, f: &str| PlacementStrategy {
        r#type: t.into(),
        field: f.into(),
    };
    let c = |t: &str, e: &str| PlacementConstraint {
        r#type: t.into(),
        expression: e.into(),
    };
    match super::kind(i, b) {
        0 => (
            vec![s("spread", "attribute:zone"), s("spread", "instanceId")],
            vec![],
        ),
        1 => (vec![s("binpack", "memory")], vec![]),
        2 => (
            vec![s("spread", "attribute:zone")],
            vec![c("distinctInstance", "")],
        ),
        _ => (
            vec![s("spread", "attribute:zone")],
            vec![c("memberOf", "attribute:zone != c")],
        ),
    }
}

async fn create_services(b: &mut Bench) -> anyhow::Result<()> {
    let mut client = ServicesClient::new(b.channel.clone());
    for i in 0..b.args.services {
        let (placement_strategy, placement_constraints) = placement(i, b);
        client
            .create_service(CreateServiceRequest {
                service_name: service_name(i),
                task_definition: FAMILY.into(),
                desired_count: b.args.tasks_per_service as i32,
                placement_strategy,
                placement_constraints,
                ..Default::default()
            })
            .await
            .with_context(|| format!("creating {}", service_name(i)))?;
        b.services.push(service_name(i));
    }
    Ok(())
}

/// Waits until the agents have reported `want` services' tasks RUNNING and every service says
/// its running count is its desired count (one ListServices a check: a thousand
/// DescribeServices one after another took most of a minute on a loaded control plane).
async fn converge(b: &Bench, want: i64) -> anyhow::Result<()> {
    let client = ServicesClient::new(b.channel.clone()).max_decoding_message_size(256 << 20);
    wait(b, "convergence", || {
        let mut client = client.clone();
        async move {
            if b.counters.running.load(Ordering::Relaxed) < want {
                return Ok(false);
            }
            let listed = client
                .list_services(ListServicesRequest::default())
                .await?
                .into_inner()
                .services;
            let settled: HashSet<&str> = listed
                .iter()
                .filter(|s| s.running_count == s.desired_count && s.deployments.len() == 1)
                .map(|s| s.service_name.as_str())
                .collect();
            Ok(b.services.iter().all(|n| settled.contains(n.as_str())))
        }
    })
    .await
}

/// Drops 1% of the agents' streams at once (as crashed agents' kernels would); returns how
/// many, and the seconds until every service is whole again (the crash grace included).
async fn lose_nodes(b: &mut Bench) -> anyhow::Result<(usize, f64)> {
    b.phase.send_replace("losing 1% of nodes");
    let step = 100.min(b.agents.len());
    let lost: Vec<_> = b.agents.iter().step_by(step).collect();
    let t0 = Instant::now();
    for a in &lost {
        a.kill();
    }
    let n = lost.len();
    let gone = (b.args.nodes - n) as i64;
    wait(b, "lost agents disconnect", || async {
        Ok(b.counters.connected.load(Ordering::Relaxed) <= gone)
    })
    .await?;
    b.phase.send_replace("replacing lost tasks");
    converge(b, b.args.total() as i64).await?;
    Ok((n, t0.elapsed().as_secs_f64()))
}

/// Creates a service of `rolling_tasks` tasks, waits for it, then rolls it to a new revision;
/// returns the seconds the deployment took.
async fn roll(b: &mut Bench) -> anyhow::Result<f64> {
    let r = b.args.rolling_tasks;
    if r == 0 {
        return Ok(0.0);
    }
    b.phase.send_replace("rolling: creating");
    let mut client = ServicesClient::new(b.channel.clone());
    client
        .create_service(CreateServiceRequest {
            service_name: "rolling".into(),
            task_definition: FAMILY.into(),
            desired_count: r as i32,
            ..Default::default()
        })
        .await
        .context("creating the rolling service")?;
    b.services.push("rolling".into());
    converge(b, (b.args.total() + r) as i64).await?;
    register(b, 2).await?;
    b.phase.send_replace("rolling deployment");
    let t0 = Instant::now();
    client
        .update_service(UpdateServiceRequest {
            service: "rolling".into(),
            task_definition: format!("{FAMILY}:2"),
            ..Default::default()
        })
        .await
        .context("rolling the service")?;
    wait(b, "rolling deployment", || {
        let mut client = client.clone();
        async move {
            let svc = client
                .describe_service(DescribeServiceRequest {
                    cluster: String::new(),
                    service: "rolling".into(),
                })
                .await?
                .into_inner()
                .service
                .unwrap_or_default();
            Ok(svc.deployments.len() == 1
                && svc.task_definition.ends_with(":2")
                && svc.running_count == r as i32)
        }
    })
    .await?;
    Ok(t0.elapsed().as_secs_f64())
}
