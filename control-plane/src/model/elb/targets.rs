//! A target group's targets: the tasks of the services attached to it (`loadBalancers[]
//! .targetGroupArn`), with the health the watching proxies report for them.

use super::same;
use crate::state::error::Result;
use crate::state::{keys, State};
use berth_proto::v1::{ElbTargetGroup, LoadBalancer, Service, Target};

/// Checks that every target group a service names exists (read through `tx`, so a delete in
/// between refuses the create), and takes the stored ARN and its deregistration delay.
pub fn attach(
    tx: &mut crate::state::Tx<'_>,
    lbs: &mut [berth_proto::v1::LoadBalancer],
) -> Result<()> {
    for (i, lb) in lbs.iter_mut().enumerate() {
        if lb.target_group_arn.is_empty() {
            continue;
        }
        let key = super::tg_key(&lb.target_group_arn)?;
        let tg = tx
            .get::<ElbTargetGroup>(&key)?
            .filter(|tg| !lb.target_group_arn.starts_with("arn:") || same(&tg.arn, &lb.target_group_arn))
            .ok_or_else(|| {
                crate::state::error::Error::elb(
                    "TargetGroupNotFound",
                    format!(
                        "loadBalancers[{i}].targetGroupArn: target group {} not found; create it with `aws elbv2 create-target-group` (or `berth lb target-group create`)",
                        crate::state::error::quote(&lb.target_group_arn)
                    ),
                )
            })?;
        lb.target_group_arn = tg.arn;
        lb.drain_timeout_seconds = Some(tg.deregistration_delay_seconds);
    }
    Ok(())
}

/// The quota of targets per target group: for each target group `svc` joins, its desired count
/// with that of every other active service attached there. Read through `tx`, so two services
/// racing onto one target group cannot both pass.
pub fn check_targets(
    tx: &mut crate::state::Tx<'_>,
    quotas: &berth_core::limits::ElbQuotas,
    svc: &Service,
) -> Result<()> {
    let attached: Vec<(usize, &str)> = svc
        .load_balancers
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.target_group_arn.is_empty())
        .map(|(i, l)| (i, l.target_group_arn.as_str()))
        .collect();
    if attached.is_empty() {
        return Ok(());
    }
    let others: Vec<Service> = tx
        .scan::<Service>(keys::SERVICES)?
        .into_iter()
        .filter(|o| o.status != "INACTIVE" && o.service_arn != svc.service_arn)
        .collect();
    let most = quotas.targets_per_target_group as i64;
    for (i, tg) in attached {
        let joined = others
            .iter()
            .filter(|o| {
                o.load_balancers
                    .iter()
                    .any(|l| same(&l.target_group_arn, tg))
            })
            .map(|o| i64::from(o.desired_count.max(0)))
            .sum::<i64>();
        let total = joined + i64::from(svc.desired_count.max(0));
        if total > most {
            return Err(crate::state::error::Error::elb(
                "TooManyTargets",
                format!(
                    "loadBalancers[{i}].targetGroupArn: {total} targets ({} of this service, {joined} of others) is over the quota of targets per target group ({most}); lower desiredCount or use another target group",
                    svc.desired_count
                ),
            ));
        }
    }
    Ok(())
}

/// The active services whose tasks join `tg`.
pub fn attached_services(state: &State, tg: &ElbTargetGroup) -> Result<Vec<Service>> {
    Ok(state
        .scan::<Service>(keys::SERVICES)?
        .into_iter()
        .filter(|s| s.status != "INACTIVE")
        .filter(|s| {
            s.load_balancers
                .iter()
                .chain(s.task_sets.iter().flat_map(|ts| &ts.load_balancers))
                .any(|l| same(&l.target_group_arn, &tg.arn))
        })
        .collect())
}

/// What joins `tg` from `svc`: each of its load balancers for `tg`, and the tasks that join by
/// it (every task of the service, or a task set's own: its id is their startedBy).
fn joins<'a>(svc: &'a Service, tg: &ElbTargetGroup) -> Vec<(&'a LoadBalancer, Option<&'a str>)> {
    svc.load_balancers
        .iter()
        .map(|l| (l, None))
        .chain(svc.task_sets.iter().flat_map(|ts| {
            ts.load_balancers
                .iter()
                .map(move |l| (l, Some(ts.id.as_str())))
        }))
        .filter(|(l, _)| same(&l.target_group_arn, &tg.arn))
        .collect()
}

