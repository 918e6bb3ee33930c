//! A target group's targets: the tasks of the services attached to it (`loadBalancers[]
//! .targetGroupArn`), with the health the watching proxies report for them.

use super::same;
use crate::endpoints::health::Proxies;
use crate::error::Result;
use crate::state::{keys, State};
use berth_proto::v1::{ElbTargetGroup, Service};

/// The active services whose tasks join `tg`.
pub fn attached_services(state: &State, tg: &ElbTargetGroup) -> Result<Vec<Service>> {
    Ok(state
        .scan::<Service>(keys::SERVICES)?
        .into_iter()
        .filter(|s| s.status != "INACTIVE")
        .filter(|s| {
            s.load_balancers
                .iter()
                .any(|l| same(&l.target_group_arn, &tg.arn))
        })
        .collect())
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

/// The targets of `tg` with their health; `only` narrows to the services named.
pub fn target_health(
    state: &State,
    proxies: &Proxies,
    tg: &ElbTargetGroup,
) -> Result<Vec<TargetHealthRow>> {
    let mut rows = Vec::new();
    for svc in attached_services(state, tg)? {
        for lb in svc
            .load_balancers
            .iter()
            .filter(|l| same(&l.target_group_arn, &tg.arn))
        {
            for t in crate::endpoints::service_targets(state, &svc, lb)? {
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
