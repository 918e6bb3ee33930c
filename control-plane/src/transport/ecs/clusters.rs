//! Clusters: CreateCluster (tags, settings), DescribeClusters (include), ListClusters,
//! UpdateCluster / UpdateClusterSettings, DeleteCluster.

use super::error::{EcsError, EcsResult};
use super::input::Input;
use super::{each, paging, shapes, Ctx};
use crate::model::clusters;
use crate::model::ecs_extras::{self, Extras};
use crate::state::error::Error;
use crate::state::keys;
use berth_core::arn;
use serde_json::{json, Value};

fn check_settings(input: &Input) -> EcsResult<()> {
    for s in input.objects("settings")? {
        s.choice("name", &["containerInsights"])?;
        s.text("value")?;
    }
    Ok(())
}

fn shape(ctx: &Ctx<'_>, c: &berth_proto::v1::Cluster, with_tags: bool) -> EcsResult<Value> {
    let mut extras = ecs_extras::get(ctx.state, &keys::cluster(&c.cluster_name))?;
    if !with_tags {
        extras.tags.clear();
    }
    Ok(shapes::cluster(c, &extras))
}

pub fn create(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let name = input
        .str("clusterName")?
        .unwrap_or_else(|| clusters::DEFAULT_CLUSTER.to_string());
    let tags = input.tags("tags")?;
    let errs = ecs_extras::check_tags("tags", &tags);
    if !errs.is_empty() {
        return Err(Error::Invalid(errs).into());
    }
    check_settings(input)?;
    let mut fields = input.rest(&["clusterName", "tags"]);
    connect_defaults(ctx, &mut fields)?;
    let extras = Extras { tags, fields };
    // One batch with the cluster. Creating an ACTIVE cluster again returns it, as ECS does,
    // with the new tags added; a new one starts with only its own.
    let cluster = clusters::create_with(ctx.state, &name, |c, existed| {
        let key = keys::cluster(&c.cluster_name);
        Ok(vec![if existed {
            ecs_extras::merge_op(ctx.state, &key, extras.clone())?
        } else {
            ecs_extras::put_op(&key, &extras)
        }])
    })?;
    // With its live counts, as DescribeClusters shows it.
    let cluster = clusters::describe(ctx.state, &cluster.cluster_name)?;
    Ok(json!({ "cluster": shape(ctx, &cluster, true)? }))
}

pub fn describe(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let mut names = input.strings("clusters")?;
    if names.is_empty() {
        names.push(clusters::DEFAULT_CLUSTER.into());
    }
    let include = input.strings("include")?;
    let with_tags = include.iter().any(|i| i == "TAGS");
    let (found, failures) = each(
        &names,
        |n| clusters::describe(ctx.state, n),
        |n| arn::cluster(arn::cluster_name(n)),
    )?;
    let with_statistics = include.iter().any(|i| i == "STATISTICS");
    let mut clusters = Vec::new();
    for c in &found {
        let mut v = shape(ctx, c, with_tags)?;
        if with_statistics {
            // Every Berth task runs on a container instance: ECS counts those as EC2's.
            v["statistics"] = json!([
                {"name": "runningEC2TasksCount", "value": c.running_tasks_count.to_string()},
                {"name": "pendingEC2TasksCount", "value": c.pending_tasks_count.to_string()},
                {"name": "activeEC2ServiceCount", "value": c.active_services_count.to_string()},
            ]);
        }
        clusters.push(v);
    }
    Ok(json!({ "clusters": clusters, "failures": failures }))
}

pub fn list(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let mut arns: Vec<String> = clusters::list(ctx.state)?
        .into_iter()
        .map(|c| c.cluster_arn)
        .collect();
    arns.sort();
    let items = arns.into_iter().map(Value::String).collect();
    paging::page(input, items, "clusterArns", 100, 100)
}

/// UpdateCluster and UpdateClusterSettings: Berth keeps the settings and configuration.
pub fn update(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let name = input.required("cluster")?;
    check_settings(input)?;
    let cluster = clusters::get_active(ctx.state, &name)?;
    let key = keys::cluster(&cluster.cluster_name);
    let mut fields = input.rest(&["cluster"]);
    connect_defaults(ctx, &mut fields)?;
    let add = Extras {
        fields,
        ..Extras::default()
    };
    ecs_extras::merge(ctx.state, &key, add)?;
    Ok(json!({ "cluster": shape(ctx, &cluster, true)? }))
}

/// `serviceConnectDefaults.namespace`: the namespace it names (by name or ARN), made as an HTTP
/// namespace when a name is new, as ECS does; kept as its ARN, which DescribeClusters echoes.
fn connect_defaults(ctx: &Ctx<'_>, fields: &mut serde_json::Map<String, Value>) -> EcsResult<()> {
    let Some(Value::Object(d)) = fields.get_mut("serviceConnectDefaults") else {
        return Ok(());
    };
    let Some(name) = d
        .get("namespace")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return Err(EcsError::invalid(
            "serviceConnectDefaults.namespace",
            "is required: a Cloud Map namespace's name or ARN",
        ));
    };
    if name.trim().is_empty() {
        // An empty namespace turns the default off, as ECS has it.
        d.remove("namespace");
        return Ok(());
    }
    let arn = crate::model::discovery::namespaces::ensure_http(ctx.state, &name).map_err(|e| {
        if e.kind == "NamespaceNotFound" {
            EcsError::new(
                "NamespaceNotFoundException",
                format!("serviceConnectDefaults.namespace: {}", e.message),
            )
        } else {
            EcsError::invalid("serviceConnectDefaults.namespace", e.message)
        }
    })?;
    d.insert("namespace".into(), Value::String(arn));
    Ok(())
}

pub fn delete(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let name = input.required("cluster")?;
    let cluster = clusters::delete(ctx.state, &name).map_err(EcsError::from)?;
    Ok(json!({ "cluster": shape(ctx, &cluster, true)? }))
}
