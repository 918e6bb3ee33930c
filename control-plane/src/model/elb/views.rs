//! Whole views for the CLI: a load balancer with its listeners and rules, a target group with
//! the load balancers that use it and its targets' health.

use super::targets::TargetStates;
use crate::state::error::Result;
use crate::state::State;
use berth_proto::v1::{
    ElbLoadBalancer, ElbTargetGroup, ListenerView, LoadBalancerView, TargetGroupView,
    TargetHealthView,
};

pub fn load_balancer_view(state: &State, lb: ElbLoadBalancer) -> Result<LoadBalancerView> {
    let listeners = super::listeners_of(state, &lb)?;
    let dns_name = super::dns_name(&lb, &listeners);
    let mut views = Vec::new();
    for l in listeners {
        views.push(ListenerView {
            rules: super::rules_of(state, &l)?,
            listener: Some(l),
        });
    }
    Ok(LoadBalancerView {
        load_balancer: Some(lb),
        dns_name,
        listeners: views,
    })
}

pub fn target_group_view(
    state: &State,
    proxies: &dyn TargetStates,
    tg: ElbTargetGroup,
) -> Result<TargetGroupView> {
    let targets = super::target_health(state, proxies, &tg)?
        .into_iter()
        .map(|t| TargetHealthView {
            service_name: t.service_name,
            task_arn: t.task_arn,
            address: t.address,
            port: t.port,
            state: t.state,
            reason: t.reason,
            description: t.description,
        })
        .collect();
    Ok(TargetGroupView {
        load_balancer_arns: super::load_balancers_of(state, &tg)?,
        target_group: Some(tg),
        targets,
    })
}
