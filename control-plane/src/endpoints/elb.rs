//! The ELBv2 listeners' routes: for every listener, each rule (the default rule last) becomes a
//! route per target group it forwards to, with that target group's weight, health check and
//! deregistration delay, and as targets the tasks of every service attached to the target group.

use crate::elb::{self, keys, same};
use crate::error::Result;
use crate::state::State;
use berth_proto::v1::{ElbListener, ElbLoadBalancer, ElbTargetGroup, Route, Target};
use std::collections::BTreeMap;

/// `attached`: service key → (target group ARN, the targets that service gives it).
pub(super) fn routes(
    state: &State,
    attached: &BTreeMap<String, Vec<(String, Vec<Target>)>>,
) -> Result<Vec<Route>> {
    let groups: Vec<ElbTargetGroup> = state.scan(keys::TARGET_GROUPS)?;
    let lbs: Vec<ElbLoadBalancer> = state.scan(keys::LOAD_BALANCERS)?;
    let mut out = Vec::new();
    for l in state.scan::<ElbListener>(keys::LISTENERS)? {
        let lb_name = lbs
            .iter()
            .find(|lb| lb.arn == l.load_balancer_arn)
            .map_or("", |lb| lb.name.as_str());
        for rule in elb::rules_of(state, &l)? {
            let condition = |field: &str| -> Vec<String> {
                rule.conditions
                    .iter()
                    .filter(|c| c.field == field)
                    .flat_map(|c| c.values.iter().cloned())
                    .collect()
            };
            let (hosts, paths) = (condition("host-header"), condition("path-pattern"));
            for a in rule.actions.iter().filter(|a| a.r#type == "forward") {
                for w in &a.target_groups {
                    let Some(tg) = groups.iter().find(|g| same(&g.arn, &w.target_group_arn)) else {
                        continue;
                    };
                    out.push(Route {
                        cluster: lb_name.to_string(),
                        service_name: tg.name.clone(),
                        service_arn: tg.arn.clone(),
                        listener_port: l.port,
                        host_patterns: hosts.clone(),
                        path_patterns: paths.clone(),
                        priority: rule.priority,
                        health_check: Some(super::health_check_with_defaults(
                            tg.health_check.as_ref(),
                        )),
                        drain_timeout_seconds: tg.deregistration_delay_seconds,
                        algorithm: "round_robin".into(),
                        targets: targets_of(tg, attached),
                        rule: rule.arn.clone(),
                        weight: w.weight,
                        ..Default::default()
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Every attached service's targets for `tg`, once each, in task order.
fn targets_of(
    tg: &ElbTargetGroup,
    attached: &BTreeMap<String, Vec<(String, Vec<Target>)>>,
) -> Vec<Target> {
    let mut targets: Vec<Target> = attached
        .values()
        .flatten()
        .filter(|(arn, _)| same(arn, &tg.arn))
        .flat_map(|(_, t)| t.iter().cloned())
        .collect();
    targets.sort_by(|a, b| (&a.task_arn, a.port).cmp(&(&b.task_arn, b.port)));
    targets.dedup_by(|a, b| a.task_arn == b.task_arn && a.port == b.port);
    targets
}
