//! The ELBv2 calls IaC tools make right after creating a resource: tags, attributes,
//! RegisterTargets/DeregisterTargets, SetRulePriorities and DescribeAccountLimits, in botocore's
//! shapes.

use super::ctx::Ctx;
use super::query::Params;
use super::shapes;
use super::xml::Xml;
use crate::model::elb::{self, attributes, priorities, registered, tags};
use crate::state::error::{Error, Result};
use berth_proto::v1::KeyValuePair;

/// `Tags.member.N.Key` / `.Value`.
pub fn tag_list(p: &Params, prefix: &str) -> Vec<KeyValuePair> {
    (1..)
        .map_while(|i| {
            let key = p.get(&format!("{prefix}.member.{i}.Key"))?;
            Some(KeyValuePair {
                name: key.to_string(),
                value: p.text(&format!("{prefix}.member.{i}.Value")),
            })
        })
        .collect()
}

pub fn add_tags(ctx: &Ctx<'_>, p: &Params, _: &mut Xml) -> Result<()> {
    tags::add(ctx.state, &p.list("ResourceArns"), &tag_list(p, "Tags"))
}

pub fn remove_tags(ctx: &Ctx<'_>, p: &Params, _: &mut Xml) -> Result<()> {
    tags::remove(ctx.state, &p.list("ResourceArns"), &p.list("TagKeys"))
}

pub fn describe_tags(ctx: &Ctx<'_>, p: &Params, x: &mut Xml) -> Result<()> {
    let described = tags::describe(ctx.state, &p.list("ResourceArns"))?;
    x.list("TagDescriptions", &described, |x, (arn, tags)| {
        x.text("ResourceArn", arn);
        write_tags(x, tags);
    });
    Ok(())
}

fn write_tags(x: &mut Xml, tags: &[KeyValuePair]) {
    x.list("Tags", tags, |x, t| {
        x.text("Key", &t.name);
        x.text("Value", &t.value);
    });
}

/// `Attributes.member.N.Key` / `.Value`.
fn attribute_list(p: &Params) -> Vec<(String, String)> {
    (1..)
        .map_while(|i| {
            let key = p.get(&format!("Attributes.member.{i}.Key"))?;
            Some((
                key.to_string(),
                p.text(&format!("Attributes.member.{i}.Value")),
            ))
        })
        .collect()
}

fn write_attributes(x: &mut Xml, attrs: &[(String, String)]) {
    x.list("Attributes", attrs, |x, (k, v)| {
        x.text("Key", k);
        x.text("Value", v);
    });
}

pub fn describe_load_balancer_attributes(ctx: &Ctx<'_>, p: &Params, x: &mut Xml) -> Result<()> {
    let lb = elb::get_load_balancer(ctx.state, &p.required("LoadBalancerArn")?)?;
    write_attributes(
        x,
        &attributes::effective(attributes::Kind::LoadBalancer, &lb.attributes),
    );
    Ok(())
}

pub fn modify_load_balancer_attributes(ctx: &Ctx<'_>, p: &Params, x: &mut Xml) -> Result<()> {
    let arn = p.required("LoadBalancerArn")?;
    let attrs = attributes::modify_load_balancer(ctx.state, &arn, &attribute_list(p))?;
    write_attributes(x, &attrs);
    Ok(())
}

pub fn describe_target_group_attributes(ctx: &Ctx<'_>, p: &Params, x: &mut Xml) -> Result<()> {
    let tg = elb::get_target_group(ctx.state, &p.required("TargetGroupArn")?)?;
    write_attributes(x, &attributes::target_group(&tg));
    Ok(())
}

pub fn modify_target_group_attributes(ctx: &Ctx<'_>, p: &Params, x: &mut Xml) -> Result<()> {
    let arn = p.required("TargetGroupArn")?;
    let attrs = attributes::modify_target_group(ctx.state, &arn, &attribute_list(p))?;
    write_attributes(x, &attrs);
    Ok(())
}

pub fn describe_listener_attributes(ctx: &Ctx<'_>, p: &Params, x: &mut Xml) -> Result<()> {
    let l = elb::get_listener(ctx.state, &p.required("ListenerArn")?)?;
    write_attributes(
        x,
        &attributes::effective(attributes::Kind::Listener, &l.attributes),
    );
    Ok(())
}

pub fn modify_listener_attributes(ctx: &Ctx<'_>, p: &Params, x: &mut Xml) -> Result<()> {
    let arn = p.required("ListenerArn")?;
    let attrs = attributes::modify_listener(ctx.state, &arn, &attribute_list(p))?;
    write_attributes(x, &attrs);
    Ok(())
}

/// `Targets.member.N.Id` / `.Port`.
fn target_list(p: &Params) -> Result<Vec<(String, Option<i32>)>> {
    let mut out = Vec::new();
    for i in 1.. {
        let Some(id) = p.get(&format!("Targets.member.{i}.Id")) else {
            break;
        };
        out.push((id.to_string(), p.int(&format!("Targets.member.{i}.Port"))?));
    }
    Ok(out)
}

pub fn register_targets(ctx: &Ctx<'_>, p: &Params, _: &mut Xml) -> Result<()> {
    registered::register(ctx.state, &p.required("TargetGroupArn")?, &target_list(p)?)
}

pub fn deregister_targets(ctx: &Ctx<'_>, p: &Params, _: &mut Xml) -> Result<()> {
    registered::deregister(ctx.state, &p.required("TargetGroupArn")?, &target_list(p)?)
}

pub fn set_rule_priorities(ctx: &Ctx<'_>, p: &Params, x: &mut Xml) -> Result<()> {
    let mut pairs = Vec::new();
    for i in 1.. {
        let Some(arn) = p.get(&format!("RulePriorities.member.{i}.RuleArn")) else {
            break;
        };
        let priority = p
            .int(&format!("RulePriorities.member.{i}.Priority"))?
            .ok_or_else(|| {
                Error::elb(
                    "ValidationError",
                    format!("RulePriorities.member.{i}.Priority: is required (1-50000)"),
                )
            })?;
        pairs.push((arn.to_string(), priority));
    }
    let rules = priorities::set(ctx.state, &pairs)?;
    x.list("Rules", &rules, shapes::rule);
    Ok(())
}

/// ELBv2's limit names with Berth's quotas (`berth_core::limits::ElbQuotas`).
pub fn describe_account_limits(ctx: &Ctx<'_>, _: &Params, x: &mut Xml) -> Result<()> {
    let q = &ctx.state.limits().elb;
    let limits: Vec<(&str, String)> = vec![
        (
            "listeners-per-application-load-balancer",
            q.listeners_per_load_balancer.to_string(),
        ),
        (
            "rules-per-application-load-balancer",
            q.rules_per_load_balancer.to_string(),
        ),
        (
            "target-groups-per-action-on-application-load-balancer",
            q.target_groups_per_action.to_string(),
        ),
        (
            "condition-values-per-alb-rule",
            q.condition_values_per_rule.to_string(),
        ),
    ];
    x.list("Limits", &limits, |x, (name, max)| {
        x.text("Name", name);
        x.text("Max", max);
    });
    Ok(())
}
