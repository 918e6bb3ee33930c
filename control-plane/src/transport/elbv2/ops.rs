//! The ELBv2 operations: each reads its parameters, calls the `elb` service layer and writes its
//! result in botocore's shape.

use super::iac;
use super::query::Params;
use super::shapes;
use super::xml::Xml;
use crate::model::elb::{self, ListenerChange, NewListener, NewRule, NewTargetGroup};
use crate::state::error::{Error, Result};
use berth_proto::v1::{ElbListener, ElbLoadBalancer, ElbRule, ElbTargetGroup};

pub use super::ctx::{Ctx, Handler};

pub const OPERATIONS: &[(&str, Handler)] = &[
    ("CreateLoadBalancer", create_load_balancer),
    ("DescribeLoadBalancers", describe_load_balancers),
    ("DeleteLoadBalancer", delete_load_balancer),
    ("CreateTargetGroup", create_target_group),
    ("DescribeTargetGroups", describe_target_groups),
    ("ModifyTargetGroup", modify_target_group),
    ("DeleteTargetGroup", delete_target_group),
    ("CreateListener", create_listener),
    ("DescribeListeners", describe_listeners),
    ("ModifyListener", modify_listener),
    ("DeleteListener", delete_listener),
    ("CreateRule", create_rule),
    ("DescribeRules", describe_rules),
    ("ModifyRule", modify_rule),
    ("DeleteRule", delete_rule),
    ("DescribeTargetHealth", describe_target_health),
    ("SetRulePriorities", iac::set_rule_priorities),
    ("AddTags", iac::add_tags),
    ("RemoveTags", iac::remove_tags),
    ("DescribeTags", iac::describe_tags),
    (
        "DescribeLoadBalancerAttributes",
        iac::describe_load_balancer_attributes,
    ),
    (
        "ModifyLoadBalancerAttributes",
        iac::modify_load_balancer_attributes,
    ),
    (
        "DescribeTargetGroupAttributes",
        iac::describe_target_group_attributes,
    ),
    (
        "ModifyTargetGroupAttributes",
        iac::modify_target_group_attributes,
    ),
    (
        "DescribeListenerAttributes",
        iac::describe_listener_attributes,
    ),
    ("ModifyListenerAttributes", iac::modify_listener_attributes),
    ("RegisterTargets", iac::register_targets),
    ("DeregisterTargets", iac::deregister_targets),
    ("DescribeAccountLimits", iac::describe_account_limits),
    ("AddListenerCertificates", super::certs::add),
    ("RemoveListenerCertificates", super::certs::remove),
    ("DescribeListenerCertificates", super::certs::describe),
    ("DescribeSSLPolicies", super::certs::describe_ssl_policies),
];

/// Tags given on a create (`Tags.member.N`), put on the new resource.
fn tag_new(ctx: &Ctx<'_>, p: &Params, arn: &str) -> Result<()> {
    let tags = iac::tag_list(p, "Tags");
    if tags.is_empty() {
        return Ok(());
    }
    elb::tags::add(ctx.state, &[arn.to_string()], &tags)
}

fn write_lbs(ctx: &Ctx<'_>, x: &mut Xml, lbs: &[ElbLoadBalancer]) -> Result<()> {
    let mut with = Vec::new();
    for lb in lbs {
        with.push((lb, elb::listeners_of(ctx.state, lb)?));
    }
    x.list("LoadBalancers", &with, |x, (lb, l)| {
        shapes::load_balancer(x, lb, l)
    });
    Ok(())
}

fn create_load_balancer(ctx: &Ctx<'_>, p: &Params, x: &mut Xml) -> Result<()> {
    let name = p.required("Name")?;
    elb::tags::check(&iac::tag_list(p, "Tags"))?;
    let lb = elb::create_load_balancer_of(ctx.state, &name, &p.text("Scheme"), &p.text("Type"))?;
    tag_new(ctx, p, &lb.arn)?;
    write_lbs(ctx, x, &[lb])
}

fn describe_load_balancers(ctx: &Ctx<'_>, p: &Params, x: &mut Xml) -> Result<()> {
    let mut wanted = p.list("LoadBalancerArns");
    wanted.extend(p.list("Names"));
    let lbs = if wanted.is_empty() {
        elb::list_load_balancers(ctx.state)?
    } else {
        wanted
            .iter()
            .map(|w| elb::get_load_balancer(ctx.state, w))
            .collect::<Result<_>>()?
    };
    write_lbs(ctx, x, &lbs)
}

