//! One service's reconcile: desired count and deployments against its tasks → tasks to start
//! (placed by the pure scheduler) and tasks to stop, within minimumHealthyPercent and
//! maximumPercent, with ECS's circuit breaker, retry backoff and events. It runs under the
//! writer lock and commits once; it changes nothing when nothing needs changing.

use super::progress::{self, short};
use super::rollout::{backoff, circuit_breaker, placement_message};
use crate::error::Result;
use crate::nodes::Sessions;
use crate::proxies::Proxies;
use crate::scheduler::{self, NodeSnapshot, PlacementRequest};
use crate::services::{self, push_event};
use crate::state::{keys, put, State};
use crate::store::Op;
use crate::{taskdefs, tasks, time};
use berth_proto::v1::*;
use std::collections::{HashMap, HashSet};

/// What the controller remembers of a service between passes (lost on restart, harmlessly).
#[derive(Debug, Default)]
pub struct ServiceMemory {
    /// Failed tasks of the primary deployment already seen, and since when launches back off.
    pub(super) failures_seen: (String, i32),
    pub(super) consecutive_failures: u32,
    pub(super) next_launch_ms: i64,
    pub(super) steady: bool,
    pub(super) last_placement_event_ms: i64,
    /// When auto scaling last evaluated the service's policy.
    pub(super) scaling_evaluated_ms: i64,
}

/// How long a load-balanced task that has never passed a check may take to start serving.
const LB_STARTUP_MS: i64 = 15_000;

fn failed(t: &Task) -> bool {
    t.last_status == "STOPPED"
        && (matches!(
            t.stop_code.as_str(),
            "TaskFailedToStart" | "EssentialContainerExited"
        ) || t
            .stopped_reason
            .starts_with("Task failed container health checks")
            || t.stopped_reason
                .starts_with("Task failed ELB health checks"))
}

struct Defs<'a> {
    state: &'a State,
    cache: HashMap<String, Option<TaskDefinition>>,
}

impl Defs<'_> {
    fn get(&mut self, arn: &str) -> Option<&TaskDefinition> {
        if !self.cache.contains_key(arn) {
            let td = taskdefs::describe(self.state, arn).ok();
            self.cache.insert(arn.to_string(), td);
        }
        self.cache.get(arn).and_then(|t| t.as_ref())
    }

    fn has_checks(&mut self, arn: &str) -> bool {
        self.get(arn).is_some_and(|td| {
            td.container_definitions
                .iter()
                .any(|c| c.essential.unwrap_or(true) && c.health_check.is_some())
        })
    }
}

