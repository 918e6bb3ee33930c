//! AWS Certificate Manager (`X-Amz-Target: CertificateManager.Op`) on the ECS API's port: AWS
//! JSON 1.1, SigV4 and the same access keys as ECS. A transport only: decode, one call to
//! `model::certificates::ops`, encode.

use crate::model::auth::Authorizer;
use crate::model::certificates::ops;
use crate::state::State;
use crate::transport::ecs::EcsError;
use crate::transport::sigv4;
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
    let signed = match sigv4::parse(headers) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(why)) if auth.enabled() => {
            return EcsError::from(crate::model::auth::AwsDenied::BadSignature(why)).into_response()
        }
        Some(Err(_)) => None,
    };
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    if let Err(denied) = auth.authorize_aws(
        signed.as_ref().map(|s| s.access_key_id.as_str()),
        |secret| match &signed {
            Some(s) => sigv4::verify(s, secret, method.as_str(), path_and_query, headers, body),
            None => Err("unsigned".into()),
        },
        &format!("/acm.{PREFIX}/{op}"),
    ) {
        return EcsError::from(denied).into_response();
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
