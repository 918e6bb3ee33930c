//! Applies a service's auto scaling policy: every scaling interval, gathers the metric (request
//! rate from the proxies' reports, CPU from the agents' Docker stats), asks the pure
//! `model::scaling::decide`, and commits the new desired count with an event. The service reconcile
//! that follows turns the count into tasks.

use crate::control::controller::{ControllerConfig, ServiceMemory};
use crate::live::proxies::Proxies;
use crate::live::sessions::Sessions;
use crate::model::scaling::{self, Decision, Inputs};
use crate::model::services::{self, push_event};
use crate::state::error::Result;
use crate::state::{put, State};
use crate::{model::taskdef, time};
use berth_proto::v1::{ScalingPolicy, Service, Task};

pub fn evaluate(
    state: &State,
    sessions: &Sessions,
    proxies: &Proxies,
    svc: &Service,
    now: i64,
    config: &ControllerConfig,
    mem: &mut ServiceMemory,
) -> Result<()> {
    let Some(policy) = &svc.scaling_policy else {
        return Ok(());
    };
    let interval = config.scaling_interval.as_millis() as i64;
    if svc.status != "ACTIVE" || now - mem.scaling_evaluated_ms < interval {
        return Ok(());
    }
    mem.scaling_evaluated_ms = now;
    let cluster = berth_core::arn::cluster_name(&svc.cluster_arn).to_string();
    let group = format!("service:{}", svc.service_name);
    let running: Vec<Task> = crate::model::placement::view::group_tasks(state, &cluster, &group)?
        .into_iter()
        .filter(|t| t.last_status == "RUNNING" && t.desired_status == "RUNNING")
        .collect();
    // Averaged over a little more than the interval, so each evaluation sees a few reports.
    let window = interval.max(3_000) + 1_000;
    let metric = if policy.target_cpu_percent.is_some() {
        // Agents sample CPU every `USAGE_INTERVAL`: a sample is current for two of them.
        let usage = 2 * crate::live::sessions::USAGE_INTERVAL.as_millis() as i64;
        cpu_percent_total(state, sessions, &running, now, window.max(usage))
    } else {
        proxies.request_rate(&svc.service_arn, window, now)
    };
    // No data (no proxy, no stats yet): no action, as a target tracking alarm with
    // insufficient data does nothing.
    let Some(metric_total) = metric else {
        return Ok(());
    };

    let key = services::key(&cluster, &svc.service_name);
    state.update(|tx| {
        let Some(mut svc) = tx.get::<Service>(&key)? else {
            return Ok(((), Vec::new()));
        };
        let Some(mut policy) = svc.scaling_policy.clone() else {
            return Ok(((), Vec::new()));
        };
        if svc.status != "ACTIVE" {
            return Ok(((), Vec::new()));
        }
        let deploying = svc.deployments.len() > 1
            || svc
                .deployments
                .first()
                .is_some_and(|d| d.rollout_state == "IN_PROGRESS");
        let decision = scaling::decide(&Inputs {
            policy: &policy,
            current: svc.desired_count,
            metric_total,
            now_ms: now,
            last_scale_out_ms: time::parse_rfc3339(&policy.last_scale_out_at),
            last_scale_in_ms: time::parse_rfc3339(&policy.last_scale_in_at),
            policy_set_ms: time::parse_rfc3339(&policy.set_at),
            deploying,
        });
        policy.last_metric_value = Some((metric_total * 10.0).round() / 10.0);
        policy.last_evaluated_at = time::rfc3339(now);
        let from = svc.desired_count;
        let to = match decision {
            Decision::ScaleOut(n) => {
                policy.last_scale_out_at = time::rfc3339(now);
                Some(n)
            }
            Decision::ScaleIn(n) => {
                policy.last_scale_in_at = time::rfc3339(now);
                Some(n)
            }
            Decision::Hold { .. } => None,
        };
        if let Some(to) = to {
            scaling::set_desired(&mut svc, to);
            let name = svc.service_name.clone();
            push_event(
                &mut svc,
                event(&name, &policy, metric_total, running.len(), from, to),
            );
            tracing::info!(service = %name, from, to, metric = metric_total, "auto scaling");
        }
        svc.scaling_policy = Some(policy);
        Ok(((), vec![put(key.clone(), &svc)]))
    })
}

/// "(service web) auto scaling set desired count to 4 (was 1): RequestCountPerTask 300.0
/// requests/s over 1 running tasks, target 50 requests/s per task."
fn event(name: &str, p: &ScalingPolicy, total: f64, running: usize, from: i32, to: i32) -> String {
    let measured = if p.target_cpu_percent.is_some() {
        let avg = total / running.max(1) as f64;
        format!("average {avg:.1}% over {running} running tasks")
    } else {
        format!("{total:.1} requests/s over {running} running tasks")
    };
    let verb = if to > from { "out" } else { "in" };
    format!(
        "(service {name}) auto scaling scaled {verb}: desired count set to {to} (was {from}): {} {measured}, {} (min {}, max {}).",
        scaling::metric_name(p),
        scaling::describe_target(p),
        p.min_capacity,
        p.max_capacity
    )
}

/// The CPU of the running tasks in percent points: each task's use as a share of its CPU
/// units (of a core when it reserves none), summed. None until every running task has a sample.
fn cpu_percent_total(
    state: &State,
    sessions: &Sessions,
    running: &[Task],
    now: i64,
    window: i64,
) -> Option<f64> {
    if running.is_empty() {
        return None;
    }
    let mut total = 0.0;
    for t in running {
        let node = berth_core::arn::last_segment(&t.container_instance_arn);
        let cores = sessions.task_cpu_cores(node, &t.task_arn, now - window)?;
        let units = if t.cpu > 0 {
            f64::from(t.cpu)
        } else {
            taskdef::describe(state, &t.task_definition_arn)
                .ok()
                .and_then(|td| td.cpu.parse::<f64>().ok())
                .filter(|c| *c > 0.0)
                .unwrap_or(1024.0)
        };
        total += cores * 1024.0 / units * 100.0;
    }
    Some(total)
}
