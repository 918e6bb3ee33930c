//! Task sets of EXTERNAL services: CreateTaskSet, DescribeTaskSets, UpdateTaskSet,
//! DeleteTaskSet and UpdateServicePrimaryTaskSet (`model::tasksets`), in ECS's shapes with
//! each task set's computed, running and pending counts.

use super::error::{EcsError, EcsResult};
use super::input::Input;
use super::{shapes, Ctx};
use crate::model::tasksets::{self, NewTaskSet};
use crate::model::{services, tasks};
use crate::state::error::Error;
use berth_core::plan::tasksets::computed_desired_count;
use berth_proto::v1::{ListTasksRequest, Service, TaskSet};
use serde_json::{json, Value};

fn cluster_of(input: &Input) -> EcsResult<String> {
    input.required("cluster")
}

/// ECS's exception for a task set it does not know.
fn mapped(e: Error) -> EcsError {
    match e {
        Error::NotFound {
            kind: "TaskSet",
            ref name,
            ..
        } => EcsError::new(
            "TaskSetNotFoundException",
            format!("The specified task set does not exist: {name}"),
        ),
        e => e.into(),
    }
}

fn scale_of(input: &Input) -> EcsResult<f64> {
    let Some(s) = input.object("scale")? else {
        return Ok(100.0);
    };
    s.choice("unit", &["PERCENT"])?;
    Ok(s.number_in("value", 0.0..=100.0)?.unwrap_or(100.0))
}

/// A task set as ECS shows it, with its tasks counted.
pub fn shape(ctx: &Ctx<'_>, svc: &Service, ts: &TaskSet) -> EcsResult<Value> {
    let cluster = berth_core::arn::cluster_name(&svc.cluster_arn).to_string();
    let mine: Vec<_> = tasks::list(
        ctx.state,
        &ListTasksRequest {
            cluster,
            service_name: svc.service_name.clone(),
            ..Default::default()
        },
    )?
    .into_iter()
    .filter(|t| t.started_by == ts.id && t.desired_status == "RUNNING")
    .collect();
    let running = mine.iter().filter(|t| t.last_status == "RUNNING").count();
    let computed = computed_desired_count(svc, ts);
    let lbs: Vec<Value> = ts
        .load_balancers
        .iter()
        .map(|l| json!({"targetGroupArn": l.target_group_arn, "containerName": l.container_name, "containerPort": l.container_port}))
        .collect();
    Ok(shapes::prune(json!({
        "id": ts.id,
        "taskSetArn": ts.task_set_arn,
        "serviceArn": svc.service_arn,
        "clusterArn": svc.cluster_arn,
        "startedBy": ts.started_by,
        "externalId": ts.external_id,
        "status": ts.status,
        "taskDefinition": ts.task_definition,
        "computedDesiredCount": computed,
        "runningCount": running,
        "pendingCount": mine.len() - running,
        "createdAt": shapes::epoch(&ts.created_at),
        "updatedAt": shapes::epoch(&ts.updated_at),
        "launchType": "EC2",
        "loadBalancers": lbs,
        "serviceRegistries": [],
        "scale": {"value": ts.scale_percent, "unit": "PERCENT"},
        "stabilityStatus": if running as i32 == computed && mine.len() == running { "STEADY_STATE" } else { "STABILIZING" },
        "stabilityStatusAt": shapes::epoch(&ts.updated_at),
    })))
}

pub fn create(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let cluster = cluster_of(input)?;
    let service = input.required("service")?;
    let mut load_balancers = Vec::new();
    for (i, lb) in input.objects("loadBalancers")?.iter().enumerate() {
        load_balancers.push(berth_proto::v1::LoadBalancer {
            target_group_arn: lb.required("targetGroupArn")?,
            container_name: lb.required("containerName")?,
            container_port: lb.int_in("containerPort", 1..=65535)?.ok_or_else(|| {
                EcsError::invalid(&format!("loadBalancers[{i}].containerPort"), "is required")
            })?,
            ..Default::default()
        });
    }
    let req = NewTaskSet {
        task_definition: input.required("taskDefinition")?,
        external_id: input.text("externalId")?,
        scale_percent: scale_of(input)?,
        load_balancers,
        started_by: input.text("startedBy")?,
    };
    let (svc, ts) = tasksets::create(ctx.state, &cluster, &service, req).map_err(mapped)?;
    Ok(json!({ "taskSet": shape(ctx, &svc, &ts)? }))
}

pub fn describe(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let cluster = cluster_of(input)?;
    let service = input.required("service")?;
    crate::model::clusters::get_active(ctx.state, &cluster)?;
    let svc = services::find(ctx.state, &cluster, &service)?;
    let names = input.strings("taskSets")?;
    let mut found = Vec::new();
    let mut failures = Vec::new();
    if names.is_empty() {
        for ts in &svc.task_sets {
            found.push(shape(ctx, &svc, ts)?);
        }
    }
    for n in &names {
        match svc
            .task_sets
            .iter()
            .find(|ts| &ts.id == n || &ts.task_set_arn == n)
        {
            Some(ts) => found.push(shape(ctx, &svc, ts)?),
            None => failures.push(shapes::failure(n, "MISSING", "")),
        }
    }
    Ok(json!({ "taskSets": found, "failures": failures }))
}

pub fn update(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let cluster = cluster_of(input)?;
    let service = input.required("service")?;
    let id = input.required("taskSet")?;
    if !input.has("scale") {
        return Err(EcsError::invalid(
            "scale",
            "is required ({value, unit: PERCENT})",
        ));
    }
    let value = scale_of(input)?;
    let (svc, ts) = tasksets::scale(ctx.state, &cluster, &service, &id, value).map_err(mapped)?;
    Ok(json!({ "taskSet": shape(ctx, &svc, &ts)? }))
}

pub fn delete(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let cluster = cluster_of(input)?;
    let service = input.required("service")?;
    let id = input.required("taskSet")?;
    let force = input.bool("force")?.unwrap_or(false);
    let (svc, ts) = tasksets::delete(ctx.state, &cluster, &service, &id, force).map_err(mapped)?;
    Ok(json!({ "taskSet": shape(ctx, &svc, &ts)? }))
}

pub fn primary(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let cluster = cluster_of(input)?;
    let service = input.required("service")?;
    let id = input.required("primaryTaskSet")?;
    let (svc, ts) = tasksets::make_primary(ctx.state, &cluster, &service, &id).map_err(mapped)?;
    Ok(json!({ "taskSet": shape(ctx, &svc, &ts)? }))
}