/// One target of a target group as DescribeTargetHealth and `service describe` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHealthRow {
    pub service_name: String,
    pub task_arn: String,
    pub address: String,
    pub port: i32,
    /// ELBv2's state: initial, healthy, unhealthy, draining, unused.
    pub state: String,
    /// ELBv2's reason code (`Target.FailedHealthChecks`), empty when healthy.
    pub reason: String,
    pub description: String,
}

/// What the watching proxies report of a target; the live layer keeps it
/// (`live::proxies::Proxies`).
pub trait TargetStates {
    /// The target's state and reason as the proxies last saw it, if any proxy has.
    fn target_state(&self, task_arn: &str) -> Option<(String, String)>;
}

impl<T: TargetStates + ?Sized> TargetStates for std::sync::Arc<T> {
    fn target_state(&self, task_arn: &str) -> Option<(String, String)> {
        (**self).target_state(task_arn)
    }
}

/// The targets of `tg` with their health, service by service.
pub fn target_health(
    state: &State,
    proxies: &dyn TargetStates,
    tg: &ElbTargetGroup,
) -> Result<Vec<TargetHealthRow>> {
    let mut rows = Vec::new();
    for svc in attached_services(state, tg)? {
        for (lb, task_set) in joins(&svc, tg) {
            let targets = match task_set {
                None => service_targets(state, &svc, lb)?,
                Some(id) => task_set_targets(state, &svc, lb, id)?,
            };
            for t in targets {
                let seen = proxies.target_state(&t.task_arn);
                let (st, reason, description) = elb_state(t.draining, seen);
                rows.push(TargetHealthRow {
                    service_name: svc.service_name.clone(),
                    task_arn: t.task_arn,
                    address: t.address,
                    port: t.port,
                    state: st.into(),
                    reason: reason.into(),
                    description,
                });
            }
        }
    }
    for t in super::registered::routing_targets(tg, crate::time::now_millis()) {
        let seen = proxies.target_state(&t.task_arn);
        let (st, reason, description) = elb_state(t.draining, seen);
        rows.push(TargetHealthRow {
            service_name: String::new(),
            task_arn: t.task_arn,
            address: t.address,
            port: t.port,
            state: st.into(),
            reason: reason.into(),
            description,
        });
    }
    Ok(rows)
}

/// A proxy's view of a target in ELBv2's words.
fn elb_state(
    draining: bool,
    seen: Option<(String, String)>,
) -> (&'static str, &'static str, String) {
    if draining {
        return (
            "draining",
            "Target.DeregistrationInProgress",
            "Target deregistration is in progress".into(),
        );
    }
    match seen {
        None => (
            "unused",
            "Target.NotInUse",
            "No proxy is routing to this target yet".into(),
        ),
        Some((s, why)) => match s.as_str() {
            "HEALTHY" => ("healthy", "", String::new()),
            "UNHEALTHY" => (
                "unhealthy",
                if why.contains("timed out") {
                    "Target.Timeout"
                } else {
                    "Target.FailedHealthChecks"
                },
                why,
            ),
            "DRAINED" => (
                "draining",
                "Target.DeregistrationInProgress",
                "Target deregistration is in progress".into(),
            ),
            _ => (
                "initial",
                "Elb.InitialHealthChecking",
                "Initial health checks in progress".into(),
            ),
        },
    }
}

/// The targets a service's tasks give one of its load balancers (its own listener port or the
/// target group it is attached to): the running tasks' bindings of that container port.
/// The targets of a task set's load balancer: its own tasks only, as ECS registers them.
pub fn task_set_targets(
    state: &State,
    svc: &Service,
    lb: &LoadBalancer,
    task_set: &str,
) -> Result<Vec<Target>> {
    let mut tasks = crate::model::placement::view::service_tasks(state, svc)?;
    tasks.retain(|t| t.started_by == task_set);
    let nodes = crate::model::nodes::of_live_tasks(state, &tasks)?;
    Ok(berth_core::lb::lb_targets(lb, &tasks, &nodes))
}

pub fn service_targets(state: &State, svc: &Service, lb: &LoadBalancer) -> Result<Vec<Target>> {
    let tasks = crate::model::placement::view::service_tasks(state, svc)?;
    let nodes = crate::model::nodes::of_live_tasks(state, &tasks)?;
    Ok(berth_core::lb::lb_targets(lb, &tasks, &nodes))
}
