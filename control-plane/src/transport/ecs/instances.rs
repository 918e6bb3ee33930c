//! Container instances (Berth's nodes, which serve every cluster): ListContainerInstances
//! (status, filter), DescribeContainerInstances, UpdateContainerInstancesState,
//! DeregisterContainerInstance; and their custom attributes: PutAttributes, DeleteAttributes,
//! ListAttributes.

use super::error::{EcsError, EcsResult};
use super::input::Input;
use super::{each, paging, shapes, Ctx};
use crate::state::error::Error;
use crate::state::keys;
use crate::{model::clusters, model::ecs_extras};
use berth_core::arn;
use berth_core::scheduler::Query;
use berth_proto::v1::ContainerInstance;
use serde_json::{json, Value};
use std::collections::HashMap;

fn cluster_of(input: &Input) -> EcsResult<String> {
    let c = input
        .str("cluster")?
        .filter(|c| !c.trim().is_empty())
        .unwrap_or_else(|| clusters::DEFAULT_CLUSTER.to_string());
    Ok(arn::cluster_name(&c).to_string())
}

fn shape(ctx: &Ctx<'_>, n: &ContainerInstance, cluster: &str) -> EcsResult<Value> {
    let extras = ecs_extras::get(ctx.state, &keys::node(&n.ec2_instance_id))?;
    Ok(shapes::container_instance(n, cluster, &extras))
}

fn attributes_of(n: &ContainerInstance) -> HashMap<String, String> {
    let mut a: HashMap<String, String> = n
        .attributes
        .iter()
        .map(|a| (a.name.clone(), a.value.clone()))
        .collect();
    a.insert("ecs.instance-id".into(), n.ec2_instance_id.clone());
    a.insert("berth.node-name".into(), n.name.clone());
    a
}

pub fn list(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let cluster = cluster_of(input)?;
    let status = input.choice(
        "status",
        &[
            "ACTIVE",
            "DRAINING",
            "REGISTERING",
            "DEREGISTERING",
            "REGISTRATION_FAILED",
        ],
    )?;
    let filter = match input.str("filter")? {
        Some(f) if !f.trim().is_empty() => {
            Some(Query::parse(&f).map_err(|e| EcsError::invalid("filter", e))?)
        }
        _ => None,
    };
    clusters::get_active(ctx.state, &cluster)?;
    let items = crate::model::nodes::list(ctx.state, ctx.sessions)?
        .into_iter()
        .filter(|n| status.as_ref().is_none_or(|s| *s == n.status))
        .filter(|n| filter.as_ref().is_none_or(|q| q.matches(&attributes_of(n))))
        .map(|n| Value::String(shapes::instance_arn(&cluster, &n.container_instance_arn)))
        .collect();
    paging::page(input, items, "containerInstanceArns", 100, 100)
}

pub fn describe(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let cluster = cluster_of(input)?;
    let names = input.required_strings("containerInstances")?;
    clusters::describe(ctx.state, &cluster)?;
    let (found, failures) = each(
        &names,
        |n| crate::model::nodes::describe(ctx.state, ctx.sessions, n),
        |n| n.to_string(),
    )?;
    let instances = found
        .iter()
        .map(|n| shape(ctx, n, &cluster))
        .collect::<EcsResult<Vec<_>>>()?;
    Ok(json!({ "containerInstances": instances, "failures": failures }))
}

pub fn update_state(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let cluster = cluster_of(input)?;
    let names = input.required_strings("containerInstances")?;
    let Some(status) = input.choice(
        "status",
        &[
            "ACTIVE",
            "DRAINING",
            "REGISTERING",
            "DEREGISTERING",
            "REGISTRATION_FAILED",
        ],
    )?
    else {
        return Err(EcsError::invalid(
            "status",
            "is required (ACTIVE or DRAINING)",
        ));
    };
    if status != "ACTIVE" && status != "DRAINING" {
        return Err(EcsError::invalid(
            "status",
            format!("{status} cannot be set; ACTIVE or DRAINING"),
        ));
    }
    clusters::get_active(ctx.state, &cluster)?;
    let (found, failures) = each(
        &names,
        |n| crate::model::nodes::set_status(ctx.state, ctx.sessions, n, &status),
        |n| n.to_string(),
    )?;
    let instances = found
        .iter()
        .map(|n| shape(ctx, n, &cluster))
        .collect::<EcsResult<Vec<_>>>()?;
    Ok(json!({ "containerInstances": instances, "failures": failures }))
}

