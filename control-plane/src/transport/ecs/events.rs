//! EventBridge rules (`X-Amz-Target: AWSEvents.Op`, AWS JSON 1.1) on the ECS API's port:
//! schedule rules (`rate(…)`, `cron(…)`) with ECS targets, which the leader runs
//! (`control::schedules`). Event patterns are not matched: a rule without a
//! ScheduleExpression is refused. A transport only: decode, one model call, encode.

use super::schedule_target;
use crate::model::auth::Authorizer;
use crate::model::schedules::{self, Write, DEFAULT_GROUP, RULE};
use crate::state::error::Error;
use crate::state::State;
use crate::transport::ecs::EcsError;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use berth_proto::v1::{KeyValuePair, Schedule};
use serde_json::{json, Value};

const PREFIX: &str = "AWSEvents";

/// Whether `target` is EventBridge's.
pub fn serves(target: &str) -> bool {
    matches!(target.split_once('.'), Some((PREFIX, _)))
}

type Answer = Result<Value, EcsError>;

fn validation(message: impl Into<String>) -> EcsError {
    EcsError::new("ValidationException", message)
}

/// Berth's errors as EventBridge names them.
fn from_model(e: Error) -> EcsError {
    let text = e.to_string();
    let message = match text.split_once(": ") {
        Some((head, rest)) if head.ends_with("Exception") => rest.to_string(),
        _ => text,
    };
    match e {
        Error::NotFound { .. } => EcsError::new("ResourceNotFoundException", message),
        Error::Invalid(_) | Error::Client(_) => validation(message),
        Error::Conflict(_) => EcsError::new("ConcurrentModificationException", message),
        _ => EcsError {
            kind: "InternalException",
            message,
            status: StatusCode::INTERNAL_SERVER_ERROR,
        },
    }
}

fn text(input: &Value, name: &str) -> String {
    input
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn required(input: &Value, name: &str) -> Result<String, EcsError> {
    let v = text(input, name);
    if v.is_empty() {
        return Err(validation(format!("{name} is required")));
    }
    Ok(v)
}

fn bus(input: &Value) -> Result<(), EcsError> {
    match input.get("EventBusName").and_then(Value::as_str) {
        None | Some("default") => Ok(()),
        Some(b) if b.ends_with(":event-bus/default") => Ok(()),
        Some(b) => Err(EcsError::new(
            "ResourceNotFoundException",
            format!("Event bus {b} does not exist. Berth has the default bus only."),
        )),
    }
}

fn rule_arn(name: &str) -> String {
    let p = berth_core::arn::prefix().replacen(":ecs:", ":events:", 1);
    format!("{p}:rule/{name}")
}

fn tags(input: &Value, name: &str) -> Vec<KeyValuePair> {
    list(input, name, |t| {
        Some(KeyValuePair {
            name: text(t, "Key"),
            value: text(t, "Value"),
        })
    })
}

/// The entries of the list `field` of `input` that `each` reads (none when it is absent).
fn list<T>(input: &Value, field: &str, each: impl Fn(&Value) -> Option<T>) -> Vec<T> {
    input
        .get(field)
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(each).collect())
        .unwrap_or_default()
}

fn rule_shape(s: &Schedule) -> Value {
    let mut v = json!({
        "Name": s.name,
        "Arn": s.arn,
        "ScheduleExpression": s.expression,
        "State": s.state,
        "EventBusName": DEFAULT_GROUP,
    });
    if !s.description.is_empty() {
        v["Description"] = json!(s.description);
    }
    if !s.role_arn.is_empty() {
        v["RoleArn"] = json!(s.role_arn);
    }
    v
}

fn get_rule(state: &State, name: &str) -> Result<Schedule, EcsError> {
    schedules::get(state, RULE, DEFAULT_GROUP, name).map_err(|e| match e {
        Error::NotFound { .. } => EcsError::new(
            "ResourceNotFoundException",
            format!("Rule {name} does not exist on EventBus default."),
        ),
        e => from_model(e),
    })
}

fn call(state: &State, op: &str, input: &Value) -> Option<Answer> {
    let r = || -> Answer {
        bus(input)?;
        match op {
            "PutRule" => put_rule(state, input),
            "DescribeRule" => {
                let s = get_rule(state, &required(input, "Name")?)?;
                let mut v = rule_shape(&s);
                v["CreatedBy"] = json!(berth_core::arn::prefix().rsplit(':').next().unwrap_or(""));
                Ok(v)
            }
            "ListRules" => {
                let prefix = text(input, "NamePrefix");
                let rules: Vec<Value> = schedules::list(state, RULE)
                    .map_err(from_model)?
                    .iter()
                    .filter(|s| s.name.starts_with(&prefix))
                    .map(rule_shape)
                    .collect();
                Ok(json!({ "Rules": rules }))
            }
            "EnableRule" | "DisableRule" => {
                let name = required(input, "Name")?;
                get_rule(state, &name)?;
                schedules::set_state(state, RULE, DEFAULT_GROUP, &name, op == "EnableRule")
                    .map_err(from_model)?;
                Ok(json!({}))
            }
            "DeleteRule" => {
                let force = input.get("Force").and_then(Value::as_bool).unwrap_or(false);
                schedules::delete(state, RULE, DEFAULT_GROUP, &required(input, "Name")?, force)
                    .map_err(from_model)?;
                Ok(json!({}))
            }
            "PutTargets" => put_targets(state, input),
            "ListTargetsByRule" => {
                let s = get_rule(state, &required(input, "Rule")?)?;
                let targets: Vec<Value> = s.targets.iter().map(schedule_target::echo).collect();
                Ok(json!({ "Targets": targets }))
            }
            "RemoveTargets" => remove_targets(state, input),
            "TagResource" | "UntagResource" | "ListTagsForResource" => tag_ops(state, op, input),
            _ => unreachable_op(op),
        }
    };
    const OPS: &[&str] = &[
        "PutRule",
        "DescribeRule",
        "ListRules",
        "EnableRule",
        "DisableRule",
        "DeleteRule",
        "PutTargets",
        "ListTargetsByRule",
        "RemoveTargets",
        "TagResource",
        "UntagResource",
        "ListTagsForResource",
    ];
    OPS.contains(&op).then(r)
}

