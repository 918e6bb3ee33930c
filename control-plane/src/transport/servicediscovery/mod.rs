//! AWS Cloud Map (`servicediscovery`) on the ECS API's port, in both protocols botocore's model
//! lists: Smithy RPC v2 CBOR (`POST /service/Route53AutoNaming_v20170314/operation/OP`,
//! `smithy-protocol: rpc-v2-cbor`, CBOR bodies; what current clients pick) and AWS JSON 1.1
//! (`X-Amz-Target: Route53AutoNaming_v20170314.OP` on `POST /`). SigV4 and the access keys are
//! the ECS API's. A transport only: decode, one `model::discovery::ops` call, encode.

mod cbor;

use crate::model::auth::{Authorizer, AwsDenied};
use crate::model::discovery::{ops, CmError};
use crate::state::State;
use crate::transport::sigv4;
use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

pub const TARGET_PREFIX: &str = "Route53AutoNaming_v20170314";
const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// The Smithy namespace error types are qualified with on the CBOR wire.
const SHAPE_NAMESPACE: &str = "com.amazonaws.servicediscovery";

/// Which protocol a request came in, and so its reply goes out in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Json,
    Cbor,
}

/// Whether an `X-Amz-Target` is Cloud Map's.
pub fn serves(target: &str) -> bool {
    target
        .split_once('.')
        .is_some_and(|(p, _)| p == TARGET_PREFIX)
}

/// The operation a CBOR request's path names (`/service/SERVICE/operation/OP`), or why not.
pub fn cbor_operation(path: &str) -> Result<String, String> {
    let rest = path.strip_prefix("/service/").unwrap_or("");
    match rest.split_once("/operation/") {
        Some((TARGET_PREFIX, op)) if !op.is_empty() && !op.contains('/') => Ok(op.to_string()),
        Some((other, _)) => Err(format!(
            "{other:?} is not a service of this endpoint; Cloud Map is /service/{TARGET_PREFIX}/operation/OPERATION"
        )),
        None => Err(format!(
            "the path must be /service/{TARGET_PREFIX}/operation/OPERATION"
        )),
    }
}

fn reply(wire: Wire, status: StatusCode, body: &Value) -> Response {
    let mut r = match wire {
        Wire::Json => (status, body.to_string()).into_response(),
        Wire::Cbor => (status, cbor::encode(body)).into_response(),
    };
    let h = r.headers_mut();
    match wire {
        Wire::Json => {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(JSON_CONTENT_TYPE),
            );
        }
        Wire::Cbor => {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/cbor"),
            );
            h.insert("smithy-protocol", HeaderValue::from_static("rpc-v2-cbor"));
        }
    }
    r
}

/// An error in the wire's shape: `__type` (qualified on CBOR) and the modeled `Message`.
pub fn error(wire: Wire, kind: &str, message: &str, status: u16) -> Response {
    let kind_on_wire = match wire {
        Wire::Json => kind.to_string(),
        Wire::Cbor => format!("{SHAPE_NAMESPACE}#{kind}"),
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut r = reply(
        wire,
        status,
        &json!({"__type": kind_on_wire, "Message": message}),
    );
    if let Ok(v) = HeaderValue::from_str(kind) {
        r.headers_mut().insert("x-amzn-errortype", v);
    }
    r
}

/// A refused signature or key, named as AWS's JSON and RPC v2 services name them.
fn denied(wire: Wire, d: AwsDenied) -> Response {
    let (kind, message) = match d {
        AwsDenied::Unsigned => ("MissingAuthenticationTokenException", "this Berth server needs SigV4-signed requests: create a key with `berth token create --aws` and give it to the aws CLI (aws configure) or the SDK".to_string()),
        AwsDenied::UnknownKey(id) => ("UnrecognizedClientException", format!("the access key id {id} is not valid for this server; `berth token create --aws` makes one")),
        AwsDenied::BadSignature(why) => ("InvalidSignatureException", format!("the request signature does not match: {why}. Check the secret access key")),
        AwsDenied::Forbidden(why) => ("AccessDeniedException", why),
    };
    error(wire, kind, &message, 400)
}

fn from_model(wire: Wire, e: CmError) -> Response {
    if e.status() >= 500 {
        tracing::error!(kind = e.kind, error = %e.message, "Cloud Map API fault");
    }
    error(wire, e.kind, &e.message, e.status())
}

/// Answers one Cloud Map request: `op` from the target or the path, in `wire`'s protocol.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    state: State,
    auth: &Authorizer,
    wire: Wire,
    op: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let req = sigv4::SignedRequest {
        method,
        uri,
        headers,
        body,
    };
    let path = format!("/servicediscovery.{TARGET_PREFIX}/{op}");
    match sigv4::authorize(auth, &req, Some("servicediscovery"), &path) {
        Ok(_) => {}
        Err(sigv4::Refusal::OtherService(wanted)) => {
            let message = sigv4::Refusal::other_service_message(wanted);
            return error(wire, "InvalidSignatureException", &message, 400);
        }
        Err(sigv4::Refusal::Denied(refused)) => return denied(wire, refused),
    }
    let input = match wire {
        Wire::Cbor => cbor::decode(body).map_err(|e| format!("request body: {e}")),
        Wire::Json if body.iter().all(u8::is_ascii_whitespace) => Ok(json!({})),
        Wire::Json => match serde_json::from_slice::<Value>(body) {
            Ok(v) if v.is_object() => Ok(v),
            Ok(_) => Err("request body: must be a JSON object".into()),
            Err(e) => Err(format!("request body: not valid JSON ({e})")),
        },
    };
    let input = match input {
        Ok(v) => v,
        Err(why) => return error(wire, "InvalidInput", &why, 400),
    };
    let op_name = op.to_string();
    let answer = crate::foreground::blocking(move || ops::call(&state, &op_name, &input)).await;
    match answer {
        Ok(Some(Ok(v))) => reply(wire, StatusCode::OK, &v),
        Ok(Some(Err(e))) => from_model(wire, e),
        Ok(None) => error(
            wire,
            "UnknownOperationException",
            &format!(
                "Cloud Map operation {op:?} is not one Berth answers; it answers {}",
                ops::NAMES.join(", ")
            ),
            400,
        ),
        Err(e) => error(wire, "InternalError", &format!("{op} failed: {e}"), 500),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cbor_path_names_the_operation() {
        assert_eq!(
            cbor_operation("/service/Route53AutoNaming_v20170314/operation/ListNamespaces"),
            Ok("ListNamespaces".into())
        );
        for bad in [
            "/service/Other/operation/ListNamespaces",
            "/service/Route53AutoNaming_v20170314/operation/",
            "/service/Route53AutoNaming_v20170314",
            "/x",
        ] {
            assert!(cbor_operation(bad).is_err(), "{bad}");
        }
    }
}
