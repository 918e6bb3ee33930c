//! `berth.v1.LoadBalancers`: the ELBv2 resources for the CLI, over the same service layer as
//! the ELBv2 Query API (`crate::model::elb`).

use super::blocking;
use crate::live::proxies::Proxies;
use crate::model::elb::{self, HealthInput, NewListener, NewRule, NewTargetGroup};
use crate::state::State;
use berth_proto::v1::load_balancers_server::LoadBalancers;
use berth_proto::v1::*;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct LoadBalancersApi {
    pub state: State,
    pub proxies: Arc<Proxies>,
}

fn forward(to: Vec<ElbTargetWeight>) -> Vec<ElbAction> {
    vec![ElbAction {
        r#type: "forward".into(),
        single: to.len() == 1,
        target_groups: to,
        order: 0,
        ..Default::default()
    }]
}

#[tonic::async_trait]
impl LoadBalancers for LoadBalancersApi {
    async fn create_load_balancer(
        &self,
        req: Request<CreateLoadBalancerRequest>,
    ) -> Result<Response<LoadBalancerView>, Status> {
        let r = req.into_inner();
        let view = blocking(&self.state, move |s| {
            let lb = elb::create_load_balancer(s, &r.name, &r.scheme)?;
            elb::load_balancer_view(s, lb)
        })
        .await?;
        Ok(Response::new(view))
    }

    async fn list_load_balancers(
        &self,
        _req: Request<ListLoadBalancersRequest>,
    ) -> Result<Response<ListLoadBalancersReply>, Status> {
        let load_balancers = blocking(&self.state, |s| {
            elb::list_load_balancers(s)?
                .into_iter()
                .map(|lb| elb::load_balancer_view(s, lb))
                .collect()
        })
        .await?;
        Ok(Response::new(ListLoadBalancersReply { load_balancers }))
    }

    async fn describe_load_balancer(
        &self,
        req: Request<LoadBalancerRef>,
    ) -> Result<Response<LoadBalancerView>, Status> {
        let name = req.into_inner().load_balancer;
        let view = blocking(&self.state, move |s| {
            let lb = elb::get_load_balancer(s, &name)?;
            elb::load_balancer_view(s, lb)
        })
        .await?;
        Ok(Response::new(view))
    }

    async fn delete_load_balancer(
        &self,
        req: Request<LoadBalancerRef>,
    ) -> Result<Response<ElbDeleted>, Status> {
        let name = req.into_inner().load_balancer;
        blocking(&self.state, move |s| elb::delete_load_balancer(s, &name)).await?;
        Ok(Response::new(ElbDeleted {}))
    }

    async fn create_target_group(
        &self,
        req: Request<CreateTargetGroupRequest>,
    ) -> Result<Response<TargetGroupView>, Status> {
        let r = req.into_inner();
        let hc = r.health_check.unwrap_or_default();
        let new = NewTargetGroup {
            name: r.name,
            port: Some(r.port),
            health: HealthInput {
                path: Some(hc.path).filter(|p| !p.is_empty()),
                interval_seconds: hc.interval_seconds,
                timeout_seconds: hc.timeout_seconds,
                healthy_threshold: hc.healthy_threshold,
                unhealthy_threshold: hc.unhealthy_threshold,
                matcher: Some(hc.matcher).filter(|m| !m.is_empty()),
                protocol: Some(hc.protocol).filter(|p| !p.is_empty()),
            },
            deregistration_delay_seconds: r.deregistration_delay_seconds,
            ..Default::default()
        };
        let proxies = self.proxies.clone();
        let view = blocking(&self.state, move |s| {
            let tg = elb::create_target_group(s, new)?;
            elb::target_group_view(s, &proxies, tg)
        })
        .await?;
        Ok(Response::new(view))
    }

    async fn list_target_groups(
        &self,
        _req: Request<ListTargetGroupsRequest>,
    ) -> Result<Response<ListTargetGroupsReply>, Status> {
        let proxies = self.proxies.clone();
        let target_groups = blocking(&self.state, move |s| {
            elb::list_target_groups(s)?
                .into_iter()
                .map(|tg| elb::target_group_view(s, &proxies, tg))
                .collect()
        })
        .await?;
        Ok(Response::new(ListTargetGroupsReply { target_groups }))
    }

    async fn describe_target_group(
        &self,
        req: Request<TargetGroupRef>,
    ) -> Result<Response<TargetGroupView>, Status> {
        let name = req.into_inner().target_group;
        let proxies = self.proxies.clone();
        let view = blocking(&self.state, move |s| {
            let tg = elb::get_target_group(s, &name)?;
            elb::target_group_view(s, &proxies, tg)
        })
        .await?;
        Ok(Response::new(view))
    }

    async fn delete_target_group(
        &self,
        req: Request<TargetGroupRef>,
    ) -> Result<Response<ElbDeleted>, Status> {
        let name = req.into_inner().target_group;
        blocking(&self.state, move |s| elb::delete_target_group(s, &name)).await?;
        Ok(Response::new(ElbDeleted {}))
    }

    async fn create_listener(
        &self,
        req: Request<CreateListenerRequest>,
    ) -> Result<Response<ListenerView>, Status> {
        let r = req.into_inner();
        let view = blocking(&self.state, move |s| {
            let lb = elb::get_load_balancer(s, &r.load_balancer)?;
            let l = elb::create_listener(
                s,
                NewListener {
                    load_balancer_arn: lb.arn,
                    port: r.port,
                    protocol: "HTTP".into(),
                    default_actions: forward(r.forward),
                    ..Default::default()
                },
            )?;
            Ok(ListenerView {
                rules: elb::rules_of(s, &l)?,
                listener: Some(l),
            })
        })
        .await?;
        Ok(Response::new(view))
    }

    async fn delete_listener(
        &self,
        req: Request<ListenerRef>,
    ) -> Result<Response<ElbDeleted>, Status> {
        let arn = req.into_inner().listener_arn;
        blocking(&self.state, move |s| elb::delete_listener(s, &arn)).await?;
        Ok(Response::new(ElbDeleted {}))
    }

    async fn create_rule(
        &self,
        req: Request<CreateRuleRequest>,
    ) -> Result<Response<ElbRule>, Status> {
        let r = req.into_inner();
        let mut conditions = Vec::new();
        for (field, values) in [
            ("host-header", r.host_patterns),
            ("path-pattern", r.path_patterns),
        ] {
            if !values.is_empty() {
                conditions.push(ElbCondition {
                    field: field.into(),
                    values,
                    ..Default::default()
                });
            }
        }
        let new = NewRule {
            listener_arn: r.listener_arn,
            priority: r.priority,
            conditions,
            actions: forward(r.forward),
        };
        let rule = blocking(&self.state, move |s| elb::create_rule(s, new)).await?;
        Ok(Response::new(rule))
    }

    async fn delete_rule(&self, req: Request<RuleRef>) -> Result<Response<ElbDeleted>, Status> {
        let arn = req.into_inner().rule_arn;
        blocking(&self.state, move |s| elb::delete_rule(s, &arn)).await?;
        Ok(Response::new(ElbDeleted {}))
    }
}