pub fn deregister(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let cluster = cluster_of(input)?;
    let node = input.required("containerInstance")?;
    let force = input.bool("force")?.unwrap_or(false);
    clusters::get_active(ctx.state, &cluster)?;
    let n = crate::model::nodes::deregister(ctx.state, ctx.sessions, &node, force)?;
    Ok(json!({ "containerInstance": shape(ctx, &n, &cluster)? }))
}

/// Attribute names and values (`None`: remove) for one node.
type Changes = Vec<(String, Option<String>)>;

/// `attributes[]` of Put/DeleteAttributes, by node.
fn attribute_changes(
    ctx: &Ctx<'_>,
    input: &Input,
    set: bool,
) -> EcsResult<Vec<(ContainerInstance, Changes)>> {
    let attrs = input.objects("attributes")?;
    if attrs.is_empty() {
        return Err(EcsError::invalid(
            "attributes",
            "is required (a list of at least one)",
        ));
    }
    let mut by_node: Vec<(ContainerInstance, Changes)> = Vec::new();
    for (i, a) in attrs.iter().enumerate() {
        let name = a.required("name")?;
        let valid = name.len() <= 128
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./@".contains(c));
        if !valid {
            return Err(EcsError::invalid(
                &format!("attributes[{i}].name"),
                "must be up to 128 letters, digits, hyphens, underscores, periods, at signs or slashes",
            ));
        }
        a.choice("targetType", &["container-instance"])?;
        let target = a.str("targetId")?.ok_or_else(|| {
            EcsError::invalid(
                &format!("attributes[{i}].targetId"),
                "is required (the container instance's ARN or id)",
            )
        })?;
        let node = crate::model::nodes::describe(ctx.state, ctx.sessions, &target).map_err(
            |e| match e {
                Error::NotFound { .. } => EcsError::new(
                    "TargetNotFoundException",
                    format!("attributes[{i}].targetId: no container instance {target}"),
                ),
                e => e.into(),
            },
        )?;
        let value = if set { Some(a.text("value")?) } else { None };
        match by_node
            .iter_mut()
            .find(|(n, _)| n.ec2_instance_id == node.ec2_instance_id)
        {
            Some((_, c)) => c.push((name, value)),
            None => by_node.push((node, vec![(name, value)])),
        }
    }
    Ok(by_node)
}

fn apply(ctx: &Ctx<'_>, input: &Input, set: bool) -> EcsResult<Value> {
    let cluster = cluster_of(input)?;
    clusters::get_active(ctx.state, &cluster)?;
    let changes = attribute_changes(ctx, input, set)?;
    let mut out = Vec::new();
    for (node, c) in &changes {
        ecs_extras::set_attributes(ctx.state, &node.ec2_instance_id, c)?;
        for (name, value) in c {
            out.push(shapes::prune(json!({
                "name": name, "value": value, "targetType": "container-instance",
                "targetId": shapes::instance_arn(&cluster, &node.container_instance_arn),
            })));
        }
    }
    Ok(json!({ "attributes": out }))
}

pub fn put_attributes(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    apply(ctx, input, true)
}

pub fn delete_attributes(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    apply(ctx, input, false)
}

pub fn list_attributes(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let cluster = cluster_of(input)?;
    if input
        .choice("targetType", &["container-instance"])?
        .is_none()
    {
        return Err(EcsError::invalid(
            "targetType",
            "is required (container-instance)",
        ));
    }
    let name = input.text("attributeName")?;
    let value = input.str("attributeValue")?;
    if value.is_some() && name.is_empty() {
        return Err(EcsError::invalid(
            "attributeValue",
            "needs attributeName as well",
        ));
    }
    clusters::get_active(ctx.state, &cluster)?;
    let mut items = Vec::new();
    for n in crate::model::nodes::list(ctx.state, ctx.sessions)? {
        let target = shapes::instance_arn(&cluster, &n.container_instance_arn);
        for a in &n.attributes {
            if (name.is_empty() || a.name == name) && value.as_ref().is_none_or(|v| *v == a.value) {
                items.push(shapes::prune(json!({
                    "name": a.name, "value": a.value,
                    "targetType": "container-instance", "targetId": target,
                })));
            }
        }
    }
    paging::page(input, items, "attributes", 100, 100)
}
