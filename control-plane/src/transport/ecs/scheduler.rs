//! EventBridge Scheduler (`scheduler`, REST-JSON) on the ECS API's port: `/schedules/{Name}`
//! and `/schedule-groups/{Name}`, SigV4 for the service `scheduler`, errors with
//! `x-amzn-errortype` and Scheduler's HTTP statuses (400, 404, 409). Schedules with an ECS
//! target (Arn = the cluster's ARN) run through `control::schedules`. A transport only.

use super::schedule_target;
use crate::model::auth::Authorizer;
use crate::model::schedules::{self, Write, DEFAULT_GROUP, SCHEDULE};
use crate::state::error::Error;
use crate::state::State;
use crate::time;
use crate::transport::ecs::EcsError;
use crate::transport::sigv4;
use axum::body::Bytes;
use axum::extract::{Path, State as Ax};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use berth_proto::v1::{KeyValuePair, Schedule, ScheduleGroup};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

struct Api {
    state: State,
    auth: Arc<Authorizer>,
}

/// The Scheduler routes, ready to merge into the HTTP port's router.
pub fn router(state: State, auth: Arc<Authorizer>) -> Router {
    Router::new()
        .route("/schedules", get(list_schedules))
        .route(
            "/schedules/{name}",
            get(schedule).post(schedule).put(schedule).delete(schedule),
        )
        .route("/schedule-groups", get(list_groups))
        .route(
            "/schedule-groups/{name}",
            get(group).post(group).delete(group),
        )
        .with_state(Arc::new(Api { state, auth }))
}

fn error(kind: &'static str, status: StatusCode, message: impl Into<String>) -> EcsError {
    EcsError {
        kind,
        message: message.into(),
        status,
    }
}

fn validation(message: impl Into<String>) -> EcsError {
    error("ValidationException", StatusCode::BAD_REQUEST, message)
}

fn from_model(e: Error) -> EcsError {
    let text = e.to_string();
    let message = match text.split_once(": ") {
        Some((head, rest)) if head.ends_with("Exception") => rest.to_string(),
        _ => text,
    };
    match e {
        Error::NotFound { .. } => {
            error("ResourceNotFoundException", StatusCode::NOT_FOUND, message)
        }
        Error::Invalid(_) => validation(message),
        Error::Client(_) | Error::Conflict(_) => {
            error("ConflictException", StatusCode::CONFLICT, message)
        }
        _ => error(
            "InternalServerException",
            StatusCode::INTERNAL_SERVER_ERROR,
            message,
        ),
    }
}

fn arn_prefix() -> String {
    berth_core::arn::prefix().replacen(":ecs:", ":scheduler:", 1)
}

fn schedule_arn(group: &str, name: &str) -> String {
    format!("{}:schedule/{group}/{name}", arn_prefix())
}

fn group_arn(name: &str) -> String {
    format!("{}:schedule-group/{name}", arn_prefix())
}

fn seconds(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

fn rfc_seconds(rfc3339: &str) -> Value {
    time::parse_rfc3339(rfc3339).map_or(Value::Null, seconds)
}

/// A timestamp as botocore sends one in REST-JSON: epoch seconds, or ISO 8601 text.
fn millis(input: &Value, name: &str) -> Result<i64, EcsError> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => Ok((n.as_f64().unwrap_or(0.0) * 1000.0) as i64),
        Some(Value::String(s)) => time::parse_rfc3339(s)
            .ok_or_else(|| validation(format!("{name}: {s:?} is not a timestamp"))),
        Some(v) => Err(validation(format!("{name}: {v} is not a timestamp"))),
    }
}

