//! Controllers: level-triggered loops that compare what is wanted with what is, woken by store
//! changes and a periodic resync, never trusting the edge that woke them.

mod progress;
mod rollout;
mod scaling;
mod service;

use crate::error::Result;
use crate::nodes::Sessions;
use crate::proxies::Proxies;
use crate::state::{keys, put, State};
use crate::time;
use berth_proto::v1::{ContainerInstance, Service, Task};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

pub use service::ServiceMemory;

/// Timings of the controllers.
#[derive(Debug, Clone, Copy)]
pub struct ControllerConfig {
    pub resync: Duration,
    /// A node disconnected this long is lost: its tasks are stopped and replaced elsewhere.
    pub lost_node_timeout: Duration,
    /// A task counts as healthy only after running (and passing its checks) this long, so a
    /// revision that crashes a moment after starting cannot complete a deployment.
    pub min_healthy_time: Duration,
    /// How often auto scaling policies are evaluated (over a metric window just as long).
    pub scaling_interval: Duration,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(2),
            lost_node_timeout: Duration::from_secs(10),
            min_healthy_time: Duration::from_secs(5),
            scaling_interval: Duration::from_secs(10),
        }
    }
}

/// Runs until `stopped` turns true.
pub async fn run(
    state: State,
    sessions: Arc<Sessions>,
    proxies: Arc<Proxies>,
    config: ControllerConfig,
    mut stopped: watch::Receiver<bool>,
) {
    let mut changes = state.store().subscribe();
    let mut memory: HashMap<String, ServiceMemory> = HashMap::new();
    let started_ms = time::now_millis();
    let mut tick = tokio::time::interval(config.resync);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            c = changes.recv() => match c {
                Ok(_) | Err(RecvError::Lagged(_)) => {
                    // Coalesce a burst of writes into one pass.
                    tokio::time::sleep(Duration::from_millis(25)).await;
                    while changes.try_recv().is_ok() {}
                }
                Err(RecvError::Closed) => return,
            },
            _ = until_stopped(&mut stopped) => return,
        }
        let (s, sess, prox) = (state.clone(), sessions.clone(), proxies.clone());
        let mut mem = std::mem::take(&mut memory);
        let res = tokio::task::spawn_blocking(move || {
            let r = reconcile_all(&s, &sess, &prox, &config, started_ms, &mut mem);
            (r, mem)
        })
        .await;
        match res {
            Ok((r, mem)) => {
                memory = mem;
                if let Err(e) = r {
                    tracing::warn!(error = %e, "reconcile failed; retrying on the next pass");
                }
            }
            Err(e) => tracing::error!(error = %e, "reconcile panicked"),
        }
    }
}

fn reconcile_all(
    state: &State,
    sessions: &Sessions,
    proxies: &Proxies,
    config: &ControllerConfig,
    started_ms: i64,
    memory: &mut HashMap<String, ServiceMemory>,
) -> Result<()> {
    let _timer = state.metrics().time_reconcile();
    let now = time::now_millis();
    mark_lost_nodes(state, sessions, config, started_ms, now)?;
    deregister_drained(state, proxies, now)?;
    let services = state.scan::<Service>("service/")?;
    let live: std::collections::HashSet<String> = state
        .scan::<Task>(keys::TASKS)?
        .into_iter()
        .map(|t| t.task_arn)
        .collect();
    proxies.retain_tasks(&|t| live.contains(t));
    for svc in services.iter().filter(|s| s.status != "INACTIVE") {
        // Out of today's bounds (stored by an older version): reported at start, left alone.
        if !crate::services::stored_problems(state, svc).is_empty() {
            continue;
        }
        let mem = memory.entry(svc.service_arn.clone()).or_default();
        if let Err(e) = scaling::evaluate(state, sessions, proxies, svc, now, config, mem) {
            tracing::warn!(service = %svc.service_name, error = %e, "auto scaling failed");
        }
        if let Err(e) =
            service::reconcile(state, sessions, proxies, &svc.service_arn, now, config, mem)
        {
            tracing::warn!(service = %svc.service_name, error = %e, "service reconcile failed");
        }
    }
    memory.retain(|arn, _| {
        services
            .iter()
            .any(|s| &s.service_arn == arn && s.status != "INACTIVE")
    });
    Ok(())
}

