//! The ELBv2 listeners' routes: for every listener, each rule (the default rule last) becomes a
//! route per target group it forwards to, with that target group's weight, health check and
//! deregistration delay, and as targets the tasks of every service attached to the target group.
//! During an attached service's traffic shift, its target group becomes a route per deployment,
//! the target group's weight shared among them by the shift's shares (weights are in
//! thousandths of the target group's, so shares keep their precision beside other target
//! groups), and a test route while the new revision takes test traffic.

use super::Attachment;
use crate::model::elb::attributes::{self, Kind};
use crate::model::elb::{self, keys, registered, same};
use crate::state::error::Result;
use crate::state::State;
use berth_proto::v1::{
    ElbAction, ElbCondition, ElbListener, ElbLoadBalancer, ElbTargetGroup, Route, RouteAnswer,
    RouteCondition, Target,
};
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
            let conditions = route_conditions(&rule.conditions);
            let lb = lbs.iter().find(|lb| lb.arn == l.load_balancer_arn);
            let lb_attr = |key: &str| {
                lb.map_or("", |lb| {
                    attributes::value(Kind::LoadBalancer, &lb.attributes, key)
                })
                .to_string()
            };
            let listener = Route {
                cluster: lb_name.to_string(),
                listener_port: l.port,
                host_patterns: hosts.clone(),
                path_patterns: paths.clone(),
                priority: rule.priority,
                rule: rule.arn.clone(),
                listener_protocol: l.protocol.clone(),
                conditions: conditions.clone(),
                drop_invalid_header_fields: lb_attr(
                    "routing.http.drop_invalid_header_fields.enabled",
                ) == "true",
                xff_mode: lb_attr("routing.http.xff_header_processing.mode"),
                accept_proxy_protocol: attributes::value(
                    Kind::Listener,
                    &l.attributes,
                    "berth.proxy_protocol.inbound.enabled",
                ) == "true",
                ..Default::default()
            };
            for a in rule.actions.iter().filter(|a| a.r#type != "forward") {
                if let Some(answer) = answer(a) {
                    out.push(Route {
                        service_name: a.r#type.clone(),
                        service_arn: rule.arn.clone(),
                        health_check: Some(berth_core::lb::health_check_with_defaults(None)),
                        weight: 1,
                        answer: Some(answer),
                        ..listener.clone()
                    });
                }
            }
            for a in rule.actions.iter().filter(|a| a.r#type == "forward") {
                for w in &a.target_groups {
                    let Some(tg) = groups.iter().find(|g| same(&g.arn, &w.target_group_arn)) else {
                        continue;
                    };
                    let tg_attr =
                        |key: &str| attributes::value(Kind::TargetGroup, &tg.attributes, key);
                    let base = Route {
                        service_name: tg.name.clone(),
                        service_arn: tg.arn.clone(),
                        health_check: Some(berth_core::lb::health_check_with_defaults(
                            tg.health_check.as_ref(),
                        )),
                        drain_timeout_seconds: tg.deregistration_delay_seconds,
                        algorithm: tg_attr("load_balancing.algorithm.type").to_string(),
                        slow_start_seconds: tg_attr("slow_start.duration_seconds")
                            .parse()
                            .unwrap_or(0),
                        stickiness_seconds: if tg_attr("stickiness.enabled") == "true"
                            && tg_attr("stickiness.type") == "lb_cookie"
                        {
                            tg_attr("stickiness.lb_cookie.duration_seconds")
                                .parse()
                                .unwrap_or(0)
                        } else {
                            0
                        },
                        weight: w.weight.saturating_mul(1000),
                        protocol: if l.protocol == "TCP" {
                            "TCP".into()
                        } else {
                            String::new()
                        },
                        proxy_protocol_v2: tg.protocol == "TCP"
                            && tg_attr("proxy_protocol_v2.enabled") == "true",
                        ..listener.clone()
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
    targets.extend(registered::routing_targets(tg, crate::time::now_millis()));
    targets.sort_by(|a, b| (&a.task_arn, a.port).cmp(&(&b.task_arn, b.port)));
    targets.dedup_by(|a, b| a.task_arn == b.task_arn && a.port == b.port);
    targets
}

/// The conditions the proxy checks beyond host and path.
fn route_conditions(conditions: &[ElbCondition]) -> Vec<RouteCondition> {
    conditions
        .iter()
        .filter(|c| !matches!(c.field.as_str(), "host-header" | "path-pattern"))
        .map(|c| RouteCondition {
            field: c.field.clone(),
            name: c.header_name.clone(),
            values: c.values.clone(),
        })
        .collect()
}

/// What the proxy answers for a redirect or fixed-response action.
fn answer(a: &ElbAction) -> Option<RouteAnswer> {
    if let Some(r) = &a.redirect {
        return Some(RouteAnswer {
            r#type: "redirect".into(),
            status: if r.status_code == "HTTP_302" {
                302
            } else {
                301
            },
            protocol: r.protocol.clone(),
            host: r.host.clone(),
            port: r.port.clone(),
            path: r.path.clone(),
            query: r.query.clone(),
            ..Default::default()
        });
    }
    let f = a.fixed_response.as_ref()?;
    Some(RouteAnswer {
        r#type: "fixed-response".into(),
        status: f.status_code.parse().unwrap_or(200),
        content_type: f.content_type.clone(),
        body: f.message_body.clone(),
        ..Default::default()
    })
}
