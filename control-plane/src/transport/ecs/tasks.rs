//! Tasks: RunTask (count, group, startedBy, overrides, placement), StartTask (on named container
//! instances), StopTask, DescribeTasks, ListTasks.

use super::error::{EcsError, EcsResult};
use super::input::Input;
use super::{each, paging, shapes, Ctx};
use crate::model::ecs_extras::{self, Extras};
use crate::state::error::Error;
use crate::{model::clusters, model::services, model::taskdef, model::tasks};
use berth_proto::v1::*;
use serde_json::{json, Value};

/// RunTask fields Berth acts on; the rest is kept and echoed.
const USED: &[&str] = &[
    "cluster",
    "taskDefinition",
    "count",
    "group",
    "startedBy",
    "placementStrategy",
    "placementConstraints",
    "containerInstances",
    "tags",
    "clientToken",
    "capacityProviderStrategy",
];

fn cluster_of(input: &Input) -> EcsResult<String> {
    Ok(input
        .str("cluster")?
        .filter(|c| !c.trim().is_empty())
        .unwrap_or_else(|| clusters::DEFAULT_CLUSTER.to_string()))
}

/// `overrides.containerOverrides`, checked against the definition's containers.
fn overrides(input: &Input, td: &TaskDefinition) -> EcsResult<Option<TaskOverride>> {
    let Some(o) = input.object("overrides")? else {
        return Ok(None);
    };
    let mut out = TaskOverride::default();
    for (i, co) in o.objects("containerOverrides")?.iter().enumerate() {
        let name = co.required("name")?;
        if !td.container_definitions.iter().any(|c| c.name == name) {
            return Err(EcsError::invalid(
                &format!("overrides.containerOverrides[{i}].name"),
                format!(
                    "{name:?} is not a container of {}:{}",
                    td.family, td.revision
                ),
            ));
        }
        let mut environment = Vec::new();
        for kv in co.objects("environment")? {
            environment.push(KeyValuePair {
                name: kv.required("name")?,
                value: kv.text("value")?,
            });
        }
        let mut resource_requirements = Vec::new();
        for r in co.objects("resourceRequirements")? {
            resource_requirements.push(ResourceRequirement {
                r#type: r.required("type")?,
                value: r.required("value")?,
            });
        }
        // Whole values are checked against the definition once applied (task_overrides).
        out.container_overrides.push(ContainerOverride {
            name,
            command: co.strings("command")?,
            environment,
            cpu: co.int_in("cpu", 0..=i64::from(i32::MAX))?,
            memory: co.int_in("memory", 0..=i64::from(i32::MAX))?,
            memory_reservation: co.int_in("memoryReservation", 0..=i64::from(i32::MAX))?,
            resource_requirements,
        });
    }
    out.cpu = o.text("cpu")?;
    out.memory = o.text("memory")?;
    Ok(Some(out))
}

fn shape(ctx: &Ctx<'_>, t: &Task, with_tags: bool) -> EcsResult<Value> {
    let mut extras = ecs_extras::get(ctx.state, &tasks::key_of(t))?;
    if !with_tags {
        extras.tags.clear();
    }
    Ok(shapes::task(t, &extras))
}

