//! The ELBv2 listeners' routes: for every listener, each rule (the default rule last) becomes a
//! route per target group it forwards to, with that target group's weight, health check and
//! deregistration delay, and as targets the tasks of every service attached to the target group.
//! During an attached service's traffic shift, its target group becomes a route per deployment,
//! the target group's weight shared among them by the shift's shares (weights are in
//! thousandths of the target group's, so shares keep their precision beside other target
//! groups), and a test route while the new revision takes test traffic.

use super::Attachment;
use crate::model::elb::{self, keys, same};
use crate::state::error::Result;
use crate::state::State;
use berth_proto::v1::{ElbListener, ElbLoadBalancer, ElbTargetGroup, Route, Target};
use std::collections::BTreeMap;

/// `attached`: service key → what that service gives the target groups it is attached to.
pub(super) fn routes(
    state: &State,
    attached: &BTreeMap<String, Vec<Attachment>>,
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
                    let base = Route {
                        cluster: lb_name.to_string(),
                        service_name: tg.name.clone(),
                        service_arn: tg.arn.clone(),
                        listener_port: l.port,
                        host_patterns: hosts.clone(),
                        path_patterns: paths.clone(),
                        priority: rule.priority,
                        health_check: Some(berth_core::lb::health_check_with_defaults(
                            tg.health_check.as_ref(),
                        )),
                        drain_timeout_seconds: tg.deregistration_delay_seconds,
                        algorithm: "round_robin".into(),
                        rule: rule.arn.clone(),
                        weight: w.weight.saturating_mul(1000),
                        protocol: if l.protocol == "TCP" {
                            "TCP".into()
                        } else {
                            String::new()
                        },
                        proxy_protocol_v2: tg.proxy_protocol_v2 && tg.protocol == "TCP",
                        ..Default::default()
                    };
                    out.extend(group_routes(&base, tg, w.weight, attached));
                }
            }
        }
    }
    Ok(out)
}

/// A target group's route: one with every attached service's targets, or during a traffic
/// shift one per deployment (each its share of the target group's weight) and the test route.
fn group_routes(
    base: &Route,
    tg: &ElbTargetGroup,
    weight: i32,
    attached: &BTreeMap<String, Vec<Attachment>>,
) -> Vec<Route> {
    let mine: Vec<&Attachment> = attached
        .values()
        .flatten()
        .filter(|a| same(&a.target_group, &tg.arn))
        .collect();
    if mine.iter().all(|a| a.groups.len() <= 1 && a.test.is_none()) {
        return vec![Route {
            targets: targets_of(tg, attached),
            ..base.clone()
        }];
    }
    let mut out = Vec::new();
    for a in mine {
        for (revision, share, targets) in &a.groups {
            out.push(Route {
                revision: revision.clone(),
                weight: weight.saturating_mul(*share),
                targets: targets.clone(),
                ..base.clone()
            });
        }
        if let Some((name, value, service, revision, targets)) = &a.test {
            out.push(Route {
                revision: revision.clone(),
                rule: format!("test:{}:{service}", base.rule),
                header_name: name.clone(),
                header_value: value.clone(),
                weight: 1,
                targets: targets.clone(),
                ..base.clone()
            });
        }
    }
    out
}

/// Every attached service's targets for `tg`, once each, in task order.
fn targets_of(tg: &ElbTargetGroup, attached: &BTreeMap<String, Vec<Attachment>>) -> Vec<Target> {
    let mut targets: Vec<Target> = attached
        .values()
        .flatten()
        .filter(|a| same(&a.target_group, &tg.arn))
        .flat_map(|a| a.groups.iter().flat_map(|(_, _, t)| t.iter().cloned()))
        .collect();
    targets.sort_by(|a, b| (&a.task_arn, a.port).cmp(&(&b.task_arn, b.port)));
    targets.dedup_by(|a, b| a.task_arn == b.task_arn && a.port == b.port);
    targets
}