/// The query string's parameters.
fn query(uri: &Uri) -> HashMap<String, String> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn text(input: &Value, name: &str) -> String {
    input
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn shape(s: &Schedule) -> Value {
    let mut window = json!({ "Mode": s.flexible_mode });
    if s.flexible_mode == "FLEXIBLE" {
        window["MaximumWindowInMinutes"] = json!(s.flexible_minutes);
    }
    let mut v = json!({
        "Arn": s.arn,
        "Name": s.name,
        "GroupName": s.group,
        "ScheduleExpression": s.expression,
        "ScheduleExpressionTimezone": if s.timezone.is_empty() { "UTC" } else { &s.timezone },
        "State": s.state,
        "CreationDate": rfc_seconds(&s.created_at),
        "LastModificationDate": rfc_seconds(&s.updated_at),
        "FlexibleTimeWindow": window,
        "ActionAfterCompletion": if s.action_after_completion.is_empty() { "NONE" } else { &s.action_after_completion },
    });
    if let Some(t) = s.targets.first() {
        v["Target"] = schedule_target::echo(t);
    }
    if !s.description.is_empty() {
        v["Description"] = json!(s.description);
    }
    if s.start_ms != 0 {
        v["StartDate"] = seconds(s.start_ms);
    }
    if s.end_ms != 0 {
        v["EndDate"] = seconds(s.end_ms);
    }
    if !s.kms_key_arn.is_empty() {
        v["KmsKeyArn"] = json!(s.kms_key_arn);
    }
    v
}

/// The schedule a Create or Update body describes.
fn read_schedule(name: &str, input: &Value) -> Result<Schedule, EcsError> {
    let group = match text(input, "GroupName") {
        g if g.is_empty() => DEFAULT_GROUP.to_string(),
        g => g,
    };
    let expression = text(input, "ScheduleExpression");
    if expression.is_empty() {
        return Err(validation("ScheduleExpression is required"));
    }
    let window = input
        .get("FlexibleTimeWindow")
        .filter(|w| w.is_object())
        .ok_or_else(|| validation("FlexibleTimeWindow is required ({\"Mode\": \"OFF\"} or FLEXIBLE with MaximumWindowInMinutes)"))?;
    let target = input
        .get("Target")
        .filter(|t| t.is_object())
        .ok_or_else(|| validation("Target is required"))?;
    for field in ["Arn", "RoleArn"] {
        if text(target, field).is_empty() {
            return Err(validation(format!("Target.{field} is required")));
        }
    }
    let t = schedule_target::read(target, "Target", "Target")
        .map_err(|(f, why)| validation(format!("{f}: {why}")))?;
    Ok(Schedule {
        kind: SCHEDULE.into(),
        name: name.to_string(),
        arn: schedule_arn(&group, name),
        group,
        expression,
        timezone: text(input, "ScheduleExpressionTimezone"),
        state: match text(input, "State") {
            s if s.is_empty() => "ENABLED".into(),
            s => s,
        },
        description: text(input, "Description"),
        start_ms: millis(input, "StartDate")?,
        end_ms: millis(input, "EndDate")?,
        flexible_mode: text(window, "Mode"),
        flexible_minutes: window
            .get("MaximumWindowInMinutes")
            .and_then(Value::as_i64)
            .unwrap_or(0) as i32,
        role_arn: text(target, "RoleArn"),
        targets: vec![t],
        action_after_completion: text(input, "ActionAfterCompletion"),
        kms_key_arn: text(input, "KmsKeyArn"),
        ..Default::default()
    })
}

/// SigV4 and the key's rights, as for ECS; `op` names the operation for read-only keys.
fn authorize(
    api: &Api,
    op: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), EcsError> {
    let req = sigv4::SignedRequest {
        method,
        uri,
        headers,
        body,
    };
    sigv4::authorize(
        &api.auth,
        &req,
        None,
        &format!("/scheduler.AWSChronosService/{op}"),
    )
    .map(|_| ())
    .map_err(EcsError::from)
}

fn reply(answer: Result<Value, EcsError>) -> Response {
    match answer {
        Ok(v) => {
            let mut r = (StatusCode::OK, v.to_string()).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(e) => e.into_response(),
    }
}

fn body_json(body: &Bytes) -> Result<Value, EcsError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| validation(format!("request body: {e}")))
}

async fn blocking(
    api: &Arc<Api>,
    f: impl FnOnce(&State) -> Result<Value, EcsError> + Send + 'static,
) -> Result<Value, EcsError> {
    let state = api.state.clone();
    tokio::task::spawn_blocking(move || f(&state))
        .await
        .map_err(|e| {
            error(
                "InternalServerException",
                StatusCode::INTERNAL_SERVER_ERROR,
                e.to_string(),
            )
        })?
}