fn launch(ctx: &Ctx<'_>, input: &Input, instances: Vec<String>) -> EcsResult<Value> {
    let cluster = cluster_of(input)?;
    let reference = input.required("taskDefinition")?;
    let count = input.int_in("count", 1..=10)?.unwrap_or(1);
    let tags = input.tags("tags")?;
    let errs = ecs_extras::check_tags("tags", &tags);
    if !errs.is_empty() {
        return Err(Error::Invalid(errs).into());
    }
    clusters::get_active(ctx.state, &cluster)?;
    let td = taskdef::describe(ctx.state, &reference)?;
    let overrides = overrides(input, &td)?;
    let (placement_strategy, placement_constraints) = super::input::placement(input)?;
    let req = RunTaskRequest {
        cluster: cluster.clone(),
        task_definition: reference,
        count,
        started_by: input.text("startedBy")?,
        group: input.text("group")?,
        overrides,
        placement_strategy,
        placement_constraints,
        container_instances: instances,
        capacity_provider_strategy: super::capacity::strategy(input, "capacityProviderStrategy")?,
    };
    let token = match input.str("clientToken")? {
        Some(t) => Some(tasks::run_tokens::RunToken::of(
            berth_core::arn::cluster_name(&req.cluster),
            &t,
            &input.value(),
        )?),
        None => None,
    };
    let reply = match tasks::run_once(ctx.state, ctx.sessions, req, token.as_ref()) {
        Ok(r) => r,
        // The same token with another request, as ECS answers it.
        Err(Error::Client(m)) if token.is_some() && m.starts_with("clientToken ") => {
            return Err(EcsError::new("ConflictException", m))
        }
        Err(e) => return Err(e.into()),
    };
    let extras = Extras {
        tags,
        fields: input.rest(USED),
    };
    let mut out = Vec::new();
    for t in &reply.tasks {
        ecs_extras::store(ctx.state, &tasks::key_of(t), &extras)?;
        out.push(shape(ctx, t, true)?);
    }
    // Forgotten tasks leave their extras behind; a launch is a fine time to sweep them.
    ecs_extras::forget_orphans(ctx.state, "task/")?;
    let failures: Vec<Value> = reply
        .failures
        .iter()
        .map(|f| shapes::failure(&f.arn, &f.reason, &f.detail))
        .collect();
    Ok(json!({ "tasks": out, "failures": failures }))
}

pub fn run(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    launch(ctx, input, Vec::new())
}

pub fn start(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let instances = input.required_strings("containerInstances")?;
    if instances.len() > 10 {
        return Err(EcsError::invalid(
            "containerInstances",
            format!("{} given; at most 10", instances.len()),
        ));
    }
    launch(ctx, input, instances)
}

pub fn stop(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let cluster = cluster_of(input)?;
    let task = input.required("task")?;
    let reason = input.text("reason")?;
    clusters::describe(ctx.state, &cluster)?;
    let t = tasks::stop(ctx.state, &cluster, &task, &reason)?;
    Ok(json!({ "task": shape(ctx, &t, true)? }))
}

pub fn describe(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let cluster = cluster_of(input)?;
    let names = input.required_strings("tasks")?;
    if names.len() > 100 {
        return Err(EcsError::invalid(
            "tasks",
            format!("{} given; at most 100", names.len()),
        ));
    }
    let with_tags = input.strings("include")?.iter().any(|i| i == "TAGS");
    clusters::describe(ctx.state, &cluster)?;
    let (found, failures) = each(
        &names,
        |n| tasks::find(ctx.state, &cluster, n),
        |n| {
            if n.starts_with("arn:") {
                n.to_string()
            } else {
                berth_core::arn::task(&cluster, n)
            }
        },
    )?;
    let tasks = found
        .iter()
        .map(|t| shape(ctx, t, with_tags))
        .collect::<EcsResult<Vec<_>>>()?;
    Ok(json!({ "tasks": tasks, "failures": failures }))
}

pub fn list(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let cluster = cluster_of(input)?;
    let desired = input.choice("desiredStatus", &["RUNNING", "PENDING", "STOPPED"])?;
    input.choice(
        "launchType",
        &["EC2", "FARGATE", "EXTERNAL", "MANAGED_INSTANCES"],
    )?;
    let service = input.text("serviceName")?;
    let started_by = input.text("startedBy")?;
    clusters::describe(ctx.state, &cluster)?;
    if !service.is_empty() {
        services::find(ctx.state, &cluster, &service)?;
    }
    let req = ListTasksRequest {
        cluster: cluster.clone(),
        service_name: berth_core::arn::last_segment(&service).to_string(),
        desired_status: desired.clone().unwrap_or_default(),
        family: input.text("family")?,
        container_instance: input.text("containerInstance")?,
    };
    let found = if desired.as_deref() == Some("PENDING") {
        Vec::new()
    } else {
        tasks::list(ctx.state, &req)?
    };
    let items = found
        .into_iter()
        .filter(|t| started_by.is_empty() || t.started_by == started_by)
        .map(|t| Value::String(t.task_arn))
        .collect();
    paging::page(input, items, "taskArns", 100, 100)
}
