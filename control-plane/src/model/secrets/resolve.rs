//! Resolving a task's secrets for the one agent that runs it: each container's
//! `secrets[{name, valueFrom}]` (a secret's ARN or name, `ARN:json-key:version-stage:version-id`,
//! a parameter's name or ARN) and `repositoryCredentials` (a secret holding
//! `{"username","password"}`). A value that cannot be had is an error naming it, which stops
//! the task with ECS's ResourceInitializationError.

use super::records::SecretRecord;
use super::{manager, parameters};
use crate::state::State;
use serde_json::Value;

/// A secret's value from a Secrets Manager reference: ARN or name, optionally followed by
/// `:json-key:version-stage:version-id` (each part may be empty).
fn from_manager(state: &State, value_from: &str) -> Result<Option<String>, String> {
    // An ARN has 7 parts before the options; a name has none (names hold no colon).
    let parts: Vec<&str> = value_from.split(':').collect();
    let (id, opts): (String, &[&str]) = if value_from.starts_with("arn:") {
        if parts.len() < 7 {
            return Ok(None);
        }
        (parts[..7].join(":"), &parts[7..])
    } else {
        (parts[0].to_string(), &parts[1..])
    };
    let found = manager::find(state, &id).map_err(|e| e.message)?;
    let Some((_, r)) = found else {
        return Ok(None);
    };
    let opt = |i: usize| opts.get(i).copied().filter(|s| !s.is_empty());
    value_of(&r, opt(0), opt(1), opt(2)).map(Some)
}

fn value_of(
    r: &SecretRecord,
    json_key: Option<&str>,
    stage: Option<&str>,
    version: Option<&str>,
) -> Result<String, String> {
    if r.deletion_date.is_some() {
        return Err(format!("secret {} is marked for deletion", r.name));
    }
    let v = r.version(version, stage).ok_or_else(|| {
        format!(
            "secret {} has no version {}",
            r.name,
            version.or(stage).unwrap_or("AWSCURRENT")
        )
    })?;
    let plain = manager::value_of(r, v).map_err(|e| e.message)?;
    let text = String::from_utf8_lossy(&plain).into_owned();
    match json_key {
        None => Ok(text),
        Some(k) => {
            let doc: Value = serde_json::from_str(&text)
                .map_err(|_| format!("secret {} is not JSON, so it has no key {k}", r.name))?;
            match doc.get(k) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Ok(other.to_string()),
                None => Err(format!("secret {} has no JSON key {k}", r.name)),
            }
        }
    }
}

/// The value `value_from` names, or why it cannot be had (naming it).
pub fn value(state: &State, value_from: &str) -> Result<String, String> {
    let is_parameter = value_from.starts_with("arn:") && value_from.contains(":ssm:");
    if !is_parameter {
        if let Some(v) = from_manager(state, value_from)? {
            return Ok(v);
        }
    }
    if !value_from.starts_with("arn:") || is_parameter {
        if let Some(p) = parameters::find(state, value_from).map_err(|e| e.message)? {
            return parameters::value_of(&p).map_err(|e| e.message);
        }
    }
    Err(format!(
        "{value_from}: no such secret or parameter (aws secretsmanager create-secret, aws ssm put-parameter)"
    ))
}

/// A registry login from a secret holding `{"username","password"}`.
pub fn login(state: &State, credentials_parameter: &str) -> Result<(String, String), String> {
    let text = value(state, credentials_parameter)?;
    let doc: Value = serde_json::from_str(&text).map_err(|_| {
        format!("{credentials_parameter}: must hold JSON {{\"username\": …, \"password\": …}}")
    })?;
    match (doc["username"].as_str(), doc["password"].as_str()) {
        (Some(u), Some(p)) => Ok((u.to_string(), p.to_string())),
        _ => Err(format!(
            "{credentials_parameter}: must hold JSON {{\"username\": …, \"password\": …}}"
        )),
    }
}

/// What the agent running a task of `td` is sent besides it: each container's secrets and
/// registry login, or the first reason one cannot be had.
pub fn for_task(
    state: &State,
    td: &berth_proto::v1::TaskDefinition,
) -> (
    Vec<berth_proto::agent::v1::ResolvedSecret>,
    Vec<berth_proto::agent::v1::RegistryLogin>,
    String,
) {
    use berth_proto::agent::v1::{RegistryLogin, ResolvedSecret};
    let mut secrets = Vec::new();
    let mut logins = Vec::new();
    for c in &td.container_definitions {
        for s in &c.secrets {
            match value(state, &s.value_from) {
                Ok(v) => secrets.push(ResolvedSecret {
                    container: c.name.clone(),
                    name: s.name.clone(),
                    value: v,
                }),
                Err(e) => {
                    return (
                        Vec::new(),
                        Vec::new(),
                        format!("container {} secret {}: {e}", c.name, s.name),
                    )
                }
            }
        }
        if let Some(r) = &c.repository_credentials {
            match login(state, &r.credentials_parameter) {
                Ok((username, password)) => logins.push(RegistryLogin {
                    container: c.name.clone(),
                    username,
                    password,
                }),
                Err(e) => {
                    return (
                        Vec::new(),
                        Vec::new(),
                        format!("container {} repositoryCredentials: {e}", c.name),
                    )
                }
            }
        }
    }
    (secrets, logins, String::new())
}
