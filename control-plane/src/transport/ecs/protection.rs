//! Task scale-in protection: GetTaskProtection and UpdateTaskProtection
//! (`model::tasks::protection`), with ECS's `protectedTasks` and `failures`.

use super::error::EcsResult;
use super::input::Input;
use super::{shapes, Ctx};
use crate::model::tasks::protection::{self, Protection, Refused};
use serde_json::{json, Value};

fn reply(found: Vec<Protection>, refused: Vec<Refused>) -> Value {
    let protected: Vec<Value> = found
        .iter()
        .map(|p| {
            let mut v = json!({"taskArn": p.task_arn, "protectionEnabled": p.enabled});
            if let Some(ms) = p.expires_ms {
                v["expirationDate"] = json!(ms as f64 / 1000.0);
            }
            v
        })
        .collect();
    let failures: Vec<Value> = refused
        .iter()
        .map(|r| shapes::failure(&r.name, r.reason, &r.detail))
        .collect();
    json!({"protectedTasks": protected, "failures": failures})
}

pub fn get(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let cluster = input.required("cluster")?;
    let tasks = input.strings("tasks")?;
    let (found, refused) = protection::get(ctx.state, &cluster, &tasks, crate::time::now_millis())?;
    Ok(reply(found, refused))
}

pub fn update(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let cluster = input.required("cluster")?;
    let tasks = input.required_strings("tasks")?;
    let enabled = input.bool("protectionEnabled")?.ok_or_else(|| {
        super::EcsError::invalid("protectionEnabled", "is required (true or false)")
    })?;
    let minutes = protection::minutes(input.int("expiresInMinutes")?)?;
    let (done, refused) = protection::update(
        ctx.state,
        &cluster,
        &tasks,
        enabled,
        minutes,
        crate::time::now_millis(),
    )?;
    Ok(reply(done, refused))
}