fn delete_load_balancer(ctx: &Ctx<'_>, p: &Params, _: &mut Xml) -> Result<()> {
    elb::delete_load_balancer(ctx.state, &p.required("LoadBalancerArn")?)
}

fn write_tgs(ctx: &Ctx<'_>, x: &mut Xml, tgs: &[ElbTargetGroup]) -> Result<()> {
    let mut with = Vec::new();
    for tg in tgs {
        with.push((tg, elb::load_balancers_of(ctx.state, tg)?));
    }
    x.list("TargetGroups", &with, |x, (tg, lbs)| {
        shapes::target_group(x, tg, lbs)
    });
    Ok(())
}

fn create_target_group(ctx: &Ctx<'_>, p: &Params, x: &mut Xml) -> Result<()> {
    let req = NewTargetGroup {
        name: p.required("Name")?,
        protocol: p.text("Protocol"),
        port: p.int("Port")?,
        target_type: p.text("TargetType"),
        vpc_id: p.text("VpcId"),
        health: p.health()?,
        deregistration_delay_seconds: None,
    };
    elb::tags::check(&iac::tag_list(p, "Tags"))?;
    let tg = elb::create_target_group(ctx.state, req)?;
    tag_new(ctx, p, &tg.arn)?;
    write_tgs(ctx, x, &[tg])
}

fn describe_target_groups(ctx: &Ctx<'_>, p: &Params, x: &mut Xml) -> Result<()> {
    let mut wanted = p.list("TargetGroupArns");
    wanted.extend(p.list("Names"));
    let mut tgs: Vec<ElbTargetGroup> = if wanted.is_empty() {
        elb::list_target_groups(ctx.state)?
    } else {
        wanted
            .iter()
            .map(|w| elb::get_target_group(ctx.state, w))
            .collect::<Result<_>>()?
    };
    if let Some(lb) = p.get("LoadBalancerArn") {
        let lb = elb::get_load_balancer(ctx.state, lb)?;
        let mut keep = Vec::new();
        for tg in tgs {
            if elb::load_balancers_of(ctx.state, &tg)?.contains(&lb.arn) {
                keep.push(tg);
            }
        }
        tgs = keep;
    }
    write_tgs(ctx, x, &tgs)
}

fn modify_target_group(ctx: &Ctx<'_>, p: &Params, x: &mut Xml) -> Result<()> {
    let arn = p.required("TargetGroupArn")?;
    let tg = elb::modify_target_group(ctx.state, &arn, &p.health()?, None)?;
    write_tgs(ctx, x, &[tg])
}

fn delete_target_group(ctx: &Ctx<'_>, p: &Params, _: &mut Xml) -> Result<()> {
    elb::delete_target_group(ctx.state, &p.required("TargetGroupArn")?)
}

fn write_listeners(x: &mut Xml, ls: &[ElbListener]) {
    x.list("Listeners", ls, shapes::listener);
}

fn create_listener(ctx: &Ctx<'_>, p: &Params, x: &mut Xml) -> Result<()> {
    let req = NewListener {
        load_balancer_arn: p.required("LoadBalancerArn")?,
        port: p.int("Port")?.ok_or_else(|| {
            Error::elb(
                "ValidationError",
                "Port: is required (1-65535, the port people open)",
            )
        })?,
        protocol: p.text("Protocol"),
        default_actions: p.actions("DefaultActions")?,
        certificates: super::certs::certificates(p),
        ssl_policy: p.get("SslPolicy").map(str::to_string),
    };
    elb::tags::check(&iac::tag_list(p, "Tags"))?;
    let l = elb::create_listener(ctx.state, req)?;
    tag_new(ctx, p, &l.arn)?;
    write_listeners(x, &[l]);
    Ok(())
}

fn describe_listeners(ctx: &Ctx<'_>, p: &Params, x: &mut Xml) -> Result<()> {
    let arns = p.list("ListenerArns");
    let ls = if !arns.is_empty() {
        arns.iter()
            .map(|a| elb::get_listener(ctx.state, a))
            .collect::<Result<Vec<_>>>()?
    } else if let Some(lb) = p.get("LoadBalancerArn") {
        let lb = elb::get_load_balancer(ctx.state, lb)?;
        elb::listeners_of(ctx.state, &lb)?
    } else {
        return Err(Error::elb(
            "ValidationError",
            "LoadBalancerArn: give a load balancer ARN or ListenerArns",
        ));
    };
    write_listeners(x, &ls);
    Ok(())
}