async fn schedule(
    Ax(api): Ax<Arc<Api>>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let q = query(&uri);
    let op = match method {
        Method::POST => "CreateSchedule",
        Method::PUT => "UpdateSchedule",
        Method::DELETE => "DeleteSchedule",
        _ => "GetSchedule",
    };
    if let Err(e) = authorize(&api, op, &method, &uri, &headers, &body) {
        return e.into_response();
    }
    let input = match body_json(&body) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let group = q
        .get("groupName")
        .filter(|g| !g.is_empty())
        .cloned()
        .unwrap_or_else(|| DEFAULT_GROUP.into());
    reply(
        blocking(&api, move |state| match op {
            "CreateSchedule" | "UpdateSchedule" => {
                let s = read_schedule(&name, &input)?;
                let how = if op == "CreateSchedule" {
                    Write::Create
                } else {
                    Write::Update
                };
                let s = schedules::put_definition(state, s, how, time::now_millis())
                    .map_err(from_model)?;
                Ok(json!({ "ScheduleArn": s.arn }))
            }
            "DeleteSchedule" => {
                schedules::delete(state, SCHEDULE, &group, &name, true).map_err(from_model)?;
                Ok(json!({}))
            }
            _ => Ok(shape(
                &schedules::get(state, SCHEDULE, &group, &name).map_err(|e| match e {
                    Error::NotFound { .. } => error(
                        "ResourceNotFoundException",
                        StatusCode::NOT_FOUND,
                        format!("Schedule {name} does not exist."),
                    ),
                    e => from_model(e),
                })?,
            )),
        })
        .await,
    )
}

async fn list_schedules(
    Ax(api): Ax<Arc<Api>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = authorize(&api, "ListSchedules", &method, &uri, &headers, &body) {
        return e.into_response();
    }
    let q = query(&uri);
    reply(
        blocking(&api, move |state| {
            let want = |k: &str| q.get(k).filter(|v| !v.is_empty());
            let list: Vec<Value> = schedules::list(state, SCHEDULE)
                .map_err(from_model)?
                .iter()
                .filter(|s| want("ScheduleGroup").is_none_or(|g| &s.group == g))
                .filter(|s| want("NamePrefix").is_none_or(|p| s.name.starts_with(p.as_str())))
                .filter(|s| want("State").is_none_or(|st| &s.state == st))
                .map(|s| {
                    json!({
                        "Arn": s.arn, "Name": s.name, "GroupName": s.group, "State": s.state,
                        "CreationDate": rfc_seconds(&s.created_at),
                        "LastModificationDate": rfc_seconds(&s.updated_at),
                        "Target": {"Arn": s.targets.first().map(|t| schedule_target::echo(t)["Arn"].clone()).unwrap_or(Value::Null)},
                    })
                })
                .collect();
            Ok(json!({ "Schedules": list }))
        })
        .await,
    )
}

fn group_shape(g: &ScheduleGroup) -> Value {
    json!({
        "Arn": g.arn, "Name": g.name, "State": "ACTIVE",
        "CreationDate": rfc_seconds(&g.created_at),
        "LastModificationDate": rfc_seconds(&g.updated_at),
    })
}

async fn group(
    Ax(api): Ax<Arc<Api>>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let op = match method {
        Method::POST => "CreateScheduleGroup",
        Method::DELETE => "DeleteScheduleGroup",
        _ => "GetScheduleGroup",
    };
    if let Err(e) = authorize(&api, op, &method, &uri, &headers, &body) {
        return e.into_response();
    }
    let input = match body_json(&body) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    reply(
        blocking(&api, move |state| match op {
            "CreateScheduleGroup" => {
                let now = time::now();
                let tags = input
                    .get("Tags")
                    .and_then(Value::as_array)
                    .map(|l| {
                        l.iter()
                            .map(|t| KeyValuePair {
                                name: text(t, "Key"),
                                value: text(t, "Value"),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let g = schedules::create_group(
                    state,
                    ScheduleGroup {
                        arn: group_arn(&name),
                        name: name.clone(),
                        created_at: now.clone(),
                        updated_at: now,
                        tags,
                    },
                )
                .map_err(from_model)?;
                Ok(json!({ "ScheduleGroupArn": g.arn }))
            }
            "DeleteScheduleGroup" => {
                schedules::delete_group(state, &name).map_err(from_model)?;
                Ok(json!({}))
            }
            _ => Ok(group_shape(
                &schedules::get_group(state, &name, || group_arn(DEFAULT_GROUP))
                    .map_err(from_model)?,
            )),
        })
        .await,
    )
}

async fn list_groups(
    Ax(api): Ax<Arc<Api>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = authorize(&api, "ListScheduleGroups", &method, &uri, &headers, &body) {
        return e.into_response();
    }
    reply(
        blocking(&api, |state| {
            let mut groups = vec![group_shape(&ScheduleGroup {
                name: DEFAULT_GROUP.into(),
                arn: group_arn(DEFAULT_GROUP),
                ..Default::default()
            })];
            groups.extend(
                schedules::list_groups(state)
                    .map_err(from_model)?
                    .iter()
                    .map(group_shape),
            );
            Ok(json!({ "ScheduleGroups": groups }))
        })
        .await,
    )
}