pub fn reconcile(
    state: &State,
    sessions: &Sessions,
    proxies: &Proxies,
    service_arn: &str,
    now: i64,
    config: &super::ControllerConfig,
    mem: &mut ServiceMemory,
) -> Result<()> {
    let Some((cluster, name)) = service_arn
        .rsplit_once(":service/")
        .and_then(|(_, r)| r.split_once('/'))
    else {
        return Ok(());
    };
    let _w = state.write_lock();
    let key = services::key(cluster, name);
    let Some(mut svc) = state.get::<Service>(&key)? else {
        return Ok(());
    };
    if svc.status == "INACTIVE" || svc.deployments.is_empty() {
        return Ok(());
    }
    let before = svc.clone();
    let group = format!("service:{name}");
    let all: Vec<Task> = state
        .scan::<Task>(&keys::tasks_of(cluster))?
        .into_iter()
        .filter(|t| t.group == group)
        .collect();
    let nodes: HashMap<String, ContainerInstance> = state
        .scan::<ContainerInstance>(keys::NODES)?
        .into_iter()
        .map(|n| (n.container_instance_arn.clone(), n))
        .collect();
    let mut defs = Defs {
        state,
        cache: HashMap::new(),
    };
    let mut ops: Vec<Op> = Vec::new();
    let mut started: Vec<String> = Vec::new();
    let mut stopped: Vec<(Task, String)> = Vec::new();

    // Failed tasks per deployment: counted from the tasks themselves, every pass.
    for dep in svc.deployments.iter_mut() {
        dep.failed_tasks = all
            .iter()
            .filter(|t| t.started_by == dep.id && failed(t))
            .count() as i32;
    }
    circuit_breaker(&mut svc);
    let stable_cutoff = time::rfc3339(now - config.min_healthy_time.as_millis() as i64);
    backoff(&mut svc, &all, now, &stable_cutoff, mem);

    let primary = svc.deployments[0].clone();
    let grace_cutoff = time::rfc3339(now - i64::from(svc.health_check_grace_period_seconds) * 1000);
    // Behind a load balancer that proxies watch, the proxies' target health decides.
    let lb_judged = !svc.load_balancers.is_empty() && !proxies.watching().is_empty();
    let lb_state = |t: &Task| {
        if lb_judged {
            proxies.target_state(&t.task_arn)
        } else {
            None
        }
    };
    // A target never yet healthy gets a startup allowance before its failed checks count.
    let startup_cutoff = time::rfc3339(
        now - i64::from(svc.health_check_grace_period_seconds) * 1000 - LB_STARTUP_MS,
    );
    let unhealthy = |t: &Task| {
        t.last_status == "RUNNING"
            && t.started_at.as_str() <= grace_cutoff.as_str()
            && (t.health_status == "UNHEALTHY"
                || (lb_state(t).is_some_and(|(s, _)| s == "UNHEALTHY")
                    && (proxies.ever_healthy(&t.task_arn)
                        || t.started_at.as_str() <= startup_cutoff.as_str())))
    };
    let on_draining_node = |t: &Task| {
        nodes
            .get(&t.container_instance_arn)
            .is_none_or(|n| n.status == "DRAINING")
    };
    let live: Vec<&Task> = all
        .iter()
        .filter(|t| t.last_status != "STOPPED" && t.desired_status == "RUNNING")
        .collect();
    let stopping = all
        .iter()
        .filter(|t| t.last_status != "STOPPED" && t.desired_status == "STOPPED")
        .count();
    let mut healthy = |t: &Task| {
        t.last_status == "RUNNING"
            && !t.started_at.is_empty()
            && t.started_at.as_str() <= stable_cutoff.as_str()
            && !unhealthy(t)
            && (!defs.has_checks(&t.task_definition_arn) || t.health_status == "HEALTHY")
            && (!lb_judged || lb_state(t).is_some_and(|(s, _)| s == "HEALTHY"))
    };
    let is_healthy: HashSet<String> = live
        .iter()
        .filter(|t| healthy(t))
        .map(|t| t.task_arn.clone())
        .collect();
    let daemon = svc.scheduling_strategy == "DAEMON";
    let dc = svc.deployment_configuration.unwrap_or_default();
    let min_pct = i64::from(
        dc.minimum_healthy_percent
            .unwrap_or(if daemon { 0 } else { 100 }),
    );
    let max_pct = i64::from(dc.maximum_percent.unwrap_or(if daemon { 100 } else { 200 }));
    let may_launch = primary.rollout_state != "FAILED" && now >= mem.next_launch_ms;

    // Nodes a DAEMON service must cover, or the snapshot a REPLICA service is placed on.
    let mut snapshot = tasks::snapshot(state, sessions)?;
    for n in snapshot.iter_mut() {
        let arn = crate::arn::container_instance(&n.id);
        n.service_tasks = live
            .iter()
            .filter(|t| t.container_instance_arn == arn)
            .count();
    }
    let strategies: Vec<_> = svc
        .placement_strategy
        .iter()
        .filter_map(|s| scheduler::parse_strategy(&s.r#type, &s.field).ok())
        .collect();
    let constraints: Vec<_> = svc
        .placement_constraints
        .iter()
        .filter_map(|c| scheduler::parse_constraint(&c.r#type, &c.expression).ok())
        .collect();
    let primary_td = defs.get(&primary.task_definition).cloned();
    let mut rejections: Vec<scheduler::Rejection> = Vec::new();

    let desired = if svc.status == "DRAINING" {
        0
    } else if daemon {
        // One per ACTIVE, connected node that meets the constraints.
        let d = primary_td.as_ref().map(tasks::demand).unwrap_or_default();
        snapshot
            .iter()
            .filter(|n| n.active && n.connected)
            .filter(|n| {
                let mut probe = NodeSnapshot {
                    service_tasks: 0,
                    ..(*n).clone()
                };
                let req = PlacementRequest {
                    demand: &scheduler::Demand::default(),
                    strategies: &[],
                    constraints: &constraints,
                    seed: 0,
                };
                let _ = &d;
                scheduler::place(std::slice::from_mut(&mut probe), &req).is_ok()
            })
            .count() as i64
    } else {
        i64::from(svc.desired_count)
    };
    let max_total = desired * max_pct / 100;
    let min_healthy = (desired * min_pct + 99) / 100;
    let new: Vec<&Task> = live
        .iter()
        .copied()
        .filter(|t| t.started_by == primary.id)
        .collect();
    let old: Vec<&Task> = live
        .iter()
        .copied()
        .filter(|t| t.started_by != primary.id)
        .collect();
    let good_new: Vec<&Task> = new
        .iter()
        .copied()
        .filter(|t| !unhealthy(t) && !on_draining_node(t))
        .collect();
    let total = (live.len() + stopping) as i64;

    // Launch.
    if svc.status == "ACTIVE" && may_launch {
        if let Some(td) = &primary_td {
            let demand = tasks::demand(td);
            let targets: Vec<Option<String>> = if daemon {
                // Each eligible node without a good primary task, once its old task is gone.
                snapshot
                    .iter()
                    .filter(|n| n.active && n.connected)
                    .filter(|n| {
                        let arn = crate::arn::container_instance(&n.id);
                        !live.iter().any(|t| t.container_instance_arn == arn)
                    })
                    .map(|n| Some(n.id.clone()))
                    .collect()
            } else {
                let want = desired - good_new.len() as i64;
                let room = max_total - total;
                // At most a pass's worth: the next pass places more, so nothing here grows with
                // a desired count.
                let n = want
                    .min(room)
                    .clamp(0, crate::limits::MAX_LAUNCHES_PER_PASS);
                (0..n).map(|_| None).collect()
            };
            for (i, target) in targets.into_iter().enumerate() {
                let req = PlacementRequest {
                    demand: &demand,
                    strategies: &strategies,
                    constraints: &constraints,
                    seed: now as u64 ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                };
                let placed = match &target {
                    Some(id) => {
                        let Some(n) = snapshot.iter_mut().find(|n| &n.id == id) else {
                            continue;
                        };
                        scheduler::place(std::slice::from_mut(n), &req)
                    }
                    None => scheduler::place(&mut snapshot, &req),
                };
                match placed {
                    Ok(node_id) => {
                        state.metrics().placed();
                        let mut t = tasks::build_task(
                            cluster,
                            td,
                            &node_id,
                            &demand,
                            group.clone(),
                            primary.id.clone(),
                        );
                        t.load_balanced = !svc.load_balancers.is_empty();
                        started.push(short(&t.task_arn).to_string());
                        ops.push(put(tasks::key_of(&t), &t));
                    }
                    Err(r) => {
                        if daemon {
                            continue;
                        }
                        state.metrics().placement_failed(r.reason);
                        rejections.push(r);
                        break;
                    }
                }
            }
        }
    }
    let launched = started.len() as i64;

    // Stop, cheapest first, never below minimumHealthyPercent for healthy ones.
    let mut healthy_now = is_healthy.len() as i64;
    let stop = |t: &Task, reason: String, stopped: &mut Vec<(Task, String)>| {
        if !stopped.iter().any(|(s, _)| s.task_arn == t.task_arn) {
            stopped.push(((*t).clone(), reason));
        }
    };
    for t in old.iter().filter(|t| !is_healthy.contains(&t.task_arn)) {
        stop(
            t,
            format!("Deployment {} replaced this task", primary.id),
            &mut stopped,
        );
    }
    let healthy_good_new = good_new
        .iter()
        .filter(|t| is_healthy.contains(&t.task_arn))
        .count() as i64;
    for t in live.iter().filter(|t| unhealthy(t)) {
        if healthy_good_new >= desired || total + launched >= max_total {
            let reason = match lb_state(t) {
                Some((s, why)) if s == "UNHEALTHY" => {
                    format!("Task failed ELB health checks in (target-group {name}) due to ({why})")
                }
                _ => "Task failed container health checks".to_string(),
            };
            stop(t, reason, &mut stopped);
        }
    }
    if daemon {
        // A DAEMON task on a node that no longer qualifies goes.
        for t in live.iter().filter(|t| on_draining_node(t)) {
            stop(t, "Node is draining".into(), &mut stopped);
        }
    }
    let surplus = good_new.len() as i64 + launched - desired;
    if surplus > 0 && !daemon {
        let mut extra: Vec<&Task> = good_new.clone();
        // Pending before running, newest first.
        extra.sort_by(|a, b| {
            (
                is_healthy.contains(&a.task_arn),
                std::cmp::Reverse(&a.created_at),
            )
                .cmp(&(
                    is_healthy.contains(&b.task_arn),
                    std::cmp::Reverse(&b.created_at),
                ))
        });
        for t in extra.into_iter().take(surplus as usize) {
            if is_healthy.contains(&t.task_arn) {
                healthy_now -= 1;
            }
            let reason = if svc.status == "DRAINING" {
                "Service deleted".to_string()
            } else {
                "Scaling activity initiated by the service (desired count lowered)".to_string()
            };
            stop(t, reason, &mut stopped);
        }
    }
    let mut replaceable: Vec<&Task> = old
        .iter()
        .copied()
        .filter(|t| is_healthy.contains(&t.task_arn))
        .collect();
    if !daemon {
        replaceable.extend(
            new.iter()
                .copied()
                .filter(|t| on_draining_node(t) && is_healthy.contains(&t.task_arn)),
        );
    }
    for t in replaceable {
        if stopped.iter().any(|(s, _)| s.task_arn == t.task_arn) {
            continue;
        }
        if healthy_now - 1 < min_healthy {
            break;
        }
        healthy_now -= 1;
        let reason = if on_draining_node(t) {
            "Node is draining".to_string()
        } else {
            format!("Deployment {} replaced this task", primary.id)
        };
        stop(t, reason, &mut stopped);
    }
    for (t, reason) in &stopped {
        let mut t = t.clone();
        t.desired_status = "STOPPED".into();
        t.stop_code = "ServiceSchedulerInitiated".into();
        t.stopped_reason = reason.clone();
        t.stopping_at = time::now();
        t.version += 1;
        ops.push(put(tasks::key_of(&t), &t));
    }

    // Counts, per deployment and for the service.
    let stopped_arns: HashSet<&str> = stopped.iter().map(|(t, _)| t.task_arn.as_str()).collect();
    let remaining: Vec<&Task> = live
        .iter()
        .copied()
        .filter(|t| !stopped_arns.contains(t.task_arn.as_str()))
        .collect();
    for dep in svc.deployments.iter_mut() {
        let mine: Vec<&&Task> = remaining
            .iter()
            .filter(|t| t.started_by == dep.id)
            .collect();
        let running = mine.iter().filter(|t| t.last_status == "RUNNING").count() as i32;
        let is_primary = dep.id == primary.id;
        dep.running_count = running;
        dep.healthy_count = mine
            .iter()
            .filter(|t| is_healthy.contains(&t.task_arn))
            .count() as i32;
        dep.pending_count =
            mine.len() as i32 - running + if is_primary { launched as i32 } else { 0 };
        dep.desired_count = if is_primary { desired as i32 } else { 0 };
    }
    svc.running_count = remaining
        .iter()
        .filter(|t| t.last_status == "RUNNING")
        .count() as i32;
    svc.pending_count = (remaining.len() as i32 - svc.running_count) + launched as i32;
    if daemon {
        svc.desired_count = desired as i32;
    }

    progress::task_events(&mut svc, name, &started, &stopped);
    svc.placement_failures = rejections
        .iter()
        .map(|r| Failure {
            arn: primary.task_definition.clone(),
            reason: r.reason.to_string(),
            detail: r.detail.clone(),
        })
        .collect();
    if let Some(r) = rejections.first() {
        if now - mem.last_placement_event_ms > 30_000 {
            mem.last_placement_event_ms = now;
            push_event(&mut svc, placement_message(name, r));
        }
    }

    // Completion and steady state.
    let acted = !started.is_empty() || !stopped.is_empty();
    let old_left = remaining.iter().any(|t| t.started_by != primary.id);
    let new_left: Vec<&&Task> = remaining
        .iter()
        .filter(|t| t.started_by == primary.id)
        .collect();
    let all_healthy = new_left.len() as i64 == desired
        && new_left.iter().all(|t| is_healthy.contains(&t.task_arn));
    let settled = !acted && !old_left && all_healthy && svc.status == "ACTIVE";
    progress::settle(&mut svc, mem, name, acted, settled);
    // A deleted service: INACTIVE once its tasks have stopped; its stopped tasks go with it.
    if svc.status == "DRAINING" && remaining.is_empty() && stopping == 0 && stopped.is_empty() {
        svc.status = "INACTIVE".into();
        for dep in svc.deployments.iter_mut() {
            dep.status = "INACTIVE".into();
        }
        for t in all.iter().filter(|t| t.last_status == "STOPPED") {
            ops.push(Op::Delete(tasks::key_of(t)));
        }
    }

    if svc != before {
        state.metrics().deployments_finished(&before, &svc);
        ops.push(put(key, &svc));
    }
    state.commit(ops)?;
    Ok(())
}
