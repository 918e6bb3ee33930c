//! ECS's agent API for task scale-in protection, `$ECS_AGENT_URI/task-protection/v1/state`:
//! `GET` reads the calling task's protection, `PUT {"ProtectionEnabled", "ExpiresInMinutes"}`
//! sets it. The token in the path names the task, so a task reaches only its own; the request
//! goes to the control plane (`AgentSessions/TaskProtection`), which applies ECS's rules.
//! Answers as ECS's agent does: `{"protection": {...}}`, `{"failure": {...}}` (HTTP 200, as ECS
//! reports a task it cannot protect) or `{"error": {"Arn", "Code", "Message"}}`.

use super::Registry;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_proto::agent::v1::agent_sessions_client::AgentSessionsClient;
use berth_proto::agent::v1::{TaskProtectionReply, TaskProtectionRequest};
use serde_json::{json, Value};
use std::time::Duration;

/// How long the control plane may take to answer before the task hears it timed out.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// ECS's agent's words when the token names no task it runs.
const NO_TASK: &str = "Failed to find a task for the request";

fn error(status: StatusCode, arn: &str, code: &str, message: &str) -> Response {
    let mut e = json!({"Code": code, "Message": message});
    if !arn.is_empty() {
        e["Arn"] = json!(arn);
    }
    (status, Json(json!({ "error": e }))).into_response()
}

fn invalid(arn: &str, message: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        arn,
        "InvalidParameterException",
        message,
    )
}

/// The body of a PUT: ProtectionEnabled (required) and ExpiresInMinutes. Field names match
/// case-insensitively and others are refused, as ECS's agent decodes it.
fn parse(body: &[u8]) -> Result<(Option<bool>, Option<i64>), String> {
    let bad = |why: String| format!("UpdateTaskProtection: failed to decode request: {why}");
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    let Value::Object(fields) = v else {
        return Err(bad("the body must be a JSON object".into()));
    };
    let (mut enabled, mut minutes) = (None, None);
    for (k, v) in fields {
        match k.to_ascii_lowercase().as_str() {
            "protectionenabled" => {
                enabled = match v {
                    Value::Null => None,
                    Value::Bool(b) => Some(b),
                    _ => return Err(bad("ProtectionEnabled must be true or false".into())),
                }
            }
            "expiresinminutes" => {
                minutes = match v {
                    Value::Null => None,
                    v => Some(v.as_i64().ok_or_else(|| {
                        bad(format!("ExpiresInMinutes must be a whole number, got {v}"))
                    })?),
                }
            }
            _ => {
                return Err(bad(format!(
                    "unknown field {k:?} (known: ProtectionEnabled, ExpiresInMinutes)"
                )))
            }
        }
    }
    Ok((enabled, minutes))
}

/// Answers `method` on the state of the task `token` names.
pub(super) async fn answer(
    registry: &Registry,
    token: &str,
    method: &Method,
    body: &[u8],
) -> Response {
    let update = match *method {
        Method::GET => None,
        Method::PUT => match parse(body) {
            Ok(v) => Some(v),
            Err(why) => return invalid("", &why),
        },
        _ => {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                "",
                "InvalidParameterException",
                "task-protection/v1/state takes GET (read) or PUT (set)",
            )
        }
    };
    let Some((meta, _)) = registry.resolve(token) else {
        return error(
            StatusCode::NOT_FOUND,
            "",
            "ResourceNotFoundException",
            NO_TASK,
        );
    };
    let arn = meta.task_arn;
    let mut req = TaskProtectionRequest {
        task_arn: arn.clone(),
        ..Default::default()
    };
    if let Some((enabled, minutes)) = update {
        let Some(enabled) = enabled else {
            return invalid(
                &arn,
                "Invalid request: does not contain 'ProtectionEnabled' field",
            );
        };
        req.update = true;
        req.protection_enabled = enabled;
        req.expires_in_minutes = minutes;
    }
    let Some((channel, node_id)) = registry.control() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            &arn,
            "ServerException",
            "the agent is not connected to the control plane yet; try again shortly",
        );
    };
    req.node_id = node_id;
    let mut client = AgentSessionsClient::new(channel);
    let call = client.task_protection(req);
    let reply = match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(r)) => r.into_inner(),
        Ok(Err(status)) => {
            tracing::warn!(task = %arn, error = %status.message(), "task protection call failed");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &arn,
                "ServerException",
                &format!("the control plane refused the call: {}", status.message()),
            );
        }
        Err(_) => {
            return error(
                StatusCode::GATEWAY_TIMEOUT,
                &arn,
                "RequestCanceled",
                "Timed out calling ECS Task Protection API",
            )
        }
    };
    shape(&reply)
}

