//! Task definitions: RegisterTaskDefinition (the request is the ECS JSON Berth already reads),
//! DescribeTaskDefinition (include TAGS), ListTaskDefinitions (familyPrefix, status, sort),
//! ListTaskDefinitionFamilies, DeregisterTaskDefinition, DeleteTaskDefinitions.

use super::error::EcsResult;
use super::input::Input;
use super::{paging, shapes, Ctx};
use crate::model::ecs_extras::{self, Extras};
use crate::model::taskdef;
use crate::state::error::Error;
use crate::state::keys;
use berth_proto::v1::TaskDefinition;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Fields of the request Berth reads into the definition itself.
const USED: &[&str] = &[
    "family",
    "containerDefinitions",
    "cpu",
    "memory",
    "networkMode",
    "pidMode",
    "ipcMode",
    "tags",
];

fn key_of(td: &TaskDefinition) -> String {
    keys::task_definition(&td.family, td.revision)
}

fn shape(ctx: &Ctx<'_>, td: &TaskDefinition) -> EcsResult<(Value, Value)> {
    let extras = ecs_extras::get(ctx.state, &key_of(td))?;
    Ok((shapes::task_definition(td, &extras), json!(extras.tags)))
}

pub fn register(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    input.required("family")?;
    if input.objects("containerDefinitions")?.is_empty() {
        return Err(super::EcsError::invalid(
            "containerDefinitions",
            "is required (at least one container)",
        ));
    }
    refused_as_ecs_refuses(input)?;
    let tags = input.tags("tags")?;
    let errs = ecs_extras::check_tags("tags", &tags);
    if !errs.is_empty() {
        return Err(Error::Invalid(errs).into());
    }
    let mut body = input.value();
    if let Some(m) = body.as_object_mut() {
        m.remove("tags");
    }
    let extras = Extras {
        tags,
        fields: input.rest(USED),
    };
    let reg = taskdef::register_json_with(ctx.state, &body.to_string(), |td| {
        Ok(vec![ecs_extras::put_op(&key_of(td), &extras)])
    })?;
    let kept = taskdef::unmodeled::paths(&reg.task_definition.unmodeled_json);
    if !kept.is_empty() {
        // One line a registration, so an operator sees what is kept but not acted on.
        tracing::info!(
            task_definition = %reg.task_definition.task_definition_arn,
            "RegisterTaskDefinition: Berth stores but does not act on: {}",
            kept.join(", ")
        );
    }
    let (td, tags) = shape(ctx, &reg.task_definition)?;
    let mut out = json!({ "taskDefinition": td });
    if tags.as_array().is_some_and(|t| !t.is_empty()) {
        out["tags"] = tags;
    }
    Ok(out)
}

/// The definitions ECS refuses with `ClientException` and its own words, checked in its order:
/// each container's name, then its image, then memory, which a definition that may run on EC2
/// (or EXTERNAL) needs at the task level or on every container.
fn refused_as_ecs_refuses(input: &Input) -> EcsResult<()> {
    let body = input.value();
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").trim().is_empty();
    let containers = body["containerDefinitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let client = |m: String| super::EcsError::new("ClientException", m);
    for c in &containers {
        if text(c.get("name")) {
            return Err(client("Container.name should not be null or empty.".into()));
        }
        if text(c.get("image")) {
            return Err(client(
                "Container.image should not be null or empty.".into(),
            ));
        }
    }
    let fargate_only = body["requiresCompatibilities"]
        .as_array()
        .is_some_and(|a| !a.is_empty() && a.iter().all(|x| x == "FARGATE"));
    let task_memory = match &body["memory"] {
        Value::String(s) => !s.trim().is_empty(),
        Value::Number(_) => true,
        _ => false,
    };
    if fargate_only || task_memory {
        return Ok(());
    }
    let set = |v: Option<&Value>| v.and_then(Value::as_i64).is_some_and(|n| n > 0);
    for c in &containers {
        if !set(c.get("memory")) && !set(c.get("memoryReservation")) {
            let name = c["name"].as_str().unwrap_or("");
            return Err(client(format!(
                "Invalid setting for container '{name}'. At least one of 'memory' or 'memoryReservation' must be specified."
            )));
        }
    }
    Ok(())
}

pub fn describe(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let reference = input.required("taskDefinition")?;
    let with_tags = input.strings("include")?.iter().any(|i| i == "TAGS");
    let td = taskdef::describe(ctx.state, &reference)?;
    let (td, tags) = shape(ctx, &td)?;
    let mut out = json!({ "taskDefinition": td });
    if with_tags {
        out["tags"] = tags;
    }
    Ok(out)
}

pub fn list(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    taskdef::sweep_deleted(ctx.state)?;
    let family = input.text("familyPrefix")?;
    let status = input
        .choice("status", &["ACTIVE", "INACTIVE", "DELETE_IN_PROGRESS"])?
        .unwrap_or_else(|| "ACTIVE".into());
    let sort = input.choice("sort", &["ASC", "DESC"])?;
    // ECS's familyPrefix names the whole family.
    let mut defs = taskdef::list(ctx.state, &family, "", &status)?;
    if sort.as_deref() == Some("DESC") {
        defs.reverse();
    }
    let items = defs
        .into_iter()
        .map(|t| Value::String(t.task_definition_arn))
        .collect();
    paging::page(input, items, "taskDefinitionArns", 100, 100)
}

pub fn families(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    taskdef::sweep_deleted(ctx.state)?;
    let prefix = input.text("familyPrefix")?;
    let status = input
        .choice("status", &["ACTIVE", "INACTIVE", "ALL"])?
        .unwrap_or_else(|| "ALL".into());
    let mut active: BTreeMap<String, bool> = BTreeMap::new();
    for td in taskdef::list(ctx.state, "", &prefix, "ALL")? {
        let a = active.entry(td.family.clone()).or_insert(false);
        *a |= td.status == "ACTIVE";
    }
    let items = active
        .into_iter()
        .filter(|(_, a)| match status.as_str() {
            "ACTIVE" => *a,
            "INACTIVE" => !*a,
            _ => true,
        })
        .map(|(f, _)| Value::String(f))
        .collect();
    paging::page(input, items, "families", 100, 100)
}

pub fn deregister(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let reference = input.required("taskDefinition")?;
    let td = taskdef::deregister(ctx.state, &reference)?;
    Ok(json!({ "taskDefinition": shape(ctx, &td)?.0 }))
}

pub fn delete(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let refs = input.required_strings("taskDefinitions")?;
    if refs.len() > 10 {
        return Err(super::EcsError::invalid(
            "taskDefinitions",
            format!("{} given; at most 10 a call", refs.len()),
        ));
    }
    let mut deleted = Vec::new();
    let mut failures = Vec::new();
    for r in &refs {
        match taskdef::delete(ctx.state, r) {
            Ok(td) => deleted.push(shape(ctx, &td)?.0),
            Err(e @ (Error::NotFound { .. } | Error::Client(_) | Error::Invalid(_))) => {
                let reason = e.to_string();
                let reason = reason.split_once(": ").map_or(reason.as_str(), |(_, r)| r);
                failures.push(shapes::failure(r, "TASK_DEFINITION_NOT_DELETABLE", reason))
            }
            Err(e) => return Err(e.into()),
        }
    }
    taskdef::sweep_deleted(ctx.state)?;
    Ok(json!({ "taskDefinitions": deleted, "failures": failures }))
}
