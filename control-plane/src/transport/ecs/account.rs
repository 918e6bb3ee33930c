//! Account settings on the ECS wire: PutAccountSetting, PutAccountSettingDefault,
//! DeleteAccountSetting and ListAccountSettings (`effectiveSettings`, `principalArn`), kept by
//! `model::account_settings`. Every Berth key acts as the account's root user.

use super::error::{EcsError, EcsResult};
use super::input::Input;
use super::{paging, Ctx};
use crate::model::account_settings::{self, Setting};
use serde_json::{json, Value};

/// The principal a call names, or the caller (the root user) when it names none.
fn principal(input: &Input) -> EcsResult<String> {
    match input.str("principalArn")? {
        None => Ok(account_settings::root_arn()),
        Some(p) if p.starts_with("arn:aws:iam::") && p.len() > "arn:aws:iam::".len() => Ok(p),
        Some(p) => Err(EcsError::invalid(
            "principalArn",
            format!("{p:?} is not an IAM user, role or root ARN (arn:aws:iam::ACCOUNT:root)"),
        )),
    }
}

fn shape(s: &Setting) -> Value {
    json!({"name": s.name, "value": s.value, "principalArn": s.principal_arn, "type": s.kind})
}

pub fn put(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let name = input.required("name")?;
    let value = input.required("value")?;
    let who = principal(input)?;
    let s = account_settings::put(ctx.state, &who, &name, &value)?;
    Ok(json!({ "setting": shape(&s) }))
}

/// The account's default: the root user's setting.
pub fn put_default(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let name = input.required("name")?;
    let value = input.required("value")?;
    let s = account_settings::put(ctx.state, &account_settings::root_arn(), &name, &value)?;
    Ok(json!({ "setting": shape(&s) }))
}

pub fn delete(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let name = input.required("name")?;
    let who = principal(input)?;
    let s = account_settings::delete(ctx.state, &who, &name)?;
    Ok(json!({ "setting": shape(&s) }))
}

pub fn list(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let name = input.str("name")?;
    let value = input.str("value")?;
    let who = principal(input)?;
    let effective = input.bool("effectiveSettings")?.unwrap_or(false);
    let settings = account_settings::list(
        ctx.state,
        &who,
        name.as_deref(),
        value.as_deref(),
        effective,
    )?;
    let items = settings.iter().map(shape).collect();
    paging::page(input, items, "settings", 10, 10)
}