/// The control plane's outcome in ECS's agent's shape.
fn shape(r: &TaskProtectionReply) -> Response {
    if !r.error_code.is_empty() {
        let status = u16::try_from(r.error_status)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::BAD_REQUEST);
        return error(status, &r.task_arn, &r.error_code, &r.error_message);
    }
    if !r.failure_reason.is_empty() {
        let detail = (!r.failure_detail.is_empty()).then_some(&r.failure_detail);
        let failure = json!({"Arn": r.task_arn, "Detail": detail, "Reason": r.failure_reason});
        return Json(json!({ "failure": failure })).into_response();
    }
    let expires = (r.expires_at_ms > 0).then(|| berth_proto::time::rfc3339(r.expires_at_ms));
    Json(json!({"protection": {
        "ExpirationDate": expires,
        "ProtectionEnabled": r.protection_enabled,
        "TaskArn": r.task_arn,
    }}))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puts_are_decoded_as_ecs_agent_does() {
        assert_eq!(
            parse(br#"{"ProtectionEnabled": true, "ExpiresInMinutes": 5}"#),
            Ok((Some(true), Some(5)))
        );
        assert_eq!(
            parse(br#"{"protectionEnabled": false}"#),
            Ok((Some(false), None))
        );
        assert_eq!(parse(b"{}"), Ok((None, None)));
        let e = parse(b"{not json").unwrap_err();
        assert!(
            e.starts_with("UpdateTaskProtection: failed to decode request"),
            "{e}"
        );
        assert!(parse(br#"{"ProtectionEnabled": "yes"}"#).is_err());
        assert!(parse(br#"{"ExpiresInMinutes": 1.5, "ProtectionEnabled": true}"#).is_err());
        let e = parse(br#"{"Protect": true}"#).unwrap_err();
        assert!(e.contains("unknown field \"Protect\""), "{e}");
    }

    async fn body(r: Response) -> (StatusCode, Value) {
        let status = r.status();
        let b = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        (status, serde_json::from_slice(&b).unwrap())
    }

    #[tokio::test]
    async fn replies_take_ecs_agent_shapes() {
        let (s, v) = body(shape(&TaskProtectionReply {
            task_arn: "arn:t".into(),
            protection_enabled: true,
            expires_at_ms: 1_800_000_000_000,
            ..Default::default()
        }))
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["protection"]["ProtectionEnabled"], true);
        assert_eq!(
            v["protection"]["ExpirationDate"],
            "2027-01-15T08:00:00.000Z"
        );
        assert_eq!(v["protection"]["TaskArn"], "arn:t");
        let (s, v) = body(shape(&TaskProtectionReply {
            task_arn: "arn:t".into(),
            error_code: "InvalidParameterException".into(),
            error_message: "expiresInMinutes: must be 1-2880".into(),
            error_status: 400,
            ..Default::default()
        }))
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(v["error"]["Code"], "InvalidParameterException");
        assert_eq!(v["error"]["Arn"], "arn:t");
        let (s, v) = body(shape(&TaskProtectionReply {
            task_arn: "arn:t".into(),
            failure_reason: "TASK_NOT_VALID".into(),
            ..Default::default()
        }))
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["failure"]["Reason"], "TASK_NOT_VALID");
    }
}
