//! ECS account settings (PutAccountSetting, PutAccountSettingDefault, DeleteAccountSetting,
//! ListAccountSettings): stored per principal under `account-settings/<principal>/<name>` and
//! echoed back. Berth acts on none of them; the account's root user's settings are the account's
//! defaults, and a setting never set falls back to ECS's own default.

use crate::state::error::{Error, Result};
use crate::state::State;
use crate::store::Op;
use serde::{Deserialize, Serialize};

const PREFIX: &str = "account-settings/";

/// Every setting name ECS has (botocore's `SettingName`, and `dualStackIPv6` its docs name),
/// with the value an account has until it sets one.
pub const NAMES: &[(&str, &str)] = &[
    ("serviceLongArnFormat", "enabled"),
    ("taskLongArnFormat", "enabled"),
    ("containerInstanceLongArnFormat", "enabled"),
    ("awsvpcTrunking", "disabled"),
    ("containerInsights", "disabled"),
    ("dualStackIPv6", "disabled"),
    ("fargateFIPSMode", "disabled"),
    ("tagResourceAuthorization", "on"),
    ("fargateTaskRetirementWaitPeriod", "7"),
    ("guardDutyActivate", "off"),
    ("defaultLogDriverMode", "non-blocking"),
    ("fargateEventWindows", "disabled"),
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    pub name: String,
    pub value: String,
    #[serde(rename = "principalArn")]
    pub principal_arn: String,
    /// `user`, or `aws_managed` for what AWS sets (guardDutyActivate).
    #[serde(rename = "type")]
    pub kind: String,
}

/// `arn:aws:iam::ACCOUNT:root`: the principal whose settings are the account's defaults, and
/// the one every Berth key acts as (Berth has no IAM users).
pub fn root_arn() -> String {
    let prefix = berth_core::arn::prefix();
    let account = prefix
        .split(':')
        .nth(4)
        .unwrap_or(berth_core::arn::DEFAULT_ACCOUNT);
    format!("arn:aws:iam::{account}:root")
}

fn key(principal: &str, name: &str) -> String {
    format!("{PREFIX}{principal}/{name}")
}

/// The name checked against ECS's list, and the value against what the name takes.
pub fn check(name: &str, value: Option<&str>) -> Result<()> {
    if !NAMES.iter().any(|(n, _)| *n == name) {
        let all: Vec<&str> = NAMES.iter().map(|(n, _)| *n).collect();
        return Err(Error::invalid(
            "name",
            format!(
                "{name:?} is not an ECS account setting; use one of {}",
                all.join(", ")
            ),
        ));
    }
    if name == "guardDutyActivate" && value.is_some() {
        return Err(Error::Client(
            "guardDutyActivate is managed by AWS (GuardDuty) and cannot be set".into(),
        ));
    }
    let Some(value) = value else { return Ok(()) };
    let allowed: &[&str] = match name {
        "fargateTaskRetirementWaitPeriod" => &["0", "7", "14"],
        "defaultLogDriverMode" => &["blocking", "non-blocking"],
        "containerInsights" => &["enabled", "disabled", "enhanced"],
        "tagResourceAuthorization" => &["on", "off"],
        _ => &["enabled", "disabled"],
    };
    if !allowed.contains(&value) {
        return Err(Error::invalid(
            "value",
            format!(
                "{value:?} is not a value of {name}; use one of {}",
                allowed.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Sets `name` to `value` for `principal` (the root user's is the account default).
pub fn put(state: &State, principal: &str, name: &str, value: &str) -> Result<Setting> {
    check(name, Some(value))?;
    let setting = Setting {
        name: name.into(),
        value: value.into(),
        principal_arn: principal.into(),
        kind: "user".into(),
    };
    let bytes = serde_json::to_vec(&setting).map_err(|e| Error::Client(e.to_string()))?;
    state.commit(vec![Op::Put(key(principal, name), bytes)])?;
    Ok(setting)
}

/// The setting `principal` set itself, if any.
pub fn get(state: &State, principal: &str, name: &str) -> Result<Option<Setting>> {
    Ok(state
        .get_raw(&key(principal, name))?
        .and_then(|b| serde_json::from_slice(&b).ok()))
}

/// Removes what `principal` set for `name`; the setting as it was (the effective one when it
/// had set none, as ECS answers).
pub fn delete(state: &State, principal: &str, name: &str) -> Result<Setting> {
    check(name, None)?;
    let before = match get(state, principal, name)? {
        Some(s) => s,
        None => effective(state, principal, name)?,
    };
    state.commit(vec![Op::Delete(key(principal, name))])?;
    Ok(before)
}

/// What applies to `principal`: its own, else the root user's, else ECS's default.
pub fn effective(state: &State, principal: &str, name: &str) -> Result<Setting> {
    if let Some(s) = get(state, principal, name)? {
        return Ok(s);
    }
    let root = root_arn();
    if let Some(mut s) = get(state, &root, name)? {
        s.principal_arn = principal.into();
        return Ok(s);
    }
    let value = NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .unwrap_or("disabled");
    Ok(Setting {
        name: name.into(),
        value: value.into(),
        principal_arn: principal.into(),
        kind: if name == "guardDutyActivate" {
            "aws_managed".into()
        } else {
            "user".into()
        },
    })
}

/// ListAccountSettings: the principal's own settings, or with `effective` every setting as it
/// applies to it; narrowed to `name` (and `value`), in ECS's order of names.
pub fn list(
    state: &State,
    principal: &str,
    name: Option<&str>,
    value: Option<&str>,
    effective_settings: bool,
) -> Result<Vec<Setting>> {
    if let Some(n) = name {
        check(n, None)?;
    } else if value.is_some() {
        return Err(Error::invalid(
            "value",
            "filtering by value needs a name too (--name NAME --value VALUE)",
        ));
    }
    let mut out = Vec::new();
    for (n, _) in NAMES.iter().filter(|(n, _)| name.is_none_or(|x| x == *n)) {
        let s = if effective_settings {
            Some(effective(state, principal, n)?)
        } else {
            get(state, principal, n)?
        };
        if let Some(s) = s.filter(|s| value.is_none_or(|v| v == s.value)) {
            out.push(s);
        }
    }
    Ok(out)
}