fn modify_listener(ctx: &Ctx<'_>, p: &Params, x: &mut Xml) -> Result<()> {
    let arn = p.required("ListenerArn")?;
    let change = ListenerChange {
        port: p.int("Port")?,
        protocol: p.get("Protocol").map(str::to_string),
        default_actions: if p.has_list("DefaultActions") {
            Some(p.actions("DefaultActions")?)
        } else {
            None
        },
        certificates: Some(super::certs::certificates(p)).filter(|c| !c.is_empty()),
        ssl_policy: p.get("SslPolicy").map(str::to_string),
    };
    let l = elb::modify_listener(ctx.state, &arn, &change)?;
    write_listeners(x, &[l]);
    Ok(())
}

fn delete_listener(ctx: &Ctx<'_>, p: &Params, _: &mut Xml) -> Result<()> {
    elb::delete_listener(ctx.state, &p.required("ListenerArn")?)
}

fn write_rules(x: &mut Xml, rules: &[ElbRule]) {
    x.list("Rules", rules, shapes::rule);
}

fn create_rule(ctx: &Ctx<'_>, p: &Params, x: &mut Xml) -> Result<()> {
    let priority = p
        .int("Priority")?
        .ok_or_else(|| Error::elb("ValidationError", "Priority: is required (1-50000)"))?;
    let req = NewRule {
        listener_arn: p.required("ListenerArn")?,
        priority,
        conditions: p.conditions("Conditions")?,
        actions: p.actions("Actions")?,
    };
    elb::tags::check(&iac::tag_list(p, "Tags"))?;
    let r = elb::create_rule(ctx.state, req)?;
    tag_new(ctx, p, &r.arn)?;
    write_rules(x, &[r]);
    Ok(())
}

fn describe_rules(ctx: &Ctx<'_>, p: &Params, x: &mut Xml) -> Result<()> {
    let arns = p.list("RuleArns");
    let rules = if !arns.is_empty() {
        arns.iter()
            .map(|a| elb::get_rule(ctx.state, a))
            .collect::<Result<Vec<_>>>()?
    } else if let Some(l) = p.get("ListenerArn") {
        let l = elb::get_listener(ctx.state, l)?;
        elb::rules_of(ctx.state, &l)?
    } else {
        return Err(Error::elb(
            "ValidationError",
            "ListenerArn: give a listener ARN or RuleArns",
        ));
    };
    write_rules(x, &rules);
    Ok(())
}

fn modify_rule(ctx: &Ctx<'_>, p: &Params, x: &mut Xml) -> Result<()> {
    let arn = p.required("RuleArn")?;
    let conditions = if p.has_list("Conditions") {
        Some(p.conditions("Conditions")?)
    } else {
        None
    };
    let actions = if p.has_list("Actions") {
        Some(p.actions("Actions")?)
    } else {
        None
    };
    let r = elb::modify_rule(ctx.state, &arn, conditions, actions)?;
    write_rules(x, &[r]);
    Ok(())
}

fn delete_rule(ctx: &Ctx<'_>, p: &Params, _: &mut Xml) -> Result<()> {
    elb::delete_rule(ctx.state, &p.required("RuleArn")?)
}

fn describe_target_health(ctx: &Ctx<'_>, p: &Params, x: &mut Xml) -> Result<()> {
    let tg = elb::get_target_group(ctx.state, &p.required("TargetGroupArn")?)?;
    let mut rows = elb::target_health(ctx.state, ctx.proxies, &tg)?;
    let wanted: Vec<(String, Option<i32>)> = p
        .list("Targets")
        .into_iter()
        .map(|id| (id, None))
        .chain(
            (1..=100)
                .map_while(|i| {
                    let id = p.get(&format!("Targets.member.{i}.Id"))?;
                    let port = p.get(&format!("Targets.member.{i}.Port"));
                    Some((id.to_string(), port.and_then(|v| v.parse().ok())))
                })
                .collect::<Vec<_>>(),
        )
        .collect();
    if !wanted.is_empty() {
        rows.retain(|r| {
            wanted
                .iter()
                .any(|(id, port)| *id == r.address && port.is_none_or(|p| p == r.port))
        });
    }
    x.list("TargetHealthDescriptions", &rows, shapes::target_health);
    Ok(())
}
