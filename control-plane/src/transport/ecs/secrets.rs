//! Secrets Manager (`X-Amz-Target: secretsmanager.Op`) and SSM (`AmazonSSM.Op`) on the ECS
//! API's port: AWS JSON 1.1, SigV4 and the same access keys as ECS. Reading a value
//! (GetSecretValue, GetParameter…) needs a read-write key; describing and listing a read-only
//! one. A transport only: decode, one call, encode.

use crate::model::auth::Authorizer;
use crate::model::secrets::{manager, parameters};
use crate::state::State;
use crate::transport::ecs::EcsError;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

const MANAGER: &str = "secretsmanager";
const SSM: &str = "AmazonSSM";

/// Operations that return a value: allowed only to read-write keys.
const READS_VALUES: &[&str] = &[
    "GetSecretValue",
    "GetParameter",
    "GetParameters",
    "GetParametersByPath",
];

/// Whether `target` is for one of these APIs.
pub fn serves(target: &str) -> bool {
    matches!(target.split_once('.'), Some((MANAGER | SSM, _)))
}

fn error(kind: &'static str, message: impl Into<String>) -> Response {
    EcsError::new(kind, message).into_response()
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
    let (api, op) = target.split_once('.').unwrap_or((target, ""));
    let service = if api == MANAGER {
        "secretsmanager"
    } else {
        "ssm"
    };
    // Value reads are named so the token check asks for read-write, not read-only.
    let method_name = if READS_VALUES.contains(&op) {
        format!("Read{op}")
    } else {
        op.to_string()
    };
    if let Err(denied) = super::authorize_signed(
        auth,
        method,
        uri,
        headers,
        body,
        &format!("/{service}.{api}/{method_name}"),
    ) {
        return denied.into_response();
    }
    let input: Value = if body.is_empty() {
        Value::Object(Default::default())
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                return error(
                    if api == MANAGER {
                        "InvalidRequestException"
                    } else {
                        "ValidationException"
                    },
                    format!("request body: {e}"),
                )
            }
        }
    };
    let (api, op, target) = (api.to_string(), op.to_string(), target.to_string());
    let answer = tokio::task::spawn_blocking(move || {
        if api == MANAGER {
            manager::call(&state, &op, &input)
        } else {
            parameters::call(&state, &op, &input)
        }
    })
    .await;
    match answer {
        Ok(Some(Ok(v))) => {
            let mut r = (StatusCode::OK, v.to_string()).into_response();
            r.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static(crate::transport::ecs::CONTENT_TYPE),
            );
            r
        }
        Ok(Some(Err(e))) => error(e.kind, e.message),
        Ok(None) => error(
            "UnknownOperationException",
            format!("X-Amz-Target: {target}: Berth does not answer this operation"),
        ),
        Err(e) => EcsError::server(format!("{target} failed: {e}")).into_response(),
    }
}
