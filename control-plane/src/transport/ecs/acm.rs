//! AWS Certificate Manager (`X-Amz-Target: CertificateManager.Op`) on the ECS API's port: AWS
//! JSON 1.1, SigV4 and the same access keys as ECS. A transport only: decode, one call to
//! `model::certificates::ops`, encode.

use crate::model::auth::Authorizer;
use crate::model::certificates::ops;
use crate::state::State;
use crate::transport::ecs::EcsError;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

const PREFIX: &str = "CertificateManager";

/// Whether `target` is for ACM.
pub fn serves(target: &str) -> bool {
    matches!(target.split_once('.'), Some((PREFIX, _)))
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
    let op = target.split_once('.').map_or("", |(_, op)| op).to_string();
    if let Err(denied) = super::authorize_signed(
        auth,
        method,
        uri,
        headers,
        body,
        &format!("/acm.{PREFIX}/{op}"),
    ) {
        return denied.into_response();
    }
    let input: Value = if body.is_empty() {
        Value::Object(Default::default())
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return error("ValidationException", format!("request body: {e}")),
        }
    };
    let target = target.to_string();
    let answer = crate::foreground::blocking(move || {
        ops::call(&state, crate::model::elb::tls::USERS, &op, &input)
    })
    .await;
    match answer {
        Ok(Some(Ok(v))) => {
            let mut r = (StatusCode::OK, v.to_string()).into_response();
            r.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static(crate::transport::ecs::CONTENT_TYPE),
            );
            r
        }
        Ok(Some(Err(e))) => error(e.kind, e.message),
        Ok(None) => error(
            "UnknownOperationException",
            format!("X-Amz-Target: {target}: Berth does not answer this ACM operation"),
        ),
        Err(e) => EcsError::server(format!("{target} failed: {e}")).into_response(),
    }
}
