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
    Ok(json!({ "taskDefinition": td, "tags": tags }))
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