fn put_rule(state: &State, input: &Value) -> Answer {
    let name = required(input, "Name")?;
    if input.get("EventPattern").is_some_and(|p| !p.is_null()) {
        return Err(validation("EventPattern: Berth runs schedule rules only; give a ScheduleExpression (rate(...) or cron(...)) instead"));
    }
    let expression = required(input, "ScheduleExpression")?;
    let state_text = match text(input, "State").as_str() {
        "" => "ENABLED".to_string(),
        s => s.to_string(),
    };
    let s = Schedule {
        kind: RULE.into(),
        name: name.clone(),
        group: DEFAULT_GROUP.into(),
        arn: rule_arn(&name),
        expression,
        state: state_text,
        description: text(input, "Description"),
        role_arn: text(input, "RoleArn"),
        tags: tags(input, "Tags"),
        ..Default::default()
    };
    let s = schedules::put_definition(state, s, Write::Upsert, crate::time::now_millis())
        .map_err(from_model)?;
    Ok(json!({ "RuleArn": s.arn }))
}

fn remove_targets(state: &State, input: &Value) -> Answer {
    let rule = required(input, "Rule")?;
    get_rule(state, &rule)?;
    let ids: Vec<String> = strings(input, "Ids");
    if ids.is_empty() {
        return Err(validation("Ids is required (the target ids to remove)"));
    }
    let missing = schedules::remove_targets(state, &rule, &ids).map_err(from_model)?;
    let failed: Vec<Value> = missing
        .iter()
        .map(|id| json!({"TargetId": id, "ErrorCode": "ResourceNotFoundException", "ErrorMessage": format!("Target {id} is not a target of rule {rule}.")}))
        .collect();
    Ok(json!({ "FailedEntryCount": failed.len(), "FailedEntries": failed }))
}

/// TagResource, UntagResource and ListTagsForResource of a rule.
fn tag_ops(state: &State, op: &str, input: &Value) -> Answer {
    let arn = required(input, "ResourceARN")?;
    let s = schedules::by_arn(state, &arn).map_err(from_model)?;
    match op {
        "TagResource" => schedules::tag(state, &arn, &tags(input, "Tags"), &[]),
        "UntagResource" => {
            let keys: Vec<String> = strings(input, "TagKeys");
            schedules::tag(state, &arn, &[], &keys)
        }
        _ => {
            let t: Vec<Value> = s
                .tags
                .iter()
                .map(|t| json!({"Key": t.name, "Value": t.value}))
                .collect();
            return Ok(json!({ "Tags": t }));
        }
    }
    .map_err(from_model)?;
    Ok(json!({}))
}

/// A list of strings in `input` (empty when absent).
fn strings(input: &Value, field: &str) -> Vec<String> {
    list(input, field, |v| v.as_str().map(String::from))
}

fn unreachable_op(op: &str) -> Answer {
    Err(EcsError::new(
        "UnknownOperationException",
        format!("{op} is not an EventBridge operation Berth answers"),
    ))
}

fn put_targets(state: &State, input: &Value) -> Answer {
    let rule = required(input, "Rule")?;
    get_rule(state, &rule)?;
    let list = input
        .get("Targets")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| validation("Targets is required (1-10 targets)"))?;
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let id = text(t, "Id");
        if id.is_empty() {
            return Err(validation(format!("Targets[{i}].Id is required")));
        }
        match schedule_target::read(t, &id, &format!("Targets[{i}]")) {
            Ok(st) => ok.push(st),
            Err((field, why)) => failed.push(json!({
                "TargetId": id,
                "ErrorCode": "ValidationException",
                "ErrorMessage": format!("{field}: {why}"),
            })),
        }
    }
    if !ok.is_empty() {
        schedules::put_targets(state, &rule, ok).map_err(from_model)?;
    }
    Ok(json!({ "FailedEntryCount": failed.len(), "FailedEntries": failed }))
}

/// Answers one request whose target `serves` accepted.
pub async fn serve(
    state: State,
    auth: &Authorizer,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    target: &str,
) -> Response {
    let op = target.split_once('.').map_or("", |(_, o)| o).to_string();
    if let Err(denied) = super::authorize_signed(
        auth,
        method,
        uri,
        headers,
        body,
        &format!("/events.{PREFIX}/{op}"),
    ) {
        return denied.into_response();
    }
    let input: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return validation(format!("request body: {e}")).into_response(),
        }
    };
    let target = target.to_string();
    let answer = tokio::task::spawn_blocking(move || call(&state, &op, &input)).await;
    match answer {
        Ok(Some(Ok(v))) => {
            let mut r = (StatusCode::OK, v.to_string()).into_response();
            r.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static(crate::transport::ecs::CONTENT_TYPE),
            );
            r
        }
        Ok(Some(Err(e))) => e.into_response(),
        Ok(None) => EcsError::new(
            "UnknownOperationException",
            format!("X-Amz-Target: {target}: Berth answers EventBridge's schedule rules only (PutRule, PutTargets, …)"),
        )
        .into_response(),
        Err(e) => EcsError::server(format!("{target} failed: {e}")).into_response(),
    }
}
