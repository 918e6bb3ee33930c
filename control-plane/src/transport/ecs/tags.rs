//! ListTagsForResource, TagResource and UntagResource, on clusters, task definitions, services,
//! tasks and container instances, by ARN.

use super::error::EcsResult;
use super::input::Input;
use super::Ctx;
use crate::model::ecs_extras;
use serde_json::{json, Value};

pub fn list(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let resource = input.required("resourceArn")?;
    let key = ecs_extras::object_of_arn(ctx.state, &resource)?;
    Ok(json!({ "tags": ecs_extras::get(ctx.state, &key)?.tags }))
}

pub fn tag(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let resource = input.required("resourceArn")?;
    let tags = input.tags("tags")?;
    if tags.is_empty() {
        return Err(super::EcsError::invalid(
            "tags",
            "is required (a list of at least one {key, value})",
        ));
    }
    let key = ecs_extras::object_of_arn(ctx.state, &resource)?;
    ecs_extras::tag(ctx.state, &key, &tags)?;
    Ok(json!({}))
}

pub fn untag(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let resource = input.required("resourceArn")?;
    let keys = input.required_strings("tagKeys")?;
    let key = ecs_extras::object_of_arn(ctx.state, &resource)?;
    ecs_extras::untag(ctx.state, &key, &keys)?;
    Ok(json!({}))
}