/// Tasks on a node whose agent has been gone longer than the lost-node timeout are STOPPED, so
/// their services replace them elsewhere. When the node returns its agent is no longer sent
/// them, and stops their containers.
fn mark_lost_nodes(
    state: &State,
    sessions: &Sessions,
    config: &ControllerConfig,
    started_ms: i64,
    now: i64,
) -> Result<()> {
    let nodes = state.scan::<ContainerInstance>(keys::NODES)?;
    let lost: Vec<&ContainerInstance> = nodes
        .iter()
        .filter(|n| {
            !sessions.is_connected(&n.ec2_instance_id)
                && now - sessions.last_seen(&n.ec2_instance_id).unwrap_or(started_ms)
                    > config.lost_node_timeout.as_millis() as i64
        })
        .collect();
    if lost.is_empty() {
        return Ok(());
    }
    let _w = state.write_lock();
    let mut ops = Vec::new();
    for t in state.scan::<Task>(keys::TASKS)? {
        if t.last_status == "STOPPED" {
            continue;
        }
        let Some(n) = lost
            .iter()
            .find(|n| n.container_instance_arn == t.container_instance_arn)
        else {
            continue;
        };
        let mut t = t;
        t.last_status = "STOPPED".into();
        t.desired_status = "STOPPED".into();
        t.stop_code = "NodeLost".into();
        t.stopped_reason = format!(
            "node {} was lost: its agent has not been heard from for {} s",
            n.name,
            config.lost_node_timeout.as_secs()
        );
        t.stopped_at = time::now();
        t.version += 1;
        tracing::warn!(task = %t.task_arn, node = %n.name, "task lost with its node");
        ops.push(put(crate::tasks::key_of(&t), &t));
    }
    state.commit(ops)?;
    Ok(())
}

/// Resolves once shutdown is asked for (the watch guard never lives across an await).
async fn until_stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await.map(|_| ());
}

/// A stopping load-balanced task is deregistered — and so may be stopped — once every watching
/// proxy has drained it, or its service's drain timeout has passed, or no proxy is watching.
fn deregister_drained(state: &State, proxies: &Proxies, now: i64) -> Result<()> {
    let _w = state.write_lock();
    let pending: Vec<Task> = state
        .scan::<Task>(keys::TASKS)?
        .into_iter()
        .filter(|t| {
            t.load_balanced
                && t.desired_status == "STOPPED"
                && t.last_status != "STOPPED"
                && t.deregistered_at.is_empty()
        })
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    let services: HashMap<String, Service> = state
        .scan::<Service>("service/")?
        .into_iter()
        .map(|s| (format!("{}|service:{}", s.cluster_arn, s.service_name), s))
        .collect();
    let no_proxy = proxies.watching().is_empty();
    let mut ops = Vec::new();
    for mut t in pending {
        let timeout_ms = services
            .get(&format!("{}|{}", t.cluster_arn, t.group))
            .and_then(|s| s.load_balancers.first())
            .map_or(
                crate::endpoints::DEFAULT_DRAIN_TIMEOUT_S,
                crate::endpoints::drain_timeout_s,
            ) as i64
            * 1000;
        let since = time::parse_rfc3339(&t.stopping_at).unwrap_or(now);
        let why = if no_proxy {
            Some("no proxy routes to it")
        } else if proxies.drained_everywhere(&t.task_arn, since) {
            Some("drained by every proxy")
        } else if now - since >= timeout_ms {
            Some("drain timeout reached")
        } else {
            None
        };
        if let Some(why) = why {
            tracing::info!(task = %t.task_arn, %why, "task deregistered from the load balancer");
            t.deregistered_at = time::now();
            t.version += 1;
            ops.push(put(crate::tasks::key_of(&t), &t));
        }
    }
    state.commit(ops)?;
    Ok(())
}
